# SPDX-License-Identifier: MIT
"""Structured fields on every log record a :class:`~aiorequestful.request.RequestHandler` emits.

Each record logged while a ``request()`` call runs (request lines, retry warnings, status handler and pause
lines, cache warnings) carries the request it belongs to as attributes, so that a JSON formatter (or a
``%(http_url)s`` in a format string) can use them. The messages themselves are unchanged.

=================== ==================================================================================
attribute           value
=================== ==================================================================================
``http_method``     the method, upper case (``"GET"``)
``http_url``        the URL as the call gave it, with user info and secret query values masked
                    (:func:`aiorequestful.security.redact_url`)
``http_host``       the host the request goes to (the session's base URL's host for a relative URL)
``http_attempt``    the attempt of the call this record belongs to: 1 for the first send (and what
                    comes before it: a cache lookup, the flow-control gate), 2 for the next (a retry
                    or a resend), ...
``http_status``     the status of that attempt's response once it is known, else None
=================== ==================================================================================

The names are prefixed so that none collides with an attribute of :class:`logging.LogRecord`. A record logged
outside any call has them all set to None (so a format string that uses them never fails).

The handler's own log calls pass the fields as ``extra``. Records from the parts that do not know the request
(status handlers, the flow-control gate) get them from :class:`RequestContextFilter`, which this module adds
to the package's loggers; add one to a logger of your own (a handler's ``logger`` replaced by yours, or a
custom status handler's) to give its records the fields too.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from http import HTTPMethod
from typing import Any

from yarl import URL

from .._aiohttp import session_base_url
from ..security import redact_url

__all__ = (
    "FIELD_ATTEMPT",
    "FIELD_HOST",
    "FIELD_METHOD",
    "FIELD_STATUS",
    "FIELD_URL",
    "LOG_FIELDS",
    "RequestContextFilter",
    "log_fields",
)

FIELD_METHOD = "http_method"
FIELD_URL = "http_url"
FIELD_HOST = "http_host"
FIELD_ATTEMPT = "http_attempt"
FIELD_STATUS = "http_status"

#: Every attribute name this module sets on a record.
LOG_FIELDS: tuple[str, ...] = (FIELD_METHOD, FIELD_URL, FIELD_HOST, FIELD_ATTEMPT, FIELD_STATUS)

#: The loggers of the package whose records are given the fields by the filter (the handler's default logger,
#: which its flow-control gate and retry step share; the status handlers'; the caching session's).
_PACKAGE_LOGGERS = ("aiorequestful.request", "aiorequestful.response.status", "aiorequestful.cache.session")


def _method_name(method: Any) -> str:
    return method.name if isinstance(method, HTTPMethod) else str(method).upper()


def _host(url: Any, session: Any = None) -> str | None:
    """The host ``url`` goes to: its own, or for a relative URL the host of ``session``'s base URL."""
    try:
        parsed = url if isinstance(url, URL) else URL(str(url))
        if not parsed.absolute:
            base = session_base_url(session)
            return None if base is None else base.host
        return parsed.host
    except (TypeError, ValueError):
        return None


class CallLog:
    """What the records of one ``request()`` call say about it; the redacted URL is worked out once, when a
    record first needs it (a call that logs nothing pays nothing for it)."""

    __slots__ = ("_fields", "attempt", "method", "session", "status", "url")

    def __init__(self, method: Any, url: Any, session: Any = None) -> None:
        self.method = method
        self.url = url
        #: The session the call sends with (its base URL gives a relative URL's host).
        self.session = session
        self.attempt = 0
        self.status: int | None = None
        self._fields: tuple[str, str, str | None] | None = None

    def fixed(self) -> tuple[str, str, str | None]:
        """Method, redacted URL and host (computed on first use)."""
        fields = self._fields
        if fields is None:
            fields = self._fields = (_method_name(self.method), redact_url(self.url), _host(self.url, self.session))
        return fields


_current: ContextVar[CallLog | None] = ContextVar("aiorequestful_call_log", default=None)


def begin_call(method: Any, url: Any, session: Any = None) -> Token[CallLog | None]:
    """Start the log context of a ``request()`` call; give the token to :func:`end_call` when the call ends."""
    return _current.set(CallLog(method, url, session))


def end_call(token: Token[CallLog | None]) -> None:
    """End the call's log context: what was current before it (an outer call's, or none) is current again."""
    _current.reset(token)


def next_attempt() -> None:
    """An attempt of the current call starts: its number goes up and its status is not known yet."""
    call = _current.get()
    if call is not None:
        call.attempt += 1
        call.status = None


def response_status(status: int) -> None:
    """The current attempt got a response with ``status``."""
    call = _current.get()
    if call is not None:
        call.status = status


def log_fields(method: Any = None, url: Any = None, status: int | None = None) -> dict[str, Any]:
    """The ``extra`` of a log call: the current call's fields; ``method``, ``url`` and ``status`` given here win
    (a record about a request other than the call's, or a status the call has not seen yet)."""
    call = _current.get()
    name: str | None = None
    shown: str | None = None
    host: str | None = None
    attempt: int | None = None
    known_status: int | None = None
    if call is not None:
        name, shown, host = call.fixed()
        attempt = call.attempt or 1  # before the first send (a cache lookup, the gate), it is the first's
        known_status = call.status
        if url is not None and url is not call.url and str(url) != str(call.url):
            shown, host = redact_url(url), _host(url, call.session)
    elif url is not None:
        shown, host = redact_url(url), _host(url)
    if method is not None:
        name = _method_name(method)
    return {
        FIELD_METHOD: name,
        FIELD_URL: shown,
        FIELD_HOST: host,
        FIELD_ATTEMPT: attempt,
        FIELD_STATUS: status if status is not None else known_status,
    }


class RequestContextFilter(logging.Filter):
    """Gives a record the request fields (see the module docs) of the call being made when it was logged.

    It never drops a record, and leaves fields a record already has (from ``extra``) as they are. Works on a
    logger (for that logger's own records) and on a :class:`logging.Handler` (for every record it handles).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if all(hasattr(record, name) for name in LOG_FIELDS):
            return True
        for name, value in log_fields().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


#: The one filter the package's loggers share.
REQUEST_CONTEXT_FILTER = RequestContextFilter()

for _name in _PACKAGE_LOGGERS:
    logging.getLogger(_name).addFilter(REQUEST_CONTEXT_FILTER)
