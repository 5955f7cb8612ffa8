# SPDX-License-Identifier: MIT
"""Building blocks of the OAuth2 authorisers: stored requests, token responses, token testers and the local
callback socket."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from http import HTTPMethod
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Unpack

from aiohttp import ClientError, ClientResponse, ClientSession, ClientTimeout
from multidict import MultiDict, MultiMapping
from yarl import URL

from .. import limits
from .._backend import kernels
from ..types import JSON, Headers, ImmutableHeaders, RequestKwargs
from ._token_file import read_private, write_private_atomic
from .exception import AuthoriserError

logger = logging.getLogger(__name__)

#: The aiohttp request options an AuthRequest can hold, in the order 1.0.20 lists them.
_REQUEST_KWARGS: tuple[str, ...] = tuple(RequestKwargs.__annotations__)
_PAYLOAD_KINDS = ("data", "params", "json")

#: Masking used by AuthResponse.sanitised: the first few characters identify a token in a log without
#: making it usable.
_MASK_KEEP = 5


# --------------------------------------------------------------------------------------------------
# AuthRequest
# --------------------------------------------------------------------------------------------------
def _sanitise_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _sanitise_mapping(value)
    # bool first: it is an int subclass, but yarl and form encoders reject it (True -> "true").
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return json.dumps(value, default=str)
    return value


def _sanitise_mapping(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """A sanitised copy of a query/form mapping; the caller's mapping is never modified."""
    if isinstance(value, MultiMapping):
        # A MultiDict may repeat a key; a dict would silently drop all but the last value.
        return MultiDict((key, _sanitise_value(item)) for key, item in value.items())
    return {key: _sanitise_value(item) for key, item in value.items()}


def _merge_headers(current: Any, value: Mapping[str, str]) -> dict[str, str]:
    """``current | value`` where header names match case-insensitively (a new dict)."""
    merged = dict(current) if current else {}
    override = {name.lower() for name in value}
    merged = {name: item for name, item in merged.items() if str(name).lower() not in override}
    merged.update(value)
    return merged


