# SPDX-License-Identifier: MIT
"""Request coalescing: identical concurrent GETs share one network request."""

from __future__ import annotations

import asyncio
from http import HTTPMethod

import aiohttp
import pytest

from aiorequestful.flow import Coalescer
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import ResponseError
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.timer import StepCountTimer

from .flow_servers import HITS, answered, arrivals, start_hosts

# Every test here runs on looptime's fast-forwarded loop clock unless it says otherwise: waits take no real
# time and rates, orders and pauses come out exact, however loaded the machine is.
pytestmark = pytest.mark.looptime


def handler(**kwargs) -> RequestHandler:
    kwargs.setdefault("payload_handler", JSONPayloadHandler())
    return RequestHandler.create(coalesce=True, **kwargs)


def key(method: str, url: str, **kwargs) -> str | None:
    return Coalescer.key(HTTPMethod(method), url, kwargs)


def test_keys() -> None:
    base = key("GET", "http://a.test/x?b=2&a=1")
    assert base is not None and len(base) == 64
    assert key("GET", "http://a.test/x?a=1&b=2") == base  # query order does not matter
    assert key("GET", "http://a.test/x", params={"b": "2", "a": "1"}) == base
    assert key("GET", "http://a.test/x?a=1", params=[("b", "2")]) == base
    assert key("GET", "http://a.test/x?b=2&a=1#frag") == base
    assert key("GET", "http://a.test/x?b=2&a=1", log_message="hi", headers=None) == base
    assert key("HEAD", "http://a.test/x?b=2&a=1") != base
    assert key("GET", "http://a.test/y?b=2&a=1") != base
    assert key("GET", "http://a.test/x?b=2&a=1", headers={"Accept": "text/html"}) != base
    assert key("GET", "http://a.test/x?b=2&a=1", headers={"accept": "x"}) == key(
        "GET", "http://a.test/x?b=2&a=1", headers=[("Accept", "x")]
    )
    assert key("GET", "http://a.test/x?b=2&a=1", allow_redirects=False) != base
    assert key("GET", "http://a.test/x?b=2&a=1", persist=False) != base
    assert key("GET", "http://a.test/x?b=2&a=1", timeout=aiohttp.ClientTimeout(total=1)) != base
    # Never coalesced: other methods, bodies and options that are not part of the key.
    assert key("POST", "http://a.test/x") is None
    assert key("GET", "http://a.test/x", data=b"x") is None
    assert key("GET", "http://a.test/x", json={"a": 1}) is None
    assert key("GET", "http://a.test/x", cookies={"a": "1"}) is None
    assert key("GET", "http://a.test/x", proxy="http://127.0.0.1:1") is None
    assert key("GET", "http://a.test/x", params={"a": object()}) is None  # let the request report it


async def test_identical_concurrent_gets_share_one_request(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler() as h:
        results = await asyncio.gather(*(h.get(url / "item" / "same", params={"q": "1"}) for _ in range(50)))
        assert len(h._coalescer) == 0  # nothing left in flight
    assert app[HITS]["same"] == 1
    assert all(r == {"key": "same", "host": "h0", "hits": 1} for r in results)
    # The first caller holds the payload itself, every other caller a copy of its own.
    assert len({id(r) for r in results}) == 50
    results[1]["key"] = "changed"
    assert results[0]["key"] == "same" and results[2]["key"] == "same"
    stats = h.stats
    stats.check()
    assert (stats.calls, stats.coalesced, stats.requests, stats.responses["2xx"]) == (50, 49, 1, 1)


async def test_different_requests_are_not_coalesced(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler() as h:
        await asyncio.gather(
            h.get(url / "item" / "k", params={"q": "1"}),
            h.get(url / "item" / "k", params={"q": "2"}),
            h.get(url / "item" / "k", params={"q": "1"}, headers={"Accept-Language": "fr"}),
            h.post(url / "item" / "k"),
            h.post(url / "item" / "k"),
        )
        # Sequential identical GETs are separate requests: only concurrent ones are shared.
        await h.get(url / "item" / "seq")
        await h.get(url / "item" / "seq")
    assert app[HITS]["k"] == 5 and app[HITS]["seq"] == 2
    assert h.stats.coalesced == 0


async def test_head_is_coalesced(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with RequestHandler.create(coalesce=True) as h:
        assert await asyncio.gather(*(h.head(url / "item" / "h") for _ in range(5))) == [""] * 5
    assert app[HITS]["h"] == 1


async def test_errors_reach_every_caller(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler() as h:
        results = await asyncio.gather(
            *(h.get(url / "item" / "e", params={"script": "404"}) for _ in range(10)), return_exceptions=True
        )
    assert app[HITS]["e"] == 1
    assert all(isinstance(r, ResponseError) and "Status code: 404" in str(r) for r in results)
    assert h.stats.failures == 10 and h.stats.coalesced == 9


async def test_shared_request_retries_once_for_everyone(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler(retry_timer=StepCountTimer(initial=0, count=3, step=0.01)) as h:
        results = await asyncio.gather(*(h.get(url / "item" / "r", params={"script": "503,503"}) for _ in range(8)))
    assert [r["hits"] for r in results] == [3] * 8
    assert app[HITS]["r"] == 3 and answered(app)["r"] == 1


async def test_cancelling_the_first_caller_does_not_cancel_the_others(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler() as h:
        first = asyncio.create_task(h.get(url / "item" / "c", params={"script": "stall:0.5"}))
        await asyncio.sleep(0.1)
        followers = [asyncio.create_task(h.get(url / "item" / "c", params={"script": "stall:0.5"})) for _ in range(3)]
        await asyncio.sleep(0.1)
        first.cancel()
        results = await asyncio.gather(*followers)
        with pytest.raises(asyncio.CancelledError):
            await first
    assert [r["hits"] for r in results] == [1, 1, 1]
    assert app[HITS]["c"] == 1
    assert h.stats.cancelled == 1 and h.stats.coalesced == 3


async def test_cancelling_every_caller_cancels_the_request(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler() as h:
        callers = [asyncio.create_task(h.get(url / "item" / "x", params={"script": "stall:1"})) for _ in range(3)]
        await asyncio.sleep(0.2)
        for caller in callers:
            caller.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        assert len(h._coalescer) == 0
        # A new caller starts a fresh request rather than joining the cancelled one.
        assert (await h.get(url / "item" / "x", params={"script": "stall:1"}))["hits"] == 2
        await asyncio.sleep(1.0)  # let the server see the first connection closed
    assert [a.outcome for a in arrivals(app)] == ["abandoned", "ok"]
    stats = h.stats
    assert stats.cancelled == 3 and stats.requests == 1  # the cancelled attempt has no outcome
    stats.check()


async def test_coalescing_off_by_default(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with RequestHandler.create(payload_handler=JSONPayloadHandler()) as h:
        assert not h.coalesce
        await asyncio.gather(*(h.get(url / "item" / "d") for _ in range(5)))
    assert app[HITS]["d"] == 5
