# SPDX-License-Identifier: MIT
"""The retry step between failed attempts: give up with the right error, or log, sleep and advance the timer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPMethod
from typing import Any

import aiohttp
from aiohttp import ClientResponse
from yarl import URL

from ..exception import RequestError
from ..flow import RetryPolicy
from ..flow.pause import remaining_budget
from ..response._body import error_for_response
from ..security import redact_url
from ..stats import WAIT_RETRY, RequestHooks, StatsRecorder, call_hooks
from ..telemetry.logfields import log_fields
from ..timer import Timer
from .chain import Chain

__all__ = ("TRANSIENT_ERRORS", "RetryStep", "waits_ahead")

#: Failures of the transport that are worth another attempt: aiohttp's connection/payload errors and
#: time-outs (aiohttp raises the built-in TimeoutError for total/connect time-outs).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError)

#: What reading a body for an error message may raise (and must not escape: a broken body still gives the
#: response's error, not a transport error about reading it).
_ERROR_BODY_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, LookupError, RuntimeError)

#: Writes the DEBUG line of a request (the handler's ``log``).
LogLine = Callable[..., None]


class RetryStep:
    """The retry step of one handler: its logger, counters, hooks and retry policy.

    :param logger: where the retry WARNING (once per call) and the DEBUG delay lines go.
    :param stats: the handler's counters.
    :param hooks: the handler's hooks (``on_retry`` before a sleep, ``on_wait`` after it).
    :param log: writes a request's DEBUG line (the handler's ``log``).
    """

    __slots__ = ("_log", "_stats", "hooks", "logger", "policy")

    def __init__(self, logger: logging.Logger, stats: StatsRecorder, hooks: RequestHooks, log: LogLine) -> None:
        self.logger = logger
        self._stats = stats
        self.hooks = hooks
        self._log = log
        #: The retry policy whose jitter is added to each sleep (None: the timer's value exactly).
        self.policy: RetryPolicy | None = None

    async def __call__(
        self,
        failure: ClientResponse | BaseException | None,
        method: HTTPMethod | str,
        url: Any,
        timer: Timer | None,
        chain: Chain,
    ) -> None:
        """Raise when no retry is left, else sleep the timer's current value and advance it.

        Raises the original transport exception for a connection failure, ``ResponseError`` (with the
        response; its message names the request and shows the start of the body, the whole body is its ``body``)
        for an error response, or ``RequestError("Max retries exceeded")`` when there was neither.
        With a retry policy, the sleep gets the policy's jitter on top of the timer's value.
        """
        if timer is None or not timer.can_increase:
            if isinstance(failure, BaseException):
                raise failure
            if isinstance(failure, ClientResponse):
                raise error_for_response(failure, await _body_text(failure))
            raise RequestError("Max retries exceeded")
        self.announce(method, url, timer, chain, failure)
        base = float(timer)
        policy = self.policy
        delay = policy.delay(base) if policy is not None else base
        self._stats.retries += 1
        hooks = self.hooks
        if hooks.on_retry:
            cause = failure.status if isinstance(failure, ClientResponse) else failure
            call_hooks(hooks.on_retry, str(method), URL(url), delay, cause)
        if delay == base:
            await timer
        else:
            await asyncio.sleep(delay)
        timer.increase()
        self._stats.waited(WAIT_RETRY, delay)
        if hooks.on_wait:
            call_hooks(hooks.on_wait, WAIT_RETRY, delay, URL(url))

    def announce(
        self,
        method: HTTPMethod | str,
        url: Any,
        timer: Timer,
        chain: Chain,
        cause: ClientResponse | BaseException | None = None,
    ) -> None:
        """Log the retry: a WARNING once per call naming the request, what went wrong and the waits still ahead,
        and the exact delay of every retry at DEBUG.

        No colour codes: colour is a formatter's job, and escapes would land in log files and non-TTY streams.
        """
        logger = self.logger
        if not chain.warned:
            chain.warned = True
            if logger.isEnabledFor(logging.WARNING):
                remaining = timer.count_remaining
                # An unbounded timer has no count or total, and a schedule too long for the kernel to sum has no
                # total either: say what is known instead of failing on None.
                ahead = waits_ahead(timer)
                if remaining is None:
                    detail = "will keep retrying with no retry limit"
                elif ahead is None:
                    detail = f"will retry {remaining} more times"
                else:
                    detail = f"will retry {remaining} more times, waiting {ahead:.2f} s in all"
                status = cause.status if isinstance(cause, ClientResponse) else None
                logger.warning(
                    "%s %s failed (%s): %s",
                    _method_name(method),
                    redact_url(URL(url)),
                    _describe(cause),
                    detail,
                    extra=log_fields(method, url, status),
                )
        if logger.isEnabledFor(logging.DEBUG):
            self._log(method=str(method), url=url, message=f"Request failed: retrying in {float(timer):.2f} seconds...")


def waits_ahead(timer: Timer) -> float | None:
    """The seconds the retry steps still to come will sleep (before jitter), or None when not known.

    Each retry sleeps the timer's current value and then advances it, so the waits ahead are the current value
    and every later one but the last (the value the timer ends on is never slept): ``total_remaining`` (the
    values after the current one, the last included) plus the current value, less the final value.
    """
    budget = remaining_budget(timer)
    if budget is None:
        return None
    try:
        final = timer.final
        if final is None:
            return None
        return max(0.0, float(timer) + budget - float(final))
    except (TypeError, ValueError, OverflowError):
        return None


def _method_name(method: HTTPMethod | str) -> str:
    return method.name if isinstance(method, HTTPMethod) else str(method).upper()


def _describe(cause: ClientResponse | BaseException | None) -> str:
    """What made an attempt fail, for a log line: the status, or the transport error's type."""
    if isinstance(cause, ClientResponse):
        reason = f" {cause.reason}" if cause.reason else ""
        return f"status {cause.status}{reason}"
    if isinstance(cause, BaseException):
        return type(cause).__name__
    return "no response"


async def _body_text(response: ClientResponse) -> str:
    """The body for an error message; never raises for a broken body (non-UTF-8 bodies are decoded leniently).

    A body over the size limit was closed with ``ResponseTooLargeError``, which is raised again here.
    """
    try:
        return await response.text(errors="ignore")
    except _ERROR_BODY_ERRORS:
        return ""
