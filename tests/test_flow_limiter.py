# SPDX-License-Identifier: MIT
"""Per-host token buckets: configuration, FIFO fairness, exact rates, cancellation, many hosts.

The tests run on looptime's fast-forwarded loop clock (the clock the limiter and the servers' timestamps use),
so slots, orders and rates are asserted exactly; the few ``realtime`` tests keep the real clock on purpose and
have tolerances that hold on a loaded machine.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time

import pytest

from aiorequestful.flow import HostRateLimiter, RateLimit, host_key
from aiorequestful.flow import limiter as limiter_module
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler

from .flow_servers import answered, arrivals, max_in_window, rate, start_hosts

# Every test here runs on looptime's fast-forwarded loop clock unless it says otherwise: waits take no real
# time and rates, orders and pauses come out exact, however loaded the machine is.
pytestmark = pytest.mark.looptime

HOST_A = ("http", "a.test", 80)


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------
def test_rate_limit_validation() -> None:
    assert RateLimit(5) == RateLimit(rate=5.0, burst=1.0)
    assert RateLimit(2.5, burst=3).burst == 3.0
    assert RateLimit.per_minute(30) == RateLimit(0.5)
    assert RateLimit.coerce(4) == RateLimit(4)
    assert RateLimit.coerce(None) is None
    limit = RateLimit(1)
    assert RateLimit.coerce(limit) is limit
    for bad in (0, -1, math.inf, math.nan):
        with pytest.raises(ValueError, match="rate must be a finite number greater than 0"):
            RateLimit(bad)
    with pytest.raises(ValueError, match="burst must be a finite number at least 1"):
        RateLimit(1, burst=0.5)
    with pytest.raises(TypeError, match="rate must be a number, not bool"):
        RateLimit(True)
    with pytest.raises(TypeError, match="A rate limit must be a RateLimit, a number or None, not str"):
        RateLimit.coerce("5")
    with pytest.raises(AttributeError):
        limit.rate = 2  # frozen


def test_host_keys() -> None:
    assert host_key("http://Example.ORG/path?q=1") == ("http", "example.org", 80)
    assert host_key("https://example.org:8443/") == ("https", "example.org", 8443)
    assert host_key("/relative") == (None, None, None)
    from yarl import URL

    assert host_key("/relative", URL("https://api.test/v1/")) == ("https", "api.test", 443)


def test_limits_by_host_most_specific_wins() -> None:
    limiter = HostRateLimiter(
        {
            "*": 1,
            "a.test": 2,
            "a.test:8080": RateLimit(3, burst=2),
            "https://a.test": 4,
            "free.test": None,
        }
    )
    assert limiter.limit_for(("http", "other.test", 80)) == RateLimit(1)
    assert limiter.limit_for(("http", "a.test", 80)) == RateLimit(2)
    assert limiter.limit_for(("http", "a.test", 8080)) == RateLimit(3, burst=2)
    assert limiter.limit_for(("https", "a.test", 443)) == RateLimit(4)
    assert limiter.limit_for(("http", "free.test", 80)) is None
    assert limiter.limited
    assert not HostRateLimiter({"a.test": None}).limited
    assert HostRateLimiter(5).limit_for(HOST_A) == RateLimit(5)
    assert HostRateLimiter(None).limit_for(HOST_A) is None
    for bad in ("a.test/path", "http://a.test/x", "user@a.test", "", "a.test?x=1"):
        with pytest.raises(ValueError, match="Invalid host in rate limits"):
            HostRateLimiter({bad: 1})
    with pytest.raises(TypeError):
        HostRateLimiter({1: 1})  # type: ignore[dict-item]
    assert "a.test:8080" in repr(limiter)


async def test_set_limit_applies_to_known_hosts() -> None:
    limiter = HostRateLimiter(1000)
    assert await limiter.acquire(HOST_A) == 0.0
    limiter.set_limit("a.test", 2)  # the bucket keeps its state and takes the new rate
    assert limiter.limit_for(HOST_A) == RateLimit(2)
    assert limiter.delay(HOST_A) == pytest.approx(0.5, abs=1e-9)  # no loop time passed since the take
    limiter.set_limit("a.test", None)
    assert await limiter.acquire(HOST_A) == 0.0
    assert limiter.delay(HOST_A) == 0.0
    limiter.set_limit("*", None)
    assert not limiter.limited


# --------------------------------------------------------------------------------------------------
# the bucket: fairness, exactness, cancellation
# --------------------------------------------------------------------------------------------------
async def test_waiters_are_served_in_arrival_order() -> None:
    """FIFO: each caller reserves the next slot when it calls, so nobody is overtaken (no starvation)."""
    limiter = HostRateLimiter(RateLimit(200))
    order: list[int] = []
    waits: list[float] = []

    async def one(index: int) -> None:
        waits.append(await limiter.acquire(HOST_A))
        order.append(index)

    await asyncio.gather(*(one(i) for i in range(100)))
    assert order == list(range(100))
    # The k-th caller waits k slots of 5 ms: exactly, as reserved (the kernel's arithmetic).
    assert waits == pytest.approx([k / 200 for k in range(100)], abs=1e-6)


async def test_burst_then_rate() -> None:
    limiter = HostRateLimiter(RateLimit(10, burst=5))
    start = asyncio.get_running_loop().time()
    finished: list[float] = []

    async def one() -> None:
        await limiter.acquire(HOST_A)
        finished.append(asyncio.get_running_loop().time() - start)

    await asyncio.gather(*(one() for _ in range(8)))
    assert finished[:5] == pytest.approx([0.0] * 5, abs=1e-6)  # the burst
    assert finished[5:] == pytest.approx([0.1, 0.2, 0.3], abs=1e-6)  # then the rate


async def test_cancelled_waiters_leave_no_gap() -> None:
    """Cancelled queued waiters leave the queue, a cancelled head returns its token: no slot is wasted."""
    limiter = HostRateLimiter(RateLimit(10))
    loop = asyncio.get_running_loop()
    start = loop.time()
    finished: dict[int, float] = {}

    async def one(index: int) -> None:
        await limiter.acquire(HOST_A)
        finished[index] = loop.time() - start

    tasks = [asyncio.create_task(one(i)) for i in range(12)]
    await asyncio.sleep(0.05)  # 0 went at once, 1 is the head (slot 0.1 s), 2..11 are queued
    assert limiter.queued(HOST_A) == 10
    for index in (1, 5, 9, 10, 11):  # the head, two in the middle, the tail
        tasks[index].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    survivors = [0, 2, 3, 4, 6, 7, 8]
    assert sorted(finished) == survivors
    # 0 at once, then one every 0.1 s: the head's slot was given back and no cancelled waiter left a gap.
    assert [finished[i] for i in survivors] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], abs=1e-6)
    assert limiter.queued(HOST_A) == 0


@pytest.mark.realtime
@pytest.mark.looptime(False)
async def test_rate_is_exact_after_a_stalled_loop() -> None:
    """A blocked event loop must not release a backlog at once: at most the late head and the bucket's one
    token go together, then the rate resumes.

    On the real clock: a stall is real time passing while the loop is blocked, which a fake clock cannot show.
    """
    limiter = HostRateLimiter(RateLimit(20))
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire(HOST_A)
        times.append(loop.time())

    tasks = [asyncio.create_task(one()) for _ in range(20)]
    await asyncio.sleep(0.12)  # a few went
    time.sleep(0.5)  # the loop is stalled for 10 slots
    await asyncio.gather(*tasks)
    resumed = [t for t in times if t > times[0] + 0.55]
    assert len(resumed) >= 15
    gaps = [b - a for a, b in itertools.pairwise(resumed)]
    # Reserving every slot up front would send the ten missed slots back to back here; with only the head
    # holding a slot, one pair goes together (two or three if the noisy machine stalls again), then 20/s.
    assert sum(1 for gap in gaps if gap < 0.01) <= 3
    assert (len(resumed) - 1) / (resumed[-1] - resumed[0]) == pytest.approx(20, rel=0.25)


async def test_cancelled_waiter_after_its_slot_passed_returns_nothing() -> None:
    limiter = HostRateLimiter(RateLimit(20))
    first = await limiter.acquire(HOST_A)
    assert first == 0.0
    task = asyncio.create_task(limiter.acquire(HOST_A))
    await asyncio.sleep(0.1)  # its 50 ms slot has passed: it is done
    assert task.done() and task.result() == pytest.approx(0.05, abs=1e-6)
    assert limiter.delay(HOST_A) == 0.0


async def test_idle_buckets_are_pruned(monkeypatch) -> None:
    monkeypatch.setattr(limiter_module, "_PRUNE_AT", 50)
    limiter = HostRateLimiter(RateLimit(1000, burst=1))
    limiter._prune_at = 50
    for index in range(200):
        await limiter.acquire(("http", f"h{index}.test", 80))
        await asyncio.sleep(0.002)  # each bucket refills (is idle again) after 1 ms
    assert len(limiter._buckets) < 100


# --------------------------------------------------------------------------------------------------
# against servers
# --------------------------------------------------------------------------------------------------
async def test_two_hosts_two_rates_measured_by_the_servers(serve) -> None:
    """Each host gets its own bucket and rate; a slow host never slows the other one."""
    (app_a, url_a), (app_b, url_b) = await start_hosts(serve, 2)
    limits = {f"{url_a.host}:{url_a.port}": RateLimit(20), f"{url_b.host}:{url_b.port}": RateLimit(5)}
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), rate_limit=limits) as handler:
        jobs = [handler.get(url_a / "item" / f"a{i}") for i in range(41)]
        jobs += [handler.get(url_b / "item" / f"b{i}") for i in range(16)]
        results = await asyncio.gather(*jobs)
    assert len(results) == 57
    times_a = sorted(a.at for a in arrivals(app_a))
    times_b = sorted(a.at for a in arrivals(app_b))
    assert len(times_a) == 41 and len(times_b) == 16  # 2 s at 20 req/s, 3 s at 5 req/s
    assert rate(times_a) == pytest.approx(20, rel=0.15)
    assert rate(times_b) == pytest.approx(5, rel=0.15)
    # Host A finished long before host B: it was not held back by B's slower bucket.
    assert times_a[-1] < times_b[-1] - 0.5
    assert max_in_window(times_a, 0.5) <= 12  # 10 slots + scheduling slack
    stats = handler.stats
    stats.check()
    assert stats.wait_seconds_by_reason["rate_limit"] > 0


async def test_wait_timer_still_applies_per_task(serve) -> None:
    """wait_timer keeps its 1.0.20 meaning (a sleep after every attempt of a task) next to the limiter."""
    from aiorequestful.timer import StepCeilingTimer

    ((app, url),) = await start_hosts(serve, 1)
    wait = StepCeilingTimer(initial=0.3, final=0.3, step=0)
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), rate_limit=100, wait_timer=wait) as h:
        for i in range(3):
            await h.get(url / "item" / f"w{i}")
    times = sorted(a.at for a in arrivals(app))
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.28


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_rate_exact_over_ten_seconds_at_200_tasks(serve) -> None:
    """±5% of the configured rate over 10 s with 200 concurrent tasks, measured by the server.

    The steady-state rate is taken after the initial burst, from the server's own timestamps.
    """
    ((app, url),) = await start_hosts(serve, 1)
    limit = RateLimit(40, burst=20)
    total = 20 + 40 * 10  # the burst, then 10 s at 40 req/s
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(index)

    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), rate_limit=limit) as handler:

        async def worker() -> None:
            while True:
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await handler.get(url / "item" / str(index))

        await asyncio.gather(*(worker() for _ in range(200)))

    counts = answered(app)
    assert len(counts) == total and set(counts.values()) == {1}  # nothing lost, nothing twice
    times = sorted(a.at for a in arrivals(app))
    steady = times[20:]  # after the burst of 20
    measured = rate(steady)
    assert measured == pytest.approx(40, rel=0.05), measured
    assert steady[-1] - steady[0] >= 9.0
    # Never more than the burst plus one second of tokens in any second (with slack for a late wake-up).
    assert max_in_window(times, 1.0) <= 20 + 40 + 3
