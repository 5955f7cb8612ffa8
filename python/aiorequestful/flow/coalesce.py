# SPDX-License-Identifier: MIT
"""Request coalescing: identical concurrent GETs share one network request.

Two requests are identical when they have the same method (GET or HEAD), the same URL, the same query pairs (in
any order, ``params`` included), the same request headers and the same options that change what comes back
(``allow_redirects``, ``max_redirects``, ``timeout`` and, with a cache, ``persist``). The key is a SHA-256 digest
from the ``cache_key`` kernel, so no header value (credentials included) is kept in memory in the clear. A
request with a body, or with any other option (cookies, auth, proxy, TLS settings...), is never coalesced.

The first request of a key runs the whole request loop (gate, retries, status handlers) in a task of its own; every
identical request that arrives while it runs waits for that task instead of sending. Then:

* the first caller gets the payload object itself and every other caller a deep copy (a mutable JSON payload
  changed by one caller never changes another's); immutable payloads (str, bytes, numbers) are shared;
* a failure is raised in every caller (the same exception object);
* cancelling one caller, the first included, never cancels the others; the shared request is cancelled only
  when every caller waiting for it has been cancelled.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPMethod
from typing import Any, TypeVar

from multidict import CIMultiDict
from yarl import URL

from .._backend import kernels

__all__ = ("COALESCE_METHODS", "Coalescer")

T = TypeVar("T")

#: Methods whose identical concurrent requests are coalesced.
COALESCE_METHODS: frozenset[HTTPMethod] = frozenset({HTTPMethod.GET, HTTPMethod.HEAD})

# Options that may differ between coalesced requests only through the key; anything else disables coalescing.
_KEYED_OPTIONS = ("allow_redirects", "max_redirects", "timeout", "persist")
_IGNORED_OPTIONS = frozenset({"params", "headers", "log_message", *_KEYED_OPTIONS})

_IMMUTABLE = (str, bytes, int, float, complex, bool, type(None), frozenset)


def _share(payload: Any) -> Any:
    """``payload`` for one more caller: itself when immutable, else a deep copy (itself if it cannot be copied)."""
    if isinstance(payload, _IMMUTABLE):
        return payload
    try:
        return copy.deepcopy(payload)
    except Exception:  # an object that refuses to be copied is shared as is
        return payload


def _header_parts(headers: Any) -> list[str]:
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    merged = CIMultiDict((str(k), str(v)) for k, v in pairs)
    return [f"{key.lower()}\x00{value}" for key, value in sorted((k.lower(), v) for k, v in merged.items())]


class _Flight:
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Future[Any]) -> None:
        self.task = task
        self.waiters = 0


class Coalescer:
    """Shares one in-flight request between identical concurrent requests (one per handler)."""

    __slots__ = ("_flights",)

    def __init__(self) -> None:
        self._flights: dict[str, _Flight] = {}

    def __len__(self) -> int:
        """Requests in flight that others may join."""
        return len(self._flights)

    def __contains__(self, key: object) -> bool:
        """Whether a request with this key is in flight (a new caller would join it)."""
        return key in self._flights

    @staticmethod
    def key(method: HTTPMethod, url: Any, kwargs: Mapping[str, Any], extra: Iterable[str] = ()) -> str | None:
        """The coalescing key of a request, or None when it must not be coalesced.

        :param extra: more key parts (e.g. a digest of the session's default headers).
        """
        if method not in COALESCE_METHODS:
            return None
        for name, value in kwargs.items():
            if name not in _IGNORED_OPTIONS and value is not None:
                return None  # a body, cookies, auth, proxy...: not provably identical
        try:
            full = URL(url) if not isinstance(url, URL) else url
            params = kwargs.get("params")
            if params:
                full = full.extend_query(params)
            query = [(str(k), str(v)) for k, v in full.query.items()]
            base = str(full.with_query(None).with_fragment(None))
            parts: list[str | int | bool | None] = list(extra)
            parts.append("headers")
            parts.extend(_header_parts(kwargs.get("headers")))
            for name in _KEYED_OPTIONS:
                value = kwargs.get(name)
                parts.append(name)
                parts.append(value if value is None or isinstance(value, (bool, int)) else repr(value))
            return kernels.cache_key(method.value, base, query, parts)
        except (TypeError, ValueError):
            return None  # let the request itself report a bad URL or parameter

    async def run(self, key: str, factory: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Join the request in flight for ``key``, or start it with ``factory()``.

        Returns ``(payload, joined)``: ``joined`` is True when another caller's request was shared.
        """
        flight = self._flights.get(key)
        joined = flight is not None
        if flight is None:
            task = asyncio.ensure_future(factory())
            flight = _Flight(task)
            self._flights[key] = flight
            task.add_done_callback(functools.partial(self._finished, key, flight))
        flight.waiters += 1
        try:
            # shield: cancelling this caller must not cancel the request the others are waiting for.
            result = await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # Nobody is left to receive it. Forget it at once so that a caller arriving while it unwinds
                # starts a request of its own instead of joining one that is being cancelled.
                self._done(key, flight)
                flight.task.cancel()
        return (_share(result) if joined else result), joined

    def _finished(self, key: str, flight: _Flight, _task: asyncio.Future[Any]) -> None:
        self._done(key, flight)

    def _done(self, key: str, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
