# SPDX-License-Identifier: MIT
"""OAuth2 authorisers: client credentials, authorisation code and authorisation code with PKCE.

What they add to aiorequestful 1.0.20 (see the migration guide, docs/migrating.md):

* token and refresh requests are form bodies (RFC 6749 §2.3.1), never query strings;
* token responses are checked: HTTP status, content type, and the provider's ``error``/``error_description``
  end up in a clear :class:`AuthoriserError`;
* one authorisation at a time per authoriser and event loop: concurrent callers share its result, so an
  expired token costs one token request whatever the concurrency;
* :meth:`OAuth2Authoriser.invalidate` lets a 401 force a refresh (at most once per request, a bound kept by
  RequestHandler);
* an opt-in ``token_store`` shares one token between the processes of a fleet, one of which renews it;
* the consent callback is served without blocking the loop, with a real HTTP reply, a checked state and a
  time-out that raises :class:`AuthoriserError`; ``redirect_uri`` accepts a ``str``; PKCE verifiers are new per
  authorisation;
* token files are written atomically with mode 0600;
* every request an authoriser sends has a time-out (:attr:`OAuth2Authoriser.request_timeout`, by default
  :data:`aiorequestful.limits.DEFAULT_AUTH_TIMEOUT`), so a stalled token endpoint fails with
  :class:`AuthoriserError` instead of holding the caller for aiohttp's 5 minutes.

No token, secret, code or ``Authorization`` value is logged at any level; diagnostics use
:attr:`AuthResponse.sanitised`.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import secrets
import sys
import warnings
import webbrowser
from abc import ABC, abstractmethod
from base64 import b64encode, urlsafe_b64encode
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPMethod
from typing import Any, Protocol
from urllib.parse import parse_qsl
from uuid import UUID, uuid4

from aiohttp import ClientError, ClientSession, ClientTimeout
from yarl import URL

from .. import limits
from .._backend import kernels
from ..types import Headers, UnitIterable, URLInput
from ._callback import CallbackListener, provider_text
from ._single_flight import SingleFlight
from .base import _DEFAULT_SERVICE_NAME, Authoriser
from .exception import AuthoriserError
from .utils import AuthRequest, AuthResponse, AuthTester, SocketHandler

#: The default redirect URI of the authorisation-code flows (as in 1.0.20).
_DEFAULT_REDIRECT_URI = "http://localhost:8080"
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

#: Payload fields whose values are secrets: they are blanked out of any provider text we repeat.
_SECRET_FIELDS = frozenset({"client_secret", "code", "code_verifier", "refresh_token", "password", "assertion"})

#: Opens the authorisation page; may be a plain or an async callable. A plain one runs in a worker thread
#: because ``webbrowser.open`` can block (console browsers run until they exit).
BrowserOpener = Callable[[str], Any]


def _failure(exc: BaseException) -> str:
    """How a request failed, for a message: a time-out says so, anything else is named by its type."""
    if isinstance(exc, TimeoutError):
        return f"timed out ({type(exc).__name__})"
    return type(exc).__name__


#: How long an in-process browser hook may keep reading the callback's reply page after the code arrived.
_BROWSER_GRACE_SECONDS = 2.0


class TokenStore(Protocol):
    """Shares an authoriser's token between workers (see :class:`~aiorequestful.shared.RedisTokenStore`).

    ``authorise`` returns the headers for a usable token, calling ``local()`` (the authoriser's own
    authorisation, which fills ``authoriser.response``) when the token has to be renewed.
    """

    async def authorise(
        self, authoriser: OAuth2Authoriser, local: Callable[[], Awaitable[Headers]]
    ) -> Headers: ...  # pragma: no cover - protocol


def _is_async_callable(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004


def _stdout_handler_configured(logger: logging.Logger) -> bool:
    """True when a handler on ``logger``'s propagation path already writes to stdout."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
                return True
        current = current.parent if current.propagate else None
    return False


def _scopes(scope: UnitIterable[str]) -> str:
    values = [scope] if isinstance(scope, str) else list(scope)
    return " ".join(str(value) for value in values if value)


