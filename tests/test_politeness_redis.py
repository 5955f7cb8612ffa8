# SPDX-License-Identifier: MIT
"""Per-host concurrency caps shared through a real redis-server: several workers, one cap.

Several ``RedisConnection`` objects in one process stand for several workers (each has its own client and
connections, as separate processes would). The leases' expiry is Redis server time, so these tests run on the
real clock; they assert counts, never timings.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
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


async def test_the_fleets_waiters_are_served_in_arrival_order(workers) -> None:
    key = ("http", "fifo.example", 80)
    holder, early, late = (RedisHostConcurrency(c, 1, poll=0.01, max_poll=0.5) for c in workers)
    order: list[str] = []

    async def wait_for_slot(caps: RedisHostConcurrency, name: str) -> None:
        slot = await caps.acquire(key)
        assert slot is not None
        order.append(name)
        slot.release()

    for caps in (holder, early, late):
        await caps.__aenter__()
    try:
        held = await holder.acquire(key)
        assert held is not None
        first = asyncio.create_task(wait_for_slot(early, "early"))
        # The early waiter has been waiting long (a poller would by now look again only every half second) ...
        await asyncio.sleep(1.0)
        second = asyncio.create_task(wait_for_slot(late, "late"))
        await asyncio.sleep(0.05)  # ... the late one has just asked
        held.release()
        await asyncio.wait_for(asyncio.gather(first, second), 10)
    finally:
        for caps in (holder, early, late):
            await caps.__aexit__(None, None, None)
    assert order == ["early", "late"]
    assert early.shared_leases == late.shared_leases == 1


async def test_waiters_of_three_workers_are_served_in_the_order_they_queued(workers, redis_url: str) -> None:
    key = ("http", "queue.example", 80)
    # each process's own cap (1) lets one task of it into the fleet's queue at a time: two caps per worker
    holder = RedisHostConcurrency(workers[0], 1)
    caps = [RedisHostConcurrency(workers[n % 3], 1) for n in range(6)]
    queue_key = holder.queue_keys(key)[1]
    served: list[int] = []
    client = sync_client(redis_url)
    for part in (holder, *caps):
        await part.__aenter__()
    try:
        held = await holder.acquire(key)
        assert held is not None

        async def waiter(number: int) -> None:
            slot = await caps[number].acquire(key)
            assert slot is not None
            served.append(number)
            await asyncio.sleep(0.01)
            slot.release()

        tasks = []
        for number in (4, 1, 5, 0, 3, 2):  # workers 1, 1, 2, 0, 0, 2
            tasks.append(asyncio.create_task(waiter(number)))
            while client.zcard(queue_key) < len(tasks):  # queued in this order, one after the other
                await asyncio.sleep(0.005)
        held.release()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
    finally:
        client.close()
        for part in (holder, *caps):
            await part.__aexit__(None, None, None)
    assert served == [4, 1, 5, 0, 3, 2]


async def test_the_queued_tickets_of_a_dead_worker_expire(workers, redis_url: str) -> None:
    from aiorequestful.flow.redis import _LEASE

    key = ("http", "dead.example", 80)
    holder, alive = RedisHostConcurrency(workers[0], 1), RedisHostConcurrency(workers[1], 1, poll=0.01)
    keys = holder.queue_keys(key)
    await holder.__aenter__()
    await alive.__aenter__()
    client = sync_client(redis_url)
    try:
        held = await holder.acquire(key)
        assert held is not None

        # A worker queues a ticket with a 200 ms deadline, then dies (never renews it, never leaves the queue).
        async def queue_dead(redis: Any) -> Any:
            return await _LEASE(redis, keys=keys, args=("1", "600000", "dead:1", "200", "200", "nobody-listens"))

        assert int(await workers[2].call(queue_dead, None)) == 0
        waiting = asyncio.create_task(alive.acquire(key))
        while client.zcard(keys[1]) < 2:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)  # the dead ticket's deadline passes
        held.release()
        slot = await asyncio.wait_for(waiting, 10)
        assert slot is not None
        # the slot went to the live waiter; the dead one was dropped from the queue, never granted
        leases = [member.decode() for member in client.zrange(keys[0], 0, -1)]
        assert len(leases) == 1 and not leases[0].startswith("dead:")
        assert client.zcard(keys[1]) == 0 and client.zcard(keys[2]) == 0
        slot.release()
    finally:
        client.close()
        await alive.__aexit__(None, None, None)
        await holder.__aexit__(None, None, None)


async def test_a_cancelled_waiter_leaves_the_fleets_queue(workers, redis_url: str) -> None:
    key = ("http", "cancel.example", 80)
    holder, quitter, patient = (RedisHostConcurrency(c, 1) for c in workers)
    keys = holder.queue_keys(key)
    client = sync_client(redis_url)
    for part in (holder, quitter, patient):
        await part.__aenter__()
    try:
        held = await holder.acquire(key)
        assert held is not None
        gives_up = asyncio.create_task(quitter.acquire(key))
        while client.zcard(keys[1]) < 1:
            await asyncio.sleep(0.005)
        stays = asyncio.create_task(patient.acquire(key))
        while client.zcard(keys[1]) < 2:
            await asyncio.sleep(0.005)
        gives_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gives_up
        while client.zcard(keys[1]) > 1:  # its ticket leaves the queue (in the background)
            await asyncio.sleep(0.005)
        held.release()
        slot = await asyncio.wait_for(stays, 10)  # the next in line, without waiting for the quitter's deadline
        assert slot is not None and patient.shared_leases == 1 and quitter.shared_leases == 0
        slot.release()
    finally:
        client.close()
        for part in (holder, quitter, patient):
            await part.__aexit__(None, None, None)


async def test_without_redis_the_local_cap_applies(serve, dedicated_redis: RedisServer, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="aiorequestful")
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
    # the one WARNING names every shared part that fell back to local state
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "unavailable" in r.getMessage()
    ]
    assert len(warnings) == 1
    for part in ("rate limits", "paces and holds", "Retry-After pauses", "concurrency caps", "adaptive throttle"):
        assert part in warnings[0], (part, warnings[0])


def test_validation(redis_url: str) -> None:
    connection = RedisConnection(redis_url)
    with pytest.raises(TypeError, match="RedisConnection"):
        RedisHostConcurrency("redis://", 1)  # type: ignore[arg-type]
    for name in ("lease_seconds", "poll", "max_poll", "ticket_seconds"):
        with pytest.raises(ValueError, match=name):
            RedisHostConcurrency(connection, 1, **{name: 0})
    with pytest.raises(ValueError, match="twice max_poll"):
        RedisHostConcurrency(connection, 1, max_poll=1.0, ticket_seconds=1.5)


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


# ----------------------------------------------------------------------------------------------------------------
# the adaptive throttle, paces and holds, shared by the fleet
# ----------------------------------------------------------------------------------------------------------------
async def test_a_shared_adaptive_throttle_backs_off_and_recovers_for_the_whole_fleet(workers) -> None:
    from aiorequestful.flow.redis import RedisAdaptiveThrottle

    key = ("http", "adaptive.test", 80)
    first, second, third = (
        RedisAdaptiveThrottle(connection, initial_rate=10, increase=50, min_rate=1, headroom=0.9)
        for connection in workers
    )
    loop = asyncio.get_running_loop()

    def answer(throttle: RedisAdaptiveThrottle, status: int | None, sent_ago: float = 0.0) -> float:
        now = loop.time()
        return throttle.observe(key, status=status, latency=0.01, sent_at=now - sent_ago, now=now)

    for _ in range(4):  # slow start, fleet-wide: every good answer of any worker adds one
        answer(first, 200)
        answer(second, 200)
    await asyncio.gather(first.synced(), second.synced())
    assert third.rate_for(key) == 10.0  # a worker learns the fleet's state from its first answer
    answer(third, 200)
    await third.synced()
    assert third.rate_for(key) == 19.0 and third.shared_observations == 1
    # A 429 to one worker: the fleet answered 9 requests well in the last second, so the ceiling is 90 % of 9
    # requests per second and the rate half of that, for every worker.
    answer(second, 429)
    await second.synced()
    assert second.rate_for(key) == pytest.approx(0.9 * 9 * 0.5)
    assert second.ceiling_for(key) == pytest.approx(0.9 * 9)
    # The other workers' 429s to requests sent before that back-off say nothing new: the fleet backs off once.
    answer(first, 429, sent_ago=0.5)
    answer(third, 503, sent_ago=0.5)
    await asyncio.gather(first.synced(), third.synced())
    for throttle in (first, second, third):
        assert throttle.rate_for(key) == pytest.approx(0.9 * 9 * 0.5) or throttle is second
    assert first.rate_for(key) == third.rate_for(key) == pytest.approx(0.9 * 9 * 0.5)
    # Recovery after the back-off, up to the ceiling and no further, whoever gets the answers.
    for throttle in (first, second, third, first, second, third):
        answer(throttle, 200)
        await throttle.synced()
    await asyncio.gather(first.synced(), second.synced(), third.synced())
    answer(first, 200)
    await first.synced()
    assert 0.9 * 9 * 0.5 < first.rate_for(key) <= 0.9 * 9
    assert sum(t.local_observations for t in (first, second, third)) == 0
    first.forget(key)
    await first.synced()
    answer(second, 200)
    await second.synced()
    assert second.rate_for(key) != 10.0  # its own mirror seeded the state Redis forgot: nothing is lost


async def test_without_redis_the_adaptive_throttle_runs_locally_and_resumes_shared(
    dedicated_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from aiorequestful.flow.redis import RedisAdaptiveThrottle

    key = ("http", "outage.test", 80)
    connection = RedisConnection(dedicated_redis.url, namespace="adaptive", retry_min=0.05, retry_max=0.05)
    throttle = RedisAdaptiveThrottle(connection, initial_rate=10)
    loop = asyncio.get_running_loop()

    def answer(status: int | None) -> float:
        now = loop.time()
        return throttle.observe(key, status=status, latency=0.01, sent_at=now, now=now)

    try:
        answer(200)
        await throttle.synced()
        assert throttle.shared_observations == 1 and throttle.rate_for(key) == 11.0
        dedicated_redis.kill()
        with caplog.at_level(logging.WARNING, logger="aiorequestful.shared.connection"):
            for _ in range(5):
                answer(200)
                await throttle.synced()
        # the first answer found Redis gone and was accounted here, like the ones after it
        assert throttle.local_observations == 5 and throttle.rate_for(key) == 16.0
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
        dedicated_redis.start()  # empty: the shared state is gone
        deadline = loop.time() + 10
        while throttle.shared_observations == 1 and loop.time() < deadline:
            answer(200)
            await throttle.synced()
            if throttle.shared_observations == 1:
                await connection.wait_for_retry()
        assert throttle.shared_observations == 2
        # the state it wrote to the empty Redis started from what this worker had learnt meanwhile
        assert throttle.rate_for(key) == 10.0 + throttle.shared_observations + throttle.local_observations
        client = sync_client(dedicated_redis.url)
        try:
            assert float(client.hget(throttle.state_keys(key)[0], "rate")) == throttle.rate_for(key)
        finally:
            client.close()
    finally:
        await connection.aclose()


async def test_a_hold_seen_by_one_worker_holds_the_others(workers) -> None:
    from aiorequestful.flow.redis import RedisHostRateLimiter

    limited, unlimited = ("http", "held.test", 80), ("http", "free.test", 80)
    first, second = (RedisHostRateLimiter(connection, {"held.test": 1000}) for connection in workers[:2])
    loop = asyncio.get_running_loop()
    first.hold(limited, loop.time() + 0.5, "rate-limit headers of a 200 response: quota spent for 0.50 seconds")
    first.hold(unlimited, loop.time() + 0.5, "quota spent")
    await first.synced()
    start = loop.time()
    await asyncio.gather(second.acquire(limited), second.acquire(unlimited))
    assert loop.time() - start >= 0.4  # the hold was in Redis: the other worker waited for it
    assert second.holds_seen == 2 and second.held_until(limited) is None
    first.hold(limited, loop.time() + 5, "rate-limit headers of a 200 response: quota spent for 5.00 seconds")
    await first.synced()
    with pytest.raises(RateLimitWaitError, match=r"quota spent for 5\.00"):
        await second.acquire(limited, max_wait=1)  # the reason travelled with the hold


async def test_leaving_a_shared_throttle_finishes_its_background_writes(workers, redis_url: str) -> None:
    from aiorequestful.flow.redis import RedisAdaptiveThrottle

    host = ("http", "flush.test", 80)
    throttle = RedisAdaptiveThrottle(workers[0], initial_rate=5)
    loop = asyncio.get_running_loop()
    async with throttle:
        for _ in range(30):
            now = loop.time()
            throttle.observe(host, status=200, latency=0.01, sent_at=now - 0.01, now=now)
        # leaving closes the connection (the last part entered): nothing may be cancelled on its way
    assert throttle.shared_observations == 30 and throttle.local_observations == 0
    client = sync_client(redis_url)
    try:
        assert client.zcard(throttle.state_keys(host)[1]) == 30
    finally:
        client.close()


async def test_a_handler_with_a_shared_throttle_finishes_its_writes_when_it_is_left(
    serve, workers, redis_url: str
) -> None:
    """The handler enters a shared throttle with its other flow parts, so leaving the handler (without waiting on
    ``synced()``) still lands every answer it observed in Redis."""
    from aiorequestful.flow.redis import RedisAdaptiveThrottle

    class Watched(RedisAdaptiveThrottle):
        contexts: list[str] = []

        async def __aenter__(self) -> Any:
            self.contexts.append("enter")
            return await super().__aenter__()

        async def __aexit__(self, *exc_info: Any) -> None:
            await super().__aexit__(*exc_info)
            self.contexts.append("exit")

    host = PoliteHost(latency=0.0)
    url = await serve(host.app())
    throttle = Watched(workers[0], initial_rate=1000)
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), adaptive=throttle) as handler:
        assert throttle.contexts == ["enter"]
        await asyncio.gather(*(handler.get(url / "p" / str(i)) for i in range(20)))
    assert throttle.contexts == ["enter", "exit"] and len(host.accepted) == 20
    assert throttle.shared_observations == 20 and throttle.local_observations == 0
    client = sync_client(redis_url)
    try:
        assert client.zcard(throttle.state_keys(host_key(url))[1]) == 20
    finally:
        client.close()


async def test_a_host_without_limit_or_pace_reads_its_hold_once_per_hold_check(workers) -> None:
    from aiorequestful.flow.redis import RedisHostRateLimiter

    host = ("http", "unlimited.test", 80)
    trusting = RedisHostRateLimiter(workers[0], hold_check=60)
    for _ in range(20):
        assert await trusting.acquire(host) == 0.0
    assert trusting.hold_reads == 1  # "no hold" was trusted for the other 19
    every_time = RedisHostRateLimiter(workers[0], hold_check=0)
    for _ in range(5):
        await every_time.acquire(host)
    assert every_time.hold_reads == 5

    # Another worker's hold is seen once the last "none" is hold_check old, and then waited for.
    holder, second = RedisHostRateLimiter(workers[1]), RedisHostRateLimiter(workers[2], hold_check=0.2)
    loop = asyncio.get_running_loop()
    await second.acquire(host)
    holder.hold(host, loop.time() + 1.0, "quota spent")
    await holder.synced()
    await second.acquire(host)  # within hold_check of the last read: not asked again
    assert second.hold_reads == 1 and second.holds_seen == 0
    await asyncio.sleep(0.25)
    start = loop.time()
    await second.acquire(host)
    assert second.hold_reads == 2 and second.holds_seen == 1
    assert loop.time() - start >= 0.4  # the rest of the hold was waited for
    with pytest.raises(ValueError, match="hold_check"):
        RedisHostRateLimiter(workers[0], hold_check=-1)


async def test_a_pace_is_kept_by_the_fleet_together(workers) -> None:
    from aiorequestful.flow.redis import RedisHostRateLimiter

    host = ("http", "crawl-delay.test", 80)
    limiters = [RedisHostRateLimiter(connection) for connection in workers]  # no limits: only the pace
    for limiter in limiters:
        limiter.set_pace(host, "robots.txt Crawl-delay", 10.0)  # one request every 0.1 s, for the fleet
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def take(limiter: RedisHostRateLimiter) -> None:
        for _ in range(4):
            await limiter.acquire(host)
            times.append(loop.time())

    await asyncio.gather(*(take(limiter) for limiter in limiters))
    times.sort()
    assert sum(limiter.shared_reservations for limiter in limiters) == 12
    # 12 requests a tenth of a second apart (the first at once): about 1.1 s, not the 0.3 s of three paces
    assert times[-1] - times[0] >= 1.1 - 0.05
    assert max_in_window(times, 0.1 - 0.02) <= 1


async def test_handlers_share_crawl_delay_header_holds_and_robots_rules(serve, workers) -> None:
    from aiorequestful.flow.redis import RedisHostRateLimiter
    from aiorequestful.flow.robots import RobotsDisallowedError, RobotsTxt

    # every 10th answer says the quota is spent for half a second
    host = PoliteHost(
        robots="User-agent: *\nDisallow: /private/\nCrawl-delay: 0.05\n",
        headers=lambda n: {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0.5"} if n % 10 == 0 else None,
    )
    url = await serve(host.app())
    handlers = [
        RequestHandler.create(
            payload_handler=JSONPayloadHandler(),
            rate_limit=RedisHostRateLimiter(connection),
            robots=RobotsTxt("fleetbot", use_crawl_delay=True),
            rate_limit_headers=True,
        )
        for connection in workers
    ]
    for handler in handlers:
        await handler.__aenter__()
    refused = 0

    async def crawl(n: int, handler: RequestHandler) -> None:
        nonlocal refused
        for i in range(8):
            try:
                await handler.get(url / ("private" if i == 3 else "p") / f"{n}-{i}")
            except RobotsDisallowedError:
                refused += 1

    try:
        await asyncio.gather(*(crawl(n, handler) for n, handler in enumerate(handlers) for _ in range(2)))
    finally:
        for handler in handlers:
            await handler.__aexit__(None, None, None)
    assert refused == 6 and not [p for p in host.paths if p.startswith("/private/")]
    times = host.accepted
    assert len(times) == 42
    # the Crawl-delay held for the fleet (less what a late wake-up may shift) ...
    assert max_in_window(times, 0.05 - 0.02) <= 1
    # ... and after each answer saying the quota was spent, the fleet sent nothing for most of half a second (the
    # requests whose slots were reserved before the hold, at most one per worker, go at their slots)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert sum(1 for gap in gaps if gap >= 0.5 - 3 * 0.05 - 0.05) >= 3
    assert sum(handler.rate_limiter.holds_seen for handler in handlers) >= 3  # type: ignore[union-attr]


def test_a_shared_throttle_gets_a_shared_limiter_to_pace_with(redis_url: str) -> None:
    from aiorequestful.flow import AdaptiveThrottle
    from aiorequestful.flow.redis import RedisAdaptiveThrottle, RedisHostRateLimiter
    from aiorequestful.shared import RedisAdaptiveThrottle as Exported
    from aiorequestful.shared import RedisHostConcurrency as ExportedCaps

    assert Exported is RedisAdaptiveThrottle and ExportedCaps is RedisHostConcurrency
    connection = RedisConnection(redis_url)
    throttle = RedisAdaptiveThrottle(connection, initial_rate=5, decrease=0.7)
    assert isinstance(throttle, AdaptiveThrottle) and throttle.connection is connection
    handler = RequestHandler(connector=lambda: None, adaptive=throttle)
    # no rate_limit given: the paces the throttle sets are the fleet's, in the same Redis
    assert isinstance(handler.rate_limiter, RedisHostRateLimiter) and handler.rate_limiter.connection is connection
    with pytest.raises(TypeError, match="RedisConnection"):
        RedisAdaptiveThrottle("redis://")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decrease"):
        RedisAdaptiveThrottle(connection, decrease=1)


async def test_synced_returns_while_a_finished_write_is_still_listed(workers) -> None:
    """A write that finished but whose done callback (which unlists it) has not run yet must not keep ``synced()``
    waiting: on Python 3.12+ awaiting only finished tasks may not give the loop the turn that runs that callback."""
    from aiorequestful.flow.redis import RedisAdaptiveThrottle

    throttle = RedisAdaptiveThrottle(workers[0])
    finished = asyncio.get_running_loop().create_future()
    finished.set_result(None)
    throttle._pending.add(finished)  # type: ignore[arg-type]  # as on the turn a write finishes
    await asyncio.wait_for(throttle.synced(), timeout=5)
