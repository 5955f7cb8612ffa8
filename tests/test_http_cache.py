# SPDX-License-Identifier: MIT
"""HTTP caching (RFC 9111) through CachedSession and RequestHandler, against a real local server that sends each
header, on SQLite and on Redis. Freshness runs on a clock the test moves (the policy's ``clock``); time-outs on
looptime's loop clock."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.cache.policy import CachePolicy
from aiorequestful.cache.response import CachedResponse
from aiorequestful.cache.session import CachedSession
from aiorequestful.flow import host_key
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import ResponseError
from aiorequestful.response.payload import JSONPayloadHandler

from .cache_support import json_settings, pick_items
from .redis_support import (  # noqa: F401 - fixtures
    redis_namespace_fixture,
    redis_url_fixture,
)

SPECS = web.AppKey("specs", dict)
COUNTS = web.AppKey("counts", Counter)
CONDITIONAL = web.AppKey("conditional", Counter)
SEEN = web.AppKey("seen", list)
GATES = web.AppKey("gates", dict)
CLOCK = web.AppKey("clock", object)


class Clock:
    """The clock of the policy and of the origin's ``Date``: POSIX seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def http_date(seconds: float) -> str:
    from email.utils import formatdate

    return formatdate(seconds, usegmt=True)


async def item(request: web.Request) -> web.StreamResponse:
    """An item whose headers, validators and failure mode the test sets in ``app[SPECS][id]``."""
    app = request.app
    key = request.match_info["id"]
    spec = app[SPECS].setdefault(key, {})
    app[COUNTS][key] += 1
    app[SEEN].append((request.method, key, dict(request.headers)))
    gate = app[GATES].get(key)
    if gate is not None:
        await gate.wait()
    mode = spec.get("mode", "ok")
    if mode == "503":
        return web.Response(status=503, text="down")
    if mode == "reset":
        assert request.transport is not None
        request.transport.abort()
        return web.Response(text="never sent")
    if mode == "slow":
        await asyncio.Event().wait()  # never answers: the client's time-out ends the request
    if request.method != "GET":
        return web.json_response({"changed": key})
    headers = dict(spec.get("headers", {}))
    etag = spec.get("etag")
    last_modified = spec.get("last_modified")
    if etag:
        headers["ETag"] = etag
    if last_modified:
        headers["Last-Modified"] = last_modified
    # The origin's clock is the test's: its Date agrees with the cache's clock, as a synchronised server's would.
    headers.setdefault("Date", spec.get("date") or http_date(app[CLOCK]()))
    if "X-Force-304" in request.headers:
        return web.Response(status=304, headers=headers)  # a broken origin: a 304 to an unconditional request
    if spec.get("foreign_304") and "If-None-Match" in request.headers:
        app[CONDITIONAL][key] += 1  # a broken origin: a 304 naming another representation than the one asked about
        return web.Response(status=304, headers={**headers, "ETag": spec["foreign_304"]})
    if etag and request.headers.get("If-None-Match") == etag:
        app[CONDITIONAL][key] += 1
        return web.Response(status=304, headers=headers)
    if last_modified and request.headers.get("If-Modified-Since") == last_modified:
        app[CONDITIONAL][key] += 1
        return web.Response(status=304, headers=headers)
    if any(name in request.headers for name in ("If-None-Match", "If-Modified-Since")):
        app[CONDITIONAL][key] += 1  # asked conditionally, answered in full (the resource changed)
    body = {"id": key, "version": spec.get("version", 1), "lang": request.headers.get("Accept-Language")}
    return web.json_response(body, headers=headers)


@pytest.fixture
async def origin(serve: Any) -> tuple[URL, web.Application]:
    app = web.Application()
    app[SPECS] = {}
    app[COUNTS] = Counter()
    app[CONDITIONAL] = Counter()
    app[SEEN] = []
    app[GATES] = {}
    app[CLOCK] = Clock()
    app.router.add_route("*", "/items/{id}", item)
    return await serve(app), app


MakeCache = Callable[..., Any]


