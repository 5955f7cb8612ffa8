# SPDX-License-Identifier: MIT
"""Per-host politeness: concurrency caps, several windows per host, ``max_wait``, robots.txt ``Crawl-delay`` and
rate-limit response headers.

Every test runs against real servers on 127.0.0.1 on looptime's fast-forwarded loop clock: the servers stamp
arrivals with the same clock the limiter schedules with, so spacings and counts are asserted exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time

import pytest
from aiohttp import web

from aiorequestful.exception import RequestError
from aiorequestful.flow import (
    HostConcurrency,
    HostRateLimiter,
    RateLimit,
    RateLimits,
    RateLimitWaitError,
    RateWindow,
    host_key,
    rate_limit_reset,
)
from aiorequestful.flow.robots import RobotsTxt
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.timer import StepCountTimer

from .flow_servers import PoliteHost, max_in_window

pytestmark = pytest.mark.looptime

HOST_A = ("http", "a.test", 80)


async def polite(serve, **kwargs) -> tuple[PoliteHost, object]:
    host = PoliteHost(**kwargs)
    return host, await serve(host.app())


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


# --------------------------------------------------------------------------------------------------
# concurrency caps
# --------------------------------------------------------------------------------------------------
async def test_max_in_flight_is_never_exceeded(serve) -> None:
    host, url = await polite(serve, latency=0.05)
    other, other_url = await polite(serve, latency=0.05)
    caps = {f"127.0.0.1:{url.port}": 3, "*": 5}
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), max_in_flight=caps) as h:
        results = await asyncio.gather(
            *(h.get(url / "p" / str(i)) for i in range(40)), *(h.get(other_url / "p" / str(i)) for i in range(40))
        )
        assert h.host_concurrency is not None
        assert h.host_concurrency.in_flight(host_key(url)) == 0  # every slot came back
    assert len(results) == 80
    assert host.most_in_flight == 3 and len(host.accepted) == 40
    assert other.most_in_flight == 5 and len(other.accepted) == 40
    assert h.rate_limiter is None  # a cap alone needs no limiter


async def test_slots_come_back_after_errors_and_cancellation(serve) -> None:
    host, url = await polite(serve, latency=10.0)
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), max_in_flight=1) as h:
        caps = h.host_concurrency
        assert caps is not None
        key = host_key(url)
        stuck = asyncio.ensure_future(h.get(url / "p" / "slow"))
        while host.in_flight == 0:
            await asyncio.sleep(0)
        assert caps.in_flight(key) == 1
        waiting = asyncio.ensure_future(h.get(url / "p" / "queued"))
        await asyncio.sleep(1)
        assert caps.queued(key) == 1
        waiting.cancel()  # a waiter that gives up leaves the queue
        stuck.cancel()  # a request in flight that is cancelled gives its slot back
        for task in (stuck, waiting):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert caps.in_flight(key) == 0 and caps.queued(key) == 0
        host.latency = 0.0
        assert (await h.get(url / "p" / "after"))["key"] == "after"
        assert caps.in_flight(key) == 0


async def test_slot_comes_back_after_a_connection_error(serve) -> None:
    # a port that was listening a moment ago: connections to it are refused
    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await runner.cleanup()
    url = f"http://127.0.0.1:{port}/p/x"
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), max_in_flight=1) as h:
        for _ in range(3):  # with a leaked slot the second attempt would wait forever
            with pytest.raises(OSError):
                await asyncio.wait_for(h.get(url), timeout=5)
        assert h.host_concurrency is not None and h.host_concurrency.in_flight(host_key(url)) == 0


async def test_concurrency_slots_are_handed_out_in_order_and_follow_the_cap() -> None:
    caps = HostConcurrency(2)
    first, second = await caps.acquire(HOST_A), await caps.acquire(HOST_A)
    assert first is not None and second is not None and caps.in_flight(HOST_A) == 2
    order: list[int] = []

    async def wait(number: int) -> None:
        slot = await caps.acquire(HOST_A)
        order.append(number)
        assert slot is not None
        await asyncio.sleep(1)
        slot.release()

    tasks = [asyncio.ensure_future(wait(n)) for n in range(4)]
    await asyncio.sleep(0)
    assert caps.queued(HOST_A) == 4
    first.release()
    first.release()  # twice: nothing more
    await asyncio.sleep(0)
    assert order == [0] and caps.in_flight(HOST_A) == 2
    caps.set_override(HOST_A, 1.5)  # lowered (rounded down): nothing handed out until below it
    second.release()
    await asyncio.sleep(0)
    assert order == [0] and caps.limit(HOST_A) == 1
    caps.set_override(HOST_A, None)  # raised again: the freed slot goes at once
    await asyncio.sleep(0)
    assert order == [0, 1]
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3] and caps.in_flight(HOST_A) == 0
    assert await HostConcurrency({"other.test": 1}).acquire(HOST_A) is None  # uncapped host: no slot
    for bad, error in ((0, ValueError), (True, TypeError), (1.5, TypeError)):
        with pytest.raises(error, match="max_in_flight"):
            HostConcurrency(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_in_flight must be an integer"):
        RequestHandler(connector=lambda: None, max_in_flight="3")  # type: ignore[arg-type]


async def test_slot_is_taken_before_the_rate_limit_token(serve) -> None:
    """A task waiting for a concurrency slot holds no rate-limit token: when a slot frees after a long answer,
    the next request goes at once instead of at a slot reserved long ago (nor do waiters burn tokens)."""
    host, url = await polite(serve, latency=2.0)
    async with RequestHandler.create(
        payload_handler=JSONPayloadHandler(), max_in_flight=1, rate_limit=RateLimit(1, burst=1)
    ) as h:
        await asyncio.gather(*(h.get(url / "p" / str(i)) for i in range(4)))
    assert gaps(host.arrivals) == pytest.approx([2.0, 2.0, 2.0], abs=1e-6)
    assert h.rate_limiter is not None and h.rate_limiter.queued(host_key(url)) == 0


# --------------------------------------------------------------------------------------------------
# several windows per host, and max_wait
# --------------------------------------------------------------------------------------------------
def test_windows_and_several_limits_validate() -> None:
    assert RateWindow(5000, 3600).describe() == "5000 requests per 3600 seconds"
    assert RateLimit.per_hour(7200) == RateLimit(2)
    limits = RateLimits(10, RateWindow(100, 60))
    assert limits.parts == (RateLimit(10), RateWindow(100, 60.0))
    assert limits.describe() == "10 requests per second (burst 1) and 100 requests per 60 seconds"
    limiter = HostRateLimiter({"a.test": [RateLimit(10), RateWindow(5000, 3600)], "b.test": RateWindow(2, 1), "*": [3]})
    assert limiter.limit_for(HOST_A) == RateLimits(RateLimit(10), RateWindow(5000, 3600))
    assert limiter.limit_for(("http", "b.test", 80)) == RateLimits(RateWindow(2, 1))
    assert limiter.limit_for(("http", "c.test", 80)) == RateLimit(3)
    for bad, error in ((0, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="requests must be"):
            RateWindow(bad, 60)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seconds must be a finite number greater than 0"):
        RateWindow(5, 0)
    with pytest.raises(ValueError, match="at least one"):
        RateLimits()
    with pytest.raises(TypeError, match="not None"):
        RateLimits(None)  # type: ignore[arg-type]


async def test_both_windows_are_honoured_over_a_minute(serve) -> None:
    host, url = await polite(serve)
    # 10 per second in bursts of up to 5, and at most 120 in any minute
    limits = RateLimits(RateLimit(10, burst=5), RateWindow(120, 60))
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), rate_limit=limits) as h:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(h.get(url / "p" / str(i)) for i in range(250)))
    times = [t - start for t in host.accepted]
    assert len(times) == 250
    assert max_in_window(times, 1.0 - 1e-9) <= 5 + 10  # the bucket: a burst of 5, then 10 per second
    assert max_in_window(times, 60.0 - 1e-9) == 120  # the window, filled but never overfilled
    assert max_in_window(times[:120], 60.0) == 120 and times[119] < 12.0  # the first 120 went at 10/s ...
    assert times[120] == pytest.approx(times[0] + 60.0, abs=1e-6)  # ... and the 121st a minute after the 1st
    assert 120.0 <= times[-1] < 180.0


async def test_window_gives_back_a_cancelled_reservation() -> None:
    limiter = HostRateLimiter(RateWindow(2, 10))
    await limiter.acquire(HOST_A)
    await limiter.acquire(HOST_A)
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(limiter.acquire(HOST_A))
    await asyncio.sleep(5)
    task.cancel()  # its reservation (at t=10) is returned, with the time it pushed out of the window
    with pytest.raises(asyncio.CancelledError):
        await task
    start = loop.time()
    await limiter.acquire(HOST_A)
    assert loop.time() - start == pytest.approx(5.0, abs=1e-6)  # at t=10, not t=20


async def test_max_wait_fails_at_once_naming_the_request(serve) -> None:
    host, url = await polite(serve)
    async with RequestHandler.create(
        payload_handler=JSONPayloadHandler(), rate_limit=RateWindow(2, 60), max_wait=10
    ) as h:
        loop = asyncio.get_running_loop()
        await h.get(url / "p" / "a")
        await h.get(url / "p" / "b")
        start = loop.time()
        with pytest.raises(RateLimitWaitError) as caught:
            await h.get(url.with_query(access_token="SECRET") / "p" / "c")
        assert loop.time() == start  # failed at once: nothing slept
    error = caught.value
    assert isinstance(error, RequestError)
    message = str(error)
    assert f"GET http://127.0.0.1:{url.port}/p/c" in message
    assert "SECRET" not in message
    assert f"for http://127.0.0.1:{url.port} (2 requests per 60 seconds)" in message
    assert "would wait at least 60.00 seconds" in message and "longer than max_wait of 10.00 seconds" in message
    assert "not sent" in message
    assert error.wait == pytest.approx(60.0) and error.max_wait == 10.0 and error.method == "GET"
    assert error.limit == "2 requests per 60 seconds" and error.host == f"http://127.0.0.1:{url.port}"
    assert len(host.arrivals) == 2  # the third was never sent
    assert h.stats.requests == 2


async def test_max_wait_counts_the_queue_ahead(serve) -> None:
    host, url = await polite(serve)
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), rate_limit=1, max_wait=2.5) as h:
        loop = asyncio.get_running_loop()
        failed_at: list[float] = []

        async def get(i: int) -> object:
            try:
                return await h.get(url / "p" / str(i))
            except RateLimitWaitError as exc:
                failed_at.append(loop.time())
                return exc

        start = loop.time()
        results = await asyncio.gather(*(get(i) for i in range(6)))
    assert [isinstance(r, RateLimitWaitError) for r in results] == [False, False, False, True, True, True]
    assert failed_at == [start] * 3  # judged on arrival: 3, 4 and 5 seconds ahead, so they failed at once
    assert "1 requests per second (burst 1)" in str(results[3])
    assert len(host.arrivals) == 3


async def test_max_wait_is_tightened_by_the_remaining_retry_budget(serve) -> None:
    host, url = await polite(serve)
    async with RequestHandler.create(
        payload_handler=JSONPayloadHandler(),
        rate_limit=RateWindow(1, 10),
        max_wait=60,
        retry_timer=StepCountTimer(initial=1, count=3, step=0),  # three retries of a second: 3 s of budget
    ) as h:
        await h.get(url / "p" / "a")
        with pytest.raises(RateLimitWaitError) as caught:
            await h.get(url / "p" / "b")
    assert "would wait at least 10.00 seconds" in str(caught.value)
    assert "longer than the remaining retry budget of 3.00 seconds" in str(caught.value)
    assert caught.value.bound == "the remaining retry budget" and caught.value.max_wait == 3.0
    assert len(host.arrivals) == 1
    # without a retry timer there is no budget to go by: max_wait alone decides
    async with RequestHandler.create(
        payload_handler=JSONPayloadHandler(), rate_limit=RateWindow(1, 10), max_wait=60
    ) as h:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await h.get(url / "p" / "c")
        await h.get(url / "p" / "d")
        assert loop.time() - start == pytest.approx(10.0)


async def test_max_wait_validation() -> None:
    for bad, error in ((-1, ValueError), (math.inf, ValueError), ("5", TypeError), (True, TypeError)):
        with pytest.raises(error, match="max_wait"):
            RequestHandler(connector=lambda: None, max_wait=bad)  # type: ignore[arg-type]
    handler = RequestHandler(connector=lambda: None, max_wait=5)
    assert handler.rate_limiter is not None and not handler.rate_limiter.limited


# --------------------------------------------------------------------------------------------------
# robots.txt Crawl-delay
# --------------------------------------------------------------------------------------------------
async def crawl_delay_site(serve, robots_txt: str) -> tuple[PoliteHost, object]:
    host = PoliteHost()
    app = host.app()

    async def robots(_request: web.Request) -> web.Response:
        return web.Response(text=robots_txt)

    app.router.add_get("/robots.txt", robots)
    return host, await serve(app)


@pytest.mark.parametrize(
    ("robots_txt", "options", "gap"),
    [
        ("User-agent: *\nCrawl-delay: 2\n", {}, 2.0),
        ("User-agent: examplebot\nCrawl-delay: 0.5\n\nUser-agent: *\nCrawl-delay: 9\n", {}, 0.5),
        ("User-agent: *\nCrawl-delay: 86400\n", {"max_crawl_delay": 5}, 5.0),  # capped
    ],
)
async def test_crawl_delay_paces_the_host(serve, robots_txt, options, gap) -> None:
    host, url = await crawl_delay_site(serve, robots_txt)
    robots = RobotsTxt("examplebot", use_crawl_delay=True, **options)
    # a faster rate limit does not speed it up; the Crawl-delay is the slower of the two
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), robots=robots, rate_limit=100) as h:
        await asyncio.gather(*(h.get(url / "p" / str(i)) for i in range(5)))
    assert gaps(host.arrivals) == pytest.approx([gap] * 4, abs=1e-6)


async def test_crawl_delay_is_ignored_unless_asked_for(serve) -> None:
    host, url = await crawl_delay_site(serve, "User-agent: *\nCrawl-delay: 2\n")
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), robots=RobotsTxt("examplebot")) as h:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(h.get(url / "p" / str(i)) for i in range(5)))
        assert loop.time() == start
    assert h.rate_limiter is None and len(host.arrivals) == 5


async def test_crawl_delay_with_max_wait_names_the_crawl_delay(serve) -> None:
    _host, url = await crawl_delay_site(serve, "User-agent: *\nCrawl-delay: 30\n")
    robots = RobotsTxt("examplebot", use_crawl_delay=True)
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), robots=robots, max_wait=10) as h:
        await h.get(url / "p" / "a")
        with pytest.raises(RateLimitWaitError, match=r"robots.txt Crawl-delay: 0.0333333 requests per second"):
            await h.get(url / "p" / "b")


# --------------------------------------------------------------------------------------------------
# rate-limit response headers
# --------------------------------------------------------------------------------------------------
def test_rate_limit_reset_parses_every_form_and_ignores_garbage() -> None:
    now = 1_800_000_000.0
    assert rate_limit_reset({"RateLimit": '"default";r=0;t=30'}, now=now) == 30.0
    assert rate_limit_reset({"RateLimit": '"default";r=5;t=30'}, now=now) is None  # quota left
    assert rate_limit_reset({"RateLimit": '"a";r=3;t=5, "b, c";r=0;t=12'}, now=now) == 12.0
    assert rate_limit_reset({"RateLimit": "limit=100, remaining=0, reset=7"}, now=now) == 7.0
    assert rate_limit_reset({"RateLimit-Remaining": "0", "RateLimit-Reset": " 9 "}, now=now) == 9.0
    assert rate_limit_reset({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "4.5"}, now=now) == 4.5
    assert rate_limit_reset({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(now + 20)}, now=now) == 20.0
    ms = str(int((now + 3) * 1000))
    assert rate_limit_reset({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": ms}, now=now) == pytest.approx(3.0)
    both = {"RateLimit": '"x";r=0;t=2', "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "6"}
    assert rate_limit_reset(both, now=now) == 6.0  # the longest wait wins
    garbage = [
        {"RateLimit": "garbage;;==,,;"},
        {"RateLimit": '"default";r=zero;t=30'},
        {"RateLimit": '"default";r=0;t=soon'},
        {"RateLimit": '"default";r=0;t=-5'},
        {"RateLimit": '"default";r=0;t=nan'},
        {"RateLimit": '"default";r=0'},
        {"RateLimit": "x" * 10_000 + ";r=0;t=5"},
        {"X-RateLimit-Remaining": "zero", "X-RateLimit-Reset": "5"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "soon"},
        {"X-RateLimit-Remaining": "0"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(now - 100)},  # a reset in the past
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1e400"},
        {"X-RateLimit-Remaining": "-1e999", "X-RateLimit-Reset": "5"},
        {"RateLimit-Remaining": "0", "RateLimit-Reset": "100000"},  # over the cap: not believed
        {},
    ]
    for headers in garbage:
        assert rate_limit_reset(headers, now=now) is None, headers
    assert rate_limit_reset({"RateLimit-Remaining": "0", "RateLimit-Reset": "100"}, cap=50, now=now) is None
    assert rate_limit_reset({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "5"}) == 5.0  # the real clock


def _spent_after(third: dict[str, str]):
    """Headers for the n-th answer: the third says the quota is spent."""
    return lambda n: third if n == 3 else {"X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "60"}


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"RateLimit": '"default";r=0;t=5', "RateLimit-Policy": '"default";q=3;w=5'}, 5.0),
        ({"RateLimit": "limit=3, remaining=0, reset=5"}, 5.0),
        ({"RateLimit-Limit": "3", "RateLimit-Remaining": "0", "RateLimit-Reset": "5"}, 5.0),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "5"}, 5.0),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "epoch+5"}, 5.0),
    ],
)
async def test_a_spent_quota_holds_the_host_until_its_reset(serve, headers, wait) -> None:
    most = wait
    if headers.get("X-RateLimit-Reset") == "epoch+5":
        headers = {**headers, "X-RateLimit-Reset": str(math.ceil(time.time()) + 5)}
        wait, most = 4.0, 6.0  # a whole-second Unix time on the real clock: between 4 and 6 seconds away
    host, url = await polite(serve, headers=_spent_after(headers))
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), rate_limit_headers=True) as h:
        for i in range(5):
            await h.get(url / "p" / str(i))
    first = gaps(host.arrivals)
    assert first[0] == first[1] == 0.0 and first[3] == 0.0
    assert wait - 1e-6 <= first[2] <= most + 1e-6  # the 4th waited for the reset the 3rd answer gave


async def test_garbage_or_absurd_headers_hold_nothing(serve) -> None:
    values = iter(
        [
            {"RateLimit": "garbage;;=="},
            {"RateLimit": '"default";r=0;t=999999'},  # over the cap: not believed
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "soon"},
            {"X-RateLimit-Remaining": "none", "X-RateLimit-Reset": "5"},
            {"RateLimit-Remaining": "0", "RateLimit-Reset": "-3"},
        ]
    )
    host, url = await polite(serve, headers=lambda n: next(values, {}))
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), rate_limit_headers=True) as h:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(6):
            await h.get(url / "p" / str(i))
        assert loop.time() == start
    assert len(host.arrivals) == 6


async def test_headers_are_ignored_unless_asked_for(serve) -> None:
    host, url = await polite(serve, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"})
    async with RequestHandler.create(payload_handler=JSONPayloadHandler()) as h:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(3):
            await h.get(url / "p" / str(i))
        assert loop.time() == start
    assert h.rate_limiter is None and len(host.arrivals) == 3


async def test_a_held_host_and_max_wait(serve) -> None:
    host, url = await polite(serve, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"})
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), rate_limit_headers=True, max_wait=10) as h:
        await h.get(url / "p" / "a")
        with pytest.raises(
            RateLimitWaitError, match=r"rate-limit headers of a 200 response: quota spent for 30\.00 seconds"
        ):
            await h.get(url / "p" / "b")
    assert len(host.arrivals) == 1


async def test_crawl_delay_and_adaptive_pace_together(serve) -> None:
    """Both paces apply; the slower decides (here the Crawl-delay, while the adaptive rate is higher)."""
    from aiorequestful.flow import AdaptiveThrottle

    host, url = await crawl_delay_site(serve, "User-agent: *\nCrawl-delay: 1\n")
    robots = RobotsTxt("examplebot", use_crawl_delay=True)
    throttle = AdaptiveThrottle(initial_rate=4)
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), robots=robots, adaptive=throttle) as h:
        await asyncio.gather(*(h.get(url / "p" / str(i)) for i in range(4)))
        limiter = h.rate_limiter
        assert limiter is not None
        key = host_key(url)
        assert limiter.pace_for(key, "adaptive throttle") == throttle.rate_for(key) > 1.0
        assert limiter.pace_for(key, "robots.txt Crawl-delay") == 1.0 == limiter.pace_for(key)
    assert gaps(host.arrivals) == pytest.approx([1.0] * 3, abs=1e-6)
