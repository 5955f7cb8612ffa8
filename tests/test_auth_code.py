# SPDX-License-Identifier: MIT
"""AuthorisationCodeFlow against the local provider; the consent is given by a scripted HTTP client.

Covers Basic credentials on refreshes, callback parsing, a non-blocking listener, ``str`` redirect URIs,
form-body token requests and refresh / re-authorisation.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import sys
import time
import urllib.parse
import urllib.request
import webbrowser
from uuid import UUID, uuid4

import pytest
from aiohttp import ClientSession
from yarl import URL

from aiorequestful.auth.exception import AuthoriserError
from aiorequestful.auth.oauth2 import AuthorisationCodeFlow
from aiorequestful.auth.utils import AuthRequest, AuthResponse, SocketHandler

from .oauth_provider import ConsentBrowser, no_real_browser_fixture, provider_fixture  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("no_real_browser")

SECRET = "app-secret-value"
SUCCESS = "Code received! You may now close this window"


def make_flow(
    base_url: URL,
    *,
    encoded: bool = False,
    refresh: bool = True,
    timeout: float = 20,
    browser: object | None = None,
    client_id: str = "app",
) -> AuthorisationCodeFlow:
    create = AuthorisationCodeFlow.create_with_encoded_credentials if encoded else AuthorisationCodeFlow.create
    flow = create(
        user_request_url=base_url / "authorize",
        token_request_url=base_url / "token",
        client_id=client_id,
        client_secret=SECRET,
        refresh_request_url=(base_url / "token") if refresh else None,
        scope=["read", "profile"],
        service_name="Test API",
        redirect_uri="http://127.0.0.1:0/callback",  # port 0: the listener picks a free port
    )
    flow.socket_handler.timeout = timeout
    flow.open_browser = browser if browser is not None else ConsentBrowser()
    return flow


async def get_me(base_url: URL, headers: dict[str, str]) -> int:
    async with ClientSession() as session, session.get(base_url / "api" / "me", headers=headers) as response:
        return response.status


def port_is_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


# --------------------------------------------------------------------------------------------------
# construction
# --------------------------------------------------------------------------------------------------
def test_create_attributes() -> None:
    flow = AuthorisationCodeFlow.create(
        "http://127.0.0.1/authorize", "http://127.0.0.1/token", "app", SECRET, "http://127.0.0.1/refresh", "read"
    )
    assert flow.user_request.method.name == "POST"
    assert flow.user_request.params == {"client_id": "app", "scope": "read"}
    # Token and refresh requests carry their fields in a form body
    assert flow.token_request.data == {"client_id": "app", "client_secret": SECRET}
    assert flow.refresh_request is not None
    assert flow.refresh_request.url == URL("http://127.0.0.1/refresh")
    assert flow.refresh_request.data == {"client_id": "app", "client_secret": SECRET}
    assert flow.redirect_uri == URL("http://localhost:8080")
    assert (flow.socket_handler.port, flow.socket_handler.timeout) == (8080, 120)
    assert flow.open_browser is webbrowser.open
    assert not flow.response

    scoped = AuthorisationCodeFlow.create("http://a/authorize", "http://a/token", "app", SECRET, scope=("a", "b"))
    assert scoped.user_request.params["scope"] == "a b"
    assert scoped.refresh_request is None


def test_encoded_credentials_strip_the_refresh_request_too() -> None:
    flow = AuthorisationCodeFlow.create_with_encoded_credentials(
        "http://a/authorize", "http://a/token", "app", SECRET, refresh_request_url="http://a/token"
    )
    basic = "Basic " + base64.b64encode(f"app:{SECRET}".encode()).decode()
    assert flow.token_request.data == {} and flow.token_request.headers == {"Authorization": basic}
    assert flow.refresh_request is not None
    assert flow.refresh_request.data == {} and flow.refresh_request.headers == {"Authorization": basic}
    assert flow.user_request.params == {"client_id": "app"}


def test_str_redirect_uri_is_accepted() -> None:
    request = AuthRequest(method="GET", url="http://a/authorize")
    flow = AuthorisationCodeFlow(request, request, redirect_uri="http://127.0.0.1:8765/cb")
    assert flow.redirect_uri == URL("http://127.0.0.1:8765/cb")
    assert flow.socket_handler.port == 8765

    # the default listener follows a later redirect_uri; an explicit one is kept
    flow.redirect_uri = "http://localhost:9999"
    assert flow.socket_handler.port == 9999
    handler = SocketHandler(port=1234, timeout=5)
    pinned = AuthorisationCodeFlow(request, request, socket_handler=handler, redirect_uri="http://localhost:4321")
    assert pinned.socket_handler is handler
    pinned.redirect_uri = "http://localhost:5555"
    assert pinned.socket_handler is handler

    with pytest.raises(AuthoriserError, match="redirect_uri must be an absolute http URL"):
        AuthorisationCodeFlow(request, request, redirect_uri="/relative")


# --------------------------------------------------------------------------------------------------
# the browser flow
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoded", [False, True])
async def test_full_flow(provider, encoded: bool) -> None:
    state, base_url = provider
    browser = ConsentBrowser()
    flow = make_flow(base_url, encoded=encoded, browser=browser)
    headers = await flow
    assert await get_me(base_url, headers) == 200

    # the provider saw a proper authorisation request
    (authorize,) = state.authorize_requests
    assert authorize["response_type"] == "code"
    assert authorize["client_id"] == "app" and authorize["scope"] == "read profile"
    UUID(authorize["state"])
    redirect = URL(authorize["redirect_uri"])
    assert redirect.host == "127.0.0.1" and redirect.path == "/callback" and redirect.port != 0

    # the browser was sent to the consent page and got a real HTTP page back
    assert len(browser.opened) == 1 and URL(browser.opened[0]).path == "/consent"
    assert browser.final_status == 200
    assert SUCCESS in (browser.final_text or "")
    assert browser.final_headers["Content-Type"].startswith("text/html")
    assert browser.final_headers.get("Connection", "").lower() == "close"
    assert browser.final_headers["Cache-Control"] == "no-store"
    # the listener is gone once the flow is over: no socket left open
    assert port_is_closed(redirect.port)

    # The code exchange is a form body; the credentials go in the body or the Basic header (not both)
    (token,) = state.token_requests
    assert token.grant_type == "authorization_code" and token.query_keys == ()
    assert {"code", "redirect_uri", "grant_type"} <= set(token.form_keys)
    assert (token.auth_scheme == "Basic") is encoded
    assert ("client_secret" in token.form_keys) is not encoded
    assert state.grant_count("authorization_code") == 1

    # the temporary payloads are gone again
    assert set(flow.user_request.params) == {"client_id", "scope"}
    assert "code" not in (flow.token_request.payload or {})


async def test_listener_does_not_block_the_loop(provider) -> None:
    _state, base_url = provider
    flow = make_flow(base_url, browser=ConsentBrowser(delay=0.5))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.ensure_future(ticker())
    try:
        await flow
    finally:
        task.cancel()
    assert ticks >= 5  # the loop kept running while the flow waited for the user (generous: noisy machine)


async def test_refresh_instead_of_browser(provider) -> None:
    state, base_url = provider
    state.rotate_refresh_tokens = False  # refresh responses carry no refresh_token: the old one is kept
    browser = ConsentBrowser()
    flow = make_flow(base_url, browser=browser)
    first = await flow
    refresh_token = flow.response["refresh_token"]

    for _ in range(2):
        await flow.invalidate()
        renewed = await flow
        assert renewed != first and await get_me(base_url, renewed) == 200
        assert flow.response["refresh_token"] == refresh_token  # carried over by enrich
        first = renewed
    assert state.grant_count("refresh_token") == 2
    assert len(browser.opened) == 1  # no second consent
    refresh_records = [r for r in state.token_requests if r.grant_type == "refresh_token"]
    assert all(r.query_keys == () and "client_secret" in r.form_keys for r in refresh_records)


async def test_refresh_with_encoded_credentials_uses_the_basic_header(provider) -> None:
    state, base_url = provider
    flow = make_flow(base_url, encoded=True)
    await flow
    await flow.invalidate()
    headers = await flow
    assert await get_me(base_url, headers) == 200
    record = state.token_requests[-1]
    assert record.grant_type == "refresh_token"
    assert record.auth_scheme == "Basic"
    assert "client_id" not in record.form_keys and "client_secret" not in record.form_keys
    assert record.query_keys == ()


async def test_rotated_refresh_token_is_stored(provider, tmp_path) -> None:
    _state, base_url = provider
    flow = make_flow(base_url)
    flow.response = AuthResponse(file_path=tmp_path / "code")
    await flow
    old_refresh = flow.response["refresh_token"]
    await flow.invalidate()
    await flow
    new_refresh = flow.response["refresh_token"]
    assert new_refresh != old_refresh
    assert json.loads((tmp_path / "code.json").read_text())["refresh_token"] == new_refresh


async def test_revoked_refresh_token_falls_back_to_the_browser(provider, caplog: pytest.LogCaptureFixture) -> None:
    state, base_url = provider
    browser = ConsentBrowser()
    flow = make_flow(base_url, browser=browser)
    await flow
    state.revoke_refresh_tokens()
    await flow.invalidate()
    with caplog.at_level(logging.WARNING, "aiorequestful.auth.base"):
        headers = await flow
    assert await get_me(base_url, headers) == 200
    assert "invalid_grant" in caplog.text and "authorising Test API again" in caplog.text
    assert len(browser.opened) == 2
    assert state.grant_count("authorization_code") == 2


async def test_without_refresh_request_the_browser_flow_repeats(provider) -> None:
    state, base_url = provider
    browser = ConsentBrowser()
    flow = make_flow(base_url, refresh=False, browser=browser)
    await flow
    await flow.invalidate()
    await flow
    assert len(browser.opened) == 2 and state.grant_count("refresh_token") == 0


async def test_saved_token_is_loaded_without_browser(provider, tmp_path) -> None:
    state, base_url = provider
    flow = make_flow(base_url)
    flow.response = AuthResponse(file_path=tmp_path / "code")
    headers = await flow

    browser = ConsentBrowser()
    later = make_flow(base_url, browser=browser)
    later.response = AuthResponse(file_path=tmp_path / "code")
    assert await later == headers
    assert browser.opened == []
    assert state.token_request_count == 1


async def test_invalidate_refreshes(provider) -> None:
    state, base_url = provider
    browser = ConsentBrowser()
    flow = make_flow(base_url, browser=browser)
    headers = await flow
    state.revoke_access_tokens()
    await flow.invalidate(rejected=headers["Authorization"])
    renewed = await flow
    assert await get_me(base_url, renewed) == 200
    assert state.grant_count("refresh_token") == 1 and len(browser.opened) == 1


async def test_concurrent_first_authorisations_share_one_consent(provider) -> None:
    state, base_url = provider
    browser = ConsentBrowser(delay=0.2)
    flow = make_flow(base_url, browser=browser)
    results = await asyncio.gather(*(flow.authorise() for _ in range(10)))
    assert len({r["Authorization"] for r in results}) == 1
    assert len(browser.opened) == 1 and state.token_request_count == 1


async def test_consent_already_given_redirects_the_session_itself(provider) -> None:
    """When the provider redirects straight back, the user request delivers the callback: no browser."""
    state, base_url = provider
    state.auto_consent = True
    browser = ConsentBrowser()
    flow = make_flow(base_url, browser=browser)
    headers = await flow
    assert await get_me(base_url, headers) == 200
    assert browser.opened == []


# --------------------------------------------------------------------------------------------------
# callback parsing and refusals
# --------------------------------------------------------------------------------------------------
async def test_code_as_last_and_percent_encoded_parameter(provider) -> None:
    _state, base_url = provider

    def reorder(callback: URL) -> URL:
        code = callback.query["code"]
        encoded = "".join(f"%{ord(c):02X}" for c in code)  # every character percent-encoded
        query = f"state={callback.query['state']}&code={encoded}"
        return URL(str(callback.with_query(None)) + "?" + query, encoded=True)

    browser = ConsentBrowser(tamper=reorder)
    flow = make_flow(base_url, browser=browser)
    headers = await flow
    assert await get_me(base_url, headers) == 200
    raw = browser.callbacks[0].raw_query_string
    assert raw.startswith("state=") and "&code=%" in raw  # the code is the last parameter, fully encoded


def _replace_query(**changes: str | None):
    def tamper(callback: URL) -> URL:
        query = dict(callback.query)
        for key, value in changes.items():
            if value is None:
                query.pop(key, None)
            else:
                query[key] = value
        return callback.with_query(query)

    return tamper


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_replace_query(state=None), r"^Returned state is not a valid UUID$"),
        (_replace_query(state="not-a-uuid"), r"^Returned state is not a valid UUID$"),
        (_replace_query(state=str(uuid4())), r"^Invalid state returned$"),
        (_replace_query(code=None), r"^The authorisation callback carries no code$"),
        (lambda u: u.extend_query(code="second"), r"repeats the parameter 'code'"),
    ],
)
async def test_bad_callbacks_are_refused(provider, tamper, message) -> None:
    state, base_url = provider
    browser = ConsentBrowser(tamper=tamper)
    flow = make_flow(base_url, browser=browser)
    with pytest.raises(AuthoriserError, match=message):
        await flow
    assert browser.final_status == 400
    assert "Authorisation failed" in (browser.final_text or "")
    assert state.token_request_count == 0
    assert not flow.response


async def test_denied_consent(provider) -> None:
    state, base_url = provider
    flow = make_flow(base_url, browser=ConsentBrowser(decision="deny"))
    with pytest.raises(
        AuthoriserError, match=r"^Authorisation was refused for Test API: access_denied: The user denied the request$"
    ):
        await flow
    assert state.token_request_count == 0


async def test_unknown_client_fails_fast(provider) -> None:
    _state, base_url = provider
    browser = ConsentBrowser()
    flow = make_flow(base_url, client_id="nobody", browser=browser)
    with pytest.raises(AuthoriserError, match=r"authorisation page of Test API answered HTTP 400"):
        await flow
    assert browser.opened == []


async def test_stray_requests_do_not_end_the_flow(provider) -> None:
    state, base_url = provider
    consent = ConsentBrowser()
    statuses: list[int] = []

    async def browser(url: str) -> bool:
        callback = URL(state.authorize_requests[-1]["redirect_uri"])
        async with ClientSession() as session:
            for path, method in (("/favicon.ico", "GET"), ("/callback", "GET"), ("/callback", "POST")):
                async with session.request(method, callback.with_path(path)) as response:
                    statuses.append(response.status)
        return await consent(url)

    flow = make_flow(base_url, browser=browser)
    headers = await flow
    assert statuses == [404, 400, 405]
    assert await get_me(base_url, headers) == 200


async def test_timeout_is_an_authoriser_error(provider) -> None:
    state, base_url = provider
    opened: list[str] = []

    async def idle_browser(url: str) -> bool:
        opened.append(url)
        return True

    flow = make_flow(base_url, timeout=0.3, browser=idle_browser)
    started = time.monotonic()
    with pytest.raises(AuthoriserError, match=r"^Timed out after 0.3 seconds waiting for the authorisation callback"):
        await flow
    assert time.monotonic() - started < 10
    assert len(opened) == 1
    assert port_is_closed(URL(state.authorize_requests[-1]["redirect_uri"]).port)


async def test_default_opener_is_webbrowser_and_guarded(provider, no_real_browser, caplog) -> None:
    _state, base_url = provider
    flow = make_flow(base_url, timeout=0.3)
    flow.open_browser = webbrowser.open  # the (patched) default
    with caplog.at_level(logging.WARNING, "aiorequestful.auth.base"), pytest.raises(AuthoriserError, match="Timed out"):
        await flow
    assert len(no_real_browser) == 1 and URL(no_real_browser[0]).path == "/consent"
    assert "Could not open a browser (AssertionError)" in caplog.text


async def test_sync_opener_runs_in_a_thread(provider) -> None:
    _state, base_url = provider

    def urllib_browser(url: str) -> bool:
        assert URL(url).host == "127.0.0.1"
        with urllib.request.urlopen(url, timeout=10) as page:  # the consent page
            request_id = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["request"][0]
        form = urllib.parse.urlencode({"request": request_id, "decision": "approve"}).encode()
        # urllib follows the provider's 302 to the callback listener with a GET
        with urllib.request.urlopen(str(base_url / "consent"), data=form, timeout=10) as callback:
            assert SUCCESS in callback.read().decode()
        return True

    flow = make_flow(base_url, browser=urllib_browser)
    assert await get_me(base_url, await flow) == 200


async def test_opener_returning_false_is_reported(provider, caplog: pytest.LogCaptureFixture) -> None:
    _state, base_url = provider
    flow = make_flow(base_url, timeout=0.3, browser=lambda url: False)
    with caplog.at_level(logging.WARNING, "aiorequestful.auth.base"), pytest.raises(AuthoriserError, match="Timed out"):
        await flow
    assert "No browser could be opened" in caplog.text


async def test_user_is_told_where_to_go(provider, capsys: pytest.CaptureFixture[str]) -> None:
    _state, base_url = provider
    browser = ConsentBrowser()
    flow = make_flow(base_url, browser=browser)
    await flow
    printed = capsys.readouterr().out
    assert "Opening your browser to authorise Test API" in printed
    assert browser.opened[0] in printed

    # with a stdout handler configured, the message is logged only
    handler = logging.StreamHandler(sys.stdout)
    logger = logging.getLogger("aiorequestful.auth.base")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        again = make_flow(base_url)
        await again
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert capsys.readouterr().out.count("Opening your browser") == 1


async def test_busy_port_is_an_authoriser_error(provider) -> None:
    _state, base_url = provider
    with SocketHandler(port=0) as busy:
        port = busy.getsockname()[1]
        flow = make_flow(base_url)
        flow.redirect_uri = f"http://127.0.0.1:{port}/callback"
        with pytest.raises(AuthoriserError, match=f"Cannot listen on 127.0.0.1:{port}"):
            await flow


async def test_explicit_port(provider) -> None:
    state, base_url = provider
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    flow = make_flow(base_url)
    flow.redirect_uri = f"http://127.0.0.1:{port}/callback"
    assert flow.socket_handler.port == port
    assert await get_me(base_url, await flow) == 200
    assert state.authorize_requests[-1]["redirect_uri"] == f"http://127.0.0.1:{port}/callback"
