# SPDX-License-Identifier: MIT
"""The aiohttp client middlewares and RequestHandler run the same behaviour tests: each test body below runs once
through ``RequestHandler`` and once through a plain ``aiohttp.ClientSession(middlewares=[...])``, against the real
local servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.flow import HostRateLimiter, RateLimit
from aiorequestful.middleware import (
    CacheMiddleware,
    FlowControlMiddleware,
    RequestMiddleware,
    RetryMiddleware,
    StatusMiddleware,
    check_middleware_support,
)
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import ResponseError
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.response.status import RateLimitStatusHandler, UnauthorisedStatusHandler
from aiorequestful.timer import StepCountTimer

from .cache_support import json_settings, pick_items
from .redis_support import redis_namespace_fixture, redis_url_fixture  # noqa: F401 - fixtures
from .servers import VALID_TOKENS, hits, json_item, make_app
from .test_request import TokenAuthoriser

HAS_MIDDLEWARES = hasattr(aiohttp, "ClientMiddlewareType")
needs_middlewares = pytest.mark.skipif(not HAS_MIDDLEWARES, reason="aiohttp client middlewares need aiohttp 3.12")

ARRIVALS = web.AppKey("arrivals", list)


class Entry:
    """One way of sending a GET: ``get(url)`` gives the decoded JSON of a successful response, or raises
    ``self.error`` for an error response (the handler raises it; through middlewares the response is returned and
    ``raise_for_status`` raises)."""

    error: Any = Exception

    async def get(self, url: URL) -> Any:
        raise NotImplementedError


class HandlerEntry(Entry):
    error = ResponseError

    def __init__(self, handler: RequestHandler[Any, Any]) -> None:
        self.handler = handler

    async def get(self, url: URL) -> Any:
        return await self.handler.get(url)

    @property
    def stats(self) -> Any:
        return self.handler.stats


class MiddlewareEntry(Entry):
    error = aiohttp.ClientResponseError

    def __init__(self, session: aiohttp.ClientSession, middlewares: list[Any]) -> None:
        self.session = session
        self.middlewares = middlewares

    async def get(self, url: URL) -> Any:
        async with self.session.get(url) as response:
            response.raise_for_status()
            return await response.json()

    @property
    def stats(self) -> Any:
        return next(m for m in self.middlewares if isinstance(m, RequestMiddleware)).stats


#: Builds an entry for the features a test needs: ``make(**features)`` (retry_timer, authoriser, rate_limit, cache).
MakeEntry = Callable[..., Any]


@pytest.fixture(params=["handler", pytest.param("middlewares", marks=needs_middlewares)])
async def make_entry(request: pytest.FixtureRequest) -> AsyncIterator[MakeEntry]:
    opened: list[Any] = []

    async def make(
        *,
        retry_timer: Any = None,
        authoriser: Any = None,
        rate_limit: Any = None,
        cache: Any = None,
        statuses: bool = False,
    ) -> Entry:
        if request.param == "handler":
            handler = RequestHandler.create(
                payload_handler=JSONPayloadHandler(),
                retry_timer=retry_timer,
                authoriser=authoriser,
                rate_limit=rate_limit,
                cache=cache,
            )
            await handler.__aenter__()
            opened.append(handler)
            return HandlerEntry(handler)
        middlewares: list[Any] = []
        if cache is not None:
            middlewares.append(CacheMiddleware(cache))
        if retry_timer is not None:
            middlewares.append(RetryMiddleware(retry_timer))
        if authoriser is not None or statuses:
            handlers = [UnauthorisedStatusHandler(), RateLimitStatusHandler()]
            middlewares.append(StatusMiddleware(*handlers, authoriser=authoriser, retry_timer=retry_timer))
        if rate_limit is not None:
            middlewares.append(FlowControlMiddleware(rate_limit=rate_limit))
        session = aiohttp.ClientSession(middlewares=middlewares)
        opened.append(session)
        if authoriser is not None:
            session.headers.update(await authoriser.authorise())  # as RequestHandler does on entering
        for middleware in middlewares:
            await middleware.__aenter__()
            opened.append(middleware)
        return MiddlewareEntry(session, middlewares)

    yield make
    for thing in reversed(opened):
        if isinstance(thing, aiohttp.ClientSession):
            await thing.close()
        else:
            await thing.__aexit__(None, None, None)


@pytest.fixture
async def app_url(serve: Any) -> tuple[web.Application, URL]:
    app = make_app()

    async def timed(request: web.Request) -> web.Response:
        request.app[ARRIVALS].append(asyncio.get_running_loop().time())
        return web.json_response({"n": len(request.app[ARRIVALS])})

    app[ARRIVALS] = []
    app.router.add_get("/timed/{key}", timed)
    app.router.add_get("/v1/items/{key}", json_item)  # a cacheable item (the repository keys /items/<id>)
    return app, await serve(app)


# ----------------------------------------------------------------------------------------------------------------
# the behaviour tests, through both entry points
# ----------------------------------------------------------------------------------------------------------------
async def test_retries_until_the_server_answers(app_url: Any, make_entry: MakeEntry) -> None:
    app, url = app_url
    entry = await make_entry(retry_timer=StepCountTimer(0, 3, 0))
    assert await entry.get(url / "flaky" / "a" % {"fail": "2", "status": "503"}) == {"ok": True, "hits": 3}
    assert hits(app, "flaky", "a") == 3
    assert entry.stats.retries == 2


async def test_retries_run_out(app_url: Any, make_entry: MakeEntry) -> None:
    app, url = app_url
    entry = await make_entry(retry_timer=StepCountTimer(0, 1, 0))
    with pytest.raises(entry.error) as caught:
        await entry.get(url / "flaky" / "b" % {"fail": "5", "status": "500"})
    assert "500" in str(caught.value)
    assert hits(app, "flaky", "b") == 2


async def test_reauthorises_once_on_401(app_url: Any, make_entry: MakeEntry) -> None:
    app, url = app_url
    app[VALID_TOKENS].add("fresh")
    auth = TokenAuthoriser("stale", "fresh")
    entry = await make_entry(authoriser=auth)
    assert await entry.get(url / "protected" / "a") == {"ok": True}
    assert auth.calls == 2
    assert hits(app, "protected", "a") == 2


async def test_a_second_401_is_not_reauthorised_again(app_url: Any, make_entry: MakeEntry) -> None:
    app, url = app_url
    auth = TokenAuthoriser("stale", "still-stale")
    entry = await make_entry(authoriser=auth)
    with pytest.raises(entry.error):
        await entry.get(url / "protected" / "b")
    assert auth.calls == 2
    assert hits(app, "protected", "b") == 2


@pytest.mark.looptime
async def test_honours_retry_after(app_url: Any, make_entry: MakeEntry) -> None:
    app, url = app_url
    entry = await make_entry(retry_timer=StepCountTimer(10, 2, 0), statuses=True)  # a 20 s budget for the wait
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await entry.get(url / "ratelimit" / "a" % {"n": "1", "retry_after": "5"}) == {"ok": True, "hits": 2}
    assert loop.time() - started >= 5
    assert hits(app, "ratelimit", "a") == 2


@pytest.mark.looptime
async def test_keeps_a_per_host_rate(app_url: Any, make_entry: MakeEntry) -> None:
    app, url = app_url
    entry = await make_entry(rate_limit=RateLimit(5, 1))
    await asyncio.gather(*(entry.get(url / "timed" / str(i)) for i in range(11)))
    arrivals = sorted(app[ARRIVALS])
    assert len(arrivals) == 11
    assert arrivals[-1] - arrivals[0] >= 2.0 - 1e-6  # 5 a second, one at a time: the 11th two seconds after the 1st


async def test_serves_cache_hits(app_url: Any, make_entry: MakeEntry, tmp_path: Path) -> None:
    app, url = app_url
    cache = SQLiteCache.connect_with_path(tmp_path / "cache", repository_getter=pick_items)
    cache.create_repository(json_settings())
    entry = await make_entry(cache=cache)
    first = await entry.get(url / "v1" / "items" / "7")
    assert first["id"] == "7"
    for _ in range(2):
        assert await entry.get(url / "v1" / "items" / "7") == first
    assert hits(app, "json", "7") == 1


# ----------------------------------------------------------------------------------------------------------------
# middleware-only behaviour
# ----------------------------------------------------------------------------------------------------------------
@needs_middlewares
@pytest.mark.looptime
async def test_a_middleware_and_a_handler_share_one_rate_limiter(app_url: Any) -> None:
    app, url = app_url
    limiter = HostRateLimiter(RateLimit(5, 1))
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler(), rate_limit=limiter)
    async with handler, aiohttp.ClientSession(middlewares=[FlowControlMiddleware(rate_limit=limiter)]) as session:

        async def through_session(i: int) -> None:
            async with session.get(url / "timed" / f"s{i}") as response:
                assert response.status == 200

        await asyncio.gather(
            *(handler.get(url / "timed" / f"h{i}") for i in range(5)), *(through_session(i) for i in range(6))
        )
    arrivals = sorted(app[ARRIVALS])
    assert len(arrivals) == 11 and arrivals[-1] - arrivals[0] >= 2.0 - 1e-6


@needs_middlewares
async def test_a_handler_as_one_middleware_shares_its_counters(app_url: Any) -> None:
    _app, url = app_url
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler(), retry_timer=StepCountTimer(0, 3, 0))
    async with handler, aiohttp.ClientSession(middlewares=[handler.middleware()]) as session:
        await handler.get(url / "json" / "1")
        async with session.get(url / "flaky" / "c" % {"fail": "1"}) as response:
            assert (await response.json())["ok"] is True
    stats = handler.stats
    assert (stats.calls, stats.requests, stats.retries) == (2, 3, 1)
    stats.check()


@needs_middlewares
async def test_an_error_response_is_returned_as_aiohttp_returns_it(app_url: Any) -> None:
    app, url = app_url
    async with aiohttp.ClientSession(middlewares=[RetryMiddleware(StepCountTimer(0, 1, 0))]) as session:
        async with session.get(url / "status" / "404") as response:
            assert response.status == 404
            assert await response.text()
        async with session.get(url / "flaky" / "d" % {"fail": "9", "status": "503"}) as response:
            assert response.status == 503  # the retries ran out: the last response is the caller's
    assert hits(app, "flaky", "d") == 2


@needs_middlewares
async def test_a_transport_error_whose_retries_ran_out_is_raised(app_url: Any) -> None:
    app, url = app_url
    async with aiohttp.ClientSession(middlewares=[RetryMiddleware(StepCountTimer(0, 2, 0))]) as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(url / "reset" / "e" % {"n": "9"}):
                pass
    # Three attempts by the middleware; aiohttp itself may run the chain once more after a dropped keep-alive.
    assert hits(app, "reset", "e") in (3, 6)


@needs_middlewares
async def test_a_post_body_is_sent_again_on_every_attempt(app_url: Any) -> None:
    app, url = app_url
    async with aiohttp.ClientSession(middlewares=[RetryMiddleware(StepCountTimer(0, 3, 0))]) as session:
        async with session.post(url / "flaky" / "f" % {"fail": "1"}, json={"x": 1}) as response:
            assert response.status == 200
    assert hits(app, "flaky", "f") == 2


def test_old_aiohttp_gets_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    if HAS_MIDDLEWARES:
        monkeypatch.delattr(aiohttp, "ClientMiddlewareType")
    with pytest.raises(RuntimeError, match=r"aiohttp 3\.12 or newer; aiohttp .* is installed"):
        check_middleware_support()
    with pytest.raises(RuntimeError, match=r"aiohttp 3\.12 or newer"):
        RetryMiddleware(StepCountTimer(0, 1, 0))


@needs_middlewares
async def test_the_cache_middleware_follows_the_http_caching_policy(app_url: Any, tmp_path: Path) -> None:
    from aiorequestful.cache.backend.base import ResponseRepositorySettings
    from aiorequestful.cache.policy import CachePolicy

    class ByPath(ResponseRepositorySettings):
        @property
        def fields(self) -> tuple[str, ...]:
            return ("path",)

        def get_key(self, method: str, url: Any, **_: Any) -> tuple[str | None]:
            return (URL(url).path if method == "GET" else None,)

        @staticmethod
        def get_name(payload: Any) -> str | None:
            return None

    app, url = app_url
    cache = SQLiteCache.connect_with_path(
        tmp_path / "policy", repository_getter=lambda c, u: c.get("validated"), policy=CachePolicy()
    )
    cache.create_repository(ByPath(name="validated", payload_handler=JSONPayloadHandler()))
    statuses = []
    async with CacheMiddleware(cache) as middleware, aiohttp.ClientSession(middlewares=[middleware]) as session:
        for _ in range(3):
            async with session.get(url / "validated" / "3") as response:
                statuses.append(getattr(response, "cache_status", "network"))
                assert (await response.json())["id"] == "3"
    assert statuses == ["network", "revalidated", "revalidated"]
    assert (hits(app, "validated", "3"), hits(app, "validated-304", "3")) == (1, 2)


@needs_middlewares
@pytest.mark.realtime
async def test_sessions_with_redis_backed_flow_control_share_one_limit(
    app_url: Any, redis_url: str, redis_namespace: str
) -> None:
    """Two sessions (as two processes would) with their own Redis connection: one 5-a-second limit holds for both.
    Real time: Redis answers from another process, so the loop clock cannot be fast-forwarded; only a lower bound
    on the time taken is asserted (a loaded machine can only make it longer)."""
    from aiorequestful.flow.redis import RedisHostRateLimiter
    from aiorequestful.shared import RedisConnection

    app, url = app_url
    connections = [RedisConnection(redis_url, namespace=redis_namespace) for _ in range(2)]
    middlewares = [FlowControlMiddleware(rate_limit=RedisHostRateLimiter(c, RateLimit(5, 1))) for c in connections]
    sessions = [aiohttp.ClientSession(middlewares=[middleware]) for middleware in middlewares]
    try:
        for middleware in middlewares:
            await middleware.__aenter__()

        async def get(session: aiohttp.ClientSession, i: int) -> None:
            async with session.get(url / "timed" / str(i)) as response:
                assert response.status == 200

        await asyncio.gather(*(get(sessions[i % 2], i) for i in range(11)))
    finally:
        for session in sessions:
            await session.close()
        for middleware in middlewares:
            await middleware.__aexit__(None, None, None)
        for connection in connections:
            await connection.aclose()
    arrivals = sorted(app[ARRIVALS])
    assert len(arrivals) == 11 and arrivals[-1] - arrivals[0] >= 2.0 - 0.05