class OAuth2Authoriser(Authoriser, ABC):
    """Base class of the OAuth2 flows (RFC 6749).

    :param token_request: The request that obtains tokens from the token endpoint.
    :param service_name: The service's name, used only in messages.
    :param response_handler: Holds the token response (and its file); a new :class:`AuthResponse` by default.
    :param response_tester: Decides whether the stored token is usable; a new :class:`AuthTester` by default.
    """

    __slots__ = ("_flight", "_rejected", "request_timeout", "response", "tester", "token_request", "token_store")

    def __init__(
        self,
        token_request: AuthRequest,
        service_name: str = _DEFAULT_SERVICE_NAME,
        response_handler: AuthResponse | None = None,
        response_tester: AuthTester | None = None,
    ) -> None:
        super().__init__(service_name=service_name)
        self.token_request = token_request
        # `is None`, not `or`: an empty AuthResponse is falsy but is still the caller's (e.g. with a file path).
        self.response: AuthResponse = response_handler if response_handler is not None else AuthResponse()
        self.tester: AuthTester = response_tester if response_tester is not None else AuthTester()
        self._flight: SingleFlight[Headers] = SingleFlight()
        #: The Authorization value a server refused (see invalidate); None when nothing was refused.
        self._rejected: str | None = None
        #: Opt-in: a token store shared by several workers, e.g. a
        #: :class:`~aiorequestful.shared.RedisTokenStore`. When set, :meth:`authorise` uses the shared token and
        #: only one worker at a time renews it; None (default): this authoriser keeps its token to itself.
        self.token_store: TokenStore | None = None
        #: The time-out of every token, refresh and user request this authoriser sends, unless the request has
        #: its own ``timeout``. Read from :mod:`aiorequestful.limits` when the authoriser is made.
        self.request_timeout: ClientTimeout = limits.DEFAULT_AUTH_TIMEOUT

    def __repr__(self) -> str:
        return f"{type(self).__name__}(service_name={self.service_name!r}, token_url={self._token_url()!r})"

    @property
    def is_token_valid(self) -> Awaitable[bool]:
        """Awaitable: whether the stored token can be used as it is (not refused by the server, passes the tester)."""
        return self._is_valid()

    @staticmethod
    def _encode_client_credentials_as_headers(client_id: str, client_secret: str) -> Headers:
        credentials = b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        return {"Authorization": f"Basic {credentials}"}

    @abstractmethod
    async def authorise(self) -> Headers:
        """Return ``Authorization`` headers for a valid token (the abstract member of :class:`Authoriser`).

        The built-in flows implement it as :meth:`_single_flight` over their ``_authorise`` step; a user subclass
        may implement it directly, as 1.0.20 allows, or the same way.
        """
        raise NotImplementedError

    async def _single_flight(self) -> Headers:
        """Run :meth:`_authorise` once for every concurrent caller, loading, refreshing or requesting a token.

        The callers that arrive while an authorisation runs get its result. With a :attr:`token_store`, the
        authorisation goes through the store (one renewal for a whole fleet).
        """
        store = self.token_store
        if store is None:
            return await self._flight.run(self._authorise)
        return await self._flight.run(lambda: store.authorise(self, self._authorise))

    async def _authorise(self) -> Headers:
        """One authorisation, run by :meth:`_single_flight`; the built-in flows implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _authorise()")

    async def invalidate(self, rejected: str | None = None) -> None:
        """Mark the current token as refused by the server so that the next :meth:`authorise` renews it.

        ``rejected`` is the ``Authorization`` value the refused request carried. When it is not the current
        token's (a concurrent refresh already replaced that token), nothing happens; ``None`` always marks the
        current token.
        """
        current = self._current_authorization()
        if current is None:
            return
        if rejected is None or rejected == current:
            if self._rejected != current:  # one message however many concurrent requests were refused
                self.logger.info("The token for %s was refused by the server; it will be renewed", self.service_name)
            self._rejected = current
        else:
            self.logger.debug("Ignoring a refusal of a token for %s that was already replaced", self.service_name)

    # ----------------------------------------------------------------------------------------------
    # shared steps
    # ----------------------------------------------------------------------------------------------
    def _token_url(self) -> str:
        return str(self.token_request.url.with_query(None))

    def _session(self) -> ClientSession:
        """A session for this authoriser's own requests: a request without a ``timeout`` gets request_timeout."""
        return ClientSession(timeout=self.request_timeout)

    def _current_authorization(self) -> str | None:
        try:
            return self.response.headers.get("Authorization")
        except AuthoriserError:
            return None

    async def _is_valid(self) -> bool:
        response = self.response
        if not response:
            return False
        if self._rejected is not None and self._current_authorization() == self._rejected:
            self.logger.debug("The stored token for %s was refused by the server", self.service_name)
            return False
        # The tester alone judges the token, expiry included: the default one (max_expiry=0) does not look at
        # expiry, so a token past its expires_at is still sent, and a 401 for it renews it (see invalidate).
        return bool(await self.tester(response=response))

    def _load(self) -> bool:
        """Load the token file when nothing is in memory; True when a token response is available."""
        if self.response:
            return True
        # The two messages belong to these two outcomes (1.0.20 had them swapped).
        if self.response.load_response_from_file():
            self.logger.debug("Loaded the saved access token for %s", self.service_name)
            return True
        self.logger.debug("Saved access token for %s not found", self.service_name)
        return False

    def _finish(self, valid: bool) -> Headers:
        if not self.response:
            raise AuthoriserError("Could not generate or load a token")
        if not valid:
            raise AuthoriserError(f"Auth response is still not valid: {self.response.sanitised}")
        headers = self.response.headers  # raises for a response without a token: such a response is not saved
        path = self.response.file_path
        if path is not None:
            # Every successful authorisation saves the response, as the reference does: a token the caller set
            # in memory (or one adopted from a shared store) replaces what the file held.
            try:
                self.response.save_response_to_file()
            except OSError as exc:
                # The token is valid and in memory: losing the file must not fail the caller's requests.
                self.logger.warning(
                    "Could not save the token for %s to %s (%s); it will be requested again next run",
                    self.service_name,
                    path,
                    exc.strerror or type(exc).__name__,
                )
        return headers

    async def _request_token(
        self, session: ClientSession, request: AuthRequest, payload: Mapping[str, Any] | None = None
    ) -> None:
        """Send ``request`` with ``payload`` merged into its body and store the checked token response."""
        payload = dict(payload or {})  # None is a valid payload
        url = str(request.url.with_query(None))
        grant = payload.get("grant_type", "token")
        with request.enrich_payload(payload):
            try:
                async with request.request(session) as response:
                    body = await response.read()
                    status, reason, content_type = response.status, response.reason or "", response.content_type
            except (ClientError, TimeoutError) as exc:
                raise AuthoriserError(
                    f"Token request ({grant}) for {self.service_name} to {url} failed: {_failure(exc)}"
                ) from exc

        content = self._read_token_response(body, content_type)
        if not 200 <= status < 300 or content is None or "error" in content:
            raise AuthoriserError(
                self._token_failure(grant, url, status, reason, content_type, content, request, payload)
            )
        self.response.replace(content)
        self.response.enrich(refresh_token=payload.get("refresh_token"))
        self._rejected = None  # a new token: earlier refusals were about the old one
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug(
                "Token request (%s) for %s to %s: %s %s | %s",
                grant,
                self.service_name,
                url,
                status,
                reason,
                self.response.sanitised,
            )

    def _read_token_response(self, body: bytes, content_type: str) -> dict[str, Any] | None:
        """The response's fields, or None when it is neither a JSON object nor a form."""
        if content_type == "application/x-www-form-urlencoded":
            # Some providers (e.g. GitHub without Accept: application/json) answer with a form.
            try:
                return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except (UnicodeDecodeError, ValueError):
                return None
        try:
            content = kernels.json_loads(body) if body else None
        except ValueError:
            return None
        if not isinstance(content, dict):
            return None
        if content_type != "application/json" and not content_type.endswith("+json"):
            self.logger.warning(
                "The token endpoint of %s answered with content type %r instead of application/json",
                self.service_name,
                content_type,
            )
        return content

    def _token_failure(
        self,
        grant: str,
        url: str,
        status: int,
        reason: str,
        content_type: str,
        content: Mapping[str, Any] | None,
        request: AuthRequest,
        payload: Mapping[str, Any],
    ) -> str:
        message = f"Token request ({grant}) for {self.service_name} failed: HTTP {status} {reason} from {url}"
        if content is None and 200 <= status < 300:
            message += f" | expected a JSON token response, got content type {content_type or 'none'!r}"
        if content and "error" in content:
            message += f" | {self._redact(content.get('error'), request, payload)}"
            if content.get("error_description"):
                message += f": {self._redact(content.get('error_description'), request, payload)}"
        return message

    def _redact(self, value: Any, request: AuthRequest, payload: Mapping[str, Any]) -> str:
        """Provider text, cleaned for a message, with any secret we sent blanked out."""
        text = provider_text(str(value))
        secrets_sent: list[str] = []
        for fields in (request.payload, payload):
            if isinstance(fields, Mapping):
                secrets_sent += [str(v) for k, v in fields.items() if k in _SECRET_FIELDS and v]
        headers = getattr(request, "headers", None)
        if isinstance(headers, Mapping):
            secrets_sent += [str(v).split(" ")[-1] for k, v in headers.items() if str(k).lower() == "authorization"]
        for secret in sorted(set(secrets_sent), key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


class ClientCredentialsFlow(OAuth2Authoriser):
    """The client credentials grant (RFC 6749 §4.4): the application authorises as itself."""

    __slots__ = ()

    @classmethod
    def create(
        cls, token_request_url: URLInput, client_id: str, client_secret: str, service_name: str = _DEFAULT_SERVICE_NAME
    ) -> ClientCredentialsFlow:
        """A flow that sends ``client_id``/``client_secret`` in the token request's form body, never in the URL."""
        token_request = AuthRequest(
            method=HTTPMethod.POST,
            url=URL(token_request_url),
            data={"client_id": client_id, "client_secret": client_secret},
        )
        return cls(token_request=token_request, service_name=service_name)

    @classmethod
    def create_with_encoded_credentials(
        cls, token_request_url: URLInput, client_id: str, client_secret: str, service_name: str = _DEFAULT_SERVICE_NAME
    ) -> ClientCredentialsFlow:
        """A flow that authenticates with an ``Authorization: Basic`` header (RFC 6749 §2.3.1's preferred way)."""
        flow = cls.create(
            token_request_url=token_request_url, client_id=client_id, client_secret=client_secret,
            service_name=service_name,
        )  # fmt: skip
        _use_basic_credentials(flow.token_request, cls._encode_client_credentials_as_headers(client_id, client_secret))
        return flow

    async def authorise(self) -> Headers:
        """Return ``Authorization`` headers for a valid token; concurrent callers share one authorisation."""
        return await self._single_flight()

    async def _authorise(self) -> Headers:
        self._load()
        valid = await self._is_valid()
        if not valid:
            self.logger.info("Requesting a new access token for %s", self.service_name)
            async with self._session() as session:
                await self._request_token(session, self.token_request, {"grant_type": "client_credentials"})
            valid = await self._is_valid()
        return self._finish(valid)


def _use_basic_credentials(request: AuthRequest | None, headers: Headers) -> None:
    """Move the client credentials of ``request`` from its payload into a Basic ``Authorization`` header."""
    if request is None:
        return
    payload = request.payload
    if isinstance(payload, dict):
        payload.pop("client_id", None)
        payload.pop("client_secret", None)
    request.headers = dict(headers)


class AuthorisationCodeFlow(OAuth2Authoriser):
    """The authorisation code grant (RFC 6749 §4.1) with a loopback redirect (RFC 8252).

    The first :meth:`authorise` opens the provider's consent page in a browser and waits for the redirect on
    ``redirect_uri``; later runs load the saved token, refresh it (when a refresh request exists) or repeat the
    browser flow.

    :attr:`open_browser` opens the consent page: ``webbrowser.open`` by default; any plain or async callable
    taking the URL can replace it (a test drives the consent with an HTTP client this way).
    """

    __slots__ = (
        "_active_redirect_uri",
        "_redirect_uri",
        "_socket_handler",
        "_socket_handler_is_default",
        "open_browser",
        "refresh_request",
        "user_request",
    )

    def __init__(
        self,
        user_request: AuthRequest,
        token_request: AuthRequest,
        refresh_request: AuthRequest | None = None,
        service_name: str = _DEFAULT_SERVICE_NAME,
        socket_handler: SocketHandler | None = None,
        redirect_uri: URLInput | None = None,
        response_handler: AuthResponse | None = None,
        response_tester: AuthTester | None = None,
    ) -> None:
        super().__init__(
            token_request=token_request,
            service_name=service_name,
            response_handler=response_handler,
            response_tester=response_tester,
        )
        self.user_request = user_request
        self.refresh_request = refresh_request
        self.open_browser: BrowserOpener = webbrowser.open
        self._socket_handler_is_default = socket_handler is None
        self._socket_handler: SocketHandler = socket_handler if socket_handler is not None else SocketHandler()
        self._redirect_uri = URL(_DEFAULT_REDIRECT_URI)
        self.redirect_uri = redirect_uri  # the setter accepts None and str
        self._active_redirect_uri: URL | None = None

    @property
    def redirect_uri(self) -> URL:
        """Where the provider sends the browser back to; a ``str`` is accepted."""
        return self._redirect_uri

    @redirect_uri.setter
    def redirect_uri(self, value: URLInput | None) -> None:
        uri = URL(value) if value is not None else URL(_DEFAULT_REDIRECT_URI)
        if not uri.is_absolute() or uri.scheme not in ("http", "https"):
            raise AuthoriserError(f"redirect_uri must be an absolute http URL, not {str(uri)!r}")
        self._redirect_uri = uri
        if self._socket_handler_is_default:
            # The default listener follows the redirect URI's port (as in 1.0.20: port=redirect_uri.port).
            self._socket_handler = SocketHandler(port=uri.port or 0, timeout=self._socket_handler.timeout)

    @property
    def socket_handler(self) -> SocketHandler:
        """The listener for the redirect; ``SocketHandler(port=redirect_uri.port)`` unless one was given."""
        return self._socket_handler

    @socket_handler.setter
    def socket_handler(self, value: SocketHandler | None) -> None:
        self._socket_handler_is_default = value is None
        self._socket_handler = value if value is not None else SocketHandler(port=self._redirect_uri.port or 0)

    # ----------------------------------------------------------------------------------------------
    # constructors
    # ----------------------------------------------------------------------------------------------
    @staticmethod
    def _build_user_request(user_request_url: URLInput, client_id: str, scope: UnitIterable[str]) -> AuthRequest:
        params = {"client_id": client_id}
        scopes = _scopes(scope)
        if scopes:  # an empty scope parameter is not a valid scope (RFC 6749 §3.3): leave it out
            params["scope"] = scopes
        # The user request stays a query string: its URL is what the browser opens.
        return AuthRequest(method=HTTPMethod.POST, url=URL(user_request_url), params=params)

    @classmethod
    def create(
        cls,
        user_request_url: URLInput,
        token_request_url: URLInput,
        client_id: str,
        client_secret: str,
        refresh_request_url: URLInput | None = None,
        scope: UnitIterable[str] = (),
        service_name: str = _DEFAULT_SERVICE_NAME,
        *,
        redirect_uri: URLInput | None = None,
    ) -> AuthorisationCodeFlow:
        """A flow whose token and refresh requests send the client credentials in their form body."""
        client = {"client_id": client_id, "client_secret": client_secret}
        if not client_secret:
            del client["client_secret"]
        token_request = AuthRequest(method=HTTPMethod.POST, url=URL(token_request_url), data=dict(client))
        refresh_request = None
        if refresh_request_url is not None:
            # RFC 6749 §6: a confidential client authenticates on refresh too, so the secret goes along.
            refresh_request = AuthRequest(method=HTTPMethod.POST, url=URL(refresh_request_url), data=dict(client))
        return cls(
            user_request=cls._build_user_request(user_request_url, client_id, scope),
            token_request=token_request,
            refresh_request=refresh_request,
            service_name=service_name,
            redirect_uri=redirect_uri,
        )

    @classmethod
    def create_with_encoded_credentials(
        cls,
        user_request_url: URLInput,
        token_request_url: URLInput,
        client_id: str,
        client_secret: str,
        refresh_request_url: URLInput | None = None,
        scope: UnitIterable[str] = (),
        service_name: str = _DEFAULT_SERVICE_NAME,
        *,
        redirect_uri: URLInput | None = None,
    ) -> AuthorisationCodeFlow:
        """A flow whose token and refresh requests authenticate with a Basic header (both, not only the first)."""
        flow = cls.create(
            user_request_url=user_request_url,
            token_request_url=token_request_url,
            client_id=client_id,
            client_secret="",
            refresh_request_url=refresh_request_url,
            scope=scope,
            service_name=service_name,
            redirect_uri=redirect_uri,
        )
        headers = cls._encode_client_credentials_as_headers(client_id, client_secret)
        _use_basic_credentials(flow.token_request, headers)
        _use_basic_credentials(flow.refresh_request, headers)
        return flow

    # ----------------------------------------------------------------------------------------------
    # authorisation
    # ----------------------------------------------------------------------------------------------
    async def authorise(self) -> Headers:
        """Return ``Authorization`` headers for a valid token; concurrent callers share one authorisation."""
        return await self._single_flight()

    async def _authorise(self) -> Headers:
        loaded = self._load()
        if not loaded:
            async with self._session() as session:
                await self._authorise_with_code(session)
        valid = await self._is_valid()

        if not valid and loaded:
            async with self._session() as session:
                refresh_token = self.response.get("refresh_token")
                if self.refresh_request is not None and refresh_token:
                    self.logger.info("Refreshing the access token for %s", self.service_name)
                    try:
                        await self._request_token(
                            session,
                            self.refresh_request,
                            {"grant_type": "refresh_token", "refresh_token": str(refresh_token)},
                        )
                    except AuthoriserError as exc:
                        if isinstance(exc.__cause__, (ClientError, TimeoutError)):
                            raise  # the provider is unreachable: a browser flow would fail the same way
                        self.logger.warning("%s; authorising %s again", exc, self.service_name)
                    else:
                        valid = await self._is_valid()
                if not valid:
                    await self._authorise_with_code(session)
                    valid = await self._is_valid()
        return self._finish(valid)

    async def _authorise_with_code(self, session: ClientSession) -> None:
        code = await self._authorise_user(session)
        await self._request_token(session, self.token_request, self._token_payload(code))

    def _user_payload(self, state: UUID, redirect_uri: URL) -> dict[str, str]:
        return {"response_type": "code", "redirect_uri": str(redirect_uri), "state": str(state)}

    def _token_payload(self, code: str) -> dict[str, str]:
        redirect_uri = self._active_redirect_uri or self.redirect_uri
        # RFC 6749 §4.1.3: redirect_uri must be identical to the one of the authorisation request.
        return {"grant_type": "authorization_code", "code": code, "redirect_uri": str(redirect_uri)}

    def _listening_redirect_uri(self, port: int) -> URL:
        """The redirect URI for this authorisation, given the port the listener actually got."""
        redirect = self.redirect_uri
        if self.socket_handler.port == 0 or redirect.explicit_port == 0:
            # An ephemeral listener: RFC 8252 §7.3 lets a loopback redirect URI use any port.
            return redirect.with_port(port)
        if redirect.port != port:
            self.logger.warning(
                "The redirect URI of %s uses port %s but the callback listener is on port %s",
                self.service_name,
                redirect.port,
                port,
            )
        return redirect

    async def _authorise_user(self, session: ClientSession) -> str:
        """Have the user authorise in a browser and return the authorisation code from the redirect."""
        state = uuid4()  # a new state per authorisation, checked on the callback (CSRF, RFC 6749 §10.12)
        handler = self.socket_handler
        with handler as sock:
            redirect_uri = self._listening_redirect_uri(sock.getsockname()[1])
            self._active_redirect_uri = redirect_uri
            if redirect_uri.host not in _LOOPBACK_HOSTS:
                self.logger.warning(
                    "The redirect URI of %s is not a loopback address; the callback is only received on 127.0.0.1",
                    self.service_name,
                )
            listener = CallbackListener(sock, redirect_uri=redirect_uri, state=state, service_name=self.service_name)
            await listener.start()
            try:
                page_url = await self._open_user_request(session, self._user_payload(state, redirect_uri), listener)
                opener: asyncio.Task[None] | None = None
                if not listener.done:
                    self._announce(page_url, handler.timeout, redirect_uri)
                    opener = asyncio.ensure_future(self._open_browser(page_url))
                try:
                    return await listener.wait(handler.timeout)
                finally:
                    if opener is not None and not opener.done():
                        if listener.done:
                            # The code arrived while an in-process browser hook may still be reading the reply
                            # page: let it finish (briefly) rather than cut it off mid-response.
                            await asyncio.wait({opener}, timeout=_BROWSER_GRACE_SECONDS)
                        opener.cancel()
                        await asyncio.gather(opener, return_exceptions=True)
            finally:
                await listener.close()

    async def _open_user_request(
        self, session: ClientSession, payload: dict[str, str], listener: CallbackListener
    ) -> str:
        """Send the user request and return the page to open (its final URL, as in 1.0.20)."""
        request = self.user_request
        with request.enrich_payload(payload):
            try:
                async with request.request(session) as response:
                    status, reason, page_url = response.status, response.reason, str(response.url)
            except (ClientError, TimeoutError) as exc:
                raise AuthoriserError(
                    f"Could not open the authorisation page of {self.service_name} at "
                    f"{request.url.with_query(None)}: {_failure(exc)}"
                ) from exc
        if listener.done:
            # The provider redirected straight back (consent given before): the session delivered the callback,
            # whose outcome the caller reads from the listener.
            return page_url
        if status >= 400 and status != 405:
            # 405: the endpoint only takes GET, which the browser does; anything else is a real refusal.
            raise AuthoriserError(
                f"The authorisation page of {self.service_name} answered HTTP {status} {reason} "
                f"at {request.url.with_query(None)}"
            )
        return page_url

    def _announce(self, page_url: str, timeout: float, redirect_uri: URL) -> None:
        message = (
            f"Opening your browser to authorise {self.service_name}. Waiting {timeout} seconds for the "
            f"authorisation on {redirect_uri}. If no browser opens, visit: {page_url}"
        )
        self.logger.info("%s", message)
        if not _stdout_handler_configured(self.logger):
            print(message)  # the user must see this even without logging configured

    async def _open_browser(self, page_url: str) -> None:
        opener = self.open_browser
        try:
            if _is_async_callable(opener):
                opened = await opener(page_url)
            else:
                opened = await asyncio.to_thread(opener, page_url)
                if inspect.isawaitable(opened):
                    opened = await opened
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the user can still open the URL shown
            self.logger.warning("Could not open a browser (%s); open the URL shown above", type(exc).__name__)
            return
        if opened is False:
            self.logger.warning("No browser could be opened; open the URL shown above")


class AuthorisationCodePKCEFlow(AuthorisationCodeFlow):
    """The authorisation code grant with PKCE (RFC 7636), for public clients that hold no secret.

    Every authorisation uses a new ``code_verifier`` and sends its S256 challenge.

    :param pkce_code_length: Length of the code verifier, 43 to 128 characters.
    """

    __slots__ = ("code_verifier", "pkce_code_length")

    def __init__(
        self,
        user_request: AuthRequest,
        token_request: AuthRequest,
        refresh_request: AuthRequest | None = None,
        service_name: str = _DEFAULT_SERVICE_NAME,
        socket_handler: SocketHandler | None = None,
        redirect_uri: URLInput | None = None,
        response_handler: AuthResponse | None = None,
        response_tester: AuthTester | None = None,
        pkce_code_length: int = 128,
    ) -> None:
        if (
            isinstance(pkce_code_length, bool)
            or not isinstance(pkce_code_length, int)
            or not (43 <= pkce_code_length <= 128)
        ):
            raise AuthoriserError("PKCE code length must be between 43 and 128 inclusive")
        super().__init__(
            user_request=user_request,
            token_request=token_request,
            refresh_request=refresh_request,
            service_name=service_name,
            socket_handler=socket_handler,
            redirect_uri=redirect_uri,
            response_handler=response_handler,
            response_tester=response_tester,
        )
        self.pkce_code_length = pkce_code_length
        self.code_verifier = self._new_code_verifier()

    def _new_code_verifier(self) -> str:
        # 96 random bytes -> 128 URL-safe characters, all in RFC 7636's unreserved set.
        return secrets.token_urlsafe(96)[: self.pkce_code_length]

    @staticmethod
    def _code_challenge(code_verifier: str) -> str:
        digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
        return urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    @classmethod
    def create(  # type: ignore[override]  # 1.0.20's signature: no client_secret parameter
        cls,
        user_request_url: URLInput,
        token_request_url: URLInput,
        client_id: str,
        refresh_request_url: URLInput | None = None,
        scope: UnitIterable[str] = (),
        service_name: str = _DEFAULT_SERVICE_NAME,
        **kwargs: Any,
    ) -> AuthorisationCodePKCEFlow:
        """A PKCE flow for a public client: token and refresh requests carry only ``client_id`` (form body).

        ``redirect_uri`` is honoured; ``client_secret`` is accepted and not used (the inherited
        ``create_with_encoded_credentials`` passes it); any other keyword argument is ignored with a warning.
        """
        redirect_uri = kwargs.pop("redirect_uri", None)
        kwargs.pop("client_secret", None)
        if kwargs:
            warnings.warn(
                f"{cls.__name__}.create() ignores unknown keyword arguments: {', '.join(sorted(kwargs))}",
                UserWarning,
                stacklevel=2,
            )
        token_request = AuthRequest(method=HTTPMethod.POST, url=URL(token_request_url), data={"client_id": client_id})
        refresh_request = None
        if refresh_request_url is not None:
            refresh_request = AuthRequest(
                method=HTTPMethod.POST, url=URL(refresh_request_url), data={"client_id": client_id}
            )
        return cls(
            user_request=cls._build_user_request(user_request_url, client_id, scope),
            token_request=token_request,
            refresh_request=refresh_request,
            service_name=service_name,
            redirect_uri=redirect_uri,
        )

    def _user_payload(self, state: UUID, redirect_uri: URL) -> dict[str, str]:
        # A new verifier for every authorisation (RFC 7636 §4.1), never reused.
        self.code_verifier = self._new_code_verifier()
        return {
            **super()._user_payload(state, redirect_uri),
            "code_challenge_method": "S256",
            "code_challenge": self._code_challenge(self.code_verifier),
        }

    def _token_payload(self, code: str) -> dict[str, str]:
        return {**super()._token_payload(code), "code_verifier": self.code_verifier}


OAUTH2_CLASSES: frozenset[type[OAuth2Authoriser]] = frozenset(
    {ClientCredentialsFlow, AuthorisationCodeFlow, AuthorisationCodePKCEFlow}
)

__all__ = (
    "OAUTH2_CLASSES",
    "AuthorisationCodeFlow",
    "AuthorisationCodePKCEFlow",
    "ClientCredentialsFlow",
    "OAuth2Authoriser",
)