@pytest.fixture(params=["sqlite", "redis"])
async def make_cache(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeCache]:
    """Builds a cache of one "items" repository on the backend under test."""
    made: list[Any] = []
    connection: Any = None
    if request.param == "redis":
        from aiorequestful.shared import RedisConnection

        # Sync fixtures only here: an async one cannot be requested from inside a running fixture.
        url, namespace = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_namespace")
        connection = RedisConnection(url, namespace=namespace)

    def make(policy: CachePolicy | None = None) -> Any:
        if connection is None:
            cache = SQLiteCache.connect_with_path(
                tmp_path / f"cache{len(made)}", repository_getter=pick_items, policy=policy
            )
        else:
            from aiorequestful.cache.backend.redis import RedisCache

            cache = RedisCache.connect(
                connection, cache_name=f"http{len(made)}", repository_getter=pick_items, policy=policy
            )
        cache.create_repository(json_settings())
        made.append(cache)
        return cache

    yield make
    if connection is not None:
        await connection.aclose()


async def count_rows(cache: Any) -> int:
    async with cache:
        return await cache["items"].count()


# ----------------------------------------------------------------------------------------------------------------
# storability
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_policy", [False, True], ids=["default", "policy"])
@pytest.mark.parametrize("where", ["response", "request"])
async def test_no_store_is_never_stored_in_any_mode(
    origin: tuple[URL, web.Application], make_cache: MakeCache, with_policy: bool, where: str
) -> None:
    base, app = origin
    request_headers = {}
    if where == "response":
        app[SPECS]["1"] = {"headers": {"Cache-Control": "no-store"}}
    else:
        request_headers = {"Cache-Control": "no-store"}
    cache = make_cache(CachePolicy() if with_policy else None)
    async with CachedSession(cache) as session:
        for _ in range(3):
            async with session.get(base / "items" / "1", headers=request_headers) as response:
                assert not isinstance(response, CachedResponse)
                assert (await response.json())["id"] == "1"
    assert app[COUNTS]["1"] == 3
    assert await count_rows(cache) == 0


