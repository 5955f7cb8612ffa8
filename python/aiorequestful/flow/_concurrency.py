# SPDX-License-Identifier: MIT
"""Per-host concurrency caps: at most N requests in flight to a host at once, shared by every task of a handler.

A request takes a slot of its host before it takes a rate-limit token and before aiohttp's connection pool is
asked for a connection, and gives it back when its response is done with (or its attempt failed or was
cancelled). Tasks that find every slot taken wait in arrival order; a slot that is given back passes straight to
the oldest waiter, so nobody starves and nobody is woken for nothing.

The cap of a host may change while requests are in flight (the adaptive throttle lowers and raises it): a lower
cap lets the requests in flight finish and hands out no slot until the count is below it; a higher one wakes as
many waiters as it frees slots.
"""

from __future__ import annotations

import asyncio
import math
import numbers
from collections import deque
from collections.abc import Mapping
from typing import Any

from ._hosts import HostKey
from .limiter import HostTable

__all__ = ("ConcurrencyInput", "HostConcurrency", "InFlightSlot")

#: What ``RequestHandler(max_in_flight=...)`` accepts: one cap for every host, or caps by host (None: no cap).
ConcurrencyInput = int | Mapping[str, int | None] | None

# Idle hosts (nothing in flight, nobody waiting, cap not lowered) are dropped once this many have been seen.
_PRUNE_AT = 1024


def _cap(value: Any, name: str = "max_in_flight") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer or None, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value!r}")
    return int(value)


class _Host:
    """One host's slots: the cap, the count in flight and the tasks waiting for a slot."""

    __slots__ = ("cap", "in_flight", "waiters")

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.in_flight = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        """The whole number of slots the cap allows (at least one: a host is never shut out)."""
        return max(1, math.floor(self.cap)) if math.isfinite(self.cap) else 1 << 62

    def hand_out(self) -> None:
        """Give free slots to the oldest live waiters (each waiter's slot is counted as it is handed over)."""
        waiters = self.waiters
        while waiters and self.in_flight < self.limit:
            future = waiters.popleft()
            if not future.done():
                self.in_flight += 1
                future.set_result(None)

    def idle(self) -> bool:
        return self.in_flight == 0 and not self.waiters


class InFlightSlot:
    """A request's slot on its host: :meth:`release` gives it back (once; later calls do nothing)."""

    __slots__ = ("_host", "_owner", "key")

    def __init__(self, owner: HostConcurrency, key: HostKey, host: _Host) -> None:
        self._owner = owner
        self._host: _Host | None = host
        self.key = key

    def release(self) -> None:
        """Give the slot back: the oldest waiter gets it, else the host has one more free slot."""
        host, self._host = self._host, None
        if host is None:
            return
        host.in_flight -= 1
        host.hand_out()

    @property
    def released(self) -> bool:
        """Whether :meth:`release` was called."""
        return self._host is None


class HostConcurrency:
    """Caps on the requests in flight per host, for one :class:`~aiorequestful.request.RequestHandler`
    (``max_in_flight=``).

    ``caps`` is one cap for every host (an integer >= 1), or a mapping from ``"host"``, ``"host:port"`` or
    ``"scheme://host[:port]"`` (the most specific match wins; ``"*"`` for every other host) to a cap, None
    meaning no cap. Share one instance between handlers to share the caps.

    A request takes a slot of its host (:meth:`acquire`) before its rate-limit token and before aiohttp's
    connection pool, and gives it back (:meth:`InFlightSlot.release`) when its response is done with, or its
    attempt failed or was cancelled. Tasks that find every slot taken wait in arrival order; a slot given back
    passes straight to the oldest waiter. A cap lowered while requests are in flight (:meth:`set_override`) lets
    them finish and hands out nothing until the count is below it; a raised one wakes as many waiters as it frees.
    """

    __slots__ = ("_caps", "_hosts", "_overrides", "_prune_at")

    def __init__(self, caps: ConcurrencyInput = None) -> None:
        self._caps: HostTable[int] = HostTable()
        #: Caps set for one host at run time (the adaptive throttle), over the configured ones.
        self._overrides: dict[HostKey, float] = {}
        self._hosts: dict[HostKey, _Host] = {}
        self._prune_at = _PRUNE_AT
        if isinstance(caps, Mapping):
            for name, cap in caps.items():
                self.set_cap(name, cap)
        else:
            self._caps.default = _cap(caps)

    def set_cap(self, host: str, cap: int | None) -> None:
        """Set (or, with None, lift) the cap of ``host`` (a mapping key as above)."""
        self._caps.set(host, _cap(cap))
        for key, state in self._hosts.items():
            state.cap = self._effective(key)
            state.hand_out()

    def cap_for(self, key: HostKey) -> int | None:
        """The configured cap of the host ``(scheme, host, port)``, or None when it has none."""
        return self._caps.get(key)

    def _effective(self, key: HostKey) -> float:
        configured = self.cap_for(key)
        cap = math.inf if configured is None else float(configured)
        override = self._overrides.get(key)
        return cap if override is None else min(cap, override)

    def set_override(self, key: HostKey, cap: float | None) -> None:
        """Cap ``key`` at ``cap`` slots (a float is rounded down, never below one) below its configured cap;
        None lifts it. The adaptive throttle moves it."""
        if cap is None:
            self._overrides.pop(key, None)
        else:
            self._overrides[key] = max(1.0, float(cap))
        state = self._hosts.get(key)
        if state is not None:
            state.cap = self._effective(key)
            state.hand_out()

    def in_flight(self, key: HostKey) -> int:
        """How many requests to ``key`` hold a slot."""
        state = self._hosts.get(key)
        return 0 if state is None else state.in_flight

    def queued(self, key: HostKey) -> int:
        """How many tasks wait for a slot of ``key`` (cancelled ones may still be counted)."""
        state = self._hosts.get(key)
        return 0 if state is None else len(state.waiters)

    def limit(self, key: HostKey) -> int | None:
        """The number of slots ``key`` has now (its cap, lowered by an override), or None when uncapped."""
        cap = self._effective(key)
        return None if math.isinf(cap) else max(1, math.floor(cap))

    async def acquire(self, key: HostKey) -> InFlightSlot | None:
        """Wait for a slot of ``key`` (in arrival order); None when the host has no cap (nothing to give back)."""
        state = self._hosts.get(key)
        if state is None:
            cap = self._effective(key)
            if math.isinf(cap):
                return None
            if len(self._hosts) >= self._prune_at:
                self._hosts = {k: s for k, s in self._hosts.items() if not s.idle()}
                self._prune_at = max(_PRUNE_AT, 2 * len(self._hosts))
            state = self._hosts[key] = _Host(cap)
        elif math.isinf(state.cap) and state.idle():
            return None
        if state.in_flight < state.limit and not state.waiters:
            state.in_flight += 1
            return InFlightSlot(self, key, state)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Handed a slot just as it was cancelled: pass it on.
                state.in_flight -= 1
                state.hand_out()
            raise
        return InFlightSlot(self, key, state)

    def __repr__(self) -> str:
        parts = self._caps.describe()
        return f"{type(self).__name__}({{{', '.join(parts)}}})"
