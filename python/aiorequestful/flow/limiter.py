# SPDX-License-Identifier: MIT
"""Per-host rate limits: one token bucket per host, shared by every task of a handler.

Each bucket refills at ``rate`` tokens per second up to ``burst`` and starts full. Its arithmetic is the
``bucket_take`` kernel: a caller that finds less than one token still takes one (the count goes negative) and is
told exactly when that token becomes available.

Waiting tasks form a FIFO queue per host, and only the task at its head holds a reservation:

* waiters are served in arrival order (no starvation, no thundering herd: one task wakes per slot);
* the rate is exact over time: the next head reserves as the previous one leaves, and the bucket's arithmetic is
  continuous, so a head that wakes a little late does not shift the slots after it;
* a stalled event loop (a loaded machine, a long GC) cannot release a backlog at once: nobody holds a slot in the
  past, and the bucket never holds more than ``burst`` tokens, so after a stall at most ``burst`` requests go
  right after the late head, then the rate resumes;
* ``acquire`` is O(1): one kernel call, plus one future when it has to queue; no lock;
* a head cancelled before its slot gives the token back (no later reservation depends on it); a queued waiter
  that is cancelled simply leaves the queue.

An optional ``prepare`` coroutine runs at the head before a token is taken and again when the slot comes; the
request handler waits out host-wide ``Retry-After`` pauses there, so a pause holds the whole queue in order and
costs no slot.

Idle buckets (full again, nobody queued) carry no information and are dropped once many hosts have been seen, so
a crawl over millions of hosts does not keep millions of buckets.
"""

from __future__ import annotations

import asyncio
import math
import numbers
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from .._backend import kernels
from ._hosts import HostKey, format_host

__all__ = ("DEFAULT_HOST", "HostRateLimiter", "RateLimit", "RateLimitInput")

#: The mapping key of the limit for every host not named otherwise.
DEFAULT_HOST = "*"

# Buckets are pruned when the map reaches this size (and then again at twice the size left after pruning).
_PRUNE_AT = 1024


def _now() -> float:
    """The running loop's clock (the one ``asyncio.sleep`` schedules with), else ``time.monotonic``."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    """Sleep until the loop clock reads ``when``.

    Unlike ``asyncio.sleep(when - now)``, the deadline does not move when the process is descheduled between
    reading the clock and scheduling the timer: slots reserved in order wake in order, exactly on time.
    """
    future = loop.create_future()
    handle = loop.call_at(when, _wake, future)
    try:
        await future
    finally:
        handle.cancel()


def _positive_number(value: Any, name: str, minimum: float, inclusive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < minimum or (number == minimum and not inclusive):
        bound = f"at least {minimum:g}" if inclusive else f"greater than {minimum:g}"
        raise ValueError(f"{name} must be a finite number {bound}, not {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A host's limit: ``rate`` requests per second on average, at most ``burst`` of them back to back.

    ``burst=1`` (the default) spaces every request ``1 / rate`` seconds apart; a larger burst lets that many
    requests go at once after an idle spell, while the long-run rate stays ``rate``.

    :param rate: requests per second (> 0); e.g. ``0.5`` is one request every two seconds.
    :param burst: the bucket's capacity (>= 1).
    """

    rate: float
    burst: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _positive_number(self.rate, "rate", 0.0, inclusive=False))
        object.__setattr__(self, "burst", _positive_number(self.burst, "burst", 1.0, inclusive=True))

    @classmethod
    def per_minute(cls, requests: float, burst: float = 1.0) -> RateLimit:
        """``requests`` per minute."""
        return cls(rate=_positive_number(requests, "requests", 0.0, inclusive=False) / 60.0, burst=burst)

    @classmethod
    def coerce(cls, value: RateLimit | float | None) -> RateLimit | None:
        """A :class:`RateLimit` from a limit or a plain number of requests per second; None means no limit."""
        if value is None or isinstance(value, RateLimit):
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"A rate limit must be a RateLimit, a number or None, not {type(value).__name__}")
        return cls(rate=value)


#: What ``RequestHandler(rate_limit=...)`` accepts: one limit for every host, or limits by host.
RateLimitInput = RateLimit | float | Mapping[str, RateLimit | float | None] | None


