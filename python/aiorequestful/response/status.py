# SPDX-License-Identifier: MIT
"""Status handlers: what to do with a response whose status code is not a success.

A handler claims a list of status codes. ``handle`` returns True when it dealt with the response and the request
should be sent again, False when it did not, or raises when the response is a final failure. ``RequestHandler``
calls every handler with the keywords ``response=, authoriser=, session=, payload_handler=, wait_timer=,
retry_timer=``; each handler takes the ones it needs and ignores the rest.

Every handler instance owns its state: nothing here is shared between instances.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import numbers
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ._body import error_for_response
from ._retry_after import parse_retry_after
from .exception import ResponseError, StatusHandlerError

if TYPE_CHECKING:
    from aiohttp import ClientResponse, ClientSession

    from ..timer import Timer

__all__ = ("ClientErrorStatusHandler", "RateLimitStatusHandler", "StatusHandler", "UnauthorisedStatusHandler")

#: Every 4xx code the running Python's ``http.HTTPStatus`` knows (29 on 3.12/3.13), in ascending order.
_CLIENT_ERROR_CODES: tuple[int, ...] = tuple(sorted(status.value for status in HTTPStatus if 400 <= status < 500))

#: The default cap on a Retry-After wait, in seconds: a server asking for longer is treated as a failure.
DEFAULT_MAX_RETRY_AFTER = 3600.0

# Shown in a message in place of a retry time too far ahead for the calendar (e.g. Retry-After: 1e400).
_FAR_FUTURE = "a time too far ahead to display"


def _seconds_text(value: Any) -> str:
    """``value`` formatted as ``{:.2f}``, falling back to ``str`` for ints too large for a float."""
    try:
        return f"{value:.2f}"
    except (OverflowError, ValueError, TypeError):
        return str(value)


def _retry_at(moment: float) -> str:
    """The POSIX time ``moment`` as local ``%Y-%m-%d %H:%M:%S``, rounded to the nearest second.

    Rounding (not truncating) makes an HTTP-date come back as itself even when ``now + (date - now)`` lands a
    hair below it, so requests told the same date share one warning.
    """
    try:
        return datetime.fromtimestamp(round(moment)).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return _FAR_FUTURE


class StatusHandler(ABC):
    """Handles responses with the status codes it lists."""

    __slots__ = ("logger",)

    def __init__(self) -> None:
        self.logger: logging.Logger = logging.getLogger(__name__)

    @property
    @abstractmethod
    def status_codes(self) -> list[int]:
        """The status codes this handler is responsible for."""
        raise NotImplementedError

    def match(self, response: ClientResponse, fail_on_error: bool = False) -> bool:
        """Whether this handler is responsible for ``response``'s status; raise instead when ``fail_on_error``."""
        codes = self.status_codes
        if response.status in codes:
            return True
        if fail_on_error:
            valid = ",".join(str(code) for code in codes)
            raise StatusHandlerError(
                f"Response status does not match this handler | Response={response.status} | Valid={valid}"
            )
        return False

    def _log(self, response: ClientResponse, message: str = "") -> None:
        """DEBUG ``Status: {code} ({phrase}) - {description} | {message}``."""
        if not self.logger.isEnabledFor(logging.DEBUG):  # build nothing when nobody listens
            return
        code = response.status
        try:
            status = HTTPStatus(code)
        except ValueError:
            # Codes outside http.HTTPStatus (499, 520, ...) still get a line.
            phrase = response.reason or "Unknown Status"
            description = "Non-standard status code"
        else:
            phrase, description = status.phrase, status.description
        self.logger.debug("Status: %s (%s) - %s | %s", code, phrase, description, message)

    @abstractmethod
    async def handle(self, response: ClientResponse, *_: Any, **__: Any) -> bool:
        """Handle ``response``: True when the request should be sent again, False when not handled."""
        raise NotImplementedError

    def __call__(self, response: ClientResponse, *args: Any, **kwargs: Any) -> Awaitable[bool]:
        return self.handle(response, *args, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ClientErrorStatusHandler(StatusHandler):
    """Turns any 4xx response into a :class:`ResponseError` carrying the response and its body text.

    The message names the request (method and URL, secrets masked) and shows the first 300 characters of the
    body; the whole body text is the error's ``body``.
    """

    __slots__ = ()

    @property
    def status_codes(self) -> list[int]:
        return list(_CLIENT_ERROR_CODES)  # a new list each time: callers cannot alter the handler

    async def handle(self, response: ClientResponse, *_: Any, **__: Any) -> bool:
        self.match(response=response, fail_on_error=True)
        self._log(response=response, message="Bad response")
        # errors="ignore": a body in a broken or unexpected encoding must still produce the ResponseError.
        raise error_for_response(response, await response.text(errors="ignore"))


class UnauthorisedStatusHandler(StatusHandler):
    """Re-authorises the session on a 401 and asks for the request to be sent again.

    The bound on re-authorisation (at most once per request) lives in ``RequestHandler``.
    """

    __slots__ = ()

    @property
    def status_codes(self) -> list[int]:
        return [401]

    async def handle(
        self,
        response: ClientResponse,
        authoriser: Any = None,
        session: ClientSession | None = None,
        *_: Any,
        **__: Any,
    ) -> bool:
        self.match(response=response, fail_on_error=True)
        if authoriser is None or session is None:
            return False
        self._log(response=response, message="Re-authorising")
        # Let the authoriser drop the credentials the server refused, so that authorising again renews them
        # instead of handing back the same token. Only the refused value is passed, never logged.
        invalidate = getattr(authoriser, "invalidate", None)
        if callable(invalidate):
            result = invalidate(rejected=_sent_authorization(response))
            if inspect.isawaitable(result):
                await result
        headers = await authoriser
        session.headers.update(headers)
        return True


def _sent_authorization(response: ClientResponse) -> str | None:
    """The ``Authorization`` value the request that produced ``response`` carried, or None."""
    try:
        headers = response.request_info.headers
    except AttributeError:  # a response object without request details
        return None
    value = headers.get("Authorization")
    return value if isinstance(value, str) else None


class RateLimitStatusHandler(StatusHandler):
    """Waits out a 429 as its ``Retry-After`` header asks, within the request's retry budget.

    * The ``wait_timer`` grows by one step on every 429 (the gap between requests widens).
    * Without a usable ``Retry-After`` (missing, or garbage: logged), or without a ``retry_timer``, the response
      is not handled: the request handler's ordinary retry step applies.
    * A retry timer that cannot increase, a wait longer than the retry timer's ``total_remaining`` or longer than
      ``max_retry_after`` raises :class:`ResponseError` carrying the response.
    * Otherwise: release the response (its connection goes back to the pool instead of being held through the
      wait; only its status and headers were needed), sleep the wait, consume one retry step
      (``retry_timer.increase()``), and return True.

    :param max_retry_after: the longest wait accepted from a server, in seconds (default one hour).
    """

    __slots__ = ("_last_retry_at", "max_retry_after")

    def __init__(self, *, max_retry_after: float = DEFAULT_MAX_RETRY_AFTER) -> None:
        super().__init__()
        if isinstance(max_retry_after, bool) or not isinstance(max_retry_after, numbers.Real):
            raise TypeError(f"max_retry_after must be a number, not {type(max_retry_after).__name__}")
        if math.isnan(max_retry_after) or max_retry_after < 0:
            raise ValueError(f"max_retry_after must be a non-negative number of seconds, not {max_retry_after!r}")
        self.max_retry_after: float = float(max_retry_after)
        # The retry time of the last warning: concurrent requests hitting the same limit warn once.
        self._last_retry_at: str | None = None

    @property
    def status_codes(self) -> list[int]:
        return [429]

    async def handle(
        self,
        response: ClientResponse,
        wait_timer: Timer | None = None,
        retry_timer: Timer | None = None,
        *_: Any,
        **__: Any,
    ) -> bool:
        self.match(response=response, fail_on_error=True)
        self._log(response=response, message="Rate limit exceeded")

        if wait_timer is not None:
            # Pass the value, not the timer: a handler formatting the record later must see this value.
            if wait_timer.increase():
                self.logger.debug("Increasing wait time between requests to %.2fs", float(wait_timer))
            else:
                self.logger.debug("Cannot increase wait time. Already at maximum of %.2fs", float(wait_timer))

        header = response.headers.get("Retry-After")
        if header is None:
            return False
        now = time.time()  # one clock reading for both the wait and the retry time shown
        wait = parse_retry_after(header, now=now)
        if wait is None:  # neither delay-seconds nor an HTTP-date
            self.logger.warning("Ignoring unusable Retry-After header: %r", header[:100])
            return False
        if retry_timer is None:
            return False

        retry_at = _retry_at(now + wait)
        if not retry_timer.can_increase:  # the retry budget is spent
            raise ResponseError(
                f"Rate limit exceeded and no retries remain. Retry again at {retry_at}", response=response
            )
        remaining = _remaining_budget(retry_timer)
        if remaining is not None and wait > remaining:  # compare with what is left; None = unbounded
            raise ResponseError(
                "Rate limit exceeded and wait time is greater than remaining timeout of "
                f"{_seconds_text(remaining)} seconds. Retry again at {retry_at}",
                response=response,
            )
        if wait > self.max_retry_after or not math.isfinite(wait):
            raise ResponseError(
                f"Rate limit exceeded and wait time of {_seconds_text(wait)} seconds is greater than the maximum "
                f"of {_seconds_text(self.max_retry_after)} seconds. Retry again at {retry_at}",
                response=response,
            )

        if retry_at != self._last_retry_at:  # once per distinct wait, not once per 429
            self._last_retry_at = retry_at
            self.logger.warning("Rate limit exceeded. Retrying again at %s", retry_at)
        # A sleeping request must not hold a pooled connection: a few hundred of them would starve every other
        # request of the session, whatever host it is for.
        response.release()
        await asyncio.sleep(wait)
        retry_timer.increase()  # a handled 429 consumes one retry step
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_retry_after={self.max_retry_after!r})"


def _remaining_budget(retry_timer: Timer) -> Any:
    """``retry_timer.total_remaining``; None when unbounded or when the schedule is too long to sum."""
    try:
        return retry_timer.total_remaining
    except ValueError:
        # A schedule longer than the kernel's MAX_TIMER_STEPS: too long to sum, so no budget limit applies here;
        # max_retry_after and can_increase still bound the wait.
        return None