class AuthRequest:
    """The stored arguments of one aiohttp request (a token, refresh, user or test request).

    Every keyword argument of :class:`aiorequestful.types.RequestKwargs` becomes an attribute; any other name
    raises ``AttributeError``. ``method`` becomes an :class:`http.HTTPMethod` and ``url`` a :class:`yarl.URL`.
    The *payload* is whichever of ``data``/``json``/``params`` was given (in that order of preference), and
    can be moved with :meth:`set_payload_type`.
    """

    __slots__ = ("_payload_key", *_REQUEST_KWARGS)

    def __init__(self, **kwargs: Unpack[RequestKwargs]) -> None:
        for name, value in kwargs.items():
            if name not in _REQUEST_KWARGS:
                raise AttributeError(
                    f"{type(self).__name__} got an unexpected keyword argument {name!r} "
                    "(not an option of aiohttp.ClientSession.request)"
                )
            setattr(self, name, value)
        if "method" not in kwargs or "url" not in kwargs:
            raise AttributeError(f"{type(self).__name__} requires the keyword arguments 'method' and 'url'")

        self.method: HTTPMethod = HTTPMethod(str(kwargs["method"]).upper())
        self.url: URL = URL(kwargs["url"])
        if "data" in kwargs:
            self._payload_key: str = "data"
        elif "json" in kwargs:
            self._payload_key = "json"
        else:
            self._payload_key = "params"

    def __repr__(self) -> str:
        # Only the names of the payload fields: their values are client ids, secrets, codes.
        payload = self.payload
        fields = sorted(map(str, payload)) if isinstance(payload, Mapping) else type(payload).__name__
        return (
            f"{type(self).__name__}(method={self.method.name}, url={str(self.url.with_query(None))!r}, "
            f"{self._payload_key}={fields})"
        )

    @property
    def payload(self) -> Any:
        """The current payload: the value of the ``data``, ``json`` or ``params`` attribute (None when unset)."""
        return getattr(self, self._payload_key, None)

    @payload.setter
    def payload(self, value: Any) -> None:
        setattr(self, self._payload_key, value)

    def set_payload_type(self, kind: Literal["data", "params", "json"]) -> None:
        """Move the current payload to ``kind`` (form body, query parameters or JSON body).

        Providers differ: RFC 6749 wants token requests as a form body (the default of the ``create``
        constructors), some APIs want JSON or query parameters.
        """
        if kind not in _PAYLOAD_KINDS:
            raise ValueError(f"Payload type must be one of {', '.join(_PAYLOAD_KINDS)}, not {kind!r}")
        if kind == self._payload_key:
            return
        old_key, self._payload_key = self._payload_key, kind
        if not hasattr(self, old_key):
            return
        value = getattr(self, old_key)
        delattr(self, old_key)
        existing = getattr(self, kind, None)
        if isinstance(existing, Mapping) and isinstance(value, Mapping):
            # Both hold fields: keep both rather than silently dropping what was already there.
            value = {**existing, **value}
        elif existing:
            setattr(self, old_key, value)
            self._payload_key = old_key
            raise ValueError(f"Cannot move the payload to {kind!r}: it already holds a value that is not a mapping")
        setattr(self, kind, value)

    @contextmanager
    def enrich_payload(self, value: Mapping[str, Any] | None) -> Iterator[None]:
        """Within the block, the payload is ``current | value``; the previous payload is restored on exit."""
        if not value:
            yield
            return
        key = self._payload_key
        previous = getattr(self, key, None)
        if previous and not isinstance(previous, Mapping):
            raise TypeError(
                f"Cannot add fields to a {type(previous).__name__} {key!r} payload; give the request a mapping"
            )
        setattr(self, key, {**(previous or {}), **value})
        try:
            yield
        finally:
            # Restore even when the block raised, or codes and secrets stay on the request.
            self._restore(key, previous)

    @contextmanager
    def enrich_headers(self, value: Mapping[str, str] | None) -> Iterator[None]:
        """Within the block, ``headers`` is ``current | value`` (names case-insensitive); restored on exit."""
        if not value:
            yield
            return
        previous = getattr(self, "headers", None)
        self.headers = _merge_headers(previous, value)
        try:
            yield
        finally:
            self._restore("headers", previous)  # restored even when the block raised

    def _restore(self, key: str, previous: Any) -> None:
        if previous:
            setattr(self, key, previous)
        elif hasattr(self, key):
            delattr(self, key)

    def _request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for name in _REQUEST_KWARGS:
            if name in ("method", "url") or not hasattr(self, name):
                continue
            value = getattr(self, name)
            if name in ("params", "data") and isinstance(value, Mapping):
                # Only query parameters and form fields are made string-safe; JSON bodies are sent as given,
                # and non-mapping data (a str, bytes, FormData, a stream) is passed through untouched.
                value = _sanitise_mapping(value)
            elif name in ("json", "headers") and isinstance(value, (dict, list)):
                with contextlib.suppress(Exception):  # an uncopyable value is still sendable as is
                    value = copy.deepcopy(value)
            kwargs[name] = value
        return kwargs

    @asynccontextmanager
    async def _send(self, session: ClientSession) -> Any:
        async with session.request(method=self.method.name, url=self.url, **self._request_kwargs()) as response:
            yield response

    def request(self, session: ClientSession) -> AbstractAsyncContextManager[ClientResponse]:
        """Send the request with ``session``: ``async with req.request(session) as response: ...``."""
        return self._send(session)

    def __call__(self, session: ClientSession) -> AbstractAsyncContextManager[ClientResponse]:
        return self._send(session)


# --------------------------------------------------------------------------------------------------
# AuthResponse
# --------------------------------------------------------------------------------------------------
def _mask(value: Any) -> str:
    text = str(value)
    return "" if len(text) < _MASK_KEEP else f"{text[:_MASK_KEEP]}..."


def _is_secret_key(key: Any, token_key: str) -> bool:
    if key == token_key:
        return True
    # "_token" covers refresh_token/id_token (as 1.0.20 does); "secret" is an extra guard for client secrets.
    return isinstance(key, str) and (key.endswith("_token") or "secret" in key.lower())


