# SPDX-License-Identifier: MIT
"""Which failures a request retries, and how its retry delay is spread out.

Without a policy, ``RequestHandler`` keeps aiorequestful 1.0.20's behaviour: every failed attempt (a transport error, or
an error status no handler dealt with) of every method is retried while the retry timer allows. A
:class:`RetryPolicy` narrows that to *transient* failures of *idempotent* methods, the safe choice for crawlers
and for APIs where a repeated POST would act twice:

* statuses: 408, 425, 429 and every 5xx except 501 (Not Implemented) and 505 (HTTP Version Not Supported);
* methods: GET, HEAD, OPTIONS, PUT, DELETE and TRACE (RFC 9110 §9.2.2). A POST, PATCH or CONNECT is not retried
  unless listed, except when the connection could not even be opened (``aiohttp.ClientConnectorError``, not a
  TLS failure): then nothing was sent and trying again cannot act twice;
* exceptions: connection errors, payload errors and time-outs (TLS/certificate failures are not transient);
* jitter: up to ``jitter`` seconds, drawn uniformly at random, added to each retry delay so that many tasks that
  failed together do not all come back at the same instant.

Status handlers run first: a 401 re-authorisation or a 429 ``Retry-After`` wait resends a request
the server refused. For a method the policy does not retry, the status handlers are given no retry timer, so a
429 is not waited out and resent either.
"""

from __future__ import annotations

import asyncio
import math
import numbers
import random
from collections.abc import Iterable
from http import HTTPMethod
from typing import Any

import aiohttp

__all__ = (
    "ALL_METHODS",
    "DEFAULT_RETRY_EXCEPTIONS",
    "DEFAULT_RETRY_STATUSES",
    "IDEMPOTENT_METHODS",
    "RetryPolicy",
)

#: Statuses a :class:`RetryPolicy` retries by default.
DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({408, 425, 429, *range(500, 600)} - {501, 505})

#: RFC 9110 §9.2.2 idempotent methods: the ones a :class:`RetryPolicy` retries by default.
IDEMPOTENT_METHODS: frozenset[HTTPMethod] = frozenset(
    {HTTPMethod.GET, HTTPMethod.HEAD, HTTPMethod.OPTIONS, HTTPMethod.PUT, HTTPMethod.DELETE, HTTPMethod.TRACE}
)

#: Every method: pass ``methods=ALL_METHODS`` to retry POST/PATCH/CONNECT as well.
ALL_METHODS: frozenset[HTTPMethod] = frozenset(HTTPMethod)

#: Exceptions a :class:`RetryPolicy` retries by default (TLS failures excepted, see the module docs).
DEFAULT_RETRY_EXCEPTIONS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
)

# Subclasses of the default exceptions that are not transient: a bad certificate stays bad.
_NOT_TRANSIENT: tuple[type[BaseException], ...] = (aiohttp.ClientSSLError,)


def _ranges(numbers: Iterable[int]) -> str:
    """``[408, 429, 500, 502-504]``: runs of consecutive codes shown as ranges."""
    parts: list[str] = []
    run: list[int] = []
    for code in sorted(numbers):
        if run and code != run[-1] + 1:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run = []
        run.append(code)
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return f"[{', '.join(parts)}]"


def _method(value: Any) -> HTTPMethod:
    if isinstance(value, HTTPMethod):
        return value
    if not isinstance(value, str):
        raise TypeError(f"Methods must be str or HTTPMethod, not {type(value).__name__}")
    return HTTPMethod(value.upper())


def _status(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Statuses must be int, not {type(value).__name__}")
    status = int(value)
    if not 100 <= status <= 999:
        raise ValueError(f"Invalid status code: {status}")
    return status


class RetryPolicy:
    """Which failed attempts ``RequestHandler`` retries with its retry timer (opt in with ``retry_policy=``).

    :param statuses: error statuses to retry (default :data:`DEFAULT_RETRY_STATUSES`); any iterable of ints,
        e.g. ``range(500, 600)``. An error status not listed fails the request at once with ``ResponseError``.
    :param methods: methods whose failures are retried (default :data:`IDEMPOTENT_METHODS`); strings or
        ``HTTPMethod``, or :data:`ALL_METHODS`.
    :param exceptions: transport exception types to retry (default :data:`DEFAULT_RETRY_EXCEPTIONS`); any other
        exception raised by an attempt fails the request at once with that exception.
    :param jitter: the largest random extra delay, in seconds, added to each retry (default 0.0: none).
    """

    __slots__ = ("_not_transient", "exceptions", "jitter", "methods", "statuses")

    def __init__(
        self,
        *,
        statuses: Iterable[int] = DEFAULT_RETRY_STATUSES,
        methods: Iterable[str | HTTPMethod] = IDEMPOTENT_METHODS,
        exceptions: Iterable[type[BaseException]] | type[BaseException] = DEFAULT_RETRY_EXCEPTIONS,
        jitter: float = 0.0,
    ) -> None:
        self.statuses: frozenset[int] = frozenset(_status(s) for s in statuses)
        if isinstance(methods, str):
            methods = (methods,)
        self.methods: frozenset[HTTPMethod] = frozenset(_method(m) for m in methods)
        default_exceptions = exceptions is DEFAULT_RETRY_EXCEPTIONS
        if isinstance(exceptions, type):
            exceptions = (exceptions,)
        exceptions = tuple(exceptions)
        for exc in exceptions:
            if not (isinstance(exc, type) and issubclass(exc, BaseException)):
                raise TypeError(f"exceptions must be exception types, not {exc!r}")
        self.exceptions: tuple[type[BaseException], ...] = exceptions
        # Only the default set leaves TLS failures out; an explicit set is taken as given.
        self._not_transient: tuple[type[BaseException], ...] = _NOT_TRANSIENT if default_exceptions else ()
        if isinstance(jitter, bool) or not isinstance(jitter, numbers.Real):
            raise TypeError(f"jitter must be a number, not {type(jitter).__name__}")
        if not math.isfinite(jitter) or jitter < 0:
            raise ValueError(f"jitter must be a finite number of seconds >= 0, not {jitter!r}")
        self.jitter: float = float(jitter)

    def retries_method(self, method: str | HTTPMethod) -> bool:
        """Whether failures of ``method`` are retried (connection failures aside, see :meth:`retries_exception`)."""
        return _method(method) in self.methods

    def retries_status(self, status: int, method: str | HTTPMethod) -> bool:
        """Whether an attempt of ``method`` that ended with the error ``status`` is retried."""
        return status in self.statuses and self.retries_method(method)

    def retries_exception(self, exc: BaseException, method: str | HTTPMethod) -> bool:
        """Whether an attempt of ``method`` that raised ``exc`` is retried."""
        if not isinstance(exc, self.exceptions) or isinstance(exc, self._not_transient):
            return False
        if self.retries_method(method):
            return True
        # The connection was never opened, so nothing was sent: safe to try again for any method.
        return isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(exc, aiohttp.ClientSSLError)

    def delay(self, seconds: float) -> float:
        """The retry delay for a timer value of ``seconds``: plus up to ``jitter`` random seconds."""
        if self.jitter:
            return seconds + random.uniform(0.0, self.jitter)
        return seconds

    def __repr__(self) -> str:
        methods = sorted(m.value for m in self.methods)
        return (
            f"{type(self).__name__}(statuses={_ranges(self.statuses)}, methods={methods!r}, "
            f"exceptions={tuple(e.__name__ for e in self.exceptions)!r}, jitter={self.jitter!r})"
        )
