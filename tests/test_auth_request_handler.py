# SPDX-License-Identifier: MIT
"""OAuth2 authorisers driving RequestHandler end to end against the local provider, with bounded re-authorisation."""

from __future__ import annotations

import asyncio
import time

import pytest

from aiorequestful.auth.oauth2 import AuthorisationCodeFlow, ClientCredentialsFlow
from aiorequestful.auth.utils import AuthTester
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import ResponseError
from aiorequestful.response.payload import JSONPayloadHandler

from .oauth_provider import ConsentBrowser, no_real_browser_fixture, provider_fixture  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("no_real_browser")

SECRET = "app-secret-value"


async def test_expired_token_refreshes_once_on_401(provider) -> None:
    state, base_url = provider
    oauth = ClientCredentialsFlow.create_with_encoded_credentials(base_url / "token", "app", SECRET)
    handler = RequestHandler.create(authoriser=oauth, payload_handler=JSONPayloadHandler())
    async with handler:
        assert (await handler.get(base_url / "api" / "me"))["client_id"] == "app"
        assert state.token_request_count == 1

        state.expire_access_tokens()  # the provider expires the token before the client expects it
        assert (await handler.get(base_url / "api" / "me"))["client_id"] == "app"
        assert state.token_request_count == 2
        assert state.counters["resource_unauthorised"] == 1

        state.revoke_access_tokens()
        assert (await handler.get(base_url / "api" / "me"))["client_id"] == "app"
        assert state.token_request_count == 3


async def test_100_concurrent_requests_with_a_revoked_token_cause_one_token_request(provider) -> None:
    state, base_url = provider
    state.token_delay = 0.1
    oauth = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    handler = RequestHandler.create(authoriser=oauth, payload_handler=JSONPayloadHandler())
    async with handler:
        state.revoke_access_tokens()
        results = await asyncio.gather(*(handler.get(base_url / "api" / "items" / str(i)) for i in range(100)))
    assert [r["item"] for r in results] == [str(i) for i in range(100)]
    assert state.token_request_count == 2  # one on __aenter__, exactly one refresh for all 100 requests


async def test_client_side_expiry_refreshes_before_sending(provider) -> None:
    state, base_url = provider
    oauth = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    oauth.tester = AuthTester(max_expiry=1)  # the tester decides that an expired token needs renewing
    handler = RequestHandler.create(authoriser=oauth, payload_handler=JSONPayloadHandler())
    async with handler:
        oauth.response["expires_at"] = time.time() - 1
        await handler.authorise()  # e.g. a long-running crawler re-authorising between batches
        await handler.get(base_url / "api" / "me")
    assert state.token_request_count == 2
    assert state.counters["resource_unauthorised"] == 0


async def test_reauthorisation_is_bounded(provider) -> None:
    state, base_url = provider
    oauth = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    handler = RequestHandler.create(authoriser=oauth, payload_handler=JSONPayloadHandler())
    state.expires_in = 3600
    async with handler:
        # every token the provider hands out is refused by the resource server
        state.revoke_access_tokens()
        original_issue = state._issue

        def issue_revoked(*args, **kwargs):
            body = original_issue(*args, **kwargs)
            state.access_tokens[body["access_token"]].revoked = True
            return body

        state._issue = issue_revoked  # type: ignore[method-assign]
        with pytest.raises(ResponseError, match="Status code: 401"):
            await handler.get(base_url / "api" / "me")
    assert state.counters["resource"] == 2  # the request and one resend after one re-authorisation
    assert state.token_request_count == 2


async def test_authorisation_code_flow_with_request_handler(provider) -> None:
    state, base_url = provider
    flow = AuthorisationCodeFlow.create(
        base_url / "authorize",
        base_url / "token",
        "app",
        SECRET,
        refresh_request_url=base_url / "token",
        redirect_uri="http://127.0.0.1:0/callback",
    )
    browser = ConsentBrowser()
    flow.open_browser = browser
    handler = RequestHandler.create(authoriser=flow, payload_handler=JSONPayloadHandler())
    async with handler:
        assert (await handler.get(base_url / "api" / "me"))["client_id"] == "app"
        state.revoke_access_tokens()
        assert (await handler.get(base_url / "api" / "me"))["client_id"] == "app"
    assert state.grant_count("authorization_code") == 1
    assert state.grant_count("refresh_token") == 1
    assert len(browser.opened) == 1


async def test_tokens_never_reach_the_response_cache(provider, tmp_path) -> None:
    """Authorised responses may be cached; the Authorization header and tokens must not be stored with them."""
    from http import HTTPMethod

    from yarl import URL

    from aiorequestful.cache.backend.base import ResponseRepositorySettings
    from aiorequestful.cache.backend.sqlite import SQLiteCache

    class ItemSettings(ResponseRepositorySettings):
        @property
        def fields(self) -> tuple[str, ...]:
            return ("id",)

        def get_key(self, method, url, **_) -> tuple[str | None]:
            if HTTPMethod(method) != HTTPMethod.GET:
                return (None,)
            return (URL(url).path.rsplit("/", 1)[-1],)

        @staticmethod
        def get_name(payload) -> str | None:
            return payload.get("item") if isinstance(payload, dict) else None

    def pick_repository(cache, url):
        return cache.get("items") if "/items/" in URL(url).path else None

    state, base_url = provider
    cache = SQLiteCache.connect_with_path(tmp_path / "cache", repository_getter=pick_repository)
    cache.create_repository(ItemSettings(name="items"))
    oauth = ClientCredentialsFlow.create(base_url / "token", "app", SECRET)
    handler = RequestHandler.create(authoriser=oauth, cache=cache, payload_handler=JSONPayloadHandler())
    async with handler:
        for item in ("1", "2", "1"):
            assert (await handler.get(base_url / "api" / "items" / item))["item"] == item
        state.revoke_access_tokens()
        assert (await handler.get(base_url / "api" / "items" / "3"))["item"] == "3"
    # items 1 and 2 fetched once (the second "1" is served from the cache), item 3 after one re-authorisation
    assert state.counters["resource"] == 4
    assert state.token_request_count == 2

    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b'"item": "2"' in stored or b'"item":"2"' in stored  # the cache really holds the responses
    for secret in state.secrets_seen:
        assert secret.encode() not in stored
    assert b"Bearer" not in stored
