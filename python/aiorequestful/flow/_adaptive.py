# SPDX-License-Identifier: MIT
"""Adaptive throttling per host: find the rate a server tolerates, and keep just under it (``adaptive=``)."""

from __future__ import annotations

import math
import numbers
from collections import deque
from typing import Any

from ._hosts import HostKey

__all__ = ("ADAPTIVE_STATUSES", "AdaptiveThrottle")

#: The statuses that make the adaptive throttle back off.
ADAPTIVE_STATUSES: frozenset[int] = frozenset({429, 503})

#: The limiter pace reason the throttle sets.
PACE_REASON = "adaptive throttle"


def _number(value: Any, name: str, *, low: float, high: float = math.inf, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not (low < number if low_open else low <= number) or not number <= high or math.isnan(number):
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{low:g}, {high:g}], not {value!r}")
    return number


# Hosts not heard from for a while are forgotten once this many are known (then again at twice what is left), so
# a crawl over millions of hosts does not keep the state of each one.
_PRUNE_AT = 1024
#: Seconds without an answer after which a host's state may be forgotten (it starts afresh if it comes back).
_IDLE_FOR = 600.0


class _HostState:
    __slots__ = (
        "answers",
        "ceiling",
        "ceiling_at",
        "last_decrease",
        "last_good",
        "last_seen",
        "latency",
        "rate",
        "slow_start",
        "version",
    )

    def __init__(self, rate: float) -> None:
        self.rate = rate
        #: An average of the latency of good answers (None before the first).
        self.latency: float | None = None
        self.last_good = math.inf  # the first good answer gains nothing after slow start
        #: When the good answers of the last ``measure_over`` seconds came.
        self.answers: deque[float] = deque()
        self.ceiling: float | None = None
        self.ceiling_at = -math.inf
        self.last_decrease = -math.inf
        self.last_seen = -math.inf
        self.slow_start = True
        #: When (server time) the shared state last mirrored here was written (a throttle shared through Redis).
        self.version = -math.inf


