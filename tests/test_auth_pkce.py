# SPDX-License-Identifier: MIT
"""AuthorisationCodePKCEFlow against the local provider: a new verifier per authorisation, redirect_uri honoured."""

from __future__ import annotations

import base64
import hashlib
import re
import warnings

import pytest
from aiohttp import ClientSession
from yarl import URL

from aiorequestful.auth.exception import AuthoriserError
from aiorequestful.auth.oauth2 import AuthorisationCodeFlow, AuthorisationCodePKCEFlow
from aiorequestful.auth.utils import AuthRequest

from .oauth_provider import ConsentBrowser, no_real_browser_fixture, provider_fixture  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("no_real_browser")

LENGTH_ERROR = r"^PKCE code length must be between 43 and 128 inclusive$"


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def make_flow(base_url: URL, *, browser: object | None = None, **kwargs) -> AuthorisationCodePKCEFlow:
    flow = AuthorisationCodePKCEFlow.create(
        user_request_url=base_url / "authorize",
        token_request_url=base_url / "token",
        client_id="public-app",
        refresh_request_url=base_url / "token",
        scope="read",
        service_name="PKCE API",
        redirect_uri="http://127.0.0.1:0/cb",
        **kwargs,
    )
    flow.socket_handler.timeout = 20
    flow.open_browser = browser if browser is not None else ConsentBrowser()
    return flow


async def get_me(base_url: URL, headers: dict[str, str]) -> int:
    async with ClientSession() as session, session.get(base_url / "api" / "me", headers=headers) as response:
        return response.status


def test_create_for_a_public_client() -> None:
    flow = AuthorisationCodePKCEFlow.create(
        "http://a/authorize", "http://a/token", "public-app", refresh_request_url="http://a/token"
    )
    assert isinstance(flow, AuthorisationCodeFlow)
    assert flow.token_request.data == {"client_id": "public-app"}  # form body, no secret
    assert flow.refresh_request is not None and flow.refresh_request.data == {"client_id": "public-app"}
    assert flow.user_request.params == {"client_id": "public-app"}
    assert flow.pkce_code_length == 128 and len(flow.code_verifier) == 128
    assert re.fullmatch(r"[A-Za-z0-9_-]+", flow.code_verifier)


def test_create_honours_redirect_uri_and_warns_on_unknown_kwargs() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the documented example passes client_secret (and the inherited encoded constructor does): accepted
        flow = AuthorisationCodePKCEFlow.create(
            "http://a/authorize",
            "http://a/token",
            "id",
            client_secret="ignored",
            redirect_uri="http://127.0.0.1:7777/cb",
        )
    assert flow.redirect_uri == URL("http://127.0.0.1:7777/cb")
    assert flow.socket_handler.port == 7777
    assert "ignored" not in str(flow.token_request.data)

    with pytest.warns(UserWarning, match=r"ignores unknown keyword arguments: colour, shape"):
        AuthorisationCodePKCEFlow.create("http://a/authorize", "http://a/token", "id", shape=1, colour=2)


@pytest.mark.parametrize("length", [42, 129, 0, -1, 43.5, True, "64"])
def test_code_length_is_validated_first(length) -> None:
    with pytest.raises(AuthoriserError, match=LENGTH_ERROR):
        AuthorisationCodePKCEFlow(None, None, pkce_code_length=length)  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [43, 64, 128])
def test_code_length_bounds(length: int) -> None:
    request = AuthRequest(method="GET", url="http://a")
    flow = AuthorisationCodePKCEFlow(request, request, pkce_code_length=length)
    assert len(flow.code_verifier) == length


async def test_full_pkce_flow(provider) -> None:
    state, base_url = provider
    flow = make_flow(base_url)
    headers = await flow
    assert await get_me(base_url, headers) == 200

    (authorize,) = state.authorize_requests
    assert authorize["code_challenge_method"] == "S256"
    assert authorize["code_challenge"] == challenge_of(flow.code_verifier)
    assert "=" not in authorize["code_challenge"]
    (token,) = state.token_requests
    assert token.grant_type == "authorization_code"
    assert set(token.form_keys) == {"client_id", "code", "code_verifier", "grant_type", "redirect_uri"}
    assert token.query_keys == () and token.auth_scheme is None
    assert "code_verifier" not in (flow.token_request.payload or {})


async def test_new_verifier_per_authorisation(provider) -> None:
    state, base_url = provider
    flow = make_flow(base_url)
    flow.refresh_request = None  # every renewal is a full authorisation
    verifiers = []
    for _ in range(3):
        await flow.invalidate()  # (no-op on the first, empty response)
        await flow
        verifiers.append(flow.code_verifier)
    challenges = [params["code_challenge"] for params in state.authorize_requests]
    assert len(set(verifiers)) == 3 and len(set(challenges)) == 3
    assert challenges == [challenge_of(v) for v in verifiers]
    assert state.grant_count("authorization_code") == 3


async def test_provider_rejects_a_wrong_verifier(provider) -> None:
    """The provider really checks PKCE: a verifier that does not match the challenge is refused."""
    _state, base_url = provider
    consent = ConsentBrowser()
    flow = make_flow(base_url)

    async def browser(url: str) -> bool:
        flow.code_verifier = "x" * 64  # not the verifier whose challenge was sent
        return await consent(url)

    flow.open_browser = browser
    with pytest.raises(AuthoriserError, match=r"HTTP 400 Bad Request .* invalid_grant: PKCE verification failed"):
        await flow


async def test_public_client_refresh(provider) -> None:
    state, base_url = provider
    browser = ConsentBrowser()
    flow = make_flow(base_url, browser=browser)
    await flow
    await flow.invalidate()
    headers = await flow
    assert await get_me(base_url, headers) == 200
    assert state.grant_count("refresh_token") == 1 and len(browser.opened) == 1
    assert state.token_requests[-1].form_keys == ("client_id", "grant_type", "refresh_token")


async def test_pkce_with_encoded_credentials(provider) -> None:
    """A confidential client may use PKCE too; the inherited constructor moves its credentials to a header."""
    state, base_url = provider
    flow = AuthorisationCodePKCEFlow.create_with_encoded_credentials(
        user_request_url=base_url / "authorize",
        token_request_url=base_url / "token",
        client_id="app",
        client_secret="app-secret-value",
        refresh_request_url=base_url / "token",
        redirect_uri="http://127.0.0.1:0/cb",
    )
    flow.open_browser = ConsentBrowser()
    headers = await flow
    assert await get_me(base_url, headers) == 200
    assert state.token_requests[-1].auth_scheme == "Basic"
    assert "code_verifier" in state.token_requests[-1].form_keys
    # As in 1.0.20: after the exchange an emptied payload is unset again (no client_id/secret left in it)
    assert not flow.token_request.payload
    assert flow.refresh_request is not None and flow.refresh_request.data == {}
