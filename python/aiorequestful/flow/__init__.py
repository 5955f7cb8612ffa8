# SPDX-License-Identifier: MIT
"""Crawl-grade flow control for :class:`~aiorequestful.request.RequestHandler`.

All of it is opt-in through keyword arguments of ``RequestHandler``/``RequestHandler.create``; with the
defaults a handler behaves exactly as aiorequestful 1.0.20's does.

* :mod:`.limiter`  - ``rate_limit=``: a token bucket per host (``RateLimit``, ``HostRateLimiter``).
* :mod:`.pause`    - ``pause_on_retry_after=``: a 429/503 ``Retry-After`` pauses the whole host (``HostPauses``).
* :mod:`.retry`    - ``retry_policy=``: which failures are retried, with optional jitter (``RetryPolicy``).
* :mod:`.coalesce` - ``coalesce=``: identical concurrent GETs share one request (``Coalescer``).

Hosts are keyed by the ``(scheme, host, port)`` of the request URL.
"""

from __future__ import annotations

from ._hosts import HostKey, host_key
from .coalesce import COALESCE_METHODS, Coalescer
from .limiter import DEFAULT_HOST, HostRateLimiter, RateLimit, RateLimitInput
from .pause import PAUSE_STATUSES, HostPause, HostPauses
from .retry import ALL_METHODS, DEFAULT_RETRY_EXCEPTIONS, DEFAULT_RETRY_STATUSES, IDEMPOTENT_METHODS, RetryPolicy

__all__ = [
    "ALL_METHODS",
    "COALESCE_METHODS",
    "DEFAULT_HOST",
    "DEFAULT_RETRY_EXCEPTIONS",
    "DEFAULT_RETRY_STATUSES",
    "IDEMPOTENT_METHODS",
    "PAUSE_STATUSES",
    "Coalescer",
    "HostKey",
    "HostPause",
    "HostPauses",
    "HostRateLimiter",
    "RateLimit",
    "RateLimitInput",
    "RetryPolicy",
    "host_key",
]