async def test_without_a_policy_the_server_s_freshness_is_ignored_as_before(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=0, must-revalidate"}, "etag": '"v1"'}
    async with CachedSession(make_cache()) as session:
        for _ in range(3):
            response = await session.get(base / "items" / "1")
    assert app[COUNTS]["1"] == 1
    assert isinstance(response, CachedResponse) and response.cache_status == "hit"
    assert "Age" not in response.headers


# ----------------------------------------------------------------------------------------------------------------
# freshness
# ----------------------------------------------------------------------------------------------------------------
async def test_max_age_is_honoured(origin: tuple[URL, web.Application], make_cache: MakeCache) -> None:
    base, app = origin
    clock = app[CLOCK]
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=60"}}
    async with CachedSession(make_cache(CachePolicy(clock=clock))) as session:
        first = await session.get(base / "items" / "1")
        assert not isinstance(first, CachedResponse)
        clock.advance(30)
        hit = await session.get(base / "items" / "1")
        assert isinstance(hit, CachedResponse) and hit.cache_status == "hit"
        assert hit.headers["Age"] == "30"
        assert app[COUNTS]["1"] == 1
        clock.advance(31)  # 61 s old: stale, and without validators it is fetched again
        again = await session.get(base / "items" / "1")
        assert not isinstance(again, CachedResponse)
        assert app[COUNTS]["1"] == 2
        assert app[CONDITIONAL]["1"] == 0


async def test_a_server_age_counts_towards_freshness(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=60", "Age": "100"}}
    async with CachedSession(make_cache(CachePolicy(clock=app[CLOCK]))) as session:
        await session.get(base / "items" / "1")
        await session.get(base / "items" / "1")
    assert app[COUNTS]["1"] == 2  # already older than its lifetime when it arrived


async def test_request_no_cache_forces_revalidation(origin: tuple[URL, web.Application], make_cache: MakeCache) -> None:
    base, app = origin
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=600"}, "etag": '"v1"'}
    async with CachedSession(make_cache(CachePolicy(clock=app[CLOCK]))) as session:
        await session.get(base / "items" / "1")
        response = await session.get(base / "items" / "1", headers={"Cache-Control": "no-cache"})
    assert isinstance(response, CachedResponse) and response.cache_status == "revalidated"
    assert app[CONDITIONAL]["1"] == 1


# ----------------------------------------------------------------------------------------------------------------
# revalidation
# ----------------------------------------------------------------------------------------------------------------
async def test_etag_is_revalidated_with_304_then_200(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    clock = app[CLOCK]
    url = base / "items" / "1"
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=10"}, "etag": '"v1"'}
    cache = make_cache(CachePolicy(clock=clock))
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler(), cache=cache)
    async with handler:
        assert (await handler.get(url))["version"] == 1
        clock.advance(20)
        assert (await handler.get(url))["version"] == 1  # a 304: the stored body, refreshed
        conditional = [headers for method, key, headers in app[SEEN] if "If-None-Match" in headers]
        assert conditional and conditional[-1]["If-None-Match"] == '"v1"'
        assert (app[COUNTS]["1"], app[CONDITIONAL]["1"]) == (2, 1)
        clock.advance(5)  # fresh again for ten seconds after the 304
        assert (await handler.get(url))["version"] == 1
        assert app[COUNTS]["1"] == 2
        stats = handler.stats
        assert (stats.cache_hits, stats.cache_misses, stats.cache_revalidations) == (1, 1, 1)
        stats.check()

        app[SPECS]["1"].update(version=2, etag='"v2"')
        clock.advance(20)
        assert (await handler.get(url))["version"] == 2  # a 200 replaces it
        clock.advance(1)
        assert (await handler.get(url))["version"] == 2  # and is served from the cache
        assert (app[COUNTS]["1"], app[CONDITIONAL]["1"]) == (3, 2)


async def test_last_modified_is_revalidated_with_304_then_200(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    clock = app[CLOCK]
    url = base / "items" / "1"
    modified = http_date(clock.now - 3600)
    app[SPECS]["1"] = {"headers": {"Cache-Control": "no-cache"}, "last_modified": modified}
    async with CachedSession(make_cache(CachePolicy(clock=clock))) as session:
        await session.get(url)
        confirmed = await session.get(url)
        assert isinstance(confirmed, CachedResponse) and confirmed.cache_status == "revalidated"
        assert (await confirmed.json())["version"] == 1
        sent = app[SEEN][-1][2]
        assert sent["If-Modified-Since"] == modified
        app[SPECS]["1"].update(version=2, last_modified=http_date(clock.now))
        changed = await session.get(url)
        assert not isinstance(changed, CachedResponse)
        assert (await changed.json())["version"] == 2
    assert (app[COUNTS]["1"], app[CONDITIONAL]["1"]) == (3, 2)


async def test_heuristic_freshness_from_last_modified(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    clock = app[CLOCK]
    # Modified 1000 s before its Date: 10 % of that (100 s) is its heuristic freshness.
    app[SPECS]["1"] = {"date": http_date(clock.now), "last_modified": http_date(clock.now - 1000)}
    async with CachedSession(make_cache(CachePolicy(clock=clock))) as session:
        await session.get(base / "items" / "1")
        clock.advance(99)
        assert isinstance(await session.get(base / "items" / "1"), CachedResponse)
        assert app[COUNTS]["1"] == 1
        clock.advance(2)
        revalidated = await session.get(base / "items" / "1")
        assert isinstance(revalidated, CachedResponse) and revalidated.cache_status == "revalidated"
    assert app[CONDITIONAL]["1"] == 1


# ----------------------------------------------------------------------------------------------------------------
# Vary
# ----------------------------------------------------------------------------------------------------------------
async def test_vary_selects_by_the_request_headers(origin: tuple[URL, web.Application], make_cache: MakeCache) -> None:
    base, app = origin
    url = base / "items" / "1"
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=600", "Vary": "Accept-Language"}}

    async def get(lang: str) -> tuple[bool, str]:
        async with session.get(url, headers={"Accept-Language": lang}) as response:
            return isinstance(response, CachedResponse), (await response.json())["lang"]

    async with CachedSession(make_cache(CachePolicy(clock=app[CLOCK]))) as session:
        assert await get("en") == (False, "en")
        assert await get("en") == (True, "en")
        assert await get("fr") == (False, "fr")  # another variant: never the English one
        assert await get("fr") == (True, "fr")
    assert app[COUNTS]["1"] == 2


async def test_vary_star_is_never_served(origin: tuple[URL, web.Application], make_cache: MakeCache) -> None:
    base, app = origin
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=600", "Vary": "*"}}
    cache = make_cache(CachePolicy(clock=app[CLOCK]))
    async with CachedSession(cache) as session:
        for _ in range(2):
            assert not isinstance(await session.get(base / "items" / "1"), CachedResponse)
    assert app[COUNTS]["1"] == 2
    assert await count_rows(cache) == 0


# ----------------------------------------------------------------------------------------------------------------
# stale-while-revalidate
# ----------------------------------------------------------------------------------------------------------------
async def test_stale_while_revalidate_answers_at_once_with_one_background_request(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    clock = app[CLOCK]
    url = base / "items" / "1"
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=10, stale-while-revalidate=60"}, "etag": '"v1"'}
    async with CachedSession(make_cache(CachePolicy(clock=clock))) as session:
        await session.get(url)
        clock.advance(20)
        gate = app[GATES]["1"] = asyncio.Event()  # the origin holds the revalidation until the test lets it go
        # All are answered while the origin still holds the one revalidation request: together, and one by one
        # (a lookup never waits for a background revalidation).
        answers = await asyncio.gather(*(session.get(url) for _ in range(5)))
        answers += [await session.get(url) for _ in range(3)]
        assert all(isinstance(r, CachedResponse) and r.cache_status == "stale" for r in answers)
        gate.set()
        await session.wait_for_revalidations()
        assert (app[COUNTS]["1"], app[CONDITIONAL]["1"]) == (2, 1)
        fresh = await session.get(url)
        assert isinstance(fresh, CachedResponse) and fresh.cache_status == "hit"
    assert app[COUNTS]["1"] == 2


async def test_a_background_revalidation_is_cancelled_on_close(
    origin: tuple[URL, web.Application], make_cache: MakeCache, caplog: pytest.LogCaptureFixture
) -> None:
    base, app = origin
    clock = app[CLOCK]
    url = base / "items" / "1"
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=10, stale-while-revalidate=60"}, "etag": '"v1"'}
    session = CachedSession(make_cache(CachePolicy(clock=clock)))
    async with session:
        await session.get(url)
        clock.advance(20)
        app[GATES]["1"] = asyncio.Event()  # never set: the revalidation would wait for ever
        assert (await session.get(url)).cache_status == "stale"
        tasks = list(session._http._background)
        assert len(tasks) == 1
    assert tasks[0].cancelled()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "revalidation" in r.getMessage()]


async def test_a_failed_background_revalidation_is_logged_not_raised(
    origin: tuple[URL, web.Application], make_cache: MakeCache, caplog: pytest.LogCaptureFixture
) -> None:
    base, app = origin
    clock = app[CLOCK]
    url = base / "items" / "1"
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=10, stale-while-revalidate=60"}, "etag": '"v1"'}
    async with CachedSession(make_cache(CachePolicy(clock=clock))) as session:
        await session.get(url)
        clock.advance(20)
        app[SPECS]["1"]["mode"] = "reset"
        assert (await session.get(url)).cache_status == "stale"
        await session.wait_for_revalidations()
    failures = [r.getMessage() for r in caplog.records if "Background revalidation failed" in r.getMessage()]
    assert len(failures) == 1 and "/items/1" in failures[0]


# ----------------------------------------------------------------------------------------------------------------
# stale-if-error
# ----------------------------------------------------------------------------------------------------------------
# "slow": an origin that never answers, ended by the client's real half-second time-out (it can only end later
# on a loaded machine, never wrongly). looptime's clock cannot be used here: it would also jump while Redis answers.
@pytest.mark.parametrize("mode", ["503", "reset", pytest.param("slow", marks=pytest.mark.realtime)])
async def test_stale_if_error_serves_within_its_window_and_raises_outside(
    origin: tuple[URL, web.Application], make_cache: MakeCache, mode: str
) -> None:
    base, app = origin
    clock = app[CLOCK]
    url = base / "items" / "1"
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=10, stale-if-error=300"}}
    handler = RequestHandler.create(
        payload_handler=JSONPayloadHandler(),
        cache=make_cache(CachePolicy(clock=clock)),
        timeout=aiohttp.ClientTimeout(total=0.5),
    )
    async with handler:
        assert (await handler.get(url))["version"] == 1
        app[SPECS]["1"]["mode"] = mode
        clock.advance(100)  # stale, within the stale-if-error window
        assert (await handler.get(url))["version"] == 1
        assert handler.stats.cache_stale == 1
        clock.advance(1000)  # past the window: the failure is the caller's, as without a cache
        expected: Any = ResponseError if mode == "503" else (aiohttp.ClientError, asyncio.TimeoutError)
        with pytest.raises(expected):
            await handler.get(url)


async def test_stale_if_error_serves_when_the_host_is_paused_past_the_budget(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    clock = app[CLOCK]
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=10, stale-if-error=300"}}
    handler = RequestHandler.create(
        payload_handler=JSONPayloadHandler(), cache=make_cache(CachePolicy(clock=clock)), pause_on_retry_after=True
    )
    async with handler:
        assert (await handler.get(base / "items" / "1"))["id"] == "1"
        # Another URL of the host answers 503 with a long Retry-After: the host is paused for an hour.
        handler.host_pauses.pause_for(host_key(base / "items" / "1"), 503, {"Retry-After": "3600"})
        clock.advance(100)
        before = app[COUNTS]["1"]
        assert (await handler.get(base / "items" / "1"))["id"] == "1"
        assert app[COUNTS]["1"] == before  # nothing sent to the paused host
        assert handler.stats.cache_stale == 1
        clock.advance(1000)
        with pytest.raises(ResponseError, match="paused"):
            await handler.get(base / "items" / "1")


# ----------------------------------------------------------------------------------------------------------------
# one origin request per key
# ----------------------------------------------------------------------------------------------------------------
async def test_a_hundred_concurrent_misses_make_one_origin_request(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=600"}}
    handler = RequestHandler.create(
        payload_handler=JSONPayloadHandler(), cache=make_cache(CachePolicy(clock=app[CLOCK]))
    )
    async with handler:
        results = await asyncio.gather(*(handler.get(base / "items" / "1") for _ in range(100)))
    assert all(result["id"] == "1" for result in results)
    assert app[COUNTS]["1"] == 1


async def test_a_hundred_concurrent_revalidations_make_one_conditional_request(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    clock = app[CLOCK]
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=10"}, "etag": '"v1"'}
    async with CachedSession(make_cache(CachePolicy(clock=clock))) as session:
        await session.get(base / "items" / "1")
        clock.advance(20)
        answers = await asyncio.gather(*(session.get(base / "items" / "1") for _ in range(100)))
    assert all(isinstance(answer, CachedResponse) for answer in answers)
    assert (app[COUNTS]["1"], app[CONDITIONAL]["1"]) == (2, 1)


async def test_misses_that_cannot_be_stored_each_go_to_the_origin(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    app[SPECS]["1"] = {"headers": {"Cache-Control": "no-store"}}
    async with CachedSession(make_cache(CachePolicy(clock=app[CLOCK]))) as session:
        answers = await asyncio.gather(*(session.get(base / "items" / "1") for _ in range(10)))
    assert all(answer.status == 200 for answer in answers)
    assert app[COUNTS]["1"] == 10


# ----------------------------------------------------------------------------------------------------------------
# unsafe methods, shared caches
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "PURGE"])
async def test_an_unsafe_method_invalidates_the_stored_entry(
    origin: tuple[URL, web.Application], make_cache: MakeCache, method: str
) -> None:
    base, app = origin
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=600"}}
    cache = make_cache(CachePolicy(clock=app[CLOCK]))
    async with CachedSession(cache) as session:
        await session.get(base / "items" / "1", headers={"Authorization": "Bearer one"})
        await session.get(base / "items" / "1")
        assert app[COUNTS]["1"] == 2  # two users' entries
        await session.request(method, base / "items" / "1", headers={"Authorization": "Bearer one"})
        assert not isinstance(await session.get(base / "items" / "1"), CachedResponse)  # every user's entry went
    assert app[COUNTS]["1"] == 4


async def test_a_shared_cache_does_not_store_private_responses(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    app[SPECS]["1"] = {"headers": {"Cache-Control": "private, max-age=600"}}
    app[SPECS]["2"] = {"headers": {"Cache-Control": "max-age=0, s-maxage=600"}}
    async with CachedSession(make_cache(CachePolicy(shared=True, clock=app[CLOCK]))) as session:
        for _ in range(2):
            await session.get(base / "items" / "1")
            await session.get(base / "items" / "2")
    assert (app[COUNTS]["1"], app[COUNTS]["2"]) == (2, 1)  # s-maxage governs a shared cache


async def test_a_private_cache_stores_private_responses_and_ignores_s_maxage(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    app[SPECS]["1"] = {"headers": {"Cache-Control": "private, max-age=600"}}
    app[SPECS]["2"] = {"headers": {"Cache-Control": "max-age=0, s-maxage=600"}}
    async with CachedSession(make_cache(CachePolicy(shared=False, clock=app[CLOCK]))) as session:
        for _ in range(2):
            await session.get(base / "items" / "1")
            await session.get(base / "items" / "2")
    assert (app[COUNTS]["1"], app[COUNTS]["2"]) == (1, 2)


async def test_a_repository_can_opt_out_of_the_cache_s_policy(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=0"}}
    cache = make_cache(CachePolicy(clock=app[CLOCK]))
    cache["items"].policy = None  # this repository stores by expiry alone
    async with CachedSession(cache) as session:
        for _ in range(3):
            await session.get(base / "items" / "1")
    assert app[COUNTS]["1"] == 1


async def test_a_hit_under_a_policy_takes_no_rate_limit_slot(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=600"}}
    handler = RequestHandler.create(
        payload_handler=JSONPayloadHandler(), cache=make_cache(CachePolicy(clock=app[CLOCK])), rate_limit=(1, 3600)
    )
    async with handler:
        for _ in range(20):  # one token an hour: only the first request may use it
            assert (await handler.get(base / "items" / "1"))["id"] == "1"
    assert app[COUNTS]["1"] == 1
    assert handler.stats.wait_seconds_by_reason.get("rate_limit", 0.0) == 0.0


async def test_a_fleet_revalidates_a_stale_entry_once(
    origin: tuple[URL, web.Application], redis_url: str, redis_namespace: str
) -> None:
    """Two processes' sessions (two sessions with state of their own) on one Redis cache: one background request."""
    from aiorequestful.cache.backend.redis import RedisCache
    from aiorequestful.shared import RedisConnection

    base, app = origin
    clock = app[CLOCK]
    url = base / "items" / "1"
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=10, stale-while-revalidate=60"}, "etag": '"v1"'}
    connections = [RedisConnection(redis_url, namespace=redis_namespace) for _ in range(2)]
    sessions = []
    for connection in connections:
        cache = RedisCache.connect(
            connection, cache_name="fleet", repository_getter=pick_items, policy=CachePolicy(clock=clock)
        )
        cache.create_repository(json_settings())
        sessions.append(CachedSession(cache))
    try:
        for session in sessions:
            await session.__aenter__()
        await sessions[0].get(url)
        clock.advance(20)
        gate = app[GATES]["1"] = asyncio.Event()
        answers = await asyncio.gather(*(session.get(url) for session in sessions for _ in range(3)))
        assert all(answer.cache_status == "stale" for answer in answers)
        gate.set()
        for session in sessions:
            await session.wait_for_revalidations()
        assert (app[COUNTS]["1"], app[CONDITIONAL]["1"]) == (2, 1)
    finally:
        for session in sessions:
            await session.__aexit__(None, None, None)
        for connection in connections:
            await connection.aclose()


async def test_a_304_for_another_representation_is_not_taken_as_confirmation(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    clock = app[CLOCK]
    url = base / "items" / "1"
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=10"}, "etag": '"v1"'}
    async with CachedSession(make_cache(CachePolicy(clock=clock))) as session:
        await session.get(url)
        app[SPECS]["1"].update(version=2, etag='"v2"', foreign_304='"v9"')
        clock.advance(20)
        async with session.get(url) as response:
            assert not isinstance(response, CachedResponse)  # asked again, without validators
            assert (await response.json())["version"] == 2
    assert (app[COUNTS]["1"], app[CONDITIONAL]["1"]) == (3, 1)


async def test_an_unasked_for_304_does_not_drop_the_stored_entry(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    base, app = origin
    clock = app[CLOCK]
    url = base / "items" / "1"
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=10, stale-if-error=600"}}
    cache = make_cache(CachePolicy(clock=clock))
    async with CachedSession(cache) as session:
        await session.get(url)
        clock.advance(20)  # stale and without validators: a plain request, which a broken origin answers with 304
        async with session.get(url, headers={"X-Force-304": "1"}) as response:
            assert response.status == 304
    assert await count_rows(cache) == 1


async def test_prometheus_and_opentelemetry_count_revalidations_and_stale_hits(
    origin: tuple[URL, web.Application], make_cache: MakeCache
) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the [otel] extra is not installed")
    pytest.importorskip("prometheus_client", reason="the [prometheus] extra is not installed")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from prometheus_client import CollectorRegistry

    from aiorequestful.telemetry.otel import OpenTelemetryInstrumentation
    from aiorequestful.telemetry.prometheus import PrometheusCollector

    base, app = origin
    clock = app[CLOCK]
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=10"}, "etag": '"v1"'}
    app[SPECS]["2"] = {"headers": {"Cache-Control": "max-age=10, stale-while-revalidate=60"}, "etag": '"v1"'}
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler(), cache=make_cache(CachePolicy(clock=clock)))
    registry = CollectorRegistry()
    collector = PrometheusCollector()
    collector.add(handler, name="http")
    registry.register(collector)
    reader = InMemoryMetricReader()
    OpenTelemetryInstrumentation(handler, name="http", meter_provider=MeterProvider(metric_readers=[reader]))
    async with handler:
        for key in ("1", "2"):
            await handler.get(base / "items" / key)
        clock.advance(20)
        for key in ("1", "2"):  # 1 is revalidated with a 304; 2 is served stale while it is revalidated
            await handler.get(base / "items" / key)
        await handler.session.wait_for_revalidations()
    stats = handler.stats
    assert (stats.cache_revalidations, stats.cache_stale, stats.cache_hits) == (1, 1, 1)
    stats.check()
    for name, value in (("revalidations", stats.cache_revalidations), ("stale", stats.cache_stale)):
        assert registry.get_sample_value(f"aiorequestful_cache_{name}_total", {"handler": "http"}) == value
    data = reader.get_metrics_data()
    points = {
        metric.name: sum(point.value for point in metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name.startswith("aiorequestful.cache.")
    }
    assert points["aiorequestful.cache.revalidations"] == 1 and points["aiorequestful.cache.stale"] == 1


async def test_a_304_refreshes_a_sqlite_row_without_writing_its_payload_again(
    origin: tuple[URL, web.Application], tmp_path: Path
) -> None:
    from aiorequestful.cache.backend.base import ResponseRepositorySettings

    from .cache_support import ItemSettings

    named: list[Any] = []

    class Counting(ItemSettings):
        @staticmethod
        def get_name(payload: Any) -> str | None:
            named.append(payload)  # called when a payload is (re)written with its display name
            return "item"

    assert issubclass(Counting, ResponseRepositorySettings)
    base, app = origin
    clock = app[CLOCK]
    url = base / "items" / "1"
    app[SPECS]["1"] = {"headers": {"Cache-Control": "max-age=10"}, "etag": '"v1"'}
    cache = SQLiteCache.connect_with_path(
        tmp_path / "refresh", repository_getter=pick_items, policy=CachePolicy(clock=clock)
    )
    cache.create_repository(Counting(name="items", payload_handler=JSONPayloadHandler()))
    async with CachedSession(cache) as session:
        await session.get(url)
        for _ in range(3):
            clock.advance(20)
            response = await session.get(url)
            assert response.cache_status == "revalidated"
        clock.advance(5)
        assert (await session.get(url)).cache_status == "hit"  # the refreshed freshness was stored
    assert len(named) == 1
    assert app[CONDITIONAL]["1"] == 3
