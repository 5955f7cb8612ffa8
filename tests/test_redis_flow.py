# SPDX-License-Identifier: MIT
"""Shared flow control on a real redis-server, within one process.

Several ``RedisConnection`` objects in one process stand for several workers: each has its own client and
connections, exactly as separate processes would. The multi-process versions are in ``test_redis_fleet.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from typing import Any

import pytest

from aiorequestful.flow import HostPauses, HostRateLimiter, RateLimit, host_key
from aiorequestful.flow.redis import _TAKE, RedisHostPauses, RedisHostRateLimiter
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.shared import RedisConnection
from aiorequestful.timer import StepCountTimer

from .flow_servers import ARRIVALS, make_host
from .redis_support import (  # noqa: F401 - fixtures
    RedisServer,
    dedicated_redis_fixture,
    redis_connection_fixture,
    redis_namespace_fixture,
    redis_url_fixture,
    sync_client,
)

# The shared bucket's clock is the Redis server's TIME and the pauses are Redis TTLs: these tests run on the real
# clock (a fake loop clock cannot drive Redis), with tolerances that hold on a loaded machine.
pytestmark = pytest.mark.realtime

HOST = ("http", "api.test", 80)


@pytest.fixture
async def workers(redis_url: str, redis_namespace: str) -> Any:
    """Three connections to one namespace: three workers."""
    connections = [RedisConnection(redis_url, namespace=redis_namespace) for _ in range(3)]
    yield connections
    for connection in connections:
        await connection.aclose()


async def _eventually(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# ----------------------------------------------------------------------------------------------------------------
# the Lua bucket against the bucket_take kernel
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_lua_bucket_computes_what_the_kernel_computes(
    kernels: Any, redis_connection: RedisConnection, seed: int
) -> None:
    rng = random.Random(seed)
    rate, burst = rng.choice([0.5, 3.0, 20.0, 1000.0]), rng.choice([1.0, 2.5, 10.0])
    key = redis_connection.key("parity", str(seed))
    client = redis_connection.client()
    now = 1_700_000_000.123456
    tokens, updated = burst, now  # a missing bucket starts full at the first take
    for _ in range(300):
        # forwards mostly, sometimes a tie or a clock that goes back
        now += rng.choice([0.0, -0.01, rng.uniform(0, 2.0 / rate), rng.uniform(0, 0.001)])
        wait, tokens, updated = kernels.bucket_take(tokens, updated, now, rate, burst)
        reply = await _TAKE(client, keys=(key,), args=(repr(rate), repr(burst), repr(now)))
        assert float(reply[0]) == pytest.approx(wait, rel=1e-12, abs=1e-9)
        assert float(reply[3]) == pytest.approx(tokens, rel=1e-12, abs=1e-9)
        stored = await client.hget(key, "updated")
        assert float(stored) == updated  # %.17g keeps the double exactly
        assert (int(reply[1]) > 0) == (wait > 0)


# ----------------------------------------------------------------------------------------------------------------
# RedisHostRateLimiter
# ----------------------------------------------------------------------------------------------------------------
async def test_workers_share_one_bucket(workers: list[RedisConnection]) -> None:
    limiters = [RedisHostRateLimiter(connection, RateLimit(20)) for connection in workers]
    start = time.monotonic()
    done: list[float] = []

    async def one(limiter: RedisHostRateLimiter) -> None:
        await limiter.acquire(HOST)
        done.append(time.monotonic() - start)

    # 41 reservations spread over three workers: 1 at once, then one every 1/20 s -> 2.0 s in all.
    await asyncio.gather(*(one(limiters[i % 3]) for i in range(41)))
    done.sort()
    assert done[-1] >= 1.95
    assert done[-1] < 3.0  # generous: a loaded machine
    assert sum(limiter.shared_reservations for limiter in limiters) == 41
    assert all(limiter.local_reservations == 0 for limiter in limiters)
    # No two grants closer than the rate allows (allowing for timer jitter).
    gaps = [b - a for a, b in itertools.pairwise(done)]
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(0.05, abs=0.025)


async def test_burst_and_a_full_bucket_expiring(redis_connection: RedisConnection, redis_url: str) -> None:
    limiter = RedisHostRateLimiter(redis_connection, RateLimit(rate=2, burst=5))
    start = time.monotonic()
    for _ in range(5):
        assert await limiter.acquire(HOST) == 0.0  # starts full: five at once
    assert time.monotonic() - start < 0.5
    waited = await limiter.acquire(HOST)
    assert 0.3 <= waited <= 1.0  # the sixth waits for the refill: 1/2 s
    raw = sync_client(redis_url)
    try:
        ttl = raw.pttl(limiter.bucket_key(HOST))
        # full again in (5 - 0) / 2 = 2.5 s after the last take; the key lives that long plus a second
        assert 2500 < ttl <= 3500
    finally:
        raw.close()
    assert limiter.delay(HOST) > 0.0


async def test_waiters_of_a_worker_are_served_in_order(redis_connection: RedisConnection) -> None:
    limiter = RedisHostRateLimiter(redis_connection, RateLimit(50))
    order: list[int] = []

    async def one(i: int) -> None:
        await limiter.acquire(HOST)
        order.append(i)

    await asyncio.gather(*(one(i) for i in range(20)))
    assert order == list(range(20))
    assert limiter.queued(HOST) == 0


async def test_limits_by_host_and_unlimited_hosts(redis_connection: RedisConnection, redis_url: str) -> None:
    limiter = RedisHostRateLimiter(redis_connection, {"slow.test": 1, "*": None})
    fast = ("http", "fast.test", 80)
    slow = ("https", "slow.test", 443)
    start = time.monotonic()
    for _ in range(20):
        assert await limiter.acquire(fast) == 0.0
    await limiter.acquire(slow)
    assert time.monotonic() - start < 0.5
    assert isinstance(limiter, HostRateLimiter)
    raw = sync_client(redis_url)
    try:
        assert raw.exists(limiter.bucket_key(slow)) and not raw.exists(limiter.bucket_key(fast))
    finally:
        raw.close()


async def test_a_cancelled_head_gives_its_slot_back(redis_connection: RedisConnection, redis_url: str) -> None:
    limiter = RedisHostRateLimiter(redis_connection, RateLimit(rate=2))
    await limiter.acquire(HOST)  # t=0: the bucket's only token
    waiting = asyncio.ensure_future(limiter.acquire(HOST))  # reserved for t=0.5
    await _eventually(lambda: limiter.shared_reservations == 2)  # the head holds its reservation
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    raw = sync_client(redis_url)
    try:  # the give-back runs in the background: wait until Redis has the token back
        await _eventually(lambda: raw.hget(limiter.bucket_key(HOST), "seq") == b"0")
    finally:
        raw.close()
    start = time.monotonic()
    await limiter.acquire(HOST)  # gets the returned t=0.5 slot (~0.35 s from here), not t=1.0 (~0.85 s)
    assert time.monotonic() - start < 0.65


async def test_redis_down_falls_back_to_a_local_limit_and_comes_back(
    dedicated_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiorequestful.shared.connection")
    connection = RedisConnection(dedicated_redis.url, namespace="limit", retry_min=0.05, retry_max=0.1)
    limiter = RedisHostRateLimiter(connection, RateLimit(rate=20))
    try:
        await limiter.acquire(HOST)
        assert limiter.shared_reservations == 1
        dedicated_redis.kill()
        start = time.monotonic()
        await asyncio.gather(*(limiter.acquire(HOST) for _ in range(21)))
        # Still limited (per process): 21 at 20/s takes about a second, no error.
        assert 0.9 <= time.monotonic() - start < 2.5
        assert limiter.local_reservations >= 20
        dedicated_redis.start()
        before = limiter.shared_reservations
        await _wait_shared(limiter, before)
        raw = sync_client(dedicated_redis.url)
        try:
            assert raw.exists(limiter.bucket_key(HOST))
        finally:
            raw.close()
    finally:
        await connection.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and len(infos) == 1


async def _wait_shared(limiter: RedisHostRateLimiter, before: int) -> None:
    deadline = time.monotonic() + 10
    while limiter.shared_reservations == before:
        assert time.monotonic() < deadline, "shared mode did not resume"
        await limiter.acquire(HOST)
        await asyncio.sleep(0.02)


def test_a_connection_is_required() -> None:
    with pytest.raises(TypeError, match="RedisConnection"):
        RedisHostRateLimiter("redis://127.0.0.1:1", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RedisConnection"):
        RedisHostPauses(None)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------------
# RedisHostPauses
# ----------------------------------------------------------------------------------------------------------------
async def test_a_pause_reaches_every_worker_and_so_does_a_resume(workers: list[RedisConnection]) -> None:
    pauses = [RedisHostPauses(connection) for connection in workers]
    for connection in workers:
        await connection.__aenter__()
    try:
        await asyncio.gather(*(p.ready() for p in pauses))  # every listener subscribed
        assert isinstance(pauses[0], HostPauses)
        until = pauses[0].pause_for(HOST, 429, {"Retry-After": "3"})
        assert until is not None
        await _eventually(lambda: all(p.get(HOST) is not None for p in pauses))
        for other in pauses[1:]:
            pause = other.get(HOST)
            assert pause.status == 429
            assert 2.5 < pause.until - asyncio.get_running_loop().time() <= 3.1
            assert other.received == 1
        assert pauses[0].received == 0  # its own announcement is not news to it
        pauses[1].resume(HOST)
        await _eventually(lambda: all(p.get(HOST) is None for p in pauses))
    finally:
        for connection in workers:
            await connection.__aexit__(None, None, None)


async def test_a_pause_never_shortens_a_longer_one(workers: list[RedisConnection], redis_url: str) -> None:
    long, short = RedisHostPauses(workers[0]), RedisHostPauses(workers[1])
    async with workers[0], workers[1]:
        await asyncio.gather(long.ready(), short.ready())
        long.pause(HOST, 5.0, 503)
        await _eventually(lambda: short.get(HOST) is not None)
        short.pause(HOST, 1.0, 429)
        await asyncio.sleep(0.2)
        assert short.remaining(HOST) > 4.0 and long.remaining(HOST) > 4.0
        raw = sync_client(redis_url)
        try:
            assert raw.pttl(long.pause_key(HOST)) > 4000
        finally:
            raw.close()


async def test_a_worker_that_starts_during_a_pause_honours_it(workers: list[RedisConnection], redis_url: str) -> None:
    first = RedisHostPauses(workers[0])
    async with workers[0]:
        first.pause(HOST, 3.0, 429)
        raw = sync_client(redis_url)
        try:
            await _eventually(lambda: raw.pttl(first.pause_key(HOST)) > 0)  # announced
        finally:
            raw.close()
        late = RedisHostPauses(workers[1])
        async with workers[1]:
            await _eventually(lambda: late.get(HOST) is not None)
            assert late.get(HOST).status == 429
            assert 2.0 < late.remaining(HOST) <= 3.0


async def test_remote_pauses_are_capped_by_max_pause(workers: list[RedisConnection]) -> None:
    sender, capped = RedisHostPauses(workers[0]), RedisHostPauses(workers[1], max_pause=1.0)
    async with workers[0], workers[1]:
        await asyncio.gather(sender.ready(), capped.ready())
        sender.pause_for(HOST, 429, {"Retry-After": "600"})
        await _eventually(lambda: capped.get(HOST) is not None)
        assert capped.remaining(HOST) <= 1.0
        assert sender.remaining(HOST) > 500


async def test_garbage_on_the_channel_is_ignored(workers: list[RedisConnection], redis_url: str) -> None:
    pauses = RedisHostPauses(workers[0])
    async with workers[0]:
        await pauses.ready()
        raw = sync_client(redis_url)
        try:
            channel = workers[0].key("pause")
            for junk in [b"", b"x|y", b"a|b|c|d", b"other|1000|429|not json", b"other|1000|429|[1,2]", b"\xff\xfe"]:
                raw.publish(channel, junk)
            raw.publish(channel, b'other|2000|429|["http","api.test",80]')
        finally:
            raw.close()
        await _eventually(lambda: pauses.get(HOST) is not None)
        assert pauses.received == 1


async def test_a_pause_made_while_redis_is_down_is_shared_when_it_is_back(
    dedicated_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiorequestful.shared.connection")
    connections = [
        RedisConnection(dedicated_redis.url, namespace="pauses", retry_min=0.05, retry_max=0.2) for _ in range(2)
    ]
    first, second = (RedisHostPauses(connection) for connection in connections)
    try:
        for connection in connections:
            await connection.__aenter__()
        await asyncio.gather(first.ready(), second.ready())
        dedicated_redis.kill()
        assert first.pause(HOST, 4.0, 429) is not None  # local at once, whatever Redis does
        assert first.remaining(HOST) > 3.5
        await asyncio.sleep(0.3)
        assert second.get(HOST) is None
        dedicated_redis.start()
        await _eventually(lambda: second.get(HOST) is not None, timeout=10)
        assert 2.0 < second.remaining(HOST) <= 4.0
    finally:
        for connection in connections:
            await connection.__aexit__(None, None, None)
    # one warning per worker (connection), however many operations failed
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) <= 2


async def test_a_retry_after_over_the_cap_is_not_shared(workers: list[RedisConnection], redis_url: str) -> None:
    """A Retry-After over the cap is not recorded, so it never reaches Redis nor the other workers."""
    sender, other = RedisHostPauses(workers[0], max_pause=60), RedisHostPauses(workers[1])
    elsewhere = ("http", "b.test", 80)
    async with workers[0], workers[1]:
        await asyncio.gather(sender.ready(), other.ready())
        assert sender.pause_for(HOST, 429, {"Retry-After": "99999"}) is None
        assert sender.get(HOST) is None
        # A pause within the cap, announced afterwards, does arrive: the refused one was never sent.
        assert sender.pause_for(elsewhere, 429, {"Retry-After": "5"}) is not None
        await _eventually(lambda: other.get(elsewhere) is not None)
        assert other.get(HOST) is None and other.received == 1
        raw = sync_client(redis_url)
        try:
            assert not raw.exists(sender.pause_key(HOST)) and raw.pttl(sender.pause_key(elsewhere)) > 0
        finally:
            raw.close()


# ----------------------------------------------------------------------------------------------------------------
# through RequestHandler
# ----------------------------------------------------------------------------------------------------------------
async def test_a_retry_after_seen_by_one_handler_pauses_another(serve: Any, workers: list[RedisConnection]) -> None:
    app = make_host("h0")
    base = await serve(app)
    handlers = [
        RequestHandler.create(
            payload_handler=JSONPayloadHandler(),
            retry_timer=StepCountTimer(initial=0.5, count=4, step=0.5),
            rate_limit=RedisHostRateLimiter(connection, RateLimit(20)),
            pause_on_retry_after=RedisHostPauses(connection),
        )
        for connection in workers[:2]
    ]
    async with workers[0], workers[1], handlers[0], handlers[1]:
        await asyncio.gather(*(h.host_pauses.ready() for h in handlers))

        async def steady(handler: RequestHandler, name: str) -> None:
            for i in range(12):
                await handler.get(base / "item" / f"{name}-{i}")

        steady_task = asyncio.ensure_future(steady(handlers[1], "b"))
        await asyncio.sleep(0.2)
        seen = time.monotonic()
        assert (await handlers[0].get(base / "item" / "a" % {"script": "429:1"}))["hits"] == 2
        await steady_task
    arrivals = app[ARRIVALS]
    limited = [a for a in arrivals if a.outcome == "429"]
    assert len(limited) == 1
    t429 = limited[0].at
    assert t429 >= seen - 0.5
    quiet = [a for a in arrivals if t429 + 0.15 < a.at < t429 + 0.9]
    assert quiet == [], f"{len(quiet)} requests reached the host during the pause"
    assert handlers[1].stats.wait_seconds_by_reason.get("pause", 0.0) > 0.5


async def test_a_handler_starts_and_stops_its_shared_flow_control(
    serve: Any, redis_url: str, redis_namespace: str
) -> None:
    app = make_host("h0")
    base = await serve(app)
    sender = RedisConnection(redis_url, namespace=redis_namespace)
    announcer = RedisHostPauses(sender)
    async with sender:
        # Another worker saw a Retry-After: 3 (long enough to still be in force when this one starts, however
        # loaded the machine is).
        announcer.pause(host_key(base), 3.0, 429)
        raw = sync_client(redis_url)
        try:
            await _eventually(lambda: raw.pttl(announcer.pause_key(host_key(base))) > 0)  # announced
        finally:
            raw.close()
    connection = RedisConnection(redis_url, namespace=redis_namespace)
    pauses = RedisHostPauses(connection)
    handler = RequestHandler.create(
        payload_handler=JSONPayloadHandler(),
        retry_timer=StepCountTimer(initial=1, count=3, step=1),
        rate_limit=RedisHostRateLimiter(connection, 100),
        pause_on_retry_after=pauses,
    )
    assert connection._state is None
    async with handler:
        assert pauses.get(host_key(base)) is not None  # mirrored on entering, before any request
        remaining = pauses.remaining(host_key(base))
        start = time.monotonic()
        await handler.get(base / "item" / "x")
        assert time.monotonic() - start >= remaining - 0.01  # the request waited out the rest of the pause
    assert connection._state is None  # listener stopped, client closed
    assert [a.key for a in app[ARRIVALS]] == ["x"]


async def test_an_absurd_retry_after_does_not_stop_the_fleet(serve: Any, workers: list[RedisConnection]) -> None:
    """One worker's 429 with Retry-After: 99999 (over max_retry_after) fails that request only; another worker's
    request to the same host is sent at once instead of failing unsent for an hour."""
    from aiorequestful.response.exception import ResponseError

    app = make_host("h0")
    base = await serve(app)
    handlers = [
        RequestHandler.create(
            payload_handler=JSONPayloadHandler(),
            retry_timer=StepCountTimer(initial=0, count=None, step=0),  # unbounded: only the cap refuses
            pause_on_retry_after=RedisHostPauses(connection),
        )
        for connection in workers[:2]
    ]
    async with workers[0], workers[1], handlers[0], handlers[1]:
        await asyncio.gather(*(h.host_pauses.ready() for h in handlers))
        with pytest.raises(ResponseError, match=r"greater than the maximum of 3600\.00 seconds"):
            await handlers[0].get(base / "item" / "a" % {"script": "429:99999"})
        assert handlers[0].host_pauses.get(host_key(base)) is None
        assert (await handlers[1].get(base / "item" / "b"))["hits"] == 1
        assert (await handlers[0].get(base / "item" / "c"))["hits"] == 1
        assert handlers[1].host_pauses.get(host_key(base)) is None
    assert [a.outcome for a in app[ARRIVALS]] == ["429", "ok", "ok"]
