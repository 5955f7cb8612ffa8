# SPDX-License-Identifier: MIT
"""No token, secret, code, verifier or Authorization value reaches the logs or the console, at any level."""

from __future__ import annotations

import base64
import logging
import time

import pytest
from aiohttp import ClientSession
from yarl import URL

from aiorequestful.auth.exception import AuthoriserError
from aiorequestful.auth.oauth2 import AuthorisationCodeFlow, AuthorisationCodePKCEFlow, ClientCredentialsFlow
from aiorequestful.auth.utils import AuthRequest, AuthResponse, AuthTester
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler

from .oauth_provider import ConsentBrowser, no_real_browser_fixture, provider_fixture  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("no_real_browser")

SECRET = "app-secret-value"
WRONG_SECRET = "wrong-secret-value-42"


async def _exercise_everything(state, base_url: URL, tmp_path) -> set[str]:
    """Run every flow through success, refresh, invalidation and failure; return extra secrets to look for."""
    extra: set[str] = {SECRET, WRONG_SECRET}
    headers_seen: list[dict[str, str]] = []

    async def me_ok(response) -> bool:
        return response.status == 200

    # client credentials, both credential styles, token file, tester request, refresh, invalidation
    for create in (ClientCredentialsFlow.create, ClientCredentialsFlow.create_with_encoded_credentials):
        flow = create(base_url / "token", "app", SECRET, service_name="CC")
        flow.response = AuthResponse(file_path=tmp_path / f"cc-{create.__name__}", token_prefix_default="Bearer")
        flow.tester = AuthTester(
            request=AuthRequest(method="GET", url=base_url / "api" / "me"), response_test=me_ok, max_expiry=10
        )
        headers_seen.append(await flow)
        flow.response["expires_at"] = time.time() + 5  # inside max_expiry: renewed
        headers_seen.append(await flow)
        await flow.invalidate(rejected=headers_seen[-1]["Authorization"])
        headers_seen.append(await flow)

    # failures: wrong secret, provider error text echoing the secret, corrupt file
    with pytest.raises(AuthoriserError):
        await ClientCredentialsFlow.create(base_url / "token", "app", WRONG_SECRET)
    state.inject(400, '{"error": "invalid_client", "error_description": "secret app-secret-value is wrong"}')
    with pytest.raises(AuthoriserError):
        await ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"access_token": "at-truncated-secret-token", "refresh_tok')
    extra.add("at-truncated-secret-token")
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.response = AuthResponse(file_path=corrupt)
    headers_seen.append(await flow)

    # authorisation code: browser flow, refresh, revoked refresh -> browser again, a forged state
    code_flow = AuthorisationCodeFlow.create_with_encoded_credentials(
        base_url / "authorize", base_url / "token", "app", SECRET, base_url / "token",
        scope="read", service_name="Code", redirect_uri="http://127.0.0.1:0/cb",
    )  # fmt: skip
    code_flow.open_browser = ConsentBrowser()
    headers_seen.append(await code_flow)
    await code_flow.invalidate()
    headers_seen.append(await code_flow)
    state.revoke_refresh_tokens()
    await code_flow.invalidate()
    headers_seen.append(await code_flow)
    code_flow.response.replace({})
    code_flow.open_browser = ConsentBrowser(tamper=lambda u: u.update_query(state="bad"))
    with pytest.raises(AuthoriserError):
        await code_flow

    # PKCE
    pkce = AuthorisationCodePKCEFlow.create(
        base_url / "authorize",
        base_url / "token",
        "public-app",
        base_url / "token",
        redirect_uri="http://127.0.0.1:0/cb",
    )
    pkce.open_browser = ConsentBrowser()
    headers_seen.append(await pkce)
    extra.add(pkce.code_verifier)
    await pkce.invalidate()
    headers_seen.append(await pkce)

    # RequestHandler: 401 -> invalidate -> refresh
    oauth = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    handler = RequestHandler.create(authoriser=oauth, payload_handler=JSONPayloadHandler())
    async with handler:
        await handler.get(base_url / "api" / "me")
        headers_seen.append(await oauth)
        state.revoke_access_tokens()
        await handler.get(base_url / "api" / "me")
        headers_seen.append(await oauth)

    for headers in headers_seen:
        value = headers["Authorization"]
        extra.add(value)
        extra.add(value.split(" ", 1)[1])
    extra.add(base64.b64encode(f"app:{SECRET}".encode()).decode())
    return extra


async def test_no_secret_in_logs_at_debug(provider, tmp_path, caplog, capsys) -> None:
    state, base_url = provider
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("aiorequestful").setLevel(logging.DEBUG)
        try:
            extra = await _exercise_everything(state, base_url, tmp_path)
        finally:
            logging.getLogger("aiorequestful").setLevel(logging.NOTSET)

    secrets = {s for s in state.secrets_seen | extra if len(s) >= 8}
    assert len(state.secrets_seen) > 20  # the scenario really issued codes, access and refresh tokens

    records = caplog.records
    assert any(r.name == "aiorequestful.auth.base" and r.levelno == logging.DEBUG for r in records)
    assert any(r.name == "aiorequestful.auth.utils" and r.levelno == logging.WARNING for r in records)
    assert any("Token request" in r.getMessage() for r in records)

    texts = [caplog.text]
    for record in records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            texts.append(repr(record.exc_info[1]))
    out = capsys.readouterr()
    texts += [out.out, out.err]
    corpus = "\n".join(texts)
    leaked = sorted(s for s in secrets if s in corpus)
    assert leaked == []


async def test_error_messages_carry_no_secret(provider) -> None:
    state, base_url = provider
    state.inject(
        400, '{"error": "invalid_grant", "error_description": "refresh token rt-SECRET-1234 and app-secret-value"}'
    )
    flow = AuthorisationCodeFlow.create(base_url / "authorize", base_url / "token", "app", SECRET, base_url / "token")
    flow.response.replace({"access_token": "at-x", "refresh_token": "rt-SECRET-1234", "expires_at": 0})
    async with ClientSession() as session:
        with pytest.raises(AuthoriserError) as info:
            await flow._request_token(
                session, flow.refresh_request, {"grant_type": "refresh_token", "refresh_token": "rt-SECRET-1234"}
            )
    message = str(info.value)
    assert "invalid_grant: refresh token *** and ***" in message
    assert "rt-SECRET-1234" not in message and SECRET not in message
