# SPDX-License-Identifier: MIT
"""A small but strict OAuth2 authorisation server on ``aiohttp.web``, for tests on 127.0.0.1.

It implements the client credentials, authorisation code and PKCE (S256) grants, refresh tokens (optionally
rotated), expiry, revocation, RFC 6749 error responses and a protected resource, and counts every request.
It is strict where real providers are: token requests must be form bodies without query parameters, client
authentication may use exactly one method, codes are single-use and bound to the client, redirect URI and
PKCE challenge. Failures can be injected for the next token requests.

Reuse::

    provider = OAuthProvider()
    provider.add_client("app", "secret")
    base_url = await serve(provider.app())      # the `serve` fixture of tests/conftest.py
    flow = ClientCredentialsFlow.create(base_url / "token", "app", "secret")

The consent step of the authorisation-code grants is driven by :class:`ConsentBrowser`, a scripted user
agent (an aiohttp client) that stands in for the browser: assign it to ``flow.open_browser``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import secrets
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp import ClientSession, web
from yarl import URL

PROVIDER_KEY = web.AppKey("oauth_provider", "OAuthProvider")

#: How long an authorisation code stays usable (RFC 6749 §4.1.2 recommends at most 10 minutes).
CODE_LIFETIME = 60.0
_LOOPBACK = frozenset({"127.0.0.1", "localhost"})


@dataclass
class Client:
    client_id: str
    secret: str | None  # None: a public client, which must use PKCE
    scopes: frozenset[str] = frozenset({"read", "write", "profile"})

    @property
    def public(self) -> bool:
        return self.secret is None


@dataclass
class Grant:
    """An issued access or refresh token, or an authorisation code."""

    value: str
    client_id: str
    scope: str
    expires_at: float
    revoked: bool = False
    # codes only
    redirect_uri: str | None = None
    code_challenge: str | None = None
    used: bool = False


@dataclass
class TokenRequestRecord:
    """What a token request looked like on the wire (for assertions that credentials stay out of the URL)."""

    grant_type: str | None
    content_type: str
    query_keys: tuple[str, ...]
    form_keys: tuple[str, ...]
    auth_scheme: str | None
    status: int = 0


@dataclass
class InjectedResponse:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.description, self.headers = status, error, description, headers or {}


def _pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode("ascii").rstrip("=")


class OAuthProvider:
    """State and handlers of the test authorisation server.

    :param expires_in: Lifetime of access tokens, in seconds, as announced in ``expires_in``.
    :param rotate_refresh_tokens: Issue a new refresh token on every refresh (and revoke the old one); when
        False the refresh response carries no ``refresh_token`` (RFC 6749 §6 allows that).
    :param auto_consent: ``/authorize`` redirects straight back with a code (consent given earlier) instead of
        showing the consent page.
    :param token_delay: Seconds every token request takes (widens race windows in concurrency tests).
    :param token_type: The ``token_type`` of token responses (None: the field is left out).
    """

    def __init__(
        self,
        *,
        expires_in: float = 3600,
        rotate_refresh_tokens: bool = True,
        auto_consent: bool = False,
        token_delay: float = 0.0,
        token_type: str | None = "Bearer",
    ) -> None:
        self.expires_in = expires_in
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.auto_consent = auto_consent
        self.token_delay = token_delay
        self.token_type = token_type
        self.clients: dict[str, Client] = {}
        self.counters: Counter[str] = Counter()
        self.token_requests: list[TokenRequestRecord] = []
        self.authorize_requests: list[dict[str, str]] = []
        self.access_tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.codes: dict[str, Grant] = {}
        self.pending_consents: dict[str, dict[str, str]] = {}
        self.injected: deque[InjectedResponse] = deque()
        #: Every secret value the provider has issued or accepted (for log-leak tests).
        self.secrets_seen: set[str] = set()

    # -- configuration and inspection ------------------------------------------------------------
    def add_client(self, client_id: str, secret: str | None = None, scopes: frozenset[str] | None = None) -> Client:
        client = Client(client_id, secret, scopes if scopes is not None else Client.scopes)
        self.clients[client_id] = client
        if secret:
            self.secrets_seen.add(secret)
            self.secrets_seen.add(base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii"))
        return client

    @property
    def token_request_count(self) -> int:
        return self.counters["token"]

    def grant_count(self, grant_type: str) -> int:
        return self.counters[f"grant:{grant_type}"]

    def inject(self, status: int, body: str | bytes, content_type: str = "application/json", **headers: str) -> None:
        """Answer the next token request with this response instead of processing it."""
        raw = body.encode() if isinstance(body, str) else body
        self.injected.append(InjectedResponse(status, raw, content_type, dict(headers)))

    def expire_access_tokens(self) -> None:
        for grant in self.access_tokens.values():
            grant.expires_at = 0.0

    def revoke_access_tokens(self) -> None:
        for grant in self.access_tokens.values():
            grant.revoked = True

    def revoke_refresh_tokens(self) -> None:
        for grant in self.refresh_tokens.values():
            grant.revoked = True

    def live_access_tokens(self) -> list[str]:
        now = time.time()
        return [t for t, g in self.access_tokens.items() if not g.revoked and g.expires_at > now]

    # -- app ---------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app[PROVIDER_KEY] = self
        app.router.add_post("/token", self.token)
        app.router.add_post("/oauth/token", self.token)  # the path of the documented OAuth2 example
        app.router.add_route("GET", "/authorize", self.authorize)
        app.router.add_route("POST", "/authorize", self.authorize)
        app.router.add_get("/consent", self.consent_page)
        app.router.add_post("/consent", self.consent_decision)
        app.router.add_get("/api/me", self.resource)
        app.router.add_get("/api/items/{item}", self.resource)
        return app

    # -- token endpoint ----------------------------------------------------------------------------
    async def token(self, request: web.Request) -> web.StreamResponse:
        self.counters["token"] += 1
        form: dict[str, str] = {}
        if request.content_type == "application/x-www-form-urlencoded":
            form = {key: value for key, value in (await request.post()).items() if isinstance(value, str)}
        auth = request.headers.get("Authorization")
        record = TokenRequestRecord(
            grant_type=form.get("grant_type"),
            content_type=request.content_type,
            query_keys=tuple(request.query),
            form_keys=tuple(form),
            auth_scheme=auth.split(" ", 1)[0] if auth else None,
        )
        self.token_requests.append(record)
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        for key in ("code", "refresh_token", "code_verifier", "client_secret"):
            if form.get(key):
                self.secrets_seen.add(form[key])

        if self.injected:
            injected = self.injected.popleft()
            record.status = injected.status
            return web.Response(
                status=injected.status,
                body=injected.body,
                headers={"Content-Type": injected.content_type, **injected.headers},
            )
        try:
            body = self._token(request, form, auth)
        except OAuthError as exc:
            record.status = exc.status
            return web.json_response(
                {"error": exc.error, "error_description": exc.description},
                status=exc.status,
                headers={"Cache-Control": "no-store", **exc.headers},
            )
        record.status = 200
        self.counters[f"grant:{form['grant_type']}"] += 1
        return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _token(self, request: web.Request, form: dict[str, str], auth: str | None) -> dict[str, Any]:
        if request.query:
            # RFC 6749 §2.3.1/§3.2: credentials and grant parameters belong in the body, never in the URI.
            raise OAuthError(400, "invalid_request", "parameters must be sent in the request body")
        if request.content_type != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request", "the request body must be application/x-www-form-urlencoded")
        client = self._authenticate(form, auth)
        grant_type = form.get("grant_type")
        if grant_type == "client_credentials":
            if client.public:
                raise OAuthError(400, "unauthorized_client", "public clients cannot use client_credentials")
            return self._issue(client, form.get("scope", "read"), refresh=False)
        if grant_type == "authorization_code":
            return self._exchange_code(client, form)
        if grant_type == "refresh_token":
            return self._refresh(client, form)
        raise OAuthError(400, "unsupported_grant_type", f"grant type {grant_type!r} is not supported")

    def _authenticate(self, form: dict[str, str], auth: str | None) -> Client:
        unauthorised = {"WWW-Authenticate": 'Basic realm="test-provider"'}
        if auth is not None:
            if "client_secret" in form:
                raise OAuthError(400, "invalid_request", "use exactly one client authentication method")
            scheme, _, encoded = auth.partition(" ")
            try:
                decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError(401, "invalid_client", "malformed Basic credentials", unauthorised) from None
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
            if scheme.lower() != "basic" or form.get("client_id", client_id) != client_id:
                raise OAuthError(401, "invalid_client", "client authentication failed", unauthorised)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        client = self.clients.get(client_id)
        if client is None:
            raise OAuthError(401, "invalid_client", "unknown client", unauthorised)
        if not client.public and not secrets.compare_digest(secret.encode(), (client.secret or "").encode()):
            raise OAuthError(401, "invalid_client", "client authentication failed", unauthorised)
        return client

    def _issue(self, client: Client, scope: str, *, refresh: bool) -> dict[str, Any]:
        now = time.time()
        access = f"at-{secrets.token_urlsafe(24)}"
        self.access_tokens[access] = Grant(access, client.client_id, scope, now + self.expires_in)
        self.secrets_seen.add(access)
        body: dict[str, Any] = {"access_token": access, "expires_in": self.expires_in, "scope": scope}
        if self.token_type is not None:
            body["token_type"] = self.token_type
        if refresh:
            token = f"rt-{secrets.token_urlsafe(24)}"
            self.refresh_tokens[token] = Grant(token, client.client_id, scope, now + 30 * 86400)
            self.secrets_seen.add(token)
            body["refresh_token"] = token
        return body

    def _exchange_code(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        grant = self.codes.get(form.get("code", ""))
        if grant is None or grant.client_id != client.client_id or grant.expires_at <= time.time():
            raise OAuthError(400, "invalid_grant", "the authorisation code is invalid or expired")
        if grant.used:
            raise OAuthError(400, "invalid_grant", "the authorisation code was already used")
        grant.used = True
        if form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri does not match the authorisation request")
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            if not verifier or _pkce_challenge(verifier) != grant.code_challenge:
                raise OAuthError(400, "invalid_grant", "PKCE verification failed")
        elif "code_verifier" in form:
            raise OAuthError(400, "invalid_request", "code_verifier sent without a code_challenge")
        return self._issue(client, grant.scope, refresh=True)

    def _refresh(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        grant = self.refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None or grant.revoked or grant.client_id != client.client_id or grant.expires_at <= time.time():
            raise OAuthError(400, "invalid_grant", "the refresh token is invalid, expired or revoked")
        body = self._issue(client, grant.scope, refresh=self.rotate_refresh_tokens)
        if self.rotate_refresh_tokens:
            grant.revoked = True
        return body

    # -- authorisation endpoint --------------------------------------------------------------------
    async def authorize(self, request: web.Request) -> web.StreamResponse:
        self.counters["authorize"] += 1
        params = dict(request.query)
        self.authorize_requests.append(params)
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            # RFC 6749 §4.1.2.1: never redirect to an unverified URI; show the error to the user.
            return web.Response(status=400, text="unknown client", content_type="text/html")
        redirect_uri = params.get("redirect_uri", "")
        target = URL(redirect_uri)
        if not target.is_absolute() or target.scheme != "http" or target.host not in _LOOPBACK:
            return web.Response(status=400, text="redirect_uri must be a loopback http URI", content_type="text/html")
        state = params.get("state")
        try:
            if params.get("response_type") != "code":
                raise OAuthError(302, "unsupported_response_type", "only response_type=code is supported")
            if not state:
                raise OAuthError(302, "invalid_request", "state is required")
            challenge = params.get("code_challenge")
            if challenge is not None and params.get("code_challenge_method") != "S256":
                raise OAuthError(302, "invalid_request", "only the S256 challenge method is accepted")
            if client.public and challenge is None:
                raise OAuthError(302, "invalid_request", "public clients must use PKCE")
            scopes = set(params.get("scope", "read").split())
            if not scopes <= client.scopes:
                raise OAuthError(302, "invalid_scope", "unknown scope")
        except OAuthError as exc:
            query = {"error": exc.error, "error_description": exc.description}
            if state:
                query["state"] = state
            raise web.HTTPFound(target.update_query(query)) from None
        if self.auto_consent:
            raise web.HTTPFound(self._approve(params))
        request_id = secrets.token_urlsafe(8)
        self.pending_consents[request_id] = params
        raise web.HTTPFound(URL("/consent").with_query(request=request_id))

    async def consent_page(self, request: web.Request) -> web.StreamResponse:
        self.counters["consent_page"] += 1
        request_id = request.query.get("request", "")
        params = self.pending_consents.get(request_id)
        if params is None:
            return web.Response(status=404, text="no such authorisation request", content_type="text/html")
        return web.Response(
            text=(
                f"<form method='post' action='/consent'><input type='hidden' name='request' value='{request_id}'>"
                f"Allow {params['client_id']} to access {params.get('scope', 'read')}?"
                "<button name='decision' value='approve'>Allow</button>"
                "<button name='decision' value='deny'>Deny</button></form>"
            ),
            content_type="text/html",
        )

    async def consent_decision(self, request: web.Request) -> web.StreamResponse:
        self.counters["consent_decision"] += 1
        form = await request.post()
        params = self.pending_consents.pop(str(form.get("request", "")), None)
        if params is None:
            return web.Response(status=404, text="no such authorisation request", content_type="text/html")
        if form.get("decision") != "approve":
            target = URL(params["redirect_uri"]).update_query(
                error="access_denied", error_description="The user denied the request", state=params["state"]
            )
            raise web.HTTPFound(target)
        raise web.HTTPFound(self._approve(params))

    def _approve(self, params: dict[str, str]) -> URL:
        code = f"code-{secrets.token_urlsafe(18)}"
        self.codes[code] = Grant(
            code,
            params["client_id"],
            params.get("scope", "read"),
            time.time() + CODE_LIFETIME,
            redirect_uri=params["redirect_uri"],
            code_challenge=params.get("code_challenge"),
        )
        self.secrets_seen.add(code)
        return URL(params["redirect_uri"]).update_query(code=code, state=params["state"])

    # -- protected resource ------------------------------------------------------------------------
    async def resource(self, request: web.Request) -> web.StreamResponse:
        self.counters["resource"] += 1
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        grant = self.access_tokens.get(token) if scheme == "Bearer" else None
        if grant is None or grant.revoked or grant.expires_at <= time.time():
            self.counters["resource_unauthorised"] += 1
            return web.json_response(
                {"error": "invalid_token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return web.json_response(
            {"client_id": grant.client_id, "scope": grant.scope, "item": request.match_info.get("item")}
        )


class ConsentBrowser:
    """A scripted user agent standing in for the browser in the authorisation-code flows.

    Called with the authorisation URL: it loads the page, answers the provider's consent form with
    ``decision``, and follows the redirect back to the application's callback listener. Only loopback
    addresses are ever contacted.

    :param decision: ``"approve"`` or ``"deny"``.
    :param tamper: Rewrites the redirect back to the application (to forge a state, drop the code...).
    :param delay: Seconds to "think" before answering (the user reading the consent page).
    """

    def __init__(
        self,
        decision: str = "approve",
        *,
        tamper: Callable[[URL], URL] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.decision = decision
        self.tamper = tamper
        self.delay = delay
        self.opened: list[str] = []
        self.callbacks: list[URL] = []
        self.final_status: int | None = None
        self.final_text: str | None = None
        self.final_headers: dict[str, str] = {}

    async def __call__(self, url: str) -> bool:
        self.opened.append(url)
        page = URL(url)
        assert page.host in _LOOPBACK, f"the test browser only visits loopback addresses, not {page.host}"
        if self.delay:
            await asyncio.sleep(self.delay)
        async with ClientSession() as session:
            async with session.get(page) as response:
                await response.read()
                request_id = response.url.query.get("request")
                consent_url = response.url.with_query(None)
            assert request_id, f"no consent page at {response.url.with_query(None)} (HTTP {response.status})"
            async with session.post(
                consent_url, data={"request": request_id, "decision": self.decision}, allow_redirects=False
            ) as response:
                callback = URL(response.headers["Location"])
            if self.tamper is not None:
                callback = self.tamper(callback)
            assert callback.host in _LOOPBACK
            self.callbacks.append(callback)
            async with session.get(callback, allow_redirects=False) as response:
                self.final_status = response.status
                self.final_text = await response.text()
                self.final_headers = dict(response.headers)
        return True


@pytest.fixture(name="no_real_browser")
def no_real_browser_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make any attempt to launch a real browser fail loudly (and record the URL)."""
    import webbrowser

    attempts: list[str] = []

    def refuse(url: str, *args: Any, **kwargs: Any) -> bool:
        attempts.append(url)
        raise AssertionError("a test tried to open a real browser")

    monkeypatch.setattr(webbrowser, "open", refuse)
    yield attempts


@pytest.fixture(name="provider")
async def provider_fixture(serve: Any) -> AsyncIterator[tuple[OAuthProvider, URL]]:
    """A running :class:`OAuthProvider` with a confidential client ``app``/``app-secret-value`` and a public
    client ``public-app``; yields ``(provider, base_url)``."""
    state = OAuthProvider()
    state.add_client("app", "app-secret-value")
    state.add_client("public-app", None)
    base_url = await serve(state.app())
    yield state, base_url
