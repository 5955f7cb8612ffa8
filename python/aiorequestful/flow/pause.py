# SPDX-License-Identifier: MIT
"""Host-wide pauses: a 429 or 503 with ``Retry-After`` stops every task of a handler from sending to that host
until the time the server asked for.

The task that saw the response waits as before (``RateLimitStatusHandler`` for 429, the retry step for 503); the
pause recorded here makes every *other* task wait too before its next attempt, instead of each one hitting the
server and backing off alone. Waiting out a pause does not spend a request's retry budget, but a request whose
remaining retry budget is shorter than the pause fails fast rather than waiting for nothing.

The ``Retry-After`` value is parsed leniently (delay-seconds or an HTTP-date; surrounding whitespace ignored; a
negative number or a past date means no pause; garbage is ignored). A value longer than the cap (``max_pause``,
or the tighter cap of the status handler that waits out the response) is not recorded at all: the request that
got it fails as it would without pauses (the 429 handler refuses a wait over its ``max_retry_after``), and
every later request to the host is sent and judges its own response. Recording the cap instead would let one
absurd value stop the host (and, shared through Redis, the whole fleet) for the cap, an hour by default.
"""

from __future__ import annotations

import asyncio
import math
import numbers
import time
from collections.abc import Mapping
from typing import Any

from ..response._retry_after import parse_retry_after
from ..response.status import DEFAULT_MAX_RETRY_AFTER
from ._hosts import HostKey

__all__ = ("PAUSE_STATUSES", "HostPause", "HostPauses", "remaining_budget")

#: Responses whose ``Retry-After`` pauses the whole host.
PAUSE_STATUSES: frozenset[int] = frozenset({429, 503})

# Expired pauses are swept when the map reaches this size (and then again at twice the size left).
_PRUNE_AT = 256


def _now() -> float:
    """The running loop's clock (the one ``asyncio.sleep`` schedules with), else ``time.monotonic``."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class HostPause:
    """One host's pause: ``until`` (loop clock), the ``status`` that asked for it and the ``seconds`` asked."""

    __slots__ = ("seconds", "status", "until")

    def __init__(self, until: float, status: int | None, seconds: float) -> None:
        self.until = until
        self.status = status
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"{type(self).__name__}(until={self.until!r}, status={self.status!r}, seconds={self.seconds!r})"


class HostPauses:
    """The pauses of one handler's hosts, keyed by ``(scheme, host, port)``.

    :param max_pause: the longest pause accepted from a ``Retry-After`` value, in seconds (default one hour,
        as ``RateLimitStatusHandler.max_retry_after``). A longer value pauses nothing: a server that asks for
        more than the cap is not believed, so it is not allowed to stop every other request to the host for the
        cap either (the request that saw it is judged by its status handler, which refuses such a wait).
    """

    __slots__ = ("_pauses", "_prune_at", "max_pause")

    def __init__(self, max_pause: float = DEFAULT_MAX_RETRY_AFTER) -> None:
        if isinstance(max_pause, bool) or not isinstance(max_pause, numbers.Real):
            raise TypeError(f"max_pause must be a number, not {type(max_pause).__name__}")
        if math.isnan(max_pause) or max_pause < 0:
            raise ValueError(f"max_pause must be a non-negative number of seconds, not {max_pause!r}")
        self.max_pause: float = float(max_pause)
        self._pauses: dict[HostKey, HostPause] = {}
        self._prune_at: int = _PRUNE_AT

    def pause(
        self, key: HostKey, seconds: float, status: int | None = None, *, cap: float | None = None
    ) -> float | None:
        """Pause ``key`` for ``seconds`` from now, unless that is longer than ``cap`` or ``max_pause``.

        A pause never shortens one already in force. Returns the time (loop clock) this call asked to pause
        until, or None when nothing was recorded: ``seconds`` asks for no pause (zero, negative or NaN) or for
        more than the cap (an unbelievable value pauses nobody else; see the class docstring).
        """
        limit = self.max_pause
        if cap is not None and cap < limit:
            limit = float(cap)
        seconds = float(seconds)
        if not seconds > 0.0 or seconds > limit:
            return None
        return self._record(key, seconds, status)

    def _record(self, key: HostKey, seconds: float, status: int | None) -> float:
        """Record a pause of ``seconds`` (already judged acceptable) unless a longer one is in force."""
        now = _now()
        until = now + seconds
        current = self._pauses.get(key)
        if current is None or until > current.until:
            if current is None and len(self._pauses) >= self._prune_at:
                self._prune(now)
            self._pauses[key] = HostPause(until, status, seconds)
        return until

    def pause_for(
        self, key: HostKey, status: int, headers: Mapping[str, str], *, cap: float | None = None
    ) -> float | None:
        """Pause ``key`` as a response's ``Retry-After`` header asks (see :meth:`pause` for the result).

        A missing, unusable, negative or past value pauses nothing (None).
        """
        value = headers.get("Retry-After")
        if not isinstance(value, str):
            return None
        seconds = parse_retry_after(value)
        if seconds is None:
            return None
        return self.pause(key, seconds, status, cap=cap)

    def get(self, key: HostKey) -> HostPause | None:
        """The pause in force for ``key``, or None (an expired pause is forgotten here)."""
        pause = self._pauses.get(key)
        if pause is None:
            return None
        if pause.until <= _now():
            del self._pauses[key]
            return None
        return pause

    def remaining(self, key: HostKey) -> float:
        """Seconds until ``key`` may be sent to again (0.0 when it is not paused)."""
        pause = self.get(key)
        return 0.0 if pause is None else max(0.0, pause.until - _now())

    def resume(self, key: HostKey) -> None:
        """Lift ``key``'s pause at once (tasks already waiting finish their current sleep)."""
        self._pauses.pop(key, None)

    def _prune(self, now: float) -> None:
        self._pauses = {k: p for k, p in self._pauses.items() if p.until > now}
        self._prune_at = max(_PRUNE_AT, 2 * len(self._pauses))

    def __len__(self) -> int:
        now = _now()
        return sum(1 for p in self._pauses.values() if p.until > now)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_pause={self.max_pause!r}, paused={len(self)})"


def remaining_budget(retry_timer: Any) -> float | None:
    """The seconds a request may still spend waiting: its retry timer's ``total_remaining``.

    None means unbounded (an unbounded timer, or a schedule too long to sum); a request without a retry timer,
    or whose retries are spent, has no budget (0.0).
    """
    if retry_timer is None or not retry_timer.can_increase:
        return 0.0
    try:
        total = retry_timer.total_remaining
    except ValueError:  # a schedule longer than the kernel sums: treat as unbounded, as the 429 handler does
        return None
    if total is None:
        return None
    try:
        return float(total)
    except OverflowError:
        return math.inf
