# SPDX-License-Identifier: MIT
"""Request metrics and hooks for :class:`~aiorequestful.request.RequestHandler`.

``handler.stats`` is an immutable :class:`RequestStats` snapshot; ``handler.hooks`` holds lists of callbacks
for users who export to their own monitoring. Counting is a few integer additions per attempt, so it is
always on; a hook that raises is logged and never breaks a request.

The counters add up (checked by :meth:`RequestStats.check`):

* ``requests == sum(responses.values()) + errors``: every attempt that finished ended with a response or a
  transport error (an attempt cancelled while in flight is in neither, nor in ``requests``);
* ``calls == successes + failures + cancelled`` once no call is in flight;
* ``coalesced`` calls shared another call's request; when every call succeeded,
  ``requests == calls - coalesced + retries + resends``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

logger = logging.getLogger(__name__)

#: Reasons passed to ``on_wait`` hooks and accumulated per reason in ``RequestStats.wait_seconds_by_reason``.
WAIT_RETRY = "retry"  # the retry timer between failed attempts
WAIT_TIMER = "wait_timer"  # the handler's wait timer after every attempt
WAIT_STATUS = "status_handler"  # time a status handler spent before asking to resend (e.g. 429 Retry-After)
WAIT_RATE_LIMIT = "rate_limit"  # a per-host token bucket (flow control)
WAIT_PAUSE = "pause"  # a host-wide Retry-After pause (flow control)


@dataclass(frozen=True, slots=True)
class RequestStats:
    """A snapshot of what one handler has done since it was created (or since ``reset_stats()``)."""

    #: ``request()`` calls made.
    calls: int = 0
    #: Attempts that finished (cache hits included): each ended with a response or a transport error.
    requests: int = 0
    #: Responses received by status class: ``{"2xx": n, "4xx": m, ...}``.
    responses: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))
    #: Retry steps taken after a failed attempt.
    retries: int = 0
    #: Attempts sent again because a status handler asked (a 401 re-authorisation, a 429 ``Retry-After`` wait).
    resends: int = 0
    #: Attempts that failed in transport (connection errors, resets, time-outs) or could not be sent.
    errors: int = 0
    #: ``request()`` calls that ended in an exception.
    failures: int = 0
    #: ``request()`` calls that were cancelled before they finished.
    cancelled: int = 0
    #: ``request()`` calls answered by an identical concurrent call's request (``coalesce=True``).
    coalesced: int = 0
    #: Responses served from the cache / fetched from the network by a cached session.
    cache_hits: int = 0
    cache_misses: int = 0
    #: With an HTTP caching policy: stored responses the origin confirmed with ``304 Not Modified`` (neither hits
    #: nor misses), and hits that were stale (served while revalidating, or because the origin failed).
    cache_revalidations: int = 0
    cache_stale: int = 0
    #: Body bytes received from the network (cache hits excluded).
    bytes_received: int = 0
    #: Seconds spent waiting, in total and by reason (see the ``WAIT_*`` constants).
    wait_seconds: float = 0.0
    wait_seconds_by_reason: MappingProxyType[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def successes(self) -> int:
        """``request()`` calls that returned a payload (calls still in flight are counted here too)."""
        return self.calls - self.failures - self.cancelled

    def check(self) -> None:
        """Raise ``AssertionError`` naming the first counter that does not add up (see the module docs)."""
        answered = sum(self.responses.values())
        if self.requests != answered + self.errors:
            raise AssertionError(f"requests ({self.requests}) != responses ({answered}) + errors ({self.errors})")
        if self.cache_hits + self.cache_misses + self.cache_revalidations > answered:
            raise AssertionError("more cache look-ups than responses")
        if self.cache_stale > self.cache_hits:
            raise AssertionError("more stale cache hits than cache hits")
        if min(self.calls, self.requests, self.retries, self.resends, self.errors, self.failures) < 0:
            raise AssertionError("a counter is negative")
        if self.failures + self.cancelled > self.calls or self.coalesced > self.calls:
            raise AssertionError("more failed, cancelled or coalesced calls than calls")

    @property
    def cache_hit_rate(self) -> float:
        """Cache hits over cache look-ups (0.0 with no look-ups)."""
        looked_up = self.cache_hits + self.cache_misses
        return self.cache_hits / looked_up if looked_up else 0.0


Hook = Callable[..., Any]

#: "0xx" ... "9xx", made once (a response's class is looked up on every attempt).
_STATUS_CLASSES = tuple(f"{hundreds}xx" for hundreds in range(10))


class RequestHooks:
    """Callbacks called synchronously from the request loop; keep them fast.

    * ``on_request(method: str, url: URL)`` before every attempt;
    * ``on_response(method: str, url: URL, status: int, from_cache: bool)`` for every response;
    * ``on_retry(method: str, url: URL, delay: float, cause: BaseException | int)`` before a retry sleep
      (``cause`` is the transport exception or the failed status code);
    * ``on_wait(reason: str, seconds: float, url: URL | None)`` after any wait (see the ``WAIT_*`` reasons).

    And one kind that is not a plain callback: ``around_call(proceed, method: str, url, params)``, a coroutine
    function that wraps each whole call (``request()``/``get()``..., or a request through the handler's
    middleware) and must return ``await proceed()``: tracing opens its span there. The first in the list is the
    outermost.
    """

    __slots__ = ("around_call", "on_request", "on_response", "on_retry", "on_wait")

    def __init__(self) -> None:
        self.around_call: list[Hook] = []
        self.on_request: list[Hook] = []
        self.on_response: list[Hook] = []
        self.on_retry: list[Hook] = []
        self.on_wait: list[Hook] = []


def call_hooks(hooks: list[Hook], *args: Any) -> None:
    """Call every hook; one that raises is logged (once per call) and the request carries on."""
    for hook in hooks:
        try:
            hook(*args)
        except Exception:
            logger.exception("Request hook %r raised; ignoring it", hook)


class StatsRecorder:
    """The mutable counters behind :class:`RequestStats` (one per handler)."""

    __slots__ = (
        "bytes_received",
        "cache_hits",
        "cache_misses",
        "cache_revalidations",
        "cache_stale",
        "calls",
        "cancelled",
        "coalesced",
        "errors",
        "failures",
        "requests",
        "resends",
        "responses",
        "retries",
        "wait_seconds",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.requests = 0
        self.responses: dict[str, int] = {}
        self.retries = 0
        self.resends = 0
        self.errors = 0
        self.failures = 0
        self.cancelled = 0
        self.coalesced = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.cache_revalidations = 0
        self.cache_stale = 0
        self.bytes_received = 0
        self.wait_seconds: dict[str, float] = {}

    def reset(self) -> None:
        """Every counter back to zero, in place (the parts that hold this recorder keep counting into it)."""
        self.__init__()  # type: ignore[misc]

    def response(self, status: int) -> None:
        """One finished attempt that got a response."""
        self.requests += 1
        hundreds = status // 100
        key = _STATUS_CLASSES[hundreds] if 0 <= hundreds < 10 else f"{hundreds}xx"
        self.responses[key] = self.responses.get(key, 0) + 1

    def error(self) -> None:
        """One finished attempt that failed in transport."""
        self.requests += 1
        self.errors += 1

    def waited(self, reason: str, seconds: float) -> None:
        self.wait_seconds[reason] = self.wait_seconds.get(reason, 0.0) + seconds

    def snapshot(self) -> RequestStats:
        return RequestStats(
            calls=self.calls,
            requests=self.requests,
            responses=MappingProxyType(dict(sorted(self.responses.items()))),
            retries=self.retries,
            resends=self.resends,
            errors=self.errors,
            failures=self.failures,
            cancelled=self.cancelled,
            coalesced=self.coalesced,
            cache_hits=self.cache_hits,
            cache_misses=self.cache_misses,
            cache_revalidations=self.cache_revalidations,
            cache_stale=self.cache_stale,
            bytes_received=self.bytes_received,
            wait_seconds=sum(self.wait_seconds.values()),
            wait_seconds_by_reason=MappingProxyType(dict(self.wait_seconds)),
        )


__all__ = [
    "WAIT_PAUSE",
    "WAIT_RATE_LIMIT",
    "WAIT_RETRY",
    "WAIT_STATUS",
    "WAIT_TIMER",
    "RequestHooks",
    "RequestStats",
    "StatsRecorder",
    "call_hooks",
]
