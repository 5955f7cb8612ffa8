# SPDX-License-Identifier: MIT
"""Cache hits and flow control: a hit sends nothing to the host, so it takes no rate-limit slot and waits on no
host pause; misses still go through the gate. Also a hit for a row that another process wrote."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from aiorequestful.cache.backend.base import ResponseRepositorySettings
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.flow import RateLimit, host_key
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import ResponseError
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.stats import WAIT_PAUSE, WAIT_RATE_LIMIT
from aiorequestful.timer import StepCountTimer

ROOT = Path(__file__).resolve().parent.parent


class Items(ResponseRepositorySettings):
    @property
    def fields(self) -> tuple[str, ...]:
        return ("id",)

    def get_key(self, method: str, url: Any, **_: Any) -> tuple[str | None]:
        parts = URL(url).path.strip("/").split("/")
        return (parts[1],) if method.upper() == "GET" and len(parts) == 2 and parts[0] == "items" else (None,)

    @staticmethod
    def get_name(payload: Any) -> str | None:
        return None


def make_cache(path: Path) -> SQLiteCache:
    cache = SQLiteCache.connect_with_path(path, repository_getter=lambda c, url: c.get("items"))
    cache.create_repository(Items(name="items", payload_handler=JSONPayloadHandler()))
    return cache


async def write_rows(path: str, count: int) -> None:
    """Run in another process: store ``count`` items the way a crawler on another machine would."""
    cache = make_cache(Path(path))
    async with cache:
        for i in range(count):
            await cache["items"].save_response((("GET", str(i)), {"id": i, "from": "other process"}))


def app(hits: Counter[str]) -> web.Application:
    async def item(request: web.Request) -> web.Response:
        hits[request.match_info["id"]] += 1
        return web.json_response({"id": int(request.match_info["id"]), "from": "network"})

    application = web.Application()
    application.router.add_get("/items/{id}", item)
    return application


async def fill(path: Path, base: URL, count: int) -> None:
    handler = RequestHandler.create(cache=make_cache(path), payload_handler=JSONPayloadHandler())
    async with handler:
        await asyncio.gather(*(handler.get(base / "items" / str(i)) for i in range(count)))


async def test_hits_take_no_rate_limit_slot(serve, tmp_path: Path) -> None:
    hits: Counter[str] = Counter()
    base = await serve(app(hits))
    await fill(tmp_path / "c", base, 50)
    assert sum(hits.values()) == 50
    # One request per 1000 s, burst 1: a second *network* request would wait a quarter of an hour.
    handler = RequestHandler.create(
        cache=make_cache(tmp_path / "c"), payload_handler=JSONPayloadHandler(), rate_limit=RateLimit(0.001)
    )
    async with handler:
        items = await asyncio.gather(*(handler.get(base / "items" / str(i)) for i in range(50)))
        # The bucket still holds its one token: the hits took none, so this miss goes at once.
        fresh = await asyncio.wait_for(handler.get(base / "items" / "99"), timeout=30)
    assert [item["id"] for item in items] == list(range(50)) and fresh["id"] == 99
    stats = handler.stats
    assert (stats.cache_hits, stats.cache_misses) == (50, 1)
    assert stats.wait_seconds_by_reason.get(WAIT_RATE_LIMIT, 0.0) == 0.0
    assert sum(hits.values()) == 51 and hits["99"] == 1


async def test_hits_wait_on_no_host_pause_while_misses_do(serve, tmp_path: Path) -> None:
    hits: Counter[str] = Counter()
    base = await serve(app(hits))
    await fill(tmp_path / "c", base, 10)
    handler = RequestHandler.create(
        cache=make_cache(tmp_path / "c"),
        payload_handler=JSONPayloadHandler(),
        pause_on_retry_after=True,
        retry_timer=StepCountTimer(0, 2, 0),  # no budget to wait an hour
    )
    async with handler:
        assert handler.host_pauses is not None
        handler.host_pauses.pause(host_key(base), 3600, 429)  # as if the host had said Retry-After: 3600
        items = await asyncio.gather(*(handler.get(base / "items" / str(i)) for i in range(10)))
        with pytest.raises(ResponseError, match="paused"):
            await handler.get(base / "items" / "77")  # a miss meets the pause (and fails fast: no budget)
    assert [item["id"] for item in items] == list(range(10))
    assert hits["77"] == 0 and sum(hits.values()) == 10
    assert handler.stats.wait_seconds_by_reason.get(WAIT_PAUSE, 0.0) == 0.0


async def test_a_row_written_by_another_process_is_a_hit(serve, tmp_path: Path) -> None:
    hits: Counter[str] = Counter()
    base = await serve(app(hits))
    path = tmp_path / "shared"
    code = f"import asyncio; from tests.test_cache_flow import write_rows; asyncio.run(write_rows({str(path)!r}, 5))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    for flow in ({}, {"rate_limit": RateLimit(1000)}):  # the plain path and the lookup-before-the-gate path
        handler = RequestHandler.create(cache=make_cache(path), payload_handler=JSONPayloadHandler(), **flow)
        async with handler:
            items = [await handler.get(base / "items" / str(i)) for i in range(5)]
        assert items == [{"id": i, "from": "other process"} for i in range(5)]
        assert handler.stats.cache_hits == 5
    assert sum(hits.values()) == 0


async def test_persist_false_and_misses_still_store_through_the_gate(serve, tmp_path: Path) -> None:
    hits: Counter[str] = Counter()
    base = await serve(app(hits))
    handler = RequestHandler.create(
        cache=make_cache(tmp_path / "c"), payload_handler=JSONPayloadHandler(), rate_limit=RateLimit(1000, burst=10)
    )
    async with handler:
        await handler.get(base / "items" / "1", persist=False)  # read the cache, store nothing
        await handler.get(base / "items" / "2")  # a miss through the gate: stored
        await handler.get(base / "items" / "1")
        await handler.get(base / "items" / "2")
    assert hits == Counter({"1": 2, "2": 1})
    assert (handler.stats.cache_hits, handler.stats.cache_misses) == (1, 3)


async def test_with_coalescing_hits_are_answered_before_it_and_misses_are_shared(serve, tmp_path: Path) -> None:
    """A hit shares nothing (it starts no shared request and joins none), and a miss is looked up once only."""
    hits: Counter[str] = Counter()
    base = await serve(app(hits))
    await fill(tmp_path / "c", base, 10)
    handler = RequestHandler.create(
        cache=make_cache(tmp_path / "c"), payload_handler=JSONPayloadHandler(), coalesce=True
    )
    loop = asyncio.get_running_loop()
    created: list[str] = []
    default_factory = loop.get_task_factory()

    def factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
        created.append(getattr(coro, "__qualname__", ""))
        if default_factory is None:
            return asyncio.Task(coro, loop=loop, **kwargs)
        return default_factory(loop, coro, **kwargs)

    async with handler:
        loop.set_task_factory(factory)
        try:
            stored = await asyncio.gather(*(handler.get(base / "items" / str(i % 10)) for i in range(40)))
            assert not [name for name in created if "_request_loop" in name]  # no shared request for a hit
            fresh = await asyncio.gather(*(handler.get(base / "items" / "77") for _ in range(20)))
        finally:
            loop.set_task_factory(default_factory)
    assert [item["from"] for item in stored] == ["network"] * 40 and fresh == [{"id": 77, "from": "network"}] * 20
    stats = handler.stats
    assert (stats.cache_hits, stats.coalesced, hits["77"], sum(hits.values())) == (40, 19, 1, 11)
    # the 20 callers of the miss each asked the cache once (a miss), and the one shared request did not ask again
    assert stats.cache_misses == 1 and stats.requests == 41