class _Bucket:
    """One host's token bucket and the queue of tasks waiting behind its head."""

    __slots__ = ("burst", "busy", "rate", "tokens", "updated", "waiters")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.rate = limit.rate
        self.burst = limit.burst
        self.tokens = limit.burst  # a new bucket is full
        self.updated = now
        #: True while a task is at the head (reserving, waiting for its slot or preparing).
        self.busy = False
        #: Tasks queued behind the head, in arrival order (cancelled ones are skipped when the head leaves).
        self.waiters: deque[asyncio.Future[None]] = deque()

    def take(self, now: float) -> float:
        """Reserve one token; the seconds until it is available (0.0 when it is available now)."""
        wait, self.tokens, self.updated = kernels.bucket_take(self.tokens, self.updated, now, self.rate, self.burst)
        return wait

    def give_back(self) -> None:
        """Return the head's unused token (it is the only outstanding reservation, so its slot is free again)."""
        self.tokens += 1.0

    def release(self) -> None:
        """The head leaves: hand the head to the next live waiter, or mark the bucket free."""
        waiters = self.waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)  # `busy` stays True: the head passes straight to this waiter
                return
        self.busy = False

    def idle(self, now: float) -> bool:
        """True when the bucket is full again and nobody waits (so it is no different from a new one)."""
        return not self.busy and self.tokens + (now - self.updated) * self.rate >= self.burst

    def next_free(self, now: float) -> float:
        """Seconds until a token is available, ignoring the queue (0.0 when one is available now)."""
        available = min(self.burst, self.tokens + max(0.0, now - self.updated) * self.rate)
        return 0.0 if available >= 1.0 else (1.0 - available) / self.rate


def _parse_host(name: str) -> tuple[str, HostKey | tuple[str, int | None] | str]:
    """Classify a mapping key: ``("origin", key)``, ``("host_port", (host, port))`` or ``("host", host)``."""
    if not isinstance(name, str):
        raise TypeError(f"Rate limit hosts must be strings, not {type(name).__name__}")
    text = name.strip()
    try:
        url = URL(text) if "://" in text else URL(f"//{text}")
    except ValueError as exc:
        raise ValueError(f"Invalid host in rate limits: {name!r}") from exc
    host = url.host
    if not host or url.path not in ("", "/") or url.query_string or url.fragment or url.user or url.password:
        raise ValueError(f"Invalid host in rate limits: {name!r} (give 'host', 'host:port' or 'scheme://host[:port]')")
    host = host.lower()
    if "://" in text:
        return "origin", (url.scheme.lower(), host, url.port)
    port = url.explicit_port
    return ("host_port", (host, port)) if port is not None else ("host", host)


