# SPDX-License-Identifier: MIT
"""The flow-control gate an attempt waits at: its host's ``Retry-After`` pause, then its rate-limit turn."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..flow import HostKey, HostPauses, HostRateLimiter
from ..flow._hosts import format_host
from ..flow.limiter import sleep_until
from ..flow.pause import remaining_budget
from ..response.exception import ResponseError
from ..stats import WAIT_PAUSE, WAIT_RATE_LIMIT
from .chain import Chain

if TYPE_CHECKING:
    from aiohttp import ClientResponse
    from multidict import CIMultiDictProxy

    from ..timer import Timer

__all__ = ("FlowGate", "retry_at")

#: Called after every wait with the reason, the seconds waited and the request's URL.
OnWait = Callable[[str, float, Any], None]


def retry_at(seconds: float) -> str:
    """The local time ``seconds`` from now, as ``%Y-%m-%d %H:%M:%S`` (as ``RateLimitStatusHandler`` writes it)."""
    try:
        return (datetime.now() + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return "a time too far ahead to display"


class FlowGate:
    """Host pauses and per-host rate limits, as one gate: :meth:`wait` returns when the host may be sent to.

    :param limiter: the per-host token buckets, or None.
    :param pauses: the host-wide ``Retry-After`` pauses, or None.
    :param on_wait: told of every wait (the handler counts it and calls its hooks).
    :param logger: where a recorded pause is logged (DEBUG).
    """

    __slots__ = ("_logger", "_on_wait", "limiter", "pauses")

    def __init__(
        self,
        limiter: HostRateLimiter | None,
        pauses: HostPauses | None,
        on_wait: OnWait,
        logger: logging.Logger,
    ) -> None:
        self.limiter = limiter
        self.pauses = pauses
        self._on_wait = on_wait
        self._logger = logger

    @property
    def active(self) -> bool:
        """Whether there is anything to wait for (a limiter or pauses)."""
        return self.limiter is not None or self.pauses is not None

    def record_pause(
        self, host: HostKey, status: int, headers: CIMultiDictProxy[str], cap: float | None
    ) -> float | None:
        """Pause ``host`` as the ``Retry-After`` of a ``status`` response asks (not beyond ``cap``); returns the
        time (loop clock) it asked to pause until, or None."""
        assert self.pauses is not None
        until = self.pauses.pause_for(host, status, headers, cap=cap)
        if until is not None and self._logger.isEnabledFor(logging.DEBUG):
            self._logger.debug(
                "Pausing %s for %.2f seconds after a %s response",
                format_host(host),
                until - asyncio.get_running_loop().time(),
                status,
            )
        return until

    @staticmethod
    def check_pause(
        remaining: float,
        status: int | None,
        host: HostKey,
        timer: Timer | None,
        response: ClientResponse | None = None,
    ) -> None:
        """Fail fast when a pause of ``remaining`` seconds is longer than the request's remaining retry budget."""
        budget = remaining_budget(timer)
        if budget is None or remaining <= budget:
            return
        when = retry_at(remaining)
        if response is not None:
            raise ResponseError(
                f"Retry-After wait of {remaining:.2f} seconds is greater than the remaining retry budget of "
                f"{budget:.2f} seconds. Retry again at {when}",
                response=response,
            )
        raise ResponseError(
            f"{format_host(host)} is paused for {remaining:.2f} more seconds after a {status} response with "
            f"Retry-After, longer than the remaining retry budget of {budget:.2f} seconds. Retry again at {when}"
        )

    async def wait_pauses(self, host: HostKey, url: Any, timer: Timer | None, chain: Chain) -> float:
        """Wait out ``host``'s pause, judging every new one against the retry budget; the seconds waited."""
        pauses = self.pauses
        assert pauses is not None
        loop = asyncio.get_running_loop()
        waited = 0.0
        slept_until = -math.inf
        while (pause := pauses.get(host)) is not None:
            if pause.until <= slept_until:
                # Already slept until this very end: the loop runs a timer up to its clock's resolution early, so
                # the clock may still read a hair before it. Sleeping again would spin without the clock moving.
                break
            remaining = pause.until - loop.time()
            if pause.until > chain.pause_accepted:
                self.check_pause(remaining, pause.status, host, timer)
                chain.pause_accepted = pause.until
            if remaining > 0:
                await sleep_until(loop, pause.until)
                slept_until = pause.until
                self._on_wait(WAIT_PAUSE, remaining, url)
                waited += remaining
            # and look again: the pause may have been extended meanwhile
        return waited

    async def wait(self, host: HostKey, url: Any, timer: Timer | None, chain: Chain) -> None:
        """Wait until ``host`` may be sent to: its pause (if any) is over and this task's rate-limit turn came."""
        pauses, limiter = self.pauses, self.limiter
        if pauses is not None:
            # Judged before queueing, so a request that cannot wait that long fails at once.
            await self.wait_pauses(host, url, timer, chain)
        if limiter is not None:
            # At the head of the host's queue, a pause that began meanwhile is waited out before (and instead of)
            # using a slot: the queue stays in order and no backlog goes through when the pause ends.
            prepare = None if pauses is None else (lambda: self.wait_pauses(host, url, timer, chain))
            waited = await limiter.acquire(host, prepare)
            if waited > 0:
                self._on_wait(WAIT_RATE_LIMIT, waited, url)
