# SPDX-License-Identifier: MIT
"""The hit path the request handler takes: ``CachedSession.lookup`` then ``decoded_payload``, on a real SQLite
file and a real 127.0.0.1 origin (whose request counter proves what reached it).

A hit from the memory tier is built lazily (nothing decoded until asked); these tests check that such a response
still behaves fully when a caller does use it, and that the request identity kept for calls without credentials
follows every change that could alter it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import hdrs, web
from yarl import URL

from aiorequestful.cache.response import CachedResponse
from aiorequestful.cache.session import CachedSession
from aiorequestful.response.payload import JSONPayloadHandler, StringPayloadHandler
from aiorequestful.security import add_secret_headers

from .cache_support import HITS, make_app, open_cache


@pytest.fixture
async def origin(serve: Any) -> tuple[URL, Any]:
    app = make_app()
    return await serve(app), app


async def stored(session: CachedSession, url: Any, **kwargs: Any) -> None:
    """A miss (stored), then a lookup that reads the row from the file (and keeps it in the tier)."""
    async with session.get(url, **kwargs) as response:
        await response.read()
    hit = await session.lookup("GET", url, **kwargs)
    assert hit is not None
    hit.release()


async def test_a_tier_hit_hands_each_plain_json_handler_a_fresh_value(origin: tuple[URL, Any], tmp_path: Path) -> None:
    base, app = origin
    cache = open_cache(tmp_path / "h.sqlite")
    url = f"{base}/items/1"
    async with CachedSession(cache) as session:
        await stored(session, url)
        assert cache.memory_tier is not None and len(cache.memory_tier) == 1
        response = await session.lookup("GET", url)
        assert isinstance(response, CachedResponse)
        assert response.status == 200 and getattr(response, "cache_status", "hit") == "hit"
        mine = JSONPayloadHandler()  # not the repository's own handler object: decodes alike
        first = response.decoded_payload(mine)
        second = response.decoded_payload(JSONPayloadHandler())
        assert first == second == (True, {"id": "1", "title": "Item 1", "hit": 1})
        assert first[1] is not second[1]
        assert response.decoded_payload(StringPayloadHandler()) == (False, None)  # decodes from the body instead
        response.release()
        assert await session.lookup("GET", f"{base}/items/absent") is None
    assert app[HITS]["1"] == 1


async def test_a_tier_hit_behaves_fully_when_used(origin: tuple[URL, Any], tmp_path: Path) -> None:
    base, _ = origin
    cache = open_cache(tmp_path / "full.sqlite")
    url = f"{base}/items/2#frag"
    async with CachedSession(cache) as session:
        async with session.get(url) as network:
            expected_body = await network.read()
        kept = await session.lookup("GET", url)  # read from the file
        assert kept is not None
        hit = await session.lookup("GET", url)  # from the tier
        assert isinstance(hit, CachedResponse) and hit._cached_headers_proxy is None  # nothing built yet
        assert hit.url == URL(f"{base}/items/2") and hit.method == "GET"
        assert json.loads(await hit.read()) == json.loads(expected_body)
        assert await hit.json() == json.loads(expected_body)
        assert json.loads(await hit.text()) == json.loads(expected_body)
        assert await hit.content.read() == await hit.read()
        headers = hit.headers
        assert headers == kept.headers
        assert headers[hdrs.CONTENT_LENGTH] == str(len(await hit.read()))
        assert headers["X-Item"] == "2" and headers["ETag"] == '"2-v1"'
        assert "Set-Cookie" not in headers and "WWW-Authenticate" not in headers
        assert hit.content_type == "application/json" and hit.charset == "utf-8"
        assert hit.links["next"]["url"] == URL(f"{base}/items/2?page=2")
        assert hit.ok and hit.request_info.url == URL(f"{base}/items/2")
        hit.raise_for_status()
        async with hit as same:
            assert same is hit


async def test_header_names_made_secret_later_are_dropped_from_a_tier_hit(serve: Any, tmp_path: Path) -> None:
    # A name of this test's own: the list of secret names is process-wide and only ever grows.
    name = "X-Hit-Path-Session-Tag"

    async def item(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"]}, headers={name: "per-user", "X-Plain": "v"})

    app = web.Application()
    app.router.add_get("/items/{id}", item)
    base = await serve(app)
    cache = open_cache(tmp_path / "secret.sqlite")
    url = base / "items" / "3"
    async with CachedSession(cache) as session:
        await stored(session, url)
        hit = await session.lookup("GET", url)
        assert hit is not None and hit.headers[name] == "per-user"
        add_secret_headers(name)
        hit = await session.lookup("GET", url)
        assert hit is not None and name not in hit.headers and hit.headers["X-Plain"] == "v"


async def test_changed_session_headers_change_the_identity(origin: tuple[URL, Any], tmp_path: Path) -> None:
    base, app = origin
    cache = open_cache(tmp_path / "ident.sqlite")
    url = f"{base}/items/4"
    async with CachedSession(cache) as session:
        await stored(session, url)
        assert await session.lookup("GET", url) is not None
        session.headers["Authorization"] = "Bearer later"  # a credential the session now sends by default
        assert await session.lookup("GET", url) is None  # another scope: not the anonymous entry
        async with session.get(url) as response:
            assert (await response.json())["user"]
        hit = await session.lookup("GET", url)
        assert hit is not None and hit.request_info.headers["Authorization"] == "Bearer later"
        del session.headers["Authorization"]
        anonymous = await session.lookup("GET", url)
        assert anonymous is not None and "user" not in json.loads(await anonymous.read())
    assert app[HITS]["4"] == 2


async def test_identity_options_and_cookies_are_never_taken_from_the_kept_identity(
    origin: tuple[URL, Any], tmp_path: Path
) -> None:
    base, _ = origin
    cache = open_cache(tmp_path / "opts.sqlite")
    url = f"{base}/items/5"
    # unsafe=True: a jar that keeps cookies for an IP address (the origin is 127.0.0.1)
    async with CachedSession(cache, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(url) as response:
            await response.read()
        assert len(session.cookie_jar) == 1  # the origin's Set-Cookie: later requests carry it
        assert await session.lookup("GET", url) is None
        session.cookie_jar.clear()
        assert await session.lookup("GET", url) is not None
        assert await session.lookup("GET", url, headers={"Authorization": "Bearer x"}) is None
        assert await session.lookup("GET", url, cookies={"sid": "1"}) is None
        session.cookie_jar.update_cookies({"sid": "2"}, URL(base))
        assert len(session.cookie_jar) == 1
        assert await session.lookup("GET", url) is None  # the jar's cookie scopes the request
        session.cookie_jar.clear()
        assert await session.lookup("GET", url) is not None
        assert await session.lookup("GET", url, timeout=5) is not None  # not an identity option
        assert await session.lookup("GET", url, headers=None, params={}, cookies=None) is not None  # empty ones
        paged = await session.lookup("GET", url, params={"page": "2"})  # the same key (the id), another URL
        assert paged is not None and paged.request_info.url.query["page"] == "2"


async def test_the_tier_off_gives_the_same_responses(origin: tuple[URL, Any], tmp_path: Path) -> None:
    base, _ = origin
    results = []
    for bound in (None, 0):
        kwargs = {} if bound is None else {"memory_tier_entries": bound}
        cache = open_cache(tmp_path / f"same-{bound}.sqlite", **kwargs)
        async with CachedSession(cache) as session:
            await stored(session, f"{base}/items/6")
            hit = await session.lookup("GET", f"{base}/items/6")
            assert hit is not None
            results.append((hit.status, hit.reason, dict(hit.headers), await hit.read()))
    assert results[0][0] == results[1][0] == 200
    assert results[0][2] == results[1][2]
    assert json.loads(results[0][3])["id"] == json.loads(results[1][3])["id"] == "6"
