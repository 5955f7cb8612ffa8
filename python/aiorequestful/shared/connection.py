# SPDX-License-Identifier: MIT
"""One Redis server shared by a fleet of crawler processes, with its health tracked.

Every shared component (``RedisCache``, ``RedisHostRateLimiter``, ``RedisHostPauses``, ``RedisHostConcurrency``,
``RedisAdaptiveThrottle``, ``RedisTokenStore``) talks to Redis through a :class:`RedisConnection`, which owns the
``redis.asyncio`` client and decides what happens when Redis fails:

* an operation that fails because Redis is unreachable (refused, reset, timed out, loading, read-only) returns
  the caller's *default* instead of raising, so the caller carries on with its local state; no exception escapes
  because of Redis;
* the first such failure logs **one** WARNING; while Redis stays down, operations are not even tried (they get
  their default at once) except for one probe at a time after a back-off that doubles from ``retry_min`` to
  ``retry_max`` seconds (with jitter, so a fleet does not probe in step);
* the first success after that logs **one** INFO and the shared mode resumes (the pause listener, woken up,
  resubscribes and resyncs; a token obtained locally meanwhile is published at the next authorisation).

An error Redis *answers* with (an ``OOM`` refusal, a script error) is not an outage: the operation gets its
default, and each distinct refusal is logged once at WARNING.

A client belongs to one event loop (redis-py's connections do), so the connection keeps one client per loop, and
background tasks (the pause listener, a token lock's keep-alive) per loop as well. ``async with connection``
starts the registered background services on the running loop and, when the last ``async with`` ends, stops
them and closes the client. Using the components without entering the connection works too (the client and
services start on first use), but then ``await connection.aclose()`` must be called before the loop ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from yarl import URL

from .._utils import required_modules_installed

try:
    import redis.asyncio as redis_asyncio
    from redis import exceptions as redis_exceptions
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
except ImportError:  # pragma: no cover - exercised when the [redis] extra is not installed
    redis_asyncio = None  # type: ignore[assignment]
    redis_exceptions = None  # type: ignore[assignment]
    Retry = None  # type: ignore[assignment,misc]
    NoBackoff = None  # type: ignore[assignment,misc]

__all__ = ("DEFAULT_NAMESPACE", "DEFAULT_URL", "RedisConnection", "RedisScript", "redis_asyncio")

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Where a connection goes when no URL is given.
DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: The prefix of every key the package writes (so that several fleets and tools can share one server).
DEFAULT_NAMESPACE = "aiorequestful"

_SCHEMES = frozenset({"redis", "rediss", "unix"})


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "Redis cannot be used right now" (an outage), as opposed to a refused operation."""
    errors: list[type[BaseException]] = [OSError, TimeoutError, EOFError]
    if redis_exceptions is not None:
        errors += [
            redis_exceptions.ConnectionError,  # refused, reset, closed by the server; BusyLoadingError too
            redis_exceptions.TimeoutError,
            redis_exceptions.ReadOnlyError,  # a replica after a fail-over: writes are impossible for now
        ]
        for name in ("MasterDownError", "TryAgainError", "ClusterDownError"):
            error = getattr(redis_exceptions, name, None)
            if isinstance(error, type):
                errors.append(error)
    return tuple(errors)


def _redis_errors() -> tuple[type[BaseException], ...]:
    return (redis_exceptions.RedisError,) if redis_exceptions is not None else ()


def mask_url(url: URL) -> str:
    """``url`` for a log line: any password is replaced with ``***`` (rule 7: never log secrets)."""
    if url.password is not None:
        url = url.with_password("***")
    return str(url)


