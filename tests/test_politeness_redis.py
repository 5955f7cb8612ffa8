# SPDX-License-Identifier: MIT
"""Per-host concurrency caps shared through a real redis-server: several workers, one cap.

Several ``RedisConnection`` objects in one process stand for several workers (each has its own client and
connections, as separate processes would). The leases' expiry is Redis server time, so these tests run on the
real clock; they assert counts, never timings.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from aiorequestful.flow import RateLimitWaitError, host_key
from aiorequestful.flow.redis import RedisHostConcurrency
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.shared import RedisConnection

from .flow_servers import PoliteHost, max_in_window
from .redis_support import (  # noqa: F401 - fixtures
    RedisServer,
    dedicated_redis_fixture,
    redis_connection_fixture,
    redis_namespace_fixture,
    redis_url_fixture,
    sync_client,
)

pytestmark = pytest.mark.realtime


@pytest.fixture
async def workers(redis_url: str, redis_namespace: str) -> Any:
    """Three connections to one namespace: three workers."""
    connections = [RedisConnection(redis_url, namespace=redis_namespace) for _ in range(3)]
    yield connections
    for connection in connections:
        await connection.aclose()


async def test_the_cap_holds_across_workers(serve, workers, redis_url: str) -> None:
    host = PoliteHost(latency=0.05)
    url = await serve(host.app())
    caps = [RedisHostConcurrency(connection, 2) for connection in workers]
    handlers = [RequestHandler.create(payload_handler=JSONPayloadHandler(), max_in_flight=cap) for cap in caps]
    for handler in handlers:
        await handler.__aenter__()
    try:
        results = await asyncio.gather(
            *(handler.get(url / "p" / f"{n}-{i}") for n, handler in enumerate(handlers) for i in range(10))
        )
    finally:
        for handler in handlers:
            await handler.__aexit__(None, None, None)
    assert len(results) == 30 and len(host.accepted) == 30
    assert host.most_in_flight == 2  # two in flight across the three workers, never more
    assert sum(cap.shared_leases for cap in caps) == 30 and sum(cap.local_slots for cap in caps) == 0
    assert all(cap.in_flight(host_key(url)) == 0 for cap in caps)
    # every lease was given back
    client = sync_client(redis_url)
    try:
        for _ in range(100):
            if client.zcard(caps[0].slots_key(host_key(url))) == 0:
                break
            await asyncio.sleep(0.01)
        assert client.zcard(caps[0].slots_key(host_key(url))) == 0
    finally:
        client.close()


async def test_a_dead_workers_leases_expire(serve, workers) -> None:
    host = PoliteHost()
    url = await serve(host.app())
    key = host_key(url)
    dead = RedisHostConcurrency(workers[0], 1, lease_seconds=0.3)
    slot = await dead.acquire(key)  # taken and never given back: the worker "died"
    assert slot is not None and dead.shared_leases == 1
    alive = RedisHostConcurrency(workers[1], 1, poll=0.01, max_poll=0.05)
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), max_in_flight=alive) as handler:
        assert (await handler.get(url / "p" / "x"))["key"] == "x"  # waited for the lease to expire
    assert alive.shared_leases == 1 and len(host.accepted) == 1


async def test_without_redis_the_local_cap_applies(serve, dedicated_redis: RedisServer) -> None:
    host = PoliteHost(latency=0.05)
    url = await serve(host.app())
    connection = RedisConnection(dedicated_redis.url, namespace="politeness")
    dedicated_redis.stop()  # Redis goes away before the crawl
    try:
        caps = RedisHostConcurrency(connection, 3)
        async with RequestHandler.create(payload_handler=JSONPayloadHandler(), max_in_flight=caps) as handler:
            await asyncio.gather(*(handler.get(url / "p" / str(i)) for i in range(12)))
        assert len(host.accepted) == 12 and host.most_in_flight == 3
        assert caps.local_slots == 12 and caps.shared_leases == 0
    finally:
        await connection.aclose()


def test_validation(redis_url: str) -> None:
    connection = RedisConnection(redis_url)
    with pytest.raises(TypeError, match="RedisConnection"):
        RedisHostConcurrency("redis://", 1)  # type: ignore[arg-type]
    for name in ("lease_seconds", "poll", "max_poll"):
        with pytest.raises(ValueError, match=name):
            RedisHostConcurrency(connection, 1, **{name: 0})


async def test_a_shared_bucket_also_honours_the_local_pace_and_hold(redis_connection: RedisConnection) -> None:
    from aiorequestful.flow import RateLimits, RateWindow
    from aiorequestful.flow.redis import RedisHostRateLimiter

    host = ("http", "paced.test", 80)
    limiter = RedisHostRateLimiter(redis_connection, 1000)
    limiter.set_pace(host, "robots.txt Crawl-delay", 5.0)  # one request every 0.2 s, far slower than the bucket
    loop = asyncio.get_running_loop()
    times = []
    for _ in range(4):
        await limiter.acquire(host)
        times.append(loop.time())
    assert limiter.shared_reservations == 4
    assert all(b - a >= 0.2 - 0.01 for a, b in itertools.pairwise(times))
    limiter.hold(host, loop.time() + 30, "rate-limit headers: quota spent")
    with pytest.raises(RateLimitWaitError, match="rate-limit headers: quota spent"):
        await limiter.acquire(host, max_wait=1)
    assert RedisHostRateLimiter(redis_connection, {"a.test": [10, RateWindow(5, 1)]}).limit_for(
        ("http", "a.test", 80)
    ) == RateLimits(10, RateWindow(5, 1))


async def test_several_limits_are_shared_by_the_fleet(workers) -> None:
    from aiorequestful.flow import RateLimit, RateLimits, RateWindow
    from aiorequestful.flow.redis import RedisHostRateLimiter

    host = ("http", "windows.test", 80)
    # bursts of 4 at 20 per second, and at most 6 in any 1.5 seconds, for the three workers together
    limits = RateLimits(RateLimit(20, burst=4), RateWindow(6, 1.5))
    limiters = [RedisHostRateLimiter(connection, limits) for connection in workers]
    loop = asyncio.get_running_loop()
    start = loop.time()
    times: list[float] = []

    async def take(limiter: RedisHostRateLimiter) -> None:
        await limiter.acquire(host)
        times.append(loop.time() - start)

    await asyncio.gather(*(take(limiter) for limiter in limiters for _ in range(6)))
    times.sort()
    assert sum(limiter.shared_reservations for limiter in limiters) == 18
    assert sum(limiter.local_reservations for limiter in limiters) == 0
    # 6 go in the first 1.5 s (4 at once, then 20 per second), 6 more from 1.5 s, the last 6 from 3 s
    assert times[5] < 1.0 and times[6] >= 1.5 - 0.05 and times[12] >= 3.0 - 0.05
    assert max_in_window(times, 1.5 - 0.2) <= 6  # the window (less what a late wake-up may shift)


async def test_a_cancelled_reservation_under_several_limits_is_given_back(workers) -> None:
    from aiorequestful.flow import RateLimits, RateWindow
    from aiorequestful.flow.redis import RedisHostRateLimiter

    host = ("http", "giveback.test", 80)
    first, second = (RedisHostRateLimiter(connection, RateLimits(RateWindow(1, 1.0))) for connection in workers[:2])
    await first.acquire(host)
    task = asyncio.ensure_future(first.acquire(host))  # reserved for 1 s from now, then cancelled
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)  # the give-back runs in the background
    loop = asyncio.get_running_loop()
    start = loop.time()
    await second.acquire(host)
    assert loop.time() - start < 0.95  # the slot at 1 s was free again, not the one after it at 2 s
    with pytest.raises(RateLimitWaitError):
        await second.acquire(host, max_wait=0.1)
