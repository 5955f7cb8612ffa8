# SPDX-License-Identifier: MIT
"""Cache backends: the abstract ``ResponseCache``, the SQLite implementation and, when redis-py is
installed (``pip install aiorequestful[redis]``), the Redis one."""

from __future__ import annotations

from .base import ResponseCache
from .sqlite import SQLiteCache

__all__: tuple[str, ...] = ("CACHE_CLASSES", "CACHE_TYPES", "ResponseCache", "SQLiteCache")

_classes: set[type[ResponseCache]] = {SQLiteCache}
try:
    import redis as _redis  # noqa: F401 - only probing whether the optional dependency is there
except ImportError:  # pragma: no cover - exercised without the [redis] extra
    pass
else:
    from .redis import RedisCache

    _classes.add(RedisCache)
    __all__ += ("RedisCache",)

#: Every concrete cache class (``RedisCache`` only when redis-py is installed).
CACHE_CLASSES: frozenset[type[ResponseCache]] = frozenset(_classes)
#: The backend names of ``CACHE_CLASSES`` (``cls.type``).
CACHE_TYPES: frozenset[str] = frozenset(str(cls.type) for cls in CACHE_CLASSES if cls.type is not None)
