# SPDX-License-Identifier: MIT
"""Cache backends (api.md §9.3): the abstract ``ResponseCache`` and the SQLite implementation."""

from __future__ import annotations

from .base import ResponseCache
from .sqlite import SQLiteCache

__all__ = ("CACHE_CLASSES", "CACHE_TYPES", "ResponseCache", "SQLiteCache")

#: Every concrete cache class.
CACHE_CLASSES: frozenset[type[ResponseCache]] = frozenset({SQLiteCache})
#: The backend names of ``CACHE_CLASSES`` (``cls.type``).
CACHE_TYPES: frozenset[str] = frozenset(str(cls.type) for cls in CACHE_CLASSES if cls.type is not None)
