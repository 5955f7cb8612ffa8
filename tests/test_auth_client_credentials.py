# SPDX-License-Identifier: MIT
"""ClientCredentialsFlow and the shared OAuth2 machinery, against the local provider.

Covers the load messages, checked token responses, form-body credentials, private token files, single-flight
refresh and invalidation (the bounded re-authorisation after a 401).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import stat
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession, ClientTimeout, web
from yarl import URL

from aiorequestful import limits
from aiorequestful.auth.exception import AuthoriserError
from aiorequestful.auth.oauth2 import (
    OAUTH2_CLASSES,
    AuthorisationCodeFlow,
    AuthorisationCodePKCEFlow,
    ClientCredentialsFlow,
    OAuth2Authoriser,
)
from aiorequestful.auth.utils import AuthRequest, AuthResponse, AuthTester

from .oauth_provider import no_real_browser_fixture, provider_fixture  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("no_real_browser")

SECRET = "app-secret-value"


async def get_me(base_url: URL, headers: dict[str, str]) -> int:
    async with ClientSession() as session, session.get(base_url / "api" / "me", headers=headers) as response:
        return response.status


def test_classes() -> None:
    assert OAUTH2_CLASSES == frozenset({ClientCredentialsFlow, AuthorisationCodeFlow, AuthorisationCodePKCEFlow})
    with pytest.raises(TypeError):
        OAuth2Authoriser(AuthRequest(method="POST", url="http://x"))  # type: ignore[abstract]


def test_create_uses_a_form_body() -> None:
    flow = ClientCredentialsFlow.create("http://127.0.0.1/token", "app", SECRET, service_name="svc")
    request = flow.token_request
    assert request.method.name == "POST" and request.url == URL("http://127.0.0.1/token")
    assert request.data == {"client_id": "app", "client_secret": SECRET}
    assert not hasattr(request, "params")
    assert flow.service_name == "svc"
    assert isinstance(flow.response, AuthResponse) and not flow.response
    assert isinstance(flow.tester, AuthTester)
    assert flow.logger is logging.getLogger("aiorequestful.auth.base")

    encoded = ClientCredentialsFlow.create_with_encoded_credentials("http://127.0.0.1/token", "app", SECRET)
    assert encoded.token_request.data == {}
    expected = "Basic " + base64.b64encode(f"app:{SECRET}".encode()).decode()
    assert encoded.token_request.headers == {"Authorization": expected}
    assert ClientCredentialsFlow._encode_client_credentials_as_headers("app", SECRET) == {"Authorization": expected}
    assert SECRET not in repr(encoded)


async def test_empty_response_handler_is_kept() -> None:
    handler = AuthResponse(file_path="somewhere")
    flow = ClientCredentialsFlow(AuthRequest(method="POST", url="http://x"), response_handler=handler)
    assert flow.response is handler  # an empty (falsy) handler is still the caller's


@pytest.mark.parametrize("encoded", [False, True])
async def test_authorise_against_the_provider(provider, encoded: bool) -> None:
    state, base_url = provider
    create = ClientCredentialsFlow.create_with_encoded_credentials if encoded else ClientCredentialsFlow.create
    flow = create(token_request_url=base_url / "token", client_id="app", client_secret=SECRET)
    headers = await flow
    assert headers["Authorization"].startswith("Bearer at-")
    assert await get_me(base_url, headers) == 200
    assert state.token_request_count == 1

    record = state.token_requests[0]
    # Nothing in the URL; credentials either in the form body or the Basic header
    assert record.query_keys == ()
    assert record.content_type == "application/x-www-form-urlencoded"
    assert record.grant_type == "client_credentials"
    if encoded:
        assert record.auth_scheme == "Basic" and "client_secret" not in record.form_keys
    else:
        assert record.auth_scheme is None and set(record.form_keys) == {"client_id", "client_secret", "grant_type"}
    # the temporary grant payload was removed again
    assert "grant_type" not in (flow.token_request.payload or {})

    # a valid token is reused without another request
    assert await flow() == headers
    assert await flow.authorise() == headers
    assert state.token_request_count == 1
    assert await flow.is_token_valid is True


async def test_section_11_5_usage_as_written(provider, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented OAuth2 example, verbatim except for the token URL (the local provider) and the secret."""
    state, base_url = provider
    state.add_client("my-app", "…")
    monkeypatch.chdir(tmp_path)

    from aiorequestful.request import RequestHandler

    oauth = ClientCredentialsFlow.create_with_encoded_credentials(
        token_request_url=f"{base_url}/oauth/token",
        client_id="my-app", client_secret="…", service_name="Example API")  # fmt: skip
    oauth.response = AuthResponse(file_path="tokens/example", token_prefix_default="Bearer")  # tokens/example.json
    oauth.tester = AuthTester(max_expiry=300)  # refuse tokens with < 5 min left
    handler = RequestHandler.create(authoriser=oauth)  # headers applied on __aenter__ and on 401
    headers = await oauth  # inside a coroutine; same as await oauth.authorise() / await oauth()

    assert handler.authoriser is oauth
    assert await get_me(base_url, headers) == 200
    token_file = tmp_path / "tokens" / "example.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert json.loads(token_file.read_text())["access_token"] == headers["Authorization"].removeprefix("Bearer ")
    assert headers == await oauth.authorise() == await oauth()
    assert state.token_request_count == 1


