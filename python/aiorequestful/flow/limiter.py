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
from typing import Any, Generic, TypeVar

from yarl import URL

from .._backend import kernels
from ..exception import RequestError
from ..security import redact_url
from ._hosts import HostKey, format_host

__all__ = (
    "DEFAULT_HOST",
    "HostRateLimiter",
    "RateLimit",
    "RateLimitInput",
    "RateLimitWaitError",
    "RateLimits",
    "RateWindow",
)

V = TypeVar("V")

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
    def per_hour(cls, requests: float, burst: float = 1.0) -> RateLimit:
        """``requests`` per hour."""
        return cls(rate=_positive_number(requests, "requests", 0.0, inclusive=False) / 3600.0, burst=burst)

    @classmethod
    def coerce(cls, value: RateLimit | float | None) -> RateLimit | None:
        """A :class:`RateLimit` from a limit or a plain number of requests per second; None means no limit."""
        if value is None or isinstance(value, RateLimit):
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"A rate limit must be a RateLimit, a number or None, not {type(value).__name__}")
        return cls(rate=value)

    def describe(self) -> str:
        """The limit in words, for messages: ``10 requests per second (burst 1)``."""
        return f"{self.rate:g} requests per second (burst {self.burst:g})"


@dataclass(frozen=True, slots=True)
class RateWindow:
    """At most ``requests`` requests in any ``seconds`` seconds (a sliding window, exact at every instant).

    Unlike a token bucket of the same average rate, a window never lets more than ``requests`` through in any
    stretch of ``seconds``: it is the form in which APIs state quotas ("5,000 requests per hour"). Combine it
    with a :class:`RateLimit` in :class:`RateLimits` to allow short bursts within a long quota. It remembers
    the time of each of the last ``requests`` requests to a host (8 bytes each).

    :param requests: the most requests allowed in the window (an integer >= 1).
    :param seconds: the window's length (> 0).
    """

    requests: int
    seconds: float

    def __post_init__(self) -> None:
        requests = self.requests
        if isinstance(requests, bool) or not isinstance(requests, numbers.Integral):
            raise TypeError(f"requests must be an integer, not {type(requests).__name__}")
        if requests < 1:
            raise ValueError(f"requests must be at least 1, not {requests!r}")
        object.__setattr__(self, "requests", int(requests))
        object.__setattr__(self, "seconds", _positive_number(self.seconds, "seconds", 0.0, inclusive=False))

    def describe(self) -> str:
        """The window in words, for messages: ``5000 requests per 3600 seconds``."""
        return f"{self.requests} requests per {self.seconds:g} seconds"


@dataclass(frozen=True, slots=True, init=False)
class RateLimits:
    """Several limits on one host, all enforced at once: e.g. ``RateLimits(10, RateWindow(5000, 3600))``
    allows 10 requests per second *and* at most 5,000 in any hour.

    A request goes when every part allows it. Parts are :class:`RateLimit` (or a number of requests per
    second) and :class:`RateWindow`.
    """

    parts: tuple[RateLimit | RateWindow, ...]

    def __init__(self, *parts: RateLimit | RateWindow | float) -> None:
        coerced: list[RateLimit | RateWindow] = []
        for part in parts:
            if isinstance(part, RateWindow):
                coerced.append(part)
            else:
                limit = RateLimit.coerce(part)
                if limit is None:
                    raise TypeError("RateLimits parts must be RateLimit, RateWindow or numbers, not None")
                coerced.append(limit)
        if not coerced:
            raise ValueError("RateLimits needs at least one RateLimit or RateWindow")
        object.__setattr__(self, "parts", tuple(coerced))

    def describe(self) -> str:
        """The limits in words, for messages."""
        return " and ".join(part.describe() for part in self.parts)


#: One host's limit, as :meth:`HostRateLimiter.limit_for` returns it.
HostLimit = RateLimit | RateLimits

#: What a host's limit may be given as: a limit, a number of requests per second, a window, several of them (a
#: list or tuple is read as :class:`RateLimits`), or None for no limit.
LimitValue = RateLimit | RateLimits | RateWindow | float | list[Any] | tuple[Any, ...] | None

