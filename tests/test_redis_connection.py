# SPDX-License-Identifier: MIT
"""RedisConnection: the health helper every shared component uses.

Outages are real: the tests kill their own redis-server (SIGKILL) and start it again on the same port, or talk to
a port where a server accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from aiorequestful.exception import AIORequestfulImportError
from aiorequestful.shared import RedisConnection
from aiorequestful.shared import connection as connection_module
from aiorequestful.shared.connection import redis_exceptions

from .redis_support import (  # noqa: F401 - fixtures
    RedisServer,
    dedicated_redis_fixture,
    free_port,
    redis_connection_fixture,
    redis_namespace_fixture,
    redis_url_fixture,
)

LOGGER = "aiorequestful.shared.connection"


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_operations_run_against_the_server_under_the_namespace(redis_connection: RedisConnection) -> None:
    key = redis_connection.key("probe", "one")
    assert key == f"{redis_connection.namespace}:probe:one"
    assert await redis_connection.call(lambda client: client.set(key, b"v"), None) is True
    assert await redis_connection.call(lambda client: client.get(key), None) == b"v"
    assert redis_connection.available
    assert redis_connection.outages == 0


async def test_an_outage_logs_one_warning_and_the_recovery_one_info(
    dedicated_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    connection = RedisConnection(dedicated_redis.url, namespace="outage", retry_min=0.05, retry_max=0.2)
    try:
        assert await connection.call(lambda client: client.ping(), None) is True
        dedicated_redis.kill()
        results = []
        for _ in range(40):
            results.append(await connection.call(lambda client: client.ping(), "default"))
            await asyncio.sleep(0.01)
        assert results == ["default"] * 40
        assert not connection.available
        warnings = _records(caplog, logging.WARNING)
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "unavailable" in warnings[0].getMessage() and "local state" in warnings[0].getMessage()
        assert not _records(caplog, logging.INFO)

        dedicated_redis.start()

        async def back() -> bool:
            return await connection.call(lambda client: client.ping(), None) is True

        await _until(back)
        assert connection.available
        infos = _records(caplog, logging.INFO)
        assert len(infos) == 1 and "available again" in infos[0].getMessage()
        assert len(_records(caplog, logging.WARNING)) == 1
        assert connection.outages == 1

        # A second outage is a second warning (once per outage, not once per process life).
        dedicated_redis.kill()
        assert await connection.call(lambda client: client.ping(), None) is None
        assert len(_records(caplog, logging.WARNING)) == 2
        assert connection.outages == 2
    finally:
        await connection.aclose()


async def test_while_down_operations_are_not_tried_until_the_back_off_ends(dedicated_redis: RedisServer) -> None:
    connection = RedisConnection(dedicated_redis.url, namespace="backoff", retry_min=0.3, retry_max=0.3)
    tried = 0

    async def ping(client: Any) -> Any:
        nonlocal tried
        tried += 1
        return await client.ping()

    try:
        dedicated_redis.kill()
        assert await connection.call(ping, None) is None
        assert tried == 1
        start = time.monotonic()
        for _ in range(100):
            assert await connection.call(ping, None) is None
        assert tried == 1, "operations were tried during the back-off"
        assert time.monotonic() - start < 0.25  # answered at once, no connection attempts
        assert not connection.usable()
        await asyncio.sleep(0.35)
        assert connection.usable()
        # After the back-off exactly one probe runs, however many callers arrive together.
        results = await asyncio.gather(*(connection.call(ping, "x") for _ in range(20)))
        assert tried == 2
        assert results.count(None) + results.count("x") == 20
    finally:
        await connection.aclose()


async def test_the_back_off_doubles_up_to_its_maximum(dedicated_redis: RedisServer) -> None:
    connection = RedisConnection(dedicated_redis.url, namespace="doubling", retry_min=0.05, retry_max=0.2)
    try:
        dedicated_redis.kill()
        delays = []
        for _ in range(5):
            while not connection.usable():
                await asyncio.sleep(0.005)
            await connection.call(lambda client: client.ping(), None)
            delays.append(connection.retry_delay())
        # Jittered within [delay/2, delay]: 0.05, 0.1, 0.2, 0.2, 0.2.
        assert 0.02 <= delays[0] <= 0.051
        assert 0.045 <= delays[1] <= 0.101
        assert all(0.095 <= d <= 0.201 for d in delays[2:])
    finally:
        await connection.aclose()


async def test_a_server_that_never_answers_times_out(caplog: pytest.LogCaptureFixture) -> None:
    # Accepts connections and reads forever: a hung Redis (or a network black hole).
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(1024):
                pass
        finally:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = RedisConnection(f"redis://127.0.0.1:{port}/0", namespace="silent", timeout=0.3)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    try:
        start = time.monotonic()
        assert await connection.call(lambda client: client.ping(), "fallback") == "fallback"
        assert time.monotonic() - start < 3.0  # the timeout (and one retry), not a hang
        assert not connection.available
        assert len(_records(caplog, logging.WARNING)) == 1
    finally:
        await connection.aclose()
        server.close()
        await server.wait_closed()


async def test_an_error_redis_answers_with_is_logged_once_and_is_not_an_outage(
    redis_connection: RedisConnection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    for _ in range(3):
        result = await redis_connection.call(lambda client: client.execute_command("NO-SUCH-COMMAND"), "default")
        assert result == "default"
    assert redis_connection.available
    refusals = _records(caplog, logging.WARNING)
    assert len(refusals) == 1 and "refused" in refusals[0].getMessage()
    # A different refusal is reported too.
    key = redis_connection.key("string")
    await redis_connection.call(lambda client: client.set(key, "x"), None)
    assert await redis_connection.call(lambda client: client.lpush(key, "y"), "wrongtype") == "wrongtype"
    assert len(_records(caplog, logging.WARNING)) == 2


async def test_cancellation_propagates(redis_connection: RedisConnection) -> None:
    async def slow(client: Any) -> Any:
        await asyncio.sleep(10)

    task = asyncio.ensure_future(redis_connection.call(slow, None))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert redis_connection.available


async def test_passwords_never_reach_messages(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    connection = RedisConnection(f"redis://user:hunter2-secret@127.0.0.1:{port}/0", namespace="masked")
    caplog.set_level(logging.DEBUG)
    try:
        assert "hunter2" not in connection.display_url and "***" in connection.display_url
        assert "hunter2" not in repr(connection)
        assert await connection.call(lambda client: client.ping(), None) is None
        assert caplog.records
        assert all("hunter2" not in record.getMessage() for record in caplog.records)
    finally:
        await connection.aclose()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "http://127.0.0.1:6379"}, "must start with redis://"),
        ({"namespace": ""}, "namespace"),
        ({"namespace": "a\nb"}, "namespace"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"retry_min": -1}, "retry_min"),
        ({"retry_min": 2.0, "retry_max": 1.0}, "retry_max"),
        ({"max_connections": 0}, "max_connections"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisConnection(**kwargs)


def test_without_redis_py_the_module_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection_module, "redis_asyncio", None)
    with pytest.raises(
        AIORequestfulImportError, match=r"Cannot create RedisConnection object\. Required modules: redis"
    ):
        RedisConnection()


async def test_services_start_on_enter_and_stop_on_the_last_exit(redis_connection: RedisConnection) -> None:
    started = asyncio.Event()
    stopped = asyncio.Event()

    async def service() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()

    redis_connection.register_service("probe", service)
    async with redis_connection:
        async with redis_connection:  # nested: the inner exit keeps everything running
            await asyncio.wait_for(started.wait(), 2)
        assert not stopped.is_set()
        redis_connection.ensure_service("probe")  # already running: not started twice
    assert stopped.is_set()


def test_each_event_loop_gets_its_own_client(redis_url: str, redis_namespace: str) -> None:
    connection = RedisConnection(redis_url, namespace=redis_namespace)
    clients = []

    async def use() -> None:
        clients.append(connection.client())
        assert await connection.call(lambda client: client.ping(), None) is True
        await connection.aclose()

    asyncio.run(use())
    asyncio.run(use())
    assert clients[0] is not clients[1]


async def test_operations_that_began_before_an_outage_neither_end_nor_start_one(
    dedicated_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    connection = RedisConnection(dedicated_redis.url, namespace="race", retry_min=0.05, retry_max=0.05)
    release = asyncio.Event()
    answered = [asyncio.Event(), asyncio.Event()]

    async def answered_then_slow(client: Any) -> Any:
        reply = await client.ping()  # read while Redis was up...
        answered[0].set()
        await release.wait()  # ...but finishes after the outage was recorded
        return reply

    async def fails_late(client: Any) -> Any:
        await client.ping()
        answered[1].set()
        await release.wait()
        raise redis_exceptions.ConnectionError("a reply lost before the outage ended")

    try:
        assert await connection.call(lambda client: client.ping(), None) is True
        late_success = asyncio.ensure_future(connection.call(answered_then_slow, "default"))
        late_failure = asyncio.ensure_future(connection.call(fails_late, "default"))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in answered)), 30)  # both read while Redis was up
        dedicated_redis.kill()
        assert await connection.call(lambda client: client.ping(), None) is None  # the outage is recorded
        release.set()
        assert await late_success is True
        assert not connection.available, "a reply read before the outage ended it"
        assert await late_failure == "default"
        assert connection.outages == 1
        dedicated_redis.start()
        while not connection.usable():  # the back-off (retry_min, 0.05 s) before the next probe is allowed
            await asyncio.sleep(connection.retry_delay() + 0.001)
        assert await connection.call(lambda client: client.ping(), None) is True  # a probe: recovered
        assert connection.available and connection.outages == 1
        levels = [r.levelno for r in caplog.records if r.name == LOGGER]
        assert levels == [logging.WARNING, logging.INFO]
    finally:
        await connection.aclose()


def test_the_shared_package_exports_every_component() -> None:
    import aiorequestful.shared as shared
    from aiorequestful.auth._redis_store import RedisTokenStore
    from aiorequestful.cache.backend.redis import RedisCache, RedisTable
    from aiorequestful.flow.redis import RedisHostPauses, RedisHostRateLimiter

    assert shared.RedisCache is RedisCache and shared.RedisTable is RedisTable
    assert shared.RedisHostRateLimiter is RedisHostRateLimiter and shared.RedisHostPauses is RedisHostPauses
    assert shared.RedisTokenStore is RedisTokenStore
    assert set(shared.__all__) <= set(dir(shared))
    with pytest.raises(AttributeError):
        shared.NoSuchThing  # noqa: B018