async def test_token_file_reused_across_authorisers(provider, tmp_path) -> None:
    state, base_url = provider
    path = tmp_path / "cc"

    first = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    first.response = AuthResponse(file_path=path)
    headers = await first
    assert state.token_request_count == 1

    second = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    second.response = AuthResponse(file_path=path)
    assert await second == headers
    assert state.token_request_count == 1  # loaded from the file, not requested


async def test_load_messages_match_their_outcomes(provider, tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    _state, base_url = provider
    path = tmp_path / "cc"
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.response = AuthResponse(file_path=path)
    with caplog.at_level(logging.DEBUG, "aiorequestful.auth.base"):
        await flow
    assert "Saved access token for unknown_service not found" in caplog.text
    assert "Loaded the saved access token" not in caplog.text
    caplog.clear()

    again = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    again.response = AuthResponse(file_path=path)
    with caplog.at_level(logging.DEBUG, "aiorequestful.auth.base"):
        await again
    assert "Loaded the saved access token for unknown_service" in caplog.text
    assert "not found" not in caplog.text


async def test_corrupt_token_file_is_replaced(provider, tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    state, base_url = provider
    path = tmp_path / "cc.json"
    path.write_text('{"access_token": "at-trunc')
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.response = AuthResponse(file_path=path)
    with caplog.at_level(logging.WARNING):
        headers = await flow
    assert "corrupt or incomplete" in caplog.text
    assert state.token_request_count == 1
    assert json.loads(path.read_text())["access_token"] == headers["Authorization"].split()[1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_unwritable_token_file_does_not_fail(provider, tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    _state, base_url = provider
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.response = AuthResponse(file_path=blocker / "token")
    with caplog.at_level(logging.WARNING):
        headers = await flow
    assert await get_me(base_url, headers) == 200
    assert "Could not save the token" in caplog.text


async def test_refresh_before_expiry(provider) -> None:
    state, base_url = provider
    state.expires_in = 3600
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.tester = AuthTester(max_expiry=300)
    first = await flow
    assert state.token_request_count == 1

    # 200 s left: fewer than max_expiry, so the next authorise renews it before it expires
    flow.response["expires_at"] = time.time() + 200
    second = await flow
    assert second != first
    assert state.token_request_count == 2
    assert flow.response["expires_at"] == pytest.approx(time.time() + 3600, abs=30)


def _save_expired_token(path, token: str) -> None:
    path.write_text(json.dumps({"access_token": token, "token_type": "bearer", "expires_at": time.time() - 60}))


async def test_expired_saved_token_is_used_when_the_tester_accepts_it(provider, tmp_path) -> None:
    """The default tester (max_expiry=0) never looks at expiry, so an expired saved token is sent as it is."""
    state, base_url = provider
    path = tmp_path / "cc.json"
    _save_expired_token(path, "at-saved-but-expired")
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.response = AuthResponse(file_path=path)
    assert await flow == {"Authorization": "Bearer at-saved-but-expired"}
    assert state.token_request_count == 0
    assert await flow.is_token_valid is True


async def test_expired_saved_token_is_renewed_when_the_tester_rejects_it(provider, tmp_path) -> None:
    state, base_url = provider
    path = tmp_path / "cc.json"
    _save_expired_token(path, "at-saved-but-expired")
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.response = AuthResponse(file_path=path)
    flow.tester = AuthTester(max_expiry=1)
    headers = await flow
    assert headers != {"Authorization": "Bearer at-saved-but-expired"}
    assert state.token_request_count == 1 and await get_me(base_url, headers) == 200
    assert json.loads(path.read_text())["access_token"] == headers["Authorization"].split()[1]


async def test_a_401_for_an_accepted_expired_token_renews_it(provider, tmp_path) -> None:
    """The tester accepted the expired token; the server's refusal is what renews it."""
    state, base_url = provider
    path = tmp_path / "cc.json"
    _save_expired_token(path, "at-saved-but-expired")
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.response = AuthResponse(file_path=path)
    stale = await flow
    assert await get_me(base_url, stale) == 401  # the provider never issued it
    await flow.invalidate(rejected=stale["Authorization"])
    renewed = await flow
    assert renewed != stale and await get_me(base_url, renewed) == 200
    assert state.token_request_count == 1


async def test_every_successful_authorise_saves_the_token_file(provider, tmp_path) -> None:
    """A token set in memory is written over the existing file on the next successful authorise."""
    state, base_url = provider
    path = tmp_path / "cc.json"
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.response = AuthResponse(file_path=path)
    await flow
    assert state.token_request_count == 1
    flow.response.replace({"access_token": "at-set-in-memory", "token_type": "bearer"})
    assert await flow == {"Authorization": "Bearer at-set-in-memory"}
    assert state.token_request_count == 1
    assert json.loads(path.read_text()) == {"access_token": "at-set-in-memory", "token_type": "bearer"}


async def test_world_readable_token_file_is_made_private_by_authorise(provider, tmp_path) -> None:
    state, base_url = provider
    path = tmp_path / "cc.json"
    path.write_text(json.dumps({"access_token": "at-readable-by-all", "token_type": "bearer"}))
    path.chmod(0o644)
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.response = AuthResponse(file_path=path)
    assert await flow == {"Authorization": "Bearer at-readable-by-all"}
    assert state.token_request_count == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["access_token"] == "at-readable-by-all"


async def test_authorise_refuses_a_symlinked_token_file(provider, tmp_path) -> None:
    state, base_url = provider
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps({"access_token": "at-planted-token", "token_type": "bearer"}))
    link = tmp_path / "cc.json"
    link.symlink_to(planted)
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.response = AuthResponse(file_path=link)
    with pytest.raises(AuthoriserError, match=rf"^Refusing to use the token file {link}: it is a symbolic link"):
        await flow
    assert state.token_request_count == 0 and not flow.response
    assert link.is_symlink()


async def test_provider_expiry_that_max_expiry_refuses(provider) -> None:
    state, base_url = provider
    state.expires_in = 60
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.tester = AuthTester(max_expiry=300)
    with pytest.raises(AuthoriserError, match=r"^Auth response is still not valid: \{'access_token': 'at-..."):
        await flow
    assert state.token_request_count == 1


async def test_single_flight_refresh(provider) -> None:
    state, base_url = provider
    state.token_delay = 0.2  # every caller arrives while the refresh is in flight
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    await flow
    assert state.token_request_count == 1
    await flow.invalidate()  # refused by the server: the next authorise renews it

    results = await asyncio.gather(*(flow.authorise() for _ in range(100)))
    assert state.token_request_count == 2  # exactly one more token request for 100 callers
    assert len({r["Authorization"] for r in results}) == 1
    assert await get_me(base_url, results[0]) == 200


async def test_single_flight_shares_failures(provider) -> None:
    state, base_url = provider
    state.token_delay = 0.1
    state.inject(400, json.dumps({"error": "invalid_scope", "error_description": "nope"}))
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    results = await asyncio.gather(*(flow.authorise() for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, AuthoriserError) for r in results)
    assert state.token_request_count == 1
    assert (await flow)["Authorization"].startswith("Bearer ")  # the next call tries again
    assert state.token_request_count == 2


async def test_cancelled_caller_does_not_cancel_the_others(provider) -> None:
    state, base_url = provider
    state.token_delay = 0.3
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    first = asyncio.ensure_future(flow.authorise())
    others = [asyncio.ensure_future(flow.authorise()) for _ in range(5)]
    await asyncio.sleep(0.05)
    first.cancel()
    results = await asyncio.gather(*others)
    assert first.cancelled()
    assert len({r["Authorization"] for r in results}) == 1
    assert state.token_request_count == 1


async def test_authoriser_works_across_event_loops(provider) -> None:
    """An authoriser built outside any loop is usable from a fresh loop (its single-flight state is per loop)."""
    state, base_url = provider
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.tester = AuthTester(max_expiry=1)  # expiry is the tester's call
    headers = await flow

    def in_other_loop() -> dict[str, str]:
        flow.response["expires_at"] = time.time() - 1
        return asyncio.run(flow.authorise())

    other = await asyncio.to_thread(in_other_loop)
    assert other != headers and state.token_request_count == 2


async def test_invalidate_forces_one_refresh(provider) -> None:
    state, base_url = provider
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    headers = await flow
    state.revoke_access_tokens()
    assert await get_me(base_url, headers) == 401

    await flow.invalidate(rejected=headers["Authorization"])
    assert await flow.is_token_valid is False
    renewed = await flow
    assert renewed != headers and await get_me(base_url, renewed) == 200
    assert state.token_request_count == 2

    # a late 401 for the old token does not discard the new one
    await flow.invalidate(rejected=headers["Authorization"])
    assert await flow == renewed
    assert state.token_request_count == 2

    # rejected=None always marks the current token
    await flow.invalidate()
    assert await flow != renewed
    assert state.token_request_count == 3


async def test_concurrent_401s_cause_one_refresh(provider) -> None:
    state, base_url = provider
    state.token_delay = 0.1
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    headers = await flow
    state.revoke_access_tokens()

    async def on_401() -> dict[str, str]:
        await flow.invalidate(rejected=headers["Authorization"])
        return await flow

    results = await asyncio.gather(*(on_401() for _ in range(50)))
    assert state.token_request_count == 2
    assert len({r["Authorization"] for r in results}) == 1


async def test_invalidate_without_token_is_harmless() -> None:
    flow = ClientCredentialsFlow.create("http://127.0.0.1:9/token", "app", SECRET)
    await flow.invalidate(rejected="Bearer whatever")
    assert not flow.response


# --------------------------------------------------------------------------------------------------
# token responses are checked
# --------------------------------------------------------------------------------------------------
async def test_invalid_client_names_the_provider_error(provider) -> None:
    _state, base_url = provider
    flow = ClientCredentialsFlow.create(base_url / "token", "app", "wrong-secret")
    with pytest.raises(AuthoriserError) as info:
        await flow
    message = str(info.value)
    assert "HTTP 401 Unauthorized" in message
    assert "invalid_client: client authentication failed" in message
    assert "wrong-secret" not in message
    assert not flow.response


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (500, "<html>Internal error</html>", "text/html", r"HTTP 500 Internal Server Error from http://"),
        (200, "<html>Login</html>", "text/html", r"expected a JSON token response, got content type 'text/html'"),
        (200, "[1, 2]", "application/json", r"expected a JSON token response"),
        (200, "", "application/json", r"expected a JSON token response"),
        (
            200,
            '{"error": "temporarily_unavailable", "error_description": "try later"}',
            "application/json",
            r"HTTP 200 OK .* \| temporarily_unavailable: try later",
        ),
        (
            400,
            '{"error": "invalid_request", "error_description": "bad\\nline app-secret-value"}',
            "application/json",
            r"invalid_request: bad line \*\*\*$",
        ),
    ],
)
async def test_bad_token_responses_raise_authoriser_error(provider, status, body, content_type, expected) -> None:
    state, base_url = provider
    state.inject(status, body, content_type)
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    with pytest.raises(AuthoriserError, match=expected) as info:
        await flow
    assert SECRET not in str(info.value)
    assert not flow.response


async def test_form_encoded_and_text_json_token_responses(provider, caplog: pytest.LogCaptureFixture) -> None:
    state, base_url = provider
    state.inject(
        200, "access_token=at-form-123456&token_type=bearer&expires_in=60", "application/x-www-form-urlencoded"
    )
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    assert await flow == {"Authorization": "Bearer at-form-123456"}
    assert flow.response["expires_at"] == pytest.approx(time.time() + 60, abs=10)

    state.inject(200, '{"access_token": "at-text-123456"}', "text/plain")
    await flow.invalidate()
    with caplog.at_level(logging.WARNING):
        assert await flow == {"Authorization": "at-text-123456"}  # no token_type, no default prefix: the token alone
    assert "instead of application/json" in caplog.text


async def test_missing_access_token(provider) -> None:
    state, base_url = provider
    state.inject(200, '{"token_type": "bearer", "refresh_token": "rt-abcdefgh"}')
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    with pytest.raises(AuthoriserError, match=r"Did not find valid token at key: access_token \| ") as info:
        await flow
    assert "rt-abcdefgh" not in str(info.value)

    state.inject(200, "{}")
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    with pytest.raises(AuthoriserError, match=r"^Could not generate or load a token$"):
        await flow


async def test_unreachable_token_endpoint() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    flow = ClientCredentialsFlow.create(f"http://127.0.0.1:{port}/token", "app", SECRET)
    with pytest.raises(AuthoriserError, match=r"Token request \(client_credentials\) .* failed: Client"):
        await flow


async def test_payload_none_is_accepted(provider) -> None:
    _state, base_url = provider
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    async with ClientSession() as session:
        with pytest.raises(AuthoriserError, match="unsupported_grant_type"):
            await flow._request_token(session, flow.token_request)  # no grant_type: the provider refuses
        await flow._request_token(session, flow.token_request, {"grant_type": "client_credentials"})
    assert flow.response.token.startswith("at-")


async def test_set_payload_type_for_providers_that_differ(provider) -> None:
    state, base_url = provider
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.token_request.set_payload_type("params")
    with pytest.raises(AuthoriserError, match="parameters must be sent in the request body"):
        await flow
    assert state.token_requests[-1].query_keys == ("client_id", "client_secret", "grant_type")
    flow.token_request.set_payload_type("data")
    assert (await flow)["Authorization"].startswith("Bearer ")


async def test_tester_request_checks_the_token(provider) -> None:
    state, base_url = provider

    async def ok(response) -> bool:
        return response.status == 200

    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.tester = AuthTester(request=AuthRequest(method="GET", url=base_url / "api" / "me"), response_test=ok)
    headers = await flow
    assert state.counters["resource"] == 1
    state.revoke_access_tokens()
    renewed = await flow  # the test request sees the revocation: a new token is requested
    assert renewed != headers and state.token_request_count == 2


# --------------------------------------------------------------------------------------------------
# time-outs: a token endpoint that never answers
# --------------------------------------------------------------------------------------------------
@pytest.fixture
async def stalled(serve) -> AsyncIterator[tuple[URL, list[str]]]:
    """A server that accepts every request and never answers it (until the test ends)."""
    seen: list[str] = []
    release = asyncio.Event()

    async def never(request: web.Request) -> web.Response:
        seen.append(request.path)
        await release.wait()
        return web.Response(status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", never)
    base_url = await serve(app)
    yield base_url, seen
    release.set()


SHORT = ClientTimeout(total=0.5)


async def test_stalled_token_endpoint_fails_within_the_request_timeout(stalled) -> None:
    base_url, seen = stalled
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.request_timeout = SHORT
    started = time.monotonic()
    with pytest.raises(AuthoriserError, match=r"^Token request \(client_credentials\) .* failed: timed out"):
        await flow
    assert time.monotonic() - started < 10  # 0.5 s, generously bounded for a loaded machine (not 300 s)
    assert seen == ["/token"]


async def test_auth_requests_default_to_the_auth_timeout(stalled, monkeypatch: pytest.MonkeyPatch) -> None:
    flow = ClientCredentialsFlow.create("http://127.0.0.1:9/token", "app", SECRET)
    assert flow.request_timeout is limits.DEFAULT_AUTH_TIMEOUT and flow.request_timeout.total == 30
    assert AuthTester().request_timeout is limits.DEFAULT_AUTH_TIMEOUT

    base_url, _seen = stalled
    monkeypatch.setattr(limits, "DEFAULT_AUTH_TIMEOUT", SHORT)  # the default, shortened for the test
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    with pytest.raises(AuthoriserError, match="timed out"):
        await flow


async def test_a_timeout_set_on_the_request_wins(stalled) -> None:
    base_url, _seen = stalled
    flow = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    flow.request_timeout = ClientTimeout(total=3600)
    flow.token_request.timeout = SHORT
    started = time.monotonic()
    with pytest.raises(AuthoriserError, match="timed out"):
        await flow
    assert time.monotonic() - started < 10


async def test_stalled_refresh_endpoint_fails_within_the_request_timeout(provider, stalled) -> None:
    _state, base_url = provider
    stalled_url, seen = stalled
    flow = AuthorisationCodeFlow.create(
        base_url / "authorize",
        base_url / "token",
        "app",
        SECRET,
        stalled_url / "refresh",
        redirect_uri="http://127.0.0.1:0/cb",
    )
    flow.response.replace({"access_token": "at-old", "refresh_token": "rt-old", "token_type": "bearer"})
    await flow.invalidate()
    flow.request_timeout = SHORT
    with pytest.raises(AuthoriserError, match=r"^Token request \(refresh_token\) .* failed: timed out"):
        await flow
    assert seen == ["/refresh"]


async def test_stalled_token_test_request_fails_within_its_timeout(stalled) -> None:
    base_url, _seen = stalled

    async def ok(response) -> bool:
        return response.status == 200

    tester = AuthTester(request=AuthRequest(method="GET", url=base_url / "me"), response_test=ok)
    tester.request_timeout = SHORT
    response = AuthResponse()
    response.replace({"access_token": "at-1", "token_type": "bearer"})
    with pytest.raises(AuthoriserError, match=r"^Could not test the token with GET .*/me: timed out"):
        await tester(response=response)