class AuthResponse(MutableMapping[str, Any]):
    """The token endpoint's JSON response, with helpers to build headers and to keep it in a file.

    :param file_path: Where to keep the response; the suffix is always ``.json``. The file is written
        atomically with mode 0600.
    :param token_prefix_default: The ``Authorization`` scheme when the response has no ``token_type``.
    :param additional_headers: Extra headers returned by :attr:`headers` along with ``Authorization``.
    """

    __slots__ = ("_file_path", "_response", "additional_headers", "logger", "token_key", "token_prefix_default")

    def __init__(
        self,
        file_path: str | Path | None = None,
        token_prefix_default: str | None = None,
        additional_headers: ImmutableHeaders | None = None,
    ) -> None:
        self.logger: logging.Logger = logger
        self._response: dict[str, Any] = {}
        self._file_path: Path | None = None
        self.file_path = file_path
        self.token_key = "access_token"  # noqa: S105 - a key name, not a secret
        self.token_prefix_default = token_prefix_default
        self.additional_headers = additional_headers

    @property
    def file_path(self) -> Path | None:
        """The token file: the given path with the suffix ``.json`` (None: the response is not persisted)."""
        return self._file_path

    @file_path.setter
    def file_path(self, value: str | Path | None) -> None:
        self._file_path = Path(value).with_suffix(".json") if value is not None else None

    # MutableMapping over the stored response
    def __getitem__(self, key: str) -> Any:
        return self._response[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._response[key] = value

    def __delitem__(self, key: str) -> None:
        del self._response[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._response)

    def __len__(self) -> int:
        return len(self._response)

    def __repr__(self) -> str:
        # A repr ends up in logs and tracebacks: show the sanitised response only.
        return f"{type(self).__name__}({self.sanitised!r})"

    @property
    def token(self) -> str:
        """The access token (the value at :attr:`token_key`)."""
        if not self._response:
            raise AuthoriserError("Stored response is not available.")
        value = self._response.get(self.token_key)
        if value is None or value == "":
            raise AuthoriserError(f"Did not find valid token at key: {self.token_key} | {self.sanitised}")
        return str(value)

    @property
    def headers(self) -> Headers:
        """``{"Authorization": "<token_type> <token>"}`` plus :attr:`additional_headers`; ``{}`` when empty."""
        if not self._response:
            return {}
        prefix = self._response.get("token_type") or self.token_prefix_default
        if isinstance(prefix, str) and prefix.lower() == "bearer":
            # RFC 6749 §5.1: token_type is case-insensitive; some resource servers only accept RFC 6750's "Bearer".
            prefix = "Bearer"
        token = self.token
        # Without a token type or default prefix, send the token alone rather than "None <token>".
        headers: Headers = {"Authorization": f"{prefix} {token}" if prefix else token}
        if self.additional_headers:
            headers.update(self.additional_headers)
        return headers

    @property
    def sanitised(self) -> dict[str, Any]:
        """A copy safe to log: token values are cut to their first 5 characters (shorter ones are blanked)."""
        if not self._response:
            return {}
        return {
            key: _mask(value) if _is_secret_key(key, self.token_key) else value for key, value in self._response.items()
        }

    def replace(self, response: Mapping[str, Any]) -> None:
        """Replace the whole stored response."""
        self._response.clear()
        self._response.update(response)

    def enrich(self, refresh_token: str | None = None) -> None:
        """Record ``granted_at`` and ``expires_at`` (epoch seconds), and keep ``refresh_token`` when the provider
        did not send a new one (RFC 6749 §6: a refresh response may omit it)."""
        if not self._response:
            return
        granted_at = time.time()
        self._response["granted_at"] = granted_at
        if "expires_in" in self._response:
            try:
                expires_in = float(self._response["expires_in"])
                if not math.isfinite(expires_in):
                    raise ValueError("not finite")
            except (TypeError, ValueError):
                self._response.pop("expires_at", None)
                logger.warning("Token response has an invalid expires_in value; its expiry is unknown")
            else:
                self._response["expires_at"] = granted_at + expires_in
        if refresh_token and not self._response.get("refresh_token"):
            self._response["refresh_token"] = refresh_token

    def load_response_from_file(self) -> JSON | None:
        """Replace the response with the token file's content and return it; None without a (valid) file.

        A corrupt, partial or unreadable file is reported (WARNING, without its content) and treated as absent,
        so the authoriser requests a new token and replaces the file. A symbolic link at the path is refused with
        :class:`AuthoriserError` naming the path: it is never followed.
        """
        path = self._file_path
        if path is None:
            return None
        try:
            raw = read_private(path)  # AuthoriserError for a symlink at the path: it is never followed
        except OSError as exc:
            logger.warning("Cannot read the token file %s (%s); a new token will be requested", path, exc.strerror)
            return None
        if raw is None:
            return None
        try:
            content = kernels.json_loads(raw)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            logger.warning("The token file %s is corrupt or incomplete; a new token will be requested", path)
            return None
        if not isinstance(content, dict) or not content.get(self.token_key):
            logger.warning("The token file %s holds no %s; a new token will be requested", path, self.token_key)
            return None
        self.replace(content)
        logger.debug("Loaded the stored token response from %s", path)
        return content

    def save_response_to_file(self) -> None:
        """Write the response to :attr:`file_path` (atomically, mode 0600); no-op without a path or content.

        Raises :class:`AuthoriserError` when the path is a symbolic link (never written through or replaced).
        """
        path = self._file_path
        if path is None or not self._response:
            return
        write_private_atomic(path, json.dumps(self._response, indent=2, default=str))
        logger.debug("Saved the token response to %s", path)


# --------------------------------------------------------------------------------------------------
# AuthTester
# --------------------------------------------------------------------------------------------------
class AuthTester:
    """Decides whether a stored token response is still usable.

    :param request: A request to send with the token's headers (e.g. a "who am I" endpoint).
    :param response_test: Judges that request's response; both must be given for the request test to run.
    :param max_expiry: Refuse tokens that expire within this many seconds (0 or less: no expiry check).

    The test request gets :attr:`request_timeout` unless it has its own ``timeout``; a test request that times
    out raises :class:`AuthoriserError`.
    """

    __slots__ = ("max_expiry", "request", "request_timeout", "response_test")

    def __init__(
        self,
        request: AuthRequest | None = None,
        response_test: Callable[[ClientResponse], Awaitable[bool]] | None = None,
        max_expiry: int = 0,
    ) -> None:
        self.request = request
        self.response_test = response_test
        self.max_expiry = max_expiry
        #: The test request's time-out when it has none of its own (read from aiorequestful.limits when made).
        self.request_timeout: ClientTimeout = limits.DEFAULT_AUTH_TIMEOUT

    def __call__(self, response: AuthResponse | None = None) -> Awaitable[bool]:
        return self.test(response=response)

    async def test(self, response: AuthResponse | None = None) -> bool:
        """True when ``response`` has no error, does not expire within ``max_expiry`` and passes the request test."""
        if not response:
            return False
        if "error" in response:
            logger.debug("Token response holds an error: %s", response.get("error"))
            return False
        if not self._test_expiry(response):
            return False
        return await self._test_token(response)

    def _test_expiry(self, response: AuthResponse) -> bool:
        expires_at: Any = response.get("expires_at")
        expires_in: Any = response.get("expires_in")
        if (expires_at is None and expires_in is None) or self.max_expiry <= 0:
            return True
        try:
            if expires_at is not None:
                remaining = float(expires_at) - time.time()
            else:
                remaining = float(expires_in)
        except (TypeError, ValueError):
            logger.warning("Token response has an invalid expiry; treating the token as expired")
            return False
        valid = self.max_expiry < remaining
        if not valid:
            logger.debug("Token expires in %.0f s, less than max_expiry=%s s", remaining, self.max_expiry)
        return valid

    async def _test_token(self, response: AuthResponse) -> bool:
        if self.request is None or self.response_test is None:
            return True
        try:
            headers: Headers | None = response.headers
        except AuthoriserError:
            headers = None
        request = self.request
        with request.enrich_headers(headers):
            try:
                async with (
                    ClientSession(timeout=self.request_timeout) as session,
                    request.request(session) as test_response,
                ):
                    result = await self.response_test(test_response)
            except (ClientError, TimeoutError) as exc:
                reason = f"timed out ({type(exc).__name__})" if isinstance(exc, TimeoutError) else type(exc).__name__
                raise AuthoriserError(
                    f"Could not test the token with {request.method.name} {request.url.with_query(None)}: {reason}"
                ) from exc
        logger.debug("Token test request answered %s: %s", test_response.status, "valid" if result else "invalid")
        return bool(result) if result is not None else False


# --------------------------------------------------------------------------------------------------
# SocketHandler
# --------------------------------------------------------------------------------------------------
#: The callback listener only ever listens on the loopback interface (RFC 8252 §7.3).
LOOPBACK_HOST = "127.0.0.1"


class SocketHandler:
    """A listening TCP socket on the loopback interface for the authorisation-code callback.

    ``with SocketHandler(port) as sock:`` binds ``127.0.0.1:port`` and listens; the socket is closed on exit.
    ``port=0`` picks a free port (read it from ``sock.getsockname()``). ``timeout`` is how long, in seconds,
    the authorisation flow waits for the callback.
    """

    __slots__ = ("_socket", "port", "timeout")

    def __init__(self, port: int = 8080, timeout: int = 120) -> None:
        self.port = port
        self.timeout = timeout
        self._socket: socket.socket | None = None

    def __enter__(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if os.name == "posix":
                # A previous flow's connections in TIME_WAIT must not block the next flow on the same port.
                # (On Windows SO_REUSEADDR would let another process share the port, so it is not set there.)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK_HOST, self.port))
            sock.settimeout(self.timeout)
            sock.listen(1)
        except OSError as exc:
            sock.close()
            raise AuthoriserError(
                f"Cannot listen on {LOOPBACK_HOST}:{self.port} for the authorisation callback: {exc.strerror or exc}"
            ) from exc
        self._socket = sock
        return sock

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()


__all__ = ("AuthRequest", "AuthResponse", "AuthTester", "SocketHandler")