#: What ``RequestHandler(rate_limit=...)`` accepts: one limit for every host, or limits by host.
RateLimitInput = LimitValue | Mapping[str, LimitValue]


def coerce_limit(value: Any) -> HostLimit | None:
    """A host's limit from any :data:`LimitValue`: a :class:`RateLimit`, a :class:`RateLimits` or None."""
    if isinstance(value, RateLimits):
        return value
    if isinstance(value, RateWindow):
        return RateLimits(value)
    if isinstance(value, (list, tuple)):
        if len(value) == 1 and not isinstance(value[0], RateWindow):
            return RateLimit.coerce(value[0])
        return RateLimits(*value)
    return RateLimit.coerce(value)


class RateLimitWaitError(RequestError):
    """A request was not sent because its turn under a host's rate limit is further away than ``max_wait``.

    Raised at once, instead of sleeping, when the wait the limiter can foresee (the queue ahead of the request,
    the windows, a ``Crawl-delay``, a rate-limit header's reset) exceeds the bound. Not retried.

    :ivar host: the host, ``scheme://host:port``.
    :ivar limit: which limit set the wait, in words.
    :ivar wait: the seconds the request would have waited (at least).
    :ivar max_wait: the bound it was judged by.
    :ivar method: the request's method, when known.
    :ivar url: the request's URL with secrets masked, when known.
    """

    def __init__(
        self,
        host: str,
        limit: str,
        wait: float,
        max_wait: float,
        method: str | None = None,
        url: Any = None,
        bound: str = "max_wait",
    ) -> None:
        self.host = host
        self.limit = limit
        self.wait = wait
        self.max_wait = max_wait
        self.method = method
        self.url = None if url is None else redact_url(url)
        #: What ``max_wait`` is: ``"max_wait"`` or ``"the remaining retry budget"``.
        self.bound = bound
        request = f"{method} {self.url}" if method and url is not None else (self.url or host)
        super().__init__(
            f"{request} would wait at least {wait:.2f} seconds for {host} ({limit}), longer than {bound} of "
            f"{max_wait:.2f} seconds; the request was not sent"
        )

    def for_request(self, method: str, url: Any, bound: str | None = None) -> RateLimitWaitError:
        """The same error, naming the request (and what the bound was)."""
        return RateLimitWaitError(
            self.host, self.limit, self.wait, self.max_wait, method, url, self.bound if bound is None else bound
        )