class RedisScript:
    """A Lua script run with ``EVALSHA``, loaded again with ``EVAL`` when the server does not know it (a restarted
    server has an empty script cache). Not bound to a client, so one object serves every event loop."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()

    async def __call__(self, client: Any, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis_exceptions.NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


class _LoopState:
    """What a connection holds for one event loop: its client, background tasks and running services."""

    __slots__ = ("client", "loop", "services", "tasks", "wake")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.client: Any = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.services: dict[str, asyncio.Task[Any]] = {}
        #: Set (and replaced) when Redis is available again: wakes services waiting out a back-off.
        self.wake = asyncio.Event()


class RedisConnection:
    """A Redis server shared by crawler processes: the client, the health state and the background tasks.

    :param url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) or ``unix://path``.
    :param namespace: the prefix of every key written through this connection.
    :param timeout: seconds to connect, and to wait for any reply, before Redis counts as unavailable.
    :param retry_min: the first back-off (seconds) before Redis is tried again after a failure.
    :param retry_max: the longest back-off (seconds); the back-off doubles from ``retry_min`` up to it.
    :param max_connections: the most connections a process (per event loop) opens; operations beyond wait for one.
    :param client_kwargs: further keyword arguments for the connections (e.g. ``ssl_ca_certs``, ``username``).
    """

    __slots__ = (
        "_delay",
        "_down_since",
        "_entered",
        "_probing",
        "_refusals",
        "_retry_at",
        "_service_factories",
        "_state",
        "client_kwargs",
        "logger",
        "max_connections",
        "namespace",
        "outages",
        "retry_max",
        "retry_min",
        "timeout",
        "url",
    )

    _required_module_names: ClassVar[tuple[str, ...]] = ("redis",)

    def __init__(
        self,
        url: str | URL = DEFAULT_URL,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = 1.0,
        retry_min: float = 0.1,
        retry_max: float = 5.0,
        max_connections: int = 64,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        required_modules_installed([redis_asyncio], self)
        parsed = URL(str(url))
        if parsed.scheme not in _SCHEMES:
            raise ValueError(f"Redis URL must start with redis://, rediss:// or unix://, not {mask_url(parsed)!r}")
        if not isinstance(namespace, str) or not namespace or any(c in namespace for c in "\x00\r\n"):
            raise ValueError(f"Redis namespace must be a non-empty single-line string, not {namespace!r}")
        for name, value in (("timeout", timeout), ("retry_min", retry_min), ("retry_max", retry_max)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a positive integer, not {max_connections!r}")
        if retry_max < retry_min:
            raise ValueError(f"retry_max ({retry_max!r}) must not be less than retry_min ({retry_min!r})")
        self.logger: logging.Logger = logger
        #: The server's URL (may hold a password: use :attr:`display_url` in messages).
        self.url: URL = parsed
        self.namespace = namespace
        self.timeout = float(timeout)
        self.retry_min = float(retry_min)
        self.retry_max = float(retry_max)
        self.max_connections = max_connections
        self.client_kwargs: dict[str, Any] = dict(client_kwargs or {})
        #: How many times Redis went from available to unavailable (each one logged one WARNING).
        self.outages = 0
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._delay = self.retry_min
        self._probing = False
        self._refusals: set[str] = set()
        self._state: _LoopState | None = None
        self._entered = 0
        self._service_factories: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r}, namespace={self.namespace!r})"

    @property
    def display_url(self) -> str:
        """The URL with any password masked."""
        return mask_url(self.url)

    # ----------------------------------------------------------------------------------------------
    # keys
    # ----------------------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        """``<namespace>:<part>:<part>...``: a key in this connection's namespace."""
        return ":".join((self.namespace, *parts))

    # ----------------------------------------------------------------------------------------------
    # health
    # ----------------------------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """False from the first failed operation until the next successful one."""
        return self._down_since is None

    def usable(self) -> bool:
        """Whether an operation would be tried now (Redis is available, or a probe is due and none is running)."""
        if self._down_since is None:
            return True
        return not self._probing and _clock() >= self._retry_at

    def mark_unavailable(self, exc: BaseException, started: int | None = None) -> None:
        """Record a failure to reach Redis: one WARNING per outage, then back off.

        ``started`` is :attr:`outages` when the failed operation began: a failure of an operation that began before
        the latest outage was recorded says nothing new (it is that outage, or older than the recovery since).
        """
        if started is not None and started != self.outages:
            return
        now = _clock()
        if self._down_since is None:
            self._down_since = now
            self.outages += 1
            self._delay = self.retry_min
            self.logger.warning(
                "Redis at %s is unavailable (%s); carrying on with local state (per process: rate limits, paces "
                "and holds, Retry-After pauses, concurrency caps, the adaptive throttle, tokens; the cache misses) "
                "and retrying in the background",
                self.display_url,
                _describe(exc),
            )
        else:
            self._delay = min(self.retry_max, self._delay * 2.0)
        # Jitter spreads the probes of a fleet that lost Redis at the same moment.
        self._retry_at = now + self._delay * random.uniform(0.5, 1.0)

    def mark_available(self, started: int | None = None) -> None:
        """Record a success: after an outage, one INFO line, and background services waiting out a back-off wake.

        ``started`` is :attr:`outages` when the successful operation began: one that began before the outage (its
        reply was read before Redis went away, but it finished after the failure was recorded) proves nothing.
        """
        if self._down_since is None or (started is not None and started != self.outages):
            return
        outage = _clock() - self._down_since
        self._down_since = None
        self._delay = self.retry_min
        self.logger.info(
            "Redis at %s is available again after %.1f seconds; shared mode resumed", self.display_url, outage
        )
        state = self._state
        if state is not None and _running_loop() is state.loop:
            state.wake.set()
            state.wake = asyncio.Event()

    def retry_delay(self) -> float:
        """Seconds a background service should wait before trying Redis again (the current back-off)."""
        return max(0.0, self._retry_at - _clock()) if self._down_since is not None else self.retry_min

    async def wait_for_retry(self) -> None:
        """Wait out the current back-off, or less when another operation finds Redis available meanwhile."""
        wake = self._loop_state().wake
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), self.retry_delay())

    def _refused(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
        if text not in self._refusals:
            self._refusals.add(text)
            self.logger.warning(
                "Redis at %s refused an operation (%s); carrying on with local state for it", self.display_url, text
            )

    async def call(self, operation: Callable[[Any], Awaitable[T]], default: T) -> T:
        """``await operation(client)``, or ``default`` when Redis is unavailable or refuses the operation.

        While Redis is down, ``default`` is returned at once except for one probe at a time after the back-off.
        Cancellation propagates; nothing else about Redis does.
        """
        probe = False
        if self._down_since is not None:
            if self._probing or _clock() < self._retry_at:
                return default
            probe = self._probing = True
        # Concurrent operations finish in any order: only what happened after an outage was recorded may end it,
        # and only a failure of an operation that began since the last outage was recorded may start a new one.
        started = self.outages
        try:
            client = self.client()
            result = await operation(client)
        except asyncio.CancelledError:
            raise
        except _UNAVAILABLE as exc:
            self.mark_unavailable(exc, started)
            return default
        except _REDIS_ERRORS as exc:
            if probe:  # it answered: it is reachable
                self.mark_available(started)
            self._refused(exc)
            return default
        finally:
            if probe:
                self._probing = False
        self.mark_available(started)
        return result

    # ----------------------------------------------------------------------------------------------
    # client and background tasks (per event loop)
    # ----------------------------------------------------------------------------------------------
    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._state
        if state is None or state.loop is not loop:
            # A client (and its connections) belongs to the loop that made it; a new loop gets its own.
            state = self._state = _LoopState(loop)
        return state

    def client(self) -> Any:
        """The ``redis.asyncio.Redis`` client of the running event loop (created on first use)."""
        state = self._loop_state()
        if state.client is None:
            kwargs: dict[str, Any] = {
                "socket_timeout": self.timeout,
                "socket_connect_timeout": self.timeout,
                # One immediate retry: a pooled connection to a server that restarted fails once, then a new one
                # is made. Anything longer would hold requests up; the back-off above takes over from there.
                "retry": Retry(NoBackoff(), 1),
                "decode_responses": False,
            }
            kwargs.update(self.client_kwargs)
            # A blocking pool: more concurrent operations than connections wait for one (local back-pressure)
            # instead of failing with "Too many connections", which would look like an outage.
            pool = redis_asyncio.BlockingConnectionPool.from_url(
                str(self.url), max_connections=self.max_connections, timeout=None, **kwargs
            )
            state.client = redis_asyncio.Redis.from_pool(pool)
        return state.client

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        """Run ``coroutine`` as a background task of the running loop (cancelled by :meth:`aclose`).

        Without a running loop the coroutine is closed and None returned.
        """
        try:
            state = self._loop_state()
        except RuntimeError:
            coroutine.close()
            return None
        task = state.loop.create_task(coroutine)
        state.tasks.add(task)
        task.add_done_callback(_forget(state.tasks))
        return task

    def register_service(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A long-running background coroutine (e.g. a listener) started by ``async with`` or :meth:`ensure_service`."""
        self._service_factories[name] = factory
        state = self._state
        if self._entered and state is not None and _running_loop() is state.loop:
            self.ensure_service(name)

    def ensure_service(self, name: str) -> None:
        """Start the service ``name`` on the running loop unless it already runs there (no-op without a loop)."""
        try:
            state = self._loop_state()
        except RuntimeError:
            return
        task = state.services.get(name)
        if task is not None and not task.done():
            return
        task = self.spawn(self._service_factories[name]())
        if task is not None:
            state.services[name] = task

    async def __aenter__(self) -> RedisConnection:
        self._entered += 1
        for name in self._service_factories:
            self.ensure_service(name)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._entered = max(0, self._entered - 1)
        if self._entered == 0:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop the background tasks of the running loop and close its client (a later use opens a new one)."""
        state = self._state
        if state is None:
            return
        if _running_loop() is not state.loop:
            # The loop that owned them is gone or is another one: nothing of it can be awaited from here.
            self._state = None
            return
        tasks = [task for task in state.tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        client, state.client = state.client, None
        self._state = None
        if client is not None:
            try:
                await client.aclose()
            except (*_UNAVAILABLE, *_REDIS_ERRORS):  # closing a dead connection: nothing to save
                pass


_UNAVAILABLE = _unavailable_errors()
_REDIS_ERRORS = _redis_errors()


def _clock() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        import time

        return time.monotonic()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def _forget(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # A background task must never fail silently (nor make asyncio log "never retrieved").
            logger.warning("A Redis background task failed: %s", _describe(task.exception()))  # type: ignore[arg-type]

    return done
