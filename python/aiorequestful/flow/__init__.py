# SPDX-License-Identifier: MIT
"""Crawl-grade flow control for :class:`~aiorequestful.request.RequestHandler`.

All of it is opt-in through keyword arguments of ``RequestHandler``/``RequestHandler.create``; with the
defaults a handler behaves exactly as aiorequestful 1.0.20's does.

* :mod:`.limiter`  - ``rate_limit=``: a token bucket per host (``RateLimit``, ``HostRateLimiter``).
* :mod:`.pause`    - ``pause_on_retry_after=``: a 429/503 ``Retry-After`` pauses the whole host (``HostPauses``).
* :mod:`.retry`    - ``retry_policy=``: which failures are retried, with optional jitter (``RetryPolicy``).
* :mod:`.coalesce` - ``coalesce=``: identical concurrent GETs share one request (``Coalescer``).
* ``max_in_flight=``: at most N requests in flight per host (``HostConcurrency``).
* ``rate_limit_headers=``: a spent quota (``RateLimit``, ``X-RateLimit-*`` headers) holds the host until its
  reset (``rate_limit_reset``).
* ``adaptive=``: per-host AIMD rate control (``AdaptiveThrottle``).

Several limits per host (``RateLimits``, ``RateWindow``) and ``max_wait=`` (``RateLimitWaitError``) are part
of :mod:`.limiter`; a robots.txt ``Crawl-delay`` paces hosts with ``RobotsTxt(..., use_crawl_delay=True)``.

Hosts are keyed by the ``(scheme, host, port)`` of the request URL.
"""

from __future__ import annotations

from ._adaptive import ADAPTIVE_STATUSES, AdaptiveThrottle
from ._concurrency import ConcurrencyInput, HostConcurrency, InFlightSlot
from ._headers import MAX_RESET_WAIT, rate_limit_reset
from ._hosts import HostKey, host_key
from .coalesce import COALESCE_METHODS, Coalescer
from .limiter import (
    DEFAULT_HOST,
    HostRateLimiter,
    RateLimit,
    RateLimitInput,
    RateLimits,
    RateLimitWaitError,
    RateWindow,
)
from .pause import PAUSE_STATUSES, HostPause, HostPauses
from .retry import ALL_METHODS, DEFAULT_RETRY_EXCEPTIONS, DEFAULT_RETRY_STATUSES, IDEMPOTENT_METHODS, RetryPolicy

__all__ = [
    "ADAPTIVE_STATUSES",
    "ALL_METHODS",
    "COALESCE_METHODS",
    "DEFAULT_HOST",
    "DEFAULT_RETRY_EXCEPTIONS",
    "DEFAULT_RETRY_STATUSES",
    "IDEMPOTENT_METHODS",
    "MAX_RESET_WAIT",
    "PAUSE_STATUSES",
    "AdaptiveThrottle",
    "Coalescer",
    "ConcurrencyInput",
    "HostConcurrency",
    "HostKey",
    "HostPause",
    "HostPauses",
    "HostRateLimiter",
    "InFlightSlot",
    "RateLimit",
    "RateLimitInput",
    "RateLimitWaitError",
    "RateLimits",
    "RateWindow",
    "RetryPolicy",
    "host_key",
    "rate_limit_reset",
]