class _TokenPart:
    """A token bucket: ``rate`` per second up to ``burst``, starting full (the ``bucket_take`` kernel's state)."""

    __slots__ = ("burst", "label", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float, label: str) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now
        self.label = label

    def take(self, now: float) -> float:
        """Reserve one token now; the seconds until it is available (the count may go negative)."""
        wait, self.tokens, self.updated = kernels.bucket_take(self.tokens, self.updated, now, self.rate, self.burst)
        return wait

    def record(self, at: float) -> None:
        """Take one token at ``at`` (a time at or after the one :meth:`wait_for` gave, so it is there)."""
        _, self.tokens, self.updated = kernels.bucket_take(self.tokens, self.updated, at, self.rate, self.burst)

    def unrecord(self) -> None:
        self.tokens += 1.0

    def wait_for(self, now: float, ahead: int) -> float:
        """Seconds until a token is available for a request with ``ahead`` requests before it (at least)."""
        # ``updated`` may lie ahead (a reservation recorded at its slot): the count is then lower now than then.
        available = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        need = ahead + 1.0 - available
        return 0.0 if need <= 0.0 else need / self.rate

    def idle(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.rate >= self.burst


class _WindowPart:
    """A sliding window: the times of the last ``requests`` requests; the next may go ``seconds`` after the
    oldest of them."""

    __slots__ = ("_dropped", "label", "requests", "seconds", "times")

    def __init__(self, window: RateWindow) -> None:
        self.requests = window.requests
        self.seconds = window.seconds
        self.times: deque[float] = deque()
        self._dropped: float | None = None
        self.label = window.describe()

    def record(self, at: float) -> None:
        times = self.times
        self._dropped = times.popleft() if len(times) >= self.requests else None
        times.append(at)

    def unrecord(self) -> None:
        # Only the head's reservation is ever returned, and it is the newest: restore the time it pushed out.
        if self.times:
            self.times.pop()
        if self._dropped is not None:
            self.times.appendleft(self._dropped)
            self._dropped = None

    def wait_for(self, now: float, ahead: int) -> float:
        """Seconds until a request with ``ahead`` requests before it may go (at least).

        Request number ``m`` (counting the remembered ones first) may go no sooner than ``seconds`` after
        request ``m - requests``; followed back to a remembered time, that bounds it from below.
        """
        times, size, count = self.times, self.requests, len(self.times)
        index = count + ahead - size
        if index < 0:
            return 0.0
        windows = 1
        if index >= count:
            steps = (index - count) // size + 1
            index -= steps * size
            windows += steps
        at = times[index] + windows * self.seconds if index >= 0 else now + (windows - 1) * self.seconds
        return max(0.0, at - now)

    def idle(self, now: float) -> bool:
        return not self.times or self.times[-1] + self.seconds <= now


_Part = _TokenPart | _WindowPart


def _make_parts(limit: HostLimit | None, now: float) -> list[_Part]:
    if limit is None:
        return []
    if isinstance(limit, RateLimit):
        return [_TokenPart(limit.rate, limit.burst, now, limit.describe())]
    return [
        _TokenPart(part.rate, part.burst, now, part.describe()) if isinstance(part, RateLimit) else _WindowPart(part)
        for part in limit.parts
    ]


class _Bucket:
    """One host's limits (token buckets and windows), its pace and hold, and the queue behind its head.

    The *pace* is an extra token bucket of burst 1 at the slowest rate asked for by a ``Crawl-delay`` or the
    adaptive throttle; the *hold* is a time before which nothing goes (a rate-limit header's reset).
    """

    __slots__ = ("busy", "hold", "hold_reason", "limit", "pace", "parts", "waiters")

    def __init__(self, limit: HostLimit | None, now: float) -> None:
        self.limit = limit
        self.parts: list[_Part] = _make_parts(limit, now)
        self.pace: _TokenPart | None = None
        self.hold = -math.inf
        self.hold_reason = ""
        #: True while a task is at the head (reserving, waiting for its slot or preparing).
        self.busy = False
        #: Tasks queued behind the head, in arrival order (cancelled ones are skipped when the head leaves).
        self.waiters: deque[asyncio.Future[None]] = deque()

    def set_limit(self, limit: HostLimit | None, now: float) -> None:
        """Take a new limit: a single bucket keeps its state with the new rate and burst; anything else starts
        afresh."""
        old = self.limit
        self.limit = limit
        if isinstance(limit, RateLimit) and isinstance(old, RateLimit) and isinstance(self.parts[0], _TokenPart):
            part = self.parts[0]
            part.rate, part.burst, part.label = limit.rate, limit.burst, limit.describe()
        elif limit != old:
            self.parts = _make_parts(limit, now)

    def set_pace(self, rate: float | None, label: str, now: float) -> None:
        if rate is None:
            self.pace = None
        elif self.pace is None:
            self.pace = _TokenPart(rate, 1.0, now, label)
        else:
            self.pace.rate, self.pace.label = rate, label

    def simple(self, now: float) -> bool:
        """One token bucket and nothing else in force: the kernel's reservation alone decides."""
        if len(self.parts) != 1 or self.pace is not None or self.hold > now:
            return False
        part = self.parts[0]
        # The kernel counts from ``updated``: one recorded at a slot still ahead is the general path's to judge.
        return type(part) is _TokenPart and part.updated <= now

    def take(self, now: float) -> float:
        """Reserve one token of the single bucket (see :meth:`simple`); the seconds until it is available."""
        part = self.parts[0]
        assert isinstance(part, _TokenPart)
        return part.take(now)

    def wait_for(self, now: float, ahead: int = 0) -> tuple[float, str]:
        """Seconds until every limit lets a request with ``ahead`` requests before it go (a lower bound when
        ``ahead`` > 0), and which limit decides."""
        wait, label = 0.0, ""
        for part in self.parts:
            part_wait = part.wait_for(now, ahead)
            if part_wait > wait:
                wait, label = part_wait, part.label
        if self.pace is not None:
            part_wait = self.pace.wait_for(now, ahead)
            if part_wait > wait:
                wait, label = part_wait, self.pace.label
        if self.hold - now > wait:
            wait, label = self.hold - now, self.hold_reason
        return wait, label

    def commit(self, at: float) -> None:
        """Record the head's request as sent at ``at`` in every limit."""
        for part in self.parts:
            part.record(at)
        if self.pace is not None:
            self.pace.record(at)

    def give_back(self) -> None:
        """Return the head's unused reservation (it is the only outstanding one, so its slot is free again)."""
        for part in self.parts:
            part.unrecord()
        if self.pace is not None:
            self.pace.unrecord()

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
        """True when every limit is full again and nobody waits (so the bucket is no different from a new one)."""
        return (
            not self.busy
            and self.hold <= now
            and all(part.idle(now) for part in self.parts)
            and (self.pace is None or self.pace.idle(now))
        )

    def next_free(self, now: float) -> float:
        """Seconds until a request may go, ignoring the queue (0.0 when one may go now)."""
        return self.wait_for(now)[0]


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


class HostTable(Generic[V]):
    """Values by host, as a mapping of flow-control settings names them: ``"scheme://host[:port]"``,
    ``"host:port"``, ``"host"`` and ``"*"`` (every other host); the most specific name that matches wins. None is
    a value too ("nothing for this host"). Shared by the rate limits and the concurrency caps."""

    __slots__ = ("_by_host", "_by_host_port", "_by_origin", "default")

    def __init__(self) -> None:
        #: The value of every host no other name matches.
        self.default: V | None = None
        self._by_origin: dict[HostKey, V | None] = {}
        self._by_host_port: dict[tuple[str, int | None], V | None] = {}
        self._by_host: dict[str, V | None] = {}

    def set(self, host: str, value: V | None) -> None:
        """Set the value of ``host`` (a name as above; a malformed one raises ``ValueError``/``TypeError``)."""
        if isinstance(host, str) and host.strip() == DEFAULT_HOST:
            self.default = value
            return
        kind, key = _parse_host(host)
        if kind == "origin":
            self._by_origin[key] = value  # type: ignore[index]
        elif kind == "host_port":
            self._by_host_port[key] = value  # type: ignore[index]
        else:
            self._by_host[key] = value  # type: ignore[index]

    def get(self, key: HostKey) -> V | None:
        """The value for the host ``(scheme, host, port)``: the most specific name's, else the default."""
        if key in self._by_origin:
            return self._by_origin[key]
        _scheme, host, port = key
        if (host, port) in self._by_host_port:
            return self._by_host_port[(host, port)]  # type: ignore[index]
        if host in self._by_host:
            return self._by_host[host]
        return self.default

    def any_set(self) -> bool:
        """Whether any host (the default included) has a value other than None."""
        return self.default is not None or any(
            v is not None for d in (self._by_origin, self._by_host_port, self._by_host) for v in d.values()
        )

    def describe(self) -> list[str]:
        """``'name': value`` for every name set, the default first (for a ``repr``)."""
        parts = [f"{DEFAULT_HOST!r}: {self.default!r}"] if self.default is not None else []
        parts += [f"{format_host(k)!r}: {v!r}" for k, v in self._by_origin.items()]
        parts += [f"'{h}:{p}': {v!r}" for (h, p), v in self._by_host_port.items()]
        parts += [f"{h!r}: {v!r}" for h, v in self._by_host.items()]
        return parts


class HostRateLimiter:
    """Token buckets by host, for one :class:`~aiorequestful.request.RequestHandler`.

    ``limits`` is one limit for every host (a :class:`RateLimit`, a number of requests per second, a
    :class:`RateWindow`, or several of them as a :class:`RateLimits` or a list), or a mapping from host to
    limit. Mapping keys are ``"scheme://host[:port]"``, ``"host:port"`` or ``"host"`` (the most specific match
    wins) and ``"*"`` for every other host; a value of None means "no limit".
    Hosts are matched case-insensitively; a URL without an explicit port uses its scheme's default port.

    Besides its configured limit, a host may be *paced* (:meth:`set_pace`: at most so many requests per second,
    e.g. a robots.txt ``Crawl-delay`` or the adaptive throttle) and *held* (:meth:`hold`: nothing before a given
    time, e.g. until a rate-limit header's reset). The slowest of them all decides.
    """

    __slots__ = ("_buckets", "_limits", "_paces", "_prune_at")

    def __init__(self, limits: RateLimitInput = None) -> None:
        self._limits: HostTable[HostLimit] = HostTable()
        self._buckets: dict[HostKey, _Bucket | None] = {}
        #: Host -> reason -> the most requests per second that reason allows (see set_pace).
        self._paces: dict[HostKey, dict[str, float]] = {}
        self._prune_at = _PRUNE_AT
        if isinstance(limits, Mapping):
            for name, limit in limits.items():
                self.set_limit(name, limit)
        else:
            self._limits.default = coerce_limit(limits)

    # ----------------------------------------------------------------------------------------------
    # configuration
    # ----------------------------------------------------------------------------------------------
    def set_limit(self, host: str, limit: LimitValue) -> None:
        """Set (or, with None, lift) the limit of ``host`` (a mapping key as above; ``"*"`` = every other host).

        Takes effect for the next reservation; waiters already queued keep their slots.
        """
        self._limits.set(host, coerce_limit(limit))
        # Re-resolve the hosts seen so far; a bucket keeps its state but takes the new rate and burst.
        now = _now()
        for key, bucket in list(self._buckets.items()):
            new = self.limit_for(key)
            if bucket is None:
                if new is not None:
                    self._buckets[key] = _Bucket(new, now)
            elif new is None and key not in self._paces and bucket.hold <= now:
                self._buckets[key] = None
            else:
                bucket.set_limit(new, now)

    def limit_for(self, key: HostKey) -> HostLimit | None:
        """The limit that applies to the host ``(scheme, host, port)``, or None when it is not limited."""
        return self._limits.get(key)

    @property
    def limited(self) -> bool:
        """False when no host has a limit (the limiter is then a no-op)."""
        return self._limits.any_set()

    def set_pace(self, key: HostKey, reason: str, rate: float | None) -> None:
        """Send to ``key`` at most ``rate`` requests per second (evenly spaced) for ``reason``; None lifts it.

        Each reason (e.g. ``"robots.txt Crawl-delay"``, ``"adaptive throttle"``) keeps its own rate and the
        slowest of them applies, on top of the host's configured limit.
        """
        if rate is not None:
            rate = _positive_number(rate, "rate", 0.0, inclusive=False)
        paces = self._paces.get(key)
        if rate is None:
            if paces is None or reason not in paces:
                return
            del paces[reason]
            if not paces:
                del self._paces[key]
        else:
            if paces is None:
                paces = self._paces[key] = {}
            paces[reason] = rate
        now = _now()
        bucket = self._bucket(key, now, force=rate is not None)
        if bucket is None:
            return
        pace, label = self._pace_for(key)
        bucket.set_pace(pace, label, now)

    def pace_for(self, key: HostKey, reason: str | None = None) -> float | None:
        """The pace in force for ``key`` (requests per second: the slowest of its reasons), or None; with
        ``reason``, the pace that reason asked for."""
        if reason is not None:
            paces = self._paces.get(key)
            return None if paces is None else paces.get(reason)
        return self._pace_for(key)[0]

    def _pace_for(self, key: HostKey) -> tuple[float | None, str]:
        paces = self._paces.get(key)
        if not paces:
            return None, ""
        reason = min(paces, key=paces.__getitem__)
        rate = paces[reason]
        return rate, f"{reason}: {rate:g} requests per second"

    def hold(self, key: HostKey, until: float, reason: str) -> None:
        """Send nothing to ``key`` before ``until`` (loop clock) for ``reason``; never shortens a hold in force."""
        now = _now()
        if until <= now:
            return
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._bucket(key, now, force=True)
            assert bucket is not None
        if until > bucket.hold:
            bucket.hold, bucket.hold_reason = until, reason

    def held_until(self, key: HostKey) -> float | None:
        """When the hold on ``key`` ends (loop clock), or None when it is not held."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.hold <= _now():
            return None
        return bucket.hold

    # ----------------------------------------------------------------------------------------------
    # reservations
    # ----------------------------------------------------------------------------------------------
    def _bucket(self, key: HostKey, now: float, force: bool = False) -> _Bucket | None:
        try:
            bucket = self._buckets[key]
        except KeyError:
            pass
        else:
            if bucket is not None or not force:
                return bucket
        if len(self._buckets) >= self._prune_at:
            self._prune(now)
        limit = self.limit_for(key)
        pace, label = self._pace_for(key)
        if limit is None and pace is None and not force:
            self._buckets[key] = None
            return None
        bucket = _Bucket(limit, now)
        if pace is not None:
            bucket.set_pace(pace, label, now)
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

    def projected_wait(self, key: HostKey) -> tuple[float, str]:
        """At least how long a request to ``key`` arriving now would wait (the queue ahead of it counted),
        and which limit decides; ``(0.0, "")`` when it would not wait."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0, ""
        now = _now()
        waiters = bucket.waiters
        wait, label = bucket.wait_for(now, len(waiters))
        if wait > 0.0 and waiters:
            # Cancelled waiters still sit in the queue until the head passes them: count only live ones, so the
            # bound stays a bound (it is only worth the walk when the answer may fail a request).
            wait, label = bucket.wait_for(now, sum(1 for f in waiters if not f.done()))
        return wait, label

    def _extras_wait(self, key: HostKey, now: float) -> tuple[float, str]:
        """Seconds until ``key``'s pace and hold (not its configured limit) let a request go, and which decides
        (for a limiter whose configured limit lives elsewhere, e.g. in Redis)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0, ""
        wait, label = 0.0, ""
        if bucket.pace is not None:
            wait, label = bucket.pace.wait_for(now, 0), bucket.pace.label
        if bucket.hold - now > wait:
            wait, label = bucket.hold - now, bucket.hold_reason
        return wait, label

    def _extras_commit(self, key: HostKey, at: float) -> None:
        """Record a request sent at ``at`` in ``key``'s pace."""
        bucket = self._buckets.get(key)
        if bucket is not None and bucket.pace is not None:
            bucket.pace.record(at)

    def _too_long(self, key: HostKey, wait: float, label: str, max_wait: float) -> RateLimitWaitError:
        return RateLimitWaitError(format_host(key), label or "rate limit", wait, max_wait)

    async def acquire(
        self,
        key: HostKey,
        prepare: Callable[[], Awaitable[float]] | None = None,
        *,
        max_wait: float | None = None,
    ) -> float:
        """Wait for this task's turn on ``key``'s bucket; returns the seconds waited for the rate limit.

        :param prepare: awaited at the head of the queue before a token is taken, and again when the slot comes;
            it returns the seconds it spent waiting (not counted in the result). When it waited after the slot
            came, the token is returned and a new one taken, so a pause never lets a backlog through at once.
            An exception it raises leaves the queue in order and propagates.
        :param max_wait: the most seconds this task may wait for the rate limit. When the wait it can foresee is
            longer (on arrival: the queue ahead and every limit; at the head: the exact slot),
            :class:`RateLimitWaitError` is raised at once instead, and nothing is reserved.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        bucket = self._bucket(key, start)
        if bucket is None:
            if prepare is not None:
                await prepare()
            return 0.0
        if max_wait is not None:
            wait, label = self.projected_wait(key)
            if wait > max_wait:
                raise self._too_long(key, wait, label, max_wait)
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
                if max_wait is None and bucket.simple(now):
                    wait = bucket.take(now)
                else:
                    # Every limit is asked when the request could go, and the request is recorded in each at
                    # that time: a limit whose own turn came earlier must not count it as sent before it is.
                    wait, label = bucket.wait_for(now)
                    if max_wait is not None:
                        spent = max(0.0, now - start - prepared)
                        if spent + wait > max_wait:
                            raise self._too_long(key, spent + wait, label, max_wait)
                    bucket.commit(now + wait)
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
        return f"{type(self).__name__}({{{', '.join(self._limits.describe())}}})"
