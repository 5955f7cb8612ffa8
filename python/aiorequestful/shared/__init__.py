# SPDX-License-Identifier: MIT
"""Beyond one machine: shared state for crawler fleets through Redis (``pip install aiorequestful[redis]``).

One :class:`RedisConnection` per process, and the shared components built on it::

    from aiorequestful.shared import (
        RedisAdaptiveThrottle, RedisCache, RedisConnection, RedisHostConcurrency, RedisHostPauses,
        RedisHostRateLimiter, RedisTokenStore,
    )
    from aiorequestful.flow import RateLimit

    redis = RedisConnection("redis://127.0.0.1:6379/0", namespace="my-crawler")
    limiter = RedisHostRateLimiter(redis, RateLimit(20))   # 20 requests/s per host for the whole fleet
    pauses = RedisHostPauses(redis)                        # a Retry-After seen by one worker pauses all
    caps = RedisHostConcurrency(redis, 4)                  # at most 4 in flight per host, fleet-wide
    adaptive = RedisAdaptiveThrottle(redis)                # one AIMD rate per host for the whole fleet
    cache = RedisCache.connect(redis, cache_name="api", repository_getter=...)
    oauth.token_store = RedisTokenStore(redis, name="example-api")   # one worker refreshes, the others reuse
    handler = RequestHandler.create(
        authoriser=oauth, cache=cache, rate_limit=limiter, pause_on_retry_after=pauses, max_in_flight=caps,
        adaptive=adaptive, rate_limit_headers=True,   # header holds and paces are the limiter's: shared too
    )
    async with redis, handler:
        ...

If Redis is unreachable or restarts, everything carries on with local state (see :class:`RedisConnection`).
Importing this package works without redis-py; creating a connection then raises ``AIORequestfulImportError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .connection import DEFAULT_NAMESPACE, DEFAULT_URL, RedisConnection

if TYPE_CHECKING:
    from ..auth._redis_store import RedisTokenStore
    from ..cache.backend.redis import RedisCache, RedisTable
    from ..flow.redis import RedisAdaptiveThrottle, RedisHostConcurrency, RedisHostPauses, RedisHostRateLimiter

__all__ = (
    "DEFAULT_NAMESPACE",
    "DEFAULT_URL",
    "RedisAdaptiveThrottle",
    "RedisCache",
    "RedisConnection",
    "RedisHostConcurrency",
    "RedisHostPauses",
    "RedisHostRateLimiter",
    "RedisTable",
    "RedisTokenStore",
)

# Imported on first access: those modules import this package's connection module themselves.
_LAZY = {
    "RedisCache": "..cache.backend.redis",
    "RedisTable": "..cache.backend.redis",
    "RedisAdaptiveThrottle": "..flow.redis",
    "RedisHostConcurrency": "..flow.redis",
    "RedisHostPauses": "..flow.redis",
    "RedisHostRateLimiter": "..flow.redis",
    "RedisTokenStore": "..auth._redis_store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
