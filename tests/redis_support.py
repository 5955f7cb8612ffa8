# SPDX-License-Identifier: MIT
"""Real redis-server processes for the Redis tests, on 127.0.0.1 only.

* ``redis_server`` (session): the server every Redis test uses. ``$AIOREQUESTFUL_TEST_REDIS_URL`` when set (what
  ``.ci/run`` does with ``scripts/redis.sh start``); otherwise a ``redis-server`` on PATH is started on a free
  port for the session (so a plain ``pytest`` works); otherwise the tests are skipped, saying why.
* ``redis_namespace``/``redis_connection``: every test writes under its own namespace, deleted afterwards.
* ``dedicated_redis``: a server of the test's own on a fixed port, which the test may kill (``SIGKILL``) and
  start again on the same port (needs ``redis-server`` on PATH).

Test modules import the fixtures they use from here (the module skips them all when redis-py is missing).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

ENV_URL = "AIOREQUESTFUL_TEST_REDIS_URL"

redis = pytest.importorskip("redis", reason="redis-py is not installed (pip install aiorequestful[redis])")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server child process on 127.0.0.1: no persistence, no unix socket, its files in ``directory``.

    The port is fixed at construction, so :meth:`start` after :meth:`kill` comes back on the same address.
    """

    def __init__(self, directory: Path, port: int | None = None, binary: str | None = None) -> None:
        self.directory = directory
        self.port = port if port is not None else free_port()
        self.binary = binary or shutil.which("redis-server") or "redis-server"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        config = self.directory / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    "protected-mode yes",
                    "daemonize no",
                    f"dir {self.directory}",
                    f"logfile {self.directory / 'redis.log'}",
                    'save ""',
                    "appendonly no",
                    "",
                ]
            )
        )
        self.process = subprocess.Popen([self.binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.starts += 1
        _live.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {error}{log}")
            if _ping(self.port):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on 127.0.0.1:{self.port} within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: the server dies mid-whatever, as in a crash."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
        self.process = None
        _live.discard(self)


_live: set[RedisServer] = set()


@atexit.register
def _kill_leftovers() -> None:  # a crashed test session must not leave servers behind
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.kill()


def flush_namespace(url: str, namespace: str) -> int:
    """Delete every key under ``namespace`` (synchronous client; used after each test)."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in namespace) + ":*"
        names = list(client.scan_iter(match=pattern, count=500))
        for start in range(0, len(names), 500):
            client.delete(*names[start : start + 500])
        return len(names)
    finally:
        client.close()


def sync_client(url: str) -> Any:
    return redis.Redis.from_url(url, socket_timeout=5)


# ----------------------------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session", name="redis_url")
def redis_url_fixture() -> Iterator[str]:
    """The URL of the Redis server the tests share (see the module docs)."""
    url = os.environ.get(ENV_URL)
    if url:
        host = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1].rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            pytest.fail(f"{ENV_URL} must point at 127.0.0.1, not {host}")
        yield url
        return
    if shutil.which("redis-server") is None:
        pytest.skip(f"no Redis for the tests: set {ENV_URL} or install redis-server (scripts/redis.sh install)")
    directory = Path(tempfile.mkdtemp(prefix="aiorequestful-redis-"))
    server = RedisServer(directory)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(name="redis_namespace")
def redis_namespace_fixture(redis_url: str) -> Iterator[str]:
    """A namespace of this test's own; its keys are deleted afterwards."""
    namespace = f"aiorequestful-test-{uuid.uuid4().hex[:12]}"
    yield namespace
    flush_namespace(redis_url, namespace)


@pytest.fixture(name="redis_connection")
async def redis_connection_fixture(redis_url: str, redis_namespace: str) -> AsyncIterator[Any]:
    """A ``RedisConnection`` on the test server in this test's namespace, closed afterwards."""
    from aiorequestful.shared import RedisConnection

    connection = RedisConnection(redis_url, namespace=redis_namespace)
    yield connection
    await connection.aclose()


@pytest.fixture(name="dedicated_redis")
def dedicated_redis_fixture(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server of this test's own, which it may kill and start again on the same port."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/redis.sh install); the test kills its own server")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()
