# SPDX-License-Identifier: MIT
"""The flow-control gate an attempt waits at: its host's ``Retry-After`` pause, then a slot of the host's
concurrency cap, then its rate-limit turn; and what the attempt's answer teaches the host's flow control."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..flow import HostKey, HostPauses, HostRateLimiter
from ..flow._adaptive import PACE_REASON, AdaptiveThrottle
from ..flow._concurrency import HostConcurrency, InFlightSlot
from ..flow._headers import rate_limit_reset
from ..flow._hosts import format_host
from ..flow.limiter import RateLimitWaitError, sleep_until
from ..flow.pause import remaining_budget
from ..response.exception import ResponseError
from ..stats import WAIT_PAUSE, WAIT_RATE_LIMIT
from .chain import Chain

if TYPE_CHECKING:
    from aiohttp import ClientResponse
    from multidict import CIMultiDictProxy

    from ..flow.robots import RobotsTxt
    from ..timer import Timer

__all__ = ("Attempt", "FlowGate", "retry_at")

#: The limiter pace reason a robots.txt Crawl-delay sets.
CRAWL_DELAY_REASON = "robots.txt Crawl-delay"

#: Called after every wait with the reason, the seconds waited and the request's URL.
OnWait = Callable[[str, float, Any], None]


_CACHED_TYPES: tuple[type, ...] | None = None


def _from_cache(response: Any) -> bool:
    """Whether ``response`` was answered by the cache (it then says nothing about the host)."""
    global _CACHED_TYPES
    if _CACHED_TYPES is None:
        try:
            from ..cache.response import CachedResponse
        except ImportError:  # the cache is optional
            _CACHED_TYPES = ()
        else:
            _CACHED_TYPES = (CachedResponse,)
    return isinstance(response, _CACHED_TYPES)


def retry_at(seconds: float) -> str:
    """The local time ``seconds`` from now, as ``%Y-%m-%d %H:%M:%S`` (as ``RateLimitStatusHandler`` writes it)."""
    try:
        return (datetime.now() + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return "a time too far ahead to display"


class Attempt:
    """One attempt past the gate: the host's concurrency slot it holds and when it was let through.

    :meth:`FlowGate.track` calls :meth:`answered` with what the attempt got (the response, its headers read, or
    the transport error); :meth:`FlowGate.release` calls :meth:`release` when the attempt is over (its response
    done with, or it failed or was cancelled). Releasing twice does nothing.
    """

    __slots__ = ("_gate", "_slot", "host", "sent_at")

    def __init__(self, gate: FlowGate, host: HostKey, slot: InFlightSlot | None, sent_at: float) -> None:
        self._gate = gate
        self._slot = slot
        self.host = host
        self.sent_at = sent_at

    def answered(self, response: ClientResponse | BaseException) -> None:
        """Tell the host's flow control what came back (rate-limit headers, the adaptive throttle)."""
        self._gate.observe(self, response)

    def release(self) -> None:
        """Give back the concurrency slot (if any)."""
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.release()


