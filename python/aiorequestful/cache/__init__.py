# SPDX-License-Identifier: MIT
"""Response caching: repositories of stored responses, their backends, and the session that uses them.

The full paths are ``aiorequestful.cache.backend`` (``SQLiteCache``, ``ResponseCache``...),
``aiorequestful.cache.session`` and ``aiorequestful.cache.response``; the names users reach for first are also
importable from here, loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._utils import lazy_exports

if TYPE_CHECKING:
    from .backend.base import ResponseCache as ResponseCache
    from .backend.base import ResponseRepository as ResponseRepository
    from .backend.base import ResponseRepositorySettings as ResponseRepositorySettings
    from .backend.sqlite import SQLiteCache as SQLiteCache
    from .backend.sqlite import SQLiteTable as SQLiteTable
    from .exception import CacheError as CacheError
    from .response import CachedResponse as CachedResponse
    from .session import CachedSession as CachedSession

_EXPORTS = {
    "CachedResponse": ".response",
    "CachedSession": ".session",
    "CacheError": ".exception",
    "ResponseCache": ".backend.base",
    "ResponseRepository": ".backend.base",
    "ResponseRepositorySettings": ".backend.base",
    "SQLiteCache": ".backend.sqlite",
    "SQLiteTable": ".backend.sqlite",
}

__all__ = tuple(sorted(_EXPORTS))


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
