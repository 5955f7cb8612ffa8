# SPDX-License-Identifier: MIT
"""Reading and writing a response cache for a request, without failing it: what ``CachedSession`` and the cache
middleware (``aiorequestful.middleware.CacheMiddleware``) share."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from aiohttp import ClientResponse, RequestInfo

from .._utils import format_url_log
from ..limits import DEFAULT_MAX_BODY_SIZE
from ..response._body import read_body
from ..response.exception import ResponseTooLargeError
from ..telemetry.logfields import log_fields
from ._entry import CacheEntry, default_headers
from .exception import CacheError
from .policy import StoredTimes
from .response import CachedResponse

if TYPE_CHECKING:
    from .backend.base import ResponseCache, ResponseRepository

__all__ = ("STORAGE_ERRORS", "CacheAccess")

#: Errors of the cache's storage: they turn a lookup into a miss and a save into a warning.
STORAGE_ERRORS: tuple[type[BaseException], ...] = (CacheError, sqlite3.Error)


#: Repository class -> whether its lookups may take ``cached_response`` (see :func:`_has_quick_lookup`).
_quick_lookups: dict[type, bool] = {}


def _has_quick_lookup(kind: type) -> bool:
    """True for a SQLite table class whose lookup is SQLite's own: a subclass that overrides ``get_entry`` (or
    the older ``_get_entry``) is asked through it, as before."""
    from .backend.sqlite import SQLiteTable

    if not issubclass(kind, SQLiteTable):
        return False
    own = SQLiteTable.__dict__
    return all(getattr(kind, name) is own[name] for name in ("get_entry", "_get_entry"))


class CacheAccess:
    """Lookups and saves on ``self.cache`` that never fail the request: a broken store is a logged miss, a
    failed save a warning. Mixed into the classes that give the cache its requests (they set ``cache`` and
    ``logger``)."""

    __slots__ = ()

    cache: ResponseCache[Any]
    logger: logging.Logger

    async def _lookup_entry(self, repository: ResponseRepository, info: RequestInfo) -> CacheEntry | None:
        """The live stored entry for ``info``; None for a miss or a cache that failed (logged)."""
        try:
            return await repository.get_entry(info)
        except STORAGE_ERRORS as exc:
            self._lookup_failed(info, exc)
            return None

    def _lookup_failed(self, info: RequestInfo, exc: BaseException) -> None:
        self.logger.warning(
            "Cache lookup failed, sending the request instead: %s",
            format_url_log(info.method, info.url, f"{type(exc).__name__}: {exc}"),
            extra=log_fields(info.method, info.url),
        )

    async def _lookup(
        self, repository: ResponseRepository, info: RequestInfo, scope: str | None = None
    ) -> CachedResponse | None:
        """The cached response for ``info``; None for a miss or a cache that failed (logged). ``scope``: the
        credential digest when the caller already knows it (``NO_CREDENTIALS`` for a request without any)."""
        quick = _quick_lookups.get(type(repository))
        if quick is None:
            quick = _quick_lookups[type(repository)] = _has_quick_lookup(type(repository))
        if quick:
            try:
                return await repository.cached_response(info, scope)  # type: ignore[attr-defined]
            except STORAGE_ERRORS as exc:
                self._lookup_failed(info, exc)
                return None
        entry = await self._lookup_entry(repository, info)
        if entry is None:
            return None
        headers = entry.headers
        if headers is None:
            headers = default_headers(repository.settings.payload_handler)
        # The payload the repository decoded while validating the row, for the request loop (decoded once).
        return CachedResponse(
            info, entry.payload, status=entry.status, reason=entry.reason, headers=headers, decoded=entry.decoded
        )

    async def _persist(
        self,
        repository: ResponseRepository,
        info: RequestInfo,
        response: ClientResponse,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        *,
        times: StoredTimes | None = None,
        keep: float | None = None,
    ) -> None:
        try:
            # The repository reads the whole body to store it: read it within the limit first (later reads
            # return these bytes). A larger body is never stored and fails the request.
            await read_body(response, max_body_size)
            await repository.save_for_request(info, response, times=times, keep=keep)
        except (asyncio.CancelledError, ResponseTooLargeError):
            raise
        except Exception as exc:  # the caller has its response; a failed save is a warning, not an error
            self.logger.warning(
                "Could not cache the response: %s",
                format_url_log(info.method, info.url, type(exc).__name__),
                extra=log_fields(info.method, info.url),
            )
            self.logger.debug("Cache save failure detail", exc_info=True, extra=log_fields(info.method, info.url))