class HostRateLimiter:
    """Token buckets by host, for one :class:`~aiorequestful.request.RequestHandler`.

    ``limits`` is one limit for every host (a :class:`RateLimit`, or a number of requests per second), or a
    mapping from host to limit. Mapping keys are ``"scheme://host[:port]"``, ``"host:port"`` or ``"host"``
    (the most specific match wins) and ``"*"`` for every other host; a value of None means "no limit".
    Hosts are matched case-insensitively; a URL without an explicit port uses its scheme's default port.
    """

    __slots__ = ("_buckets", "_by_host", "_by_host_port", "_by_origin", "_default", "_prune_at")

    def __init__(self, limits: RateLimitInput = None) -> None:
        self._default: RateLimit | None = None
        self._by_origin: dict[HostKey, RateLimit | None] = {}
        self._by_host_port: dict[tuple[str, int | None], RateLimit | None] = {}
        self._by_host: dict[str, RateLimit | None] = {}
        self._buckets: dict[HostKey, _Bucket | None] = {}
        self._prune_at = _PRUNE_AT
        if isinstance(limits, Mapping):
            for name, limit in limits.items():
                self.set_limit(name, limit)
        else:
            self._default = RateLimit.coerce(limits)

    # ----------------------------------------------------------------------------------------------
    # configuration
    # ----------------------------------------------------------------------------------------------
    def set_limit(self, host: str, limit: RateLimit | float | None) -> None:
        """Set (or, with None, lift) the limit of ``host`` (a mapping key as above; ``"*"`` = every other host).

        Takes effect for the next reservation; waiters already queued keep their slots.
        """
        value = RateLimit.coerce(limit)
        if isinstance(host, str) and host.strip() == DEFAULT_HOST:
            self._default = value
        else:
            kind, key = _parse_host(host)
            if kind == "origin":
                self._by_origin[key] = value  # type: ignore[index]
            elif kind == "host_port":
                self._by_host_port[key] = value  # type: ignore[index]
            else:
                self._by_host[key] = value  # type: ignore[index]
        # Re-resolve the hosts seen so far; a bucket keeps its state but takes the new rate and burst.
        now = _now()
        for key, bucket in list(self._buckets.items()):
            new = self.limit_for(key)
            if new is None:
                self._buckets[key] = None
            elif bucket is None:
                self._buckets[key] = _Bucket(new, now)
            else:
                bucket.rate, bucket.burst = new.rate, new.burst

    def limit_for(self, key: HostKey) -> RateLimit | None:
        """The limit that applies to the host ``(scheme, host, port)``, or None when it is not limited."""
        if key in self._by_origin:
            return self._by_origin[key]
        _scheme, host, port = key
        if (host, port) in self._by_host_port:
            return self._by_host_port[(host, port)]  # type: ignore[index]
        if host in self._by_host:
            return self._by_host[host]
        return self._default

    @property
    def limited(self) -> bool:
        """False when no host has a limit (the limiter is then a no-op)."""
        return self._default is not None or any(
            v is not None for d in (self._by_origin, self._by_host_port, self._by_host) for v in d.values()
        )

    # ----------------------------------------------------------------------------------------------
    # reservations
    # ----------------------------------------------------------------------------------------------
    def _bucket(self, key: HostKey, now: float) -> _Bucket | None:
        try:
            return self._buckets[key]
        except KeyError:
            pass
        if len(self._buckets) >= self._prune_at:
            self._prune(now)
        limit = self.limit_for(key)
        bucket = None if limit is None else _Bucket(limit, now)
        self._buckets[key] = bucket
        return bucket

    def _prune(self, now: float) -> None:
        self._buckets = {k: b for k, b in self._buckets.items() if b is not None and not b.idle(now)}
        self._prune_at = max(_PRUNE_AT, 2 * len(self._buckets))

    def delay(self, key: HostKey) -> float:
        """Seconds until a token of ``key``'s bucket is available (queued tasks not counted; nothing reserved)."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.next_free(_now())

    def queued(self, key: HostKey) -> int:
        """How many tasks wait behind the head of ``key``'s queue (cancelled ones may still be counted)."""
        bucket = self._buckets.get(key)
        return 0 if bucket is None else len(bucket.waiters)

    async def acquire(self, key: HostKey, prepare: Callable[[], Awaitable[float]] | None = None) -> float:
        """Wait for this task's turn on ``key``'s bucket; returns the seconds waited for the rate limit.

        :param prepare: awaited at the head of the queue before a token is taken, and again when the slot comes;
            it returns the seconds it spent waiting (not counted in the result). When it waited after the slot
            came, the token is returned and a new one taken, so a pause never lets a backlog through at once.
            An exception it raises leaves the queue in order and propagates.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        bucket = self._bucket(key, start)
        if bucket is None:
            if prepare is not None:
                await prepare()
            return 0.0
        queued = bucket.busy
        if queued:
            future: asyncio.Future[None] = loop.create_future()
            bucket.waiters.append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    bucket.release()  # made head just as it was cancelled: pass the head on
                raise
        else:
            bucket.busy = True
        prepared = 0.0
        slept = False
        try:
            while True:
                if prepare is not None:
                    prepared += await prepare()
                now = loop.time()
                wait = bucket.take(now)
                if wait <= 0.0:
                    break
                slept = True
                slot = now + wait
                try:
                    await sleep_until(loop, slot)
                except asyncio.CancelledError:
                    if loop.time() < slot:
                        bucket.give_back()
                    raise
                if prepare is None:
                    break
                paused = await prepare()
                if not paused:
                    break
                # Something (a host pause) held this task after its slot: the token went unused.
                prepared += paused
                bucket.give_back()
        finally:
            bucket.release()
        if not (queued or slept):
            return 0.0  # a token was there: no wait at all
        return max(0.0, loop.time() - start - prepared)

    def __repr__(self) -> str:
        parts = [f"{DEFAULT_HOST!r}: {self._default!r}"] if self._default is not None else []
        parts += [f"{format_host(k)!r}: {v!r}" for k, v in self._by_origin.items()]
        parts += [f"'{h}:{p}': {v!r}" for (h, p), v in self._by_host_port.items()]
        parts += [f"{h!r}: {v!r}" for h, v in self._by_host.items()]
        return f"{type(self).__name__}({{{', '.join(parts)}}})"
