# SPDX-License-Identifier: MIT
"""The handler's default read time-out, kept by its read watch instead of aiohttp's per-chunk timer.

A real server on 127.0.0.1 that never answers, answers its headers and then stalls, or trickles its body. On
looptime's clock (the server runs in the test's loop, so a stall leaves the loop idle and the clock jumps ahead),
so the real default of 60 s is tested as it is, in no real time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import aiorequestful.limits as limits
from aiorequestful._handler.read_watch import READ_TIMEOUT_ERROR, READ_TIMEOUT_MESSAGE, split_timeout
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.timer import StepCountTimer

pytestmark = pytest.mark.looptime

READ = limits.DEFAULT_TIMEOUT.sock_read
CONNECT = limits.DEFAULT_TIMEOUT.connect


class Stalling:
    """Routes that stall in the ways a read time-out is for; counts what it was asked and what it saw."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.transports: dict[str, Any] = {}  # the server side of each stalled body's connection
        self.released = asyncio.Event()  # set at the end of the test: every stalled handler returns

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/hang/{name}", self.hang)
        app.router.add_get("/stall/{name}", self.stall)
        app.router.add_get("/trickle/{name}", self.trickle)
        app.router.add_get("/once/{name}", self.once)
        return app

    def _count(self, request: web.Request) -> str:
        name = request.match_info["name"]
        self.requests[name] = self.requests.get(name, 0) + 1
        return name

    async def hang(self, request: web.Request) -> web.Response:
        self._count(request)
        await request.read()
        await self.released.wait()
        return web.json_response({})

    async def stall(self, request: web.Request) -> web.StreamResponse:
        """Headers and the start of the body, then nothing."""
        name = self._count(request)
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "100"})
        await response.prepare(request)
        await response.write(b'{"start": ')
        self.transports[name] = request.transport
        await self.released.wait()
        return response

    async def trickle(self, request: web.Request) -> web.StreamResponse:
        """A body in chunks ``gap`` seconds apart, ``chunks`` of them: slow but never stalled for long."""
        self._count(request)
        gap = float(request.query["gap"])
        chunks = int(request.query["chunks"])
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"parts": [0')
        for n in range(1, chunks):
            await asyncio.sleep(gap)
            await response.write(b", %d" % n)
        await response.write(b"]}")
        await response.write_eof()
        return response

    async def once(self, request: web.Request) -> web.Response:
        """Stalls the first time it is asked, answers the second time."""
        name = self._count(request)
        if self.requests[name] == 1:
            await self.released.wait()
        return web.json_response({"second": True})


@pytest.fixture
async def stalling(serve: Any) -> Any:
    server = Stalling()
    url = await serve(server.app())
    yield server, url
    server.released.set()


def json_handler(**kwargs: Any) -> RequestHandler[Any, Any]:
    return RequestHandler.create(payload_handler=JSONPayloadHandler(), **kwargs)


async def test_a_server_that_sends_no_headers_fails_with_aiohttps_read_timeout(stalling: Any) -> None:
    server, url = stalling
    loop = asyncio.get_running_loop()
    async with json_handler() as handler:
        started = loop.time()
        with pytest.raises(READ_TIMEOUT_ERROR) as caught:
            await handler.get(url / "hang" / "a")
        waited = loop.time() - started
    assert str(caught.value) == READ_TIMEOUT_MESSAGE
    assert isinstance(caught.value, aiohttp.ServerTimeoutError) and isinstance(caught.value, TimeoutError)
    # Read plus connect time-out, noticed at most half a look period late.
    assert READ + CONNECT <= waited <= (READ + CONNECT) * 1.5 + 1
    assert server.requests == {"a": 1}
    assert handler.stats.errors == 1


async def test_a_body_that_stalls_fails_and_its_connection_is_closed(stalling: Any) -> None:
    server, url = stalling
    loop = asyncio.get_running_loop()
    async with json_handler() as handler:
        started = loop.time()
        with pytest.raises(READ_TIMEOUT_ERROR, match=READ_TIMEOUT_MESSAGE):
            await handler.get(url / "stall" / "b")
        waited = loop.time() - started
        transport = server.transports["b"]
        for _ in range(100):  # the server notices the closed connection on its next loop turns
            if transport is None or transport.is_closing():
                break
            await asyncio.sleep(0)
    assert READ <= waited <= READ * 1.5 + 1
    # Closed, not handed back to the pool with the rest of the body unread.
    assert transport is None or transport.is_closing()


async def test_a_slow_body_that_keeps_coming_is_read_whole(stalling: Any) -> None:
    """Gaps of two thirds of the read time-out, for four times the time-out in all: no gap is a stall."""
    _server, url = stalling
    gap, chunks = READ * 2 / 3, 7
    async with json_handler() as handler:
        result = await handler.get(url / "trickle" / "c", params={"gap": str(gap), "chunks": str(chunks)})
    assert result == {"parts": list(range(chunks))}
    assert handler.stats.errors == 0


async def test_a_gap_longer_than_the_read_timeout_fails(stalling: Any) -> None:
    _server, url = stalling
    async with json_handler() as handler:
        with pytest.raises(READ_TIMEOUT_ERROR):
            await handler.get(url / "trickle" / "d", params={"gap": str(READ * 1.6), "chunks": "3"})


async def test_a_stalled_attempt_is_retried_like_any_time_out(stalling: Any) -> None:
    server, url = stalling
    async with json_handler(retry_timer=StepCountTimer(initial=1, count=2, step=0)) as handler:
        assert await handler.get(url / "once" / "e") == {"second": True}
    assert server.requests == {"e": 2}
    assert handler.stats.retries == 1 and handler.stats.errors == 1


async def test_someone_elses_cancellation_stays_a_cancellation(stalling: Any) -> None:
    _server, url = stalling
    async with json_handler() as handler:
        task = asyncio.ensure_future(handler.get(url / "hang" / "f"))
        await asyncio.sleep(READ / 2)  # inside the watched wait for headers
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert handler.stats.cancelled == 1
        # A time-out before the handler's is the caller's to see, as a time-out of its own.
        with pytest.raises(TimeoutError) as caught:
            await asyncio.wait_for(handler.get(url / "hang" / "g"), READ / 2)
        assert not isinstance(caught.value, aiohttp.ServerTimeoutError)


async def test_requests_with_a_body_keep_aiohttps_read_timeout(stalling: Any) -> None:
    server, url = stalling
    async with json_handler() as handler:
        with pytest.raises(aiohttp.ServerTimeoutError):
            await handler.post(url / "hang" / "h", data=b"payload")
    assert server.requests == {"h": 1}


async def test_a_session_or_request_timeout_of_their_own_wins(stalling: Any) -> None:
    _server, url = stalling
    loop = asyncio.get_running_loop()
    own = aiohttp.ClientTimeout(total=5)
    async with json_handler(timeout=own) as handler:
        assert handler.session is not None and handler.session.timeout is own
        started = loop.time()
        with pytest.raises(TimeoutError):
            await handler.get(url / "hang" / "i")
        assert 5 <= loop.time() - started < READ  # the session's 5 s total, not the default's read time-out
    async with json_handler() as handler:
        started = loop.time()
        with pytest.raises(TimeoutError):
            await handler.get(url / "hang" / "j", timeout=aiohttp.ClientTimeout(total=3))
        assert 3 <= loop.time() - started < READ


async def test_a_plain_session_carries_the_default_without_its_read_part() -> None:
    rest, read, connect = split_timeout(limits.DEFAULT_TIMEOUT)
    assert (read, connect) == (READ, CONNECT)
    assert rest.sock_read is None
    assert (rest.total, rest.connect, rest.sock_connect) == (
        limits.DEFAULT_TIMEOUT.total,
        limits.DEFAULT_TIMEOUT.connect,
        limits.DEFAULT_TIMEOUT.sock_connect,
    )
    assert split_timeout(limits.DEFAULT_TIMEOUT)[0] is rest  # one object: the handler recognises it
    async with RequestHandler.create() as handler:
        assert handler.session is not None and handler.session.timeout is rest


async def test_a_replaced_default_is_the_one_in_force(stalling: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _server, url = stalling
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(limits, "DEFAULT_TIMEOUT", aiohttp.ClientTimeout(total=600, connect=2, sock_read=4))
    async with RequestHandler(connector=aiohttp.ClientSession, payload_handler=JSONPayloadHandler()) as handler:
        started = loop.time()
        with pytest.raises(READ_TIMEOUT_ERROR):
            await handler.get(url / "hang" / "k")
        assert 6 <= loop.time() - started <= 10


async def test_many_concurrent_stalls_all_fail_and_leave_nothing_watched(stalling: Any) -> None:
    server, url = stalling
    async with json_handler() as handler:
        results = await asyncio.gather(
            *(handler.get(url / ("hang" if n % 2 else "stall") / f"m{n}") for n in range(40)),
            *(handler.get(url / "trickle" / f"t{n}", params={"gap": "1", "chunks": "3"}) for n in range(10)),
            return_exceptions=True,
        )
        watch = handler._attempts.watch  # the watch holds nothing once every attempt is over
        assert not watch._watched and not watch.admitted
    assert all(isinstance(r, READ_TIMEOUT_ERROR) for r in results[:40])
    assert results[40:] == [{"parts": [0, 1, 2]}] * 10
    assert len(server.requests) == 50


def test_no_watch_without_a_read_part() -> None:
    none = aiohttp.ClientTimeout(total=9)
    rest, read, _connect = split_timeout(none)
    assert rest is none and read is None
