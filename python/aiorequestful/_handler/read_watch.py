# SPDX-License-Identifier: MIT
"""The handler's default read time-out, kept by one timer for every attempt instead of one per received chunk.

aiohttp keeps ``ClientTimeout(sock_read=...)`` by cancelling and re-creating a loop timer each time bytes arrive;
with the event loop's timers written in Python, that is about a tenth of a small request's client CPU. When the
handler's own default time-out applies (:data:`aiorequestful.limits.DEFAULT_TIMEOUT`, the session and the request
giving none), a request without a body is sent with that time-out minus its read part, and the read part is
kept here instead: a watch over the attempts of one handler that looks at them a few times per time-out period.

What it bounds, for each attempt it watches:

* waiting for the response's headers: no longer than the read time-out plus the connect time-out (aiohttp's
  connect time-out, which still applies as before, covers getting a connection from the pool, so the wait for
  the first byte after it is bounded by the read time-out as with aiohttp's own);
* reading the body: no longer than the read time-out without a byte arriving.

A stall is noticed at most half a time-out late (the watch looks four times per time-out). The attempt then
fails with aiohttp's own socket time-out error (``SocketTimeoutError``, a ``TimeoutError``) and message, so
retries, retry policies and callers treat it exactly as they treat aiohttp's. A wait for headers is stopped by
cancelling the task awaiting it and turning that cancellation back into the time-out, as :func:`asyncio.timeout`
does (a cancellation from anyone else stays a cancellation); a body read is stopped by leaving the error on the
response's stream, which wakes the reader with it.

Requests with a body, sessions that read bodies themselves (a caching session), a session or a request with its
own ``timeout=``, and calls under an aiohttp client middleware keep aiohttp's read time-out unchanged.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from aiohttp import ClientResponse

__all__ = ("ReadWatch", "split_timeout", "timeout_error")

#: aiohttp's error for a read that timed out (``ServerTimeoutError`` on versions without the narrower class).
READ_TIMEOUT_ERROR: type[Exception] = getattr(aiohttp, "SocketTimeoutError", aiohttp.ServerTimeoutError)
#: aiohttp's message for it, so the two cannot be told apart.
READ_TIMEOUT_MESSAGE = "Timeout on reading data from socket"

#: The shortest period between two looks at the watched attempts (a time-out of a few milliseconds in a test).
_MIN_PERIOD = 0.005

# The fields of a watched attempt (a list: this is made twice per request, and a list costs the least).
_LIMIT, _RESPONSE, _SEEN, _SINCE, _EXPIRED, _TASK, _CANCELLING = range(7)


def timeout_error() -> Exception:
    """The error of an attempt the watch stopped: aiohttp's own for a read that timed out."""
    return READ_TIMEOUT_ERROR(READ_TIMEOUT_MESSAGE)


_SPLIT: dict[int, tuple[aiohttp.ClientTimeout, aiohttp.ClientTimeout, float | None, float]] = {}


def split_timeout(timeout: aiohttp.ClientTimeout) -> tuple[aiohttp.ClientTimeout, float | None, float]:
    """``timeout`` without its read part, the read part, and the connect part that waiting for headers adds.

    Remembered per time-out object (the default is one object), so the read-less one is always the same object.
    """
    known = _SPLIT.get(id(timeout))
    if known is not None and known[0] is timeout:
        return known[1], known[2], known[3]
    read = timeout.sock_read
    if not read:
        rest, read = timeout, None
    else:
        rest = aiohttp.ClientTimeout(
            total=timeout.total,
            connect=timeout.connect,
            sock_connect=timeout.sock_connect,
            sock_read=None,
            ceil_threshold=timeout.ceil_threshold,
        )
    connect = timeout.connect or timeout.sock_connect or 0.0
    if len(_SPLIT) < 64:  # keeps the time-out objects alive, so an id is never reused for another one
        _SPLIT[id(timeout)] = (timeout, rest, read, connect)
    return rest, read, connect