class AdaptiveThrottle:
    """Per-host adaptive throttling: find the rate a server tolerates, and keep just under it. Pass
    ``RequestHandler(adaptive=...)`` an instance, or True for the defaults.

    Each host has its own allowed rate (requests per second, evenly spaced by the rate limiter's *pace*), moved by
    AIMD (additive increase, multiplicative decrease), as TCP moves its congestion window:

    * **slow start**: a new host starts at ``initial_rate`` and, until the first sign of trouble, gains one request
      per second for every good answer (so the rate about doubles every second);
    * **back-off**: a 429 or 503 (``statuses``), a time-out, or (with ``target_latency``) an answer slower than the
      target multiplies the rate by ``decrease`` (0.5: halved), never below ``min_rate``. Only requests sent after
      the last back-off (and not within ``measure_over`` seconds of it) count: the answers to requests already on
      their way when the host was slowed down say nothing about the new rate, so one burst of 429s halves the rate
      once, not fifty times;
    * **learnt ceiling**: a 429/503/time-out also records ``headroom`` (0.95) times the rate the host was
      answering well at over the last ``measure_over`` seconds as its ceiling: the rate then recovers up to it and
      stays there, just under what the server accepted, instead of probing past it again and again. The ceiling is
      forgotten after ``probe_after`` seconds without trouble, so a server that raised its limit is found out. A
      slow answer lowers the rate but not the ceiling (the host was busy, not over its quota), and neither does a 429
      while the host's recent answers are slower than the target, so the rate comes back once the host is fast
      again;
    * **recovery**: afterwards the rate gains ``increase`` requests per second for every second of good answers,
      never above the ceiling or ``max_rate``.

    The state is per host and lives in the handler (or is shared between handlers by passing one instance);
    nothing here is handler-wide. Fewer requests per second to a slow host also means fewer in flight to it (about
    rate times latency).

    :param initial_rate: requests per second a host starts at.
    :param min_rate: the floor: a host is never slowed below this.
    :param max_rate: the ceiling: a host is never sped above this.
    :param increase: requests per second gained per second of good answers (after slow start).
    :param decrease: the factor a back-off multiplies the rate by (0 < decrease < 1).
    :param target_latency: seconds; an answer slower than this backs off too. None (default): latency is ignored.
    :param headroom: the fraction of the rate the host was answering at when it said 429/503 (or timed out)
        that becomes its ceiling.
    :param probe_after: seconds without trouble after which a learnt ceiling is forgotten.
    :param measure_over: the seconds over which that rate is measured (the good answers in the last stretch);
        also how long after a back-off new trouble is not counted (the server's own window still holds the
        requests from before it).
    :param statuses: the statuses that back off (default 429 and 503).
    """

    __slots__ = (
        "_forgotten",
        "_hosts",
        "_prune_at",
        "decrease",
        "headroom",
        "increase",
        "initial_rate",
        "max_rate",
        "measure_over",
        "min_rate",
        "probe_after",
        "statuses",
        "target_latency",
    )

    def __init__(
        self,
        *,
        initial_rate: float = 10.0,
        min_rate: float = 0.1,
        max_rate: float = 1000.0,
        increase: float = 1.0,
        decrease: float = 0.5,
        target_latency: float | None = None,
        headroom: float = 0.95,
        probe_after: float = 60.0,
        measure_over: float = 1.0,
        statuses: frozenset[int] | set[int] | tuple[int, ...] = ADAPTIVE_STATUSES,
    ) -> None:
        self.min_rate = _number(min_rate, "min_rate", low=0.0, low_open=True)
        self.max_rate = _number(max_rate, "max_rate", low=self.min_rate)
        self.initial_rate = _number(initial_rate, "initial_rate", low=self.min_rate, high=self.max_rate)
        self.increase = _number(increase, "increase", low=0.0, low_open=True)
        self.decrease = _number(decrease, "decrease", low=0.0, high=1.0, low_open=True)
        if self.decrease >= 1.0:
            raise ValueError(f"decrease must be below 1, not {decrease!r}")
        self.target_latency = (
            None if target_latency is None else _number(target_latency, "target_latency", low=0.0, low_open=True)
        )
        self.headroom = _number(headroom, "headroom", low=0.0, high=1.0, low_open=True)
        self.probe_after = _number(probe_after, "probe_after", low=0.0)
        self.measure_over = _number(measure_over, "measure_over", low=0.0, low_open=True)
        codes = frozenset(statuses)
        if any(isinstance(c, bool) or not isinstance(c, int) or not 100 <= c <= 599 for c in codes):
            raise ValueError(f"statuses must be HTTP status codes, not {sorted(codes, key=repr)!r}")
        self.statuses = codes
        self._hosts: dict[HostKey, _HostState] = {}
        self._prune_at = _PRUNE_AT
        self._forgotten: list[HostKey] = []

    def rate_for(self, key: HostKey) -> float:
        """The rate ``key`` is allowed now (``initial_rate`` for a host not seen yet)."""
        state = self._hosts.get(key)
        return self.initial_rate if state is None else state.rate

    def ceiling_for(self, key: HostKey) -> float | None:
        """The ceiling learnt for ``key``, or None."""
        state = self._hosts.get(key)
        return None if state is None else state.ceiling

    def _state(self, key: HostKey, now: float) -> _HostState:
        state = self._hosts.get(key)
        if state is None:
            if len(self._hosts) >= self._prune_at:
                self._prune(now)
            state = self._hosts[key] = _HostState(self.initial_rate)
        state.last_seen = now
        return state

    def _prune(self, now: float) -> None:
        idle_for = max(_IDLE_FOR, self.probe_after)
        kept: dict[HostKey, _HostState] = {}
        for key, state in self._hosts.items():
            if now - state.last_seen > idle_for:
                self._forgotten.append(key)
            else:
                kept[key] = state
        self._hosts = kept
        self._prune_at = max(_PRUNE_AT, 2 * len(kept))

    def take_forgotten(self) -> list[HostKey]:
        """The hosts forgotten (idle for long) since the last call: whoever paces them by this throttle lifts
        their pace (the request handler does)."""
        forgotten, self._forgotten = self._forgotten, []
        return forgotten

    def observe(self, key: HostKey, *, status: int | None, latency: float, sent_at: float, now: float) -> float:
        """Account one answer (``status`` None: a time-out) to a request sent at ``sent_at`` (loop clock) that
        took ``latency`` seconds; returns the host's new rate."""
        state = self._state(key, now)
        overloaded = status is None or status in self.statuses
        answers = state.answers
        span = self.measure_over
        while answers and now - answers[0] > span:
            answers.popleft()
        target = self.target_latency
        if not overloaded and status is not None and status < 400:
            answers.append(now)
            state.latency = latency if state.latency is None else 0.8 * state.latency + 0.2 * latency
        slow = target is not None and latency > target
        if overloaded or slow:
            # Requests sent before the last back-off, or so soon after it that the server still counts the
            # requests before it, say nothing about the new rate: one burst of 429s backs off once.
            if sent_at < state.last_decrease + span:
                return state.rate
            busy = target is not None and state.latency is not None and state.latency > target
            if overloaded and not busy:
                # What the host accepted over the last stretch is the rate it tolerates; keep a little under it.
                # (Not while it is slow: it then refuses for being busy, which says nothing of its quota.)
                measured = len(answers) / span
                ceiling = (measured if measured > 0 else state.rate) * self.headroom
                if state.ceiling is not None:
                    # A known ceiling comes down by the headroom per refusal at most: a server that lowered its
                    # limit is followed in a few steps, and one burst of refusals for another reason (a moment of
                    # too many requests in flight) costs little.
                    ceiling = max(ceiling, state.ceiling * self.headroom)
                state.ceiling = max(self.min_rate, min(self.max_rate, ceiling))
                state.ceiling_at = now
                state.rate = min(state.rate, state.ceiling)
            state.rate = max(self.min_rate, state.rate * self.decrease)
            state.slow_start = False
            state.last_decrease = now
            state.last_good = math.inf  # recovery counts the seconds of good answers from the next one on
            return state.rate
        if status is not None and status >= 400:
            return state.rate  # an error that is not about load says nothing either way
        if state.ceiling is not None and now - state.ceiling_at > self.probe_after:
            state.ceiling = None
        previous, state.last_good = state.last_good, now
        if state.slow_start:
            rate = state.rate + 1.0
        else:
            # ``increase`` requests per second for every second of good answers, however few they are.
            rate = state.rate + self.increase * min(1.0, max(0.0, now - previous))
        top = self.max_rate if state.ceiling is None else min(self.max_rate, state.ceiling)
        if rate > top:
            rate = top
            state.slow_start = False
        state.rate = rate
        return rate

    def forget(self, key: HostKey | None = None) -> None:
        """Forget what was learnt of ``key`` (of every host when None)."""
        if key is None:
            self._hosts.clear()
        else:
            self._hosts.pop(key, None)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(initial_rate={self.initial_rate!r}, min_rate={self.min_rate!r}, "
            f"max_rate={self.max_rate!r}, increase={self.increase!r}, decrease={self.decrease!r}, "
            f"target_latency={self.target_latency!r}, hosts={len(self._hosts)})"
        )