class FlowGate:
    """Host pauses, per-host concurrency caps and rate limits, as one gate: :meth:`wait` returns when the host
    may be sent to.

    :param limiter: the per-host token buckets, or None.
    :param pauses: the host-wide ``Retry-After`` pauses, or None.
    :param on_wait: told of every wait (the handler counts it and calls its hooks).
    :param logger: where a recorded pause is logged (DEBUG).
    :param concurrency: the per-host caps on requests in flight, or None.
    :param max_wait: the most seconds an attempt may wait for its rate-limit turn, or None.
    :param rate_limit_headers: whether a response saying its quota is spent holds its host until the reset.
    :param adaptive: the per-host adaptive throttle, or None.
    :param robots: the robots.txt rules whose ``Crawl-delay`` paces hosts (when they ask to), or None.
    """

    __slots__ = (
        "_attempts",
        "_crawl_delays",
        "_on_wait",
        "adaptive",
        "concurrency",
        "limiter",
        "logger",
        "max_wait",
        "pauses",
        "rate_limit_headers",
        "robots",
        "tracking",
    )

    def __init__(
        self,
        limiter: HostRateLimiter | None,
        pauses: HostPauses | None,
        on_wait: OnWait,
        logger: logging.Logger,
        *,
        concurrency: HostConcurrency | None = None,
        max_wait: float | None = None,
        rate_limit_headers: bool = False,
        adaptive: AdaptiveThrottle | None = None,
        robots: RobotsTxt | None = None,
    ) -> None:
        self.limiter = limiter
        self.pauses = pauses
        self._on_wait = on_wait
        self.logger = logger
        self.concurrency = concurrency
        self.max_wait = max_wait
        self.rate_limit_headers = rate_limit_headers
        self.adaptive = adaptive
        self.robots = robots if robots is not None and robots.use_crawl_delay else None
        #: Whether an attempt is followed past the gate (an :class:`Attempt` is handed out).
        self.tracking = concurrency is not None or rate_limit_headers or adaptive is not None
        #: The Crawl-delay last applied to each host's pace.
        self._crawl_delays: dict[HostKey, float | None] = {}
        #: The attempt past the gate of each request() call (its Chain) that is not over yet.
        self._attempts: dict[Chain, Attempt] = {}
        if (max_wait is not None or rate_limit_headers or adaptive is not None or self.robots) and limiter is None:
            raise ValueError("the flow gate needs a rate limiter for max_wait, headers, adaptive or Crawl-delay")

    @classmethod
    def build(
        cls,
        limiter: HostRateLimiter | None,
        pauses: HostPauses | None,
        on_wait: OnWait,
        logger: logging.Logger,
        *,
        max_in_flight: Any = None,
        max_wait: Any = None,
        rate_limit_headers: Any = False,
        adaptive: Any = False,
        robots: Any = None,
    ) -> FlowGate:
        """The gate for a handler's flow-control keywords, checked: a rate limiter with no limits is made when a
        part needs one to pace or hold hosts and none was given."""
        from ..flow.robots import RobotsTxt

        if max_in_flight is None or isinstance(max_in_flight, HostConcurrency):
            concurrency = max_in_flight
        elif isinstance(max_in_flight, (int, Mapping)) and not isinstance(max_in_flight, bool):
            concurrency = HostConcurrency(max_in_flight)
        else:
            raise TypeError(
                "max_in_flight must be an integer, a mapping from host to integer, a HostConcurrency or None, "
                f"not {type(max_in_flight).__name__}"
            )
        if max_wait is not None:
            if isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)):
                raise TypeError(f"max_wait must be a number of seconds or None, not {type(max_wait).__name__}")
            if not max_wait >= 0 or math.isinf(max_wait):
                raise ValueError(f"max_wait must be a finite number of seconds >= 0, not {max_wait!r}")
            max_wait = float(max_wait)
        if not isinstance(rate_limit_headers, bool):
            raise TypeError(f"rate_limit_headers must be a bool, not {type(rate_limit_headers).__name__}")
        if isinstance(adaptive, AdaptiveThrottle):
            throttle: AdaptiveThrottle | None = adaptive
        elif isinstance(adaptive, bool):
            throttle = AdaptiveThrottle() if adaptive else None
        else:
            raise TypeError(f"adaptive must be a bool or an AdaptiveThrottle, not {type(adaptive).__name__}")
        crawl_delay = isinstance(robots, RobotsTxt) and robots.use_crawl_delay
        if limiter is None and (max_wait is not None or rate_limit_headers or throttle is not None or crawl_delay):
            # No limits of its own: hosts are only paced and held (in Redis when the throttle is shared there).
            shared = getattr(throttle, "connection", None)
            if shared is None:
                limiter = HostRateLimiter()
            else:
                from ..flow.redis import RedisHostRateLimiter

                limiter = RedisHostRateLimiter(shared)
        return cls(
            limiter,
            pauses,
            on_wait,
            logger,
            concurrency=concurrency,
            max_wait=max_wait,
            rate_limit_headers=rate_limit_headers,
            adaptive=throttle,
            robots=robots if crawl_delay else None,
        )

    @property
    def active(self) -> bool:
        """Whether there is anything to wait for (a limiter, pauses or a concurrency cap)."""
        return self.limiter is not None or self.pauses is not None or self.concurrency is not None

    def record_pause(
        self, host: HostKey, status: int, headers: CIMultiDictProxy[str], cap: float | None
    ) -> float | None:
        """Pause ``host`` as the ``Retry-After`` of a ``status`` response asks (not beyond ``cap``); returns the
        time (loop clock) it asked to pause until, or None."""
        assert self.pauses is not None
        until = self.pauses.pause_for(host, status, headers, cap=cap)
        if until is not None and self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug(
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

    async def wait(self, host: HostKey, url: Any, timer: Timer | None, chain: Chain, method: str | None = None) -> None:
        """Wait until ``host`` may be sent to: its pause (if any) is over, a slot of its concurrency cap is this
        attempt's and its rate-limit turn came.

        When parts follow the attempt past the gate (:attr:`tracking`), its :class:`Attempt` is kept for the
        call's ``chain`` until :meth:`release`; :meth:`track` reports what the attempt got.

        :raises RateLimitWaitError: the rate-limit turn is further away than ``max_wait`` (nothing was taken).
        """
        pauses, limiter = self.pauses, self.limiter
        if pauses is not None:
            # Judged before queueing, so a request that cannot wait that long fails at once.
            await self.wait_pauses(host, url, timer, chain)
        if self.robots is not None:
            self._apply_crawl_delay(host)
        if self.adaptive is not None and limiter is not None and limiter.pace_for(host, PACE_REASON) is None:
            limiter.set_pace(host, PACE_REASON, self.adaptive.rate_for(host))
        slot: InFlightSlot | None = None
        concurrency = self.concurrency
        if concurrency is not None:
            # Before the rate-limit token: a task waiting for a slot must not hold a token it cannot use.
            slot = await concurrency.acquire(host)
        bound_name = "max_wait"
        try:
            if limiter is not None:
                # At the head of the host's queue, a pause that began meanwhile is waited out before (and instead
                # of) using a slot: the queue stays in order and no backlog goes through when the pause ends.
                prepare = None if pauses is None else (lambda: self.wait_pauses(host, url, timer, chain))
                bound, bound_name = self._bound(timer)
                if bound is None:
                    waited = await limiter.acquire(host, prepare)
                else:
                    waited = await limiter.acquire(host, prepare, max_wait=bound)
                if waited > 0:
                    self._on_wait(WAIT_RATE_LIMIT, waited, url)
        except RateLimitWaitError as exc:
            if slot is not None:
                slot.release()
            raise exc.for_request(method or "request", url, bound_name) from None
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        if self.tracking:
            previous = self._attempts.pop(chain, None)
            if previous is not None:
                previous.release()  # a call has one attempt at a time: never leak a slot
            self._attempts[chain] = Attempt(self, host, slot, asyncio.get_running_loop().time())

    async def track(
        self, chain: Chain, send: Awaitable[ClientResponse | BaseException]
    ) -> ClientResponse | BaseException:
        """Await ``send`` (the attempt of ``chain`` past the gate) and report what it got; an exception it
        raises (a cancellation, an error raised at once) ends the attempt and propagates."""
        try:
            response = await send
        except BaseException:
            self.release(chain)
            raise
        attempt = self._attempts.get(chain)
        if attempt is not None and not _from_cache(response):
            attempt.answered(response)
        return response

    def release(self, chain: Chain) -> None:
        """End the attempt of ``chain`` past the gate (if any): its concurrency slot is given back."""
        attempt = self._attempts.pop(chain, None)
        if attempt is not None:
            attempt.release()

    def _bound(self, timer: Timer | None) -> tuple[float | None, str]:
        """The most an attempt may wait for its rate-limit turn, and what that bound is: ``max_wait``, or the
        request's remaining retry budget when that is shorter. A request without a retry timer, or whose retries
        are spent, is bound by ``max_wait`` alone (its budget is not a reason to wait for nothing: it has none)."""
        max_wait = self.max_wait
        if max_wait is None:
            return None, "max_wait"
        if timer is not None and timer.can_increase:
            budget = remaining_budget(timer)
            if budget is not None and budget < max_wait:
                return budget, "the remaining retry budget"
        return max_wait, "max_wait"

    def _apply_crawl_delay(self, host: HostKey) -> None:
        """Pace ``host`` by its robots.txt Crawl-delay (once per change of the rules' delay)."""
        assert self.robots is not None and self.limiter is not None
        delay = self.robots.host_crawl_delay(host)
        if self._crawl_delays.get(host) == delay:
            return
        if len(self._crawl_delays) >= 4096:
            self._crawl_delays.clear()  # a memo only: applying a delay again is harmless
        self._crawl_delays[host] = delay
        self.limiter.set_pace(host, CRAWL_DELAY_REASON, None if delay is None else 1.0 / delay)

    def observe(self, attempt: Attempt, response: ClientResponse | BaseException) -> None:
        """Learn from what an attempt got: a spent quota holds the host until its reset; the adaptive throttle
        moves the host's pace."""
        limiter = self.limiter
        assert limiter is not None or (not self.rate_limit_headers and self.adaptive is None)
        loop_now = asyncio.get_running_loop().time()
        status: int | None
        if isinstance(response, BaseException):
            if not isinstance(response, TimeoutError):
                return  # a refused or reset connection says nothing about load
            status = None
        else:
            status = response.status
            if self.rate_limit_headers and limiter is not None:
                seconds = rate_limit_reset(response.headers)
                if seconds is not None:
                    limiter.hold(
                        attempt.host,
                        loop_now + seconds,
                        f"rate-limit headers of a {status} response: quota spent for {seconds:.2f} seconds",
                    )
                    if self.logger.isEnabledFor(logging.DEBUG):
                        self.logger.debug(
                            "Holding %s for %.2f seconds: its rate-limit headers say the quota is spent",
                            format_host(attempt.host),
                            seconds,
                        )
        adaptive = self.adaptive
        if adaptive is not None and limiter is not None:
            rate = adaptive.observe(
                attempt.host, status=status, latency=loop_now - attempt.sent_at, sent_at=attempt.sent_at, now=loop_now
            )
            # Against the pace in force: a throttle shared through Redis learns the fleet's rate between answers.
            if rate != limiter.pace_for(attempt.host, PACE_REASON):
                limiter.set_pace(attempt.host, PACE_REASON, rate)
            if adaptive._forgotten:
                for host in adaptive.take_forgotten():
                    limiter.set_pace(host, PACE_REASON, None)