class ReadWatch:
    """The read time-out of one handler's attempts (see the module documentation)."""

    __slots__ = ("_handle", "_period", "_watched", "admitted", "connect", "default", "read", "readless")

    def __init__(self) -> None:
        #: The default time-out these were split from, the read-less rest that is sent with a watched request,
        #: its read limit (None: the default has none, and nothing is watched) and its connect limit.
        self.default: aiohttp.ClientTimeout | None = None
        self.readless: aiohttp.ClientTimeout | None = None
        self.read: float | None = None
        self.connect = 0.0
        #: The waits being watched now: for headers by the task waiting, for a body by its response.
        self._watched: dict[Any, list[Any]] = {}
        #: Responses whose headers came under the watch, and so whose body is read under it.
        self.admitted: dict[ClientResponse, list[Any]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._period = 0.0

    def use(self, default: aiohttp.ClientTimeout) -> None:
        """Split ``default`` (the handler's default time-out, which may have been replaced since last time)."""
        self.readless, self.read, self.connect = split_timeout(default)
        self.default = default

    def headers(self, limit: float) -> list[Any]:
        """Watch the current task's wait for a response's headers, for at most ``limit`` seconds; give the
        result to :meth:`headers_done` when the wait is over."""
        task = asyncio.current_task()
        if task is None:  # not in a task (never under asyncio): nothing could be cancelled, so nothing is watched
            return [limit, None, 0, None, False, None, 0]
        # When it was last seen moving is filled in by the next look, so starting costs no clock reading.
        entry = [limit, None, -1, None, False, task, task.cancelling()]
        self._watched[task] = entry
        if self._handle is None:
            self._start(limit)
        return entry

    def headers_done(self, entry: list[Any], response: ClientResponse | None = None) -> bool:
        """The wait for headers is over, with ``response`` (None: it failed). True when it timed out: the
        cancellation that stopped it is taken back, and the caller raises :func:`timeout_error` instead.
        Otherwise ``response``'s body is read under the watch next (see :meth:`body`)."""
        task = entry[_TASK]
        if task is None:
            return False
        self._watched.pop(task, None)
        if entry[_EXPIRED]:
            # As asyncio.timeout: the cancellation is ours only if nobody else asked for one meanwhile.
            return bool(task.uncancel() <= entry[_CANCELLING])
        if response is not None:
            entry[_LIMIT], entry[_RESPONSE], entry[_SINCE] = self.read, response, None
            self.admitted[response] = entry
        return False

    def body(self, response: ClientResponse) -> bool:
        """Watch the read of ``response``'s body if its headers came under the watch (True: call
        :meth:`body_done` after it). A stalled body read meets aiohttp's read time-out error from the stream,
        which keeps it for every later reader (as with aiohttp's own read time-out)."""
        entry = self.admitted.pop(response, None) if self.admitted else None
        if entry is None:
            return False
        self._watched[response] = entry
        if self._handle is None:
            self._start(entry[_LIMIT])
        return True

    def body_done(self, response: ClientResponse) -> None:
        self._watched.pop(response, None)

    def forget(self, response: ClientResponse) -> None:
        """``response`` is released: whatever was kept for it goes."""
        if self.admitted:
            self.admitted.pop(response, None)

    def close(self) -> None:
        """Stop looking (the handler closed); attempts still watched are left to finish unwatched."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._watched.clear()
        self.admitted.clear()

    # ------------------------------------------------------------------------------------------------------
    def _start(self, limit: float) -> None:
        self._period = max(limit / 4, _MIN_PERIOD)
        self._handle = asyncio.get_running_loop().call_later(self._period, self._look)

    def _look(self) -> None:
        self._handle = None
        if not self._watched:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for entry in list(self._watched.values()):
            if entry[_EXPIRED]:
                continue
            response = entry[_RESPONSE]
            seen = 0 if response is None else response.content.total_bytes
            if entry[_SINCE] is None or seen != entry[_SEEN]:
                entry[_SEEN], entry[_SINCE] = seen, now
            elif now - entry[_SINCE] >= entry[_LIMIT]:
                entry[_EXPIRED] = True
                if response is None:
                    entry[_TASK].cancel()  # waiting for headers: only the task can be stopped
                else:
                    response.content.set_exception(timeout_error())  # wakes the reader with the error
        if self._watched:
            self._handle = loop.call_later(self._period, self._look)
