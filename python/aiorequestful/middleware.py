# SPDX-License-Identifier: MIT
"""aiohttp client middlewares: what ``RequestHandler`` does, under any ``aiohttp.ClientSession``.

aiohttp 3.12 added client middlewares (``ClientSession(middlewares=[...])``): callables that receive each request
and the next step of the chain that sends it. The classes here put aiorequestful's retries, status handling, flow
control and response cache there, for code (or a third-party SDK) that already has its own session::

    cache = SQLiteCache.connect_with_path("api", repository_getter=pick, policy=CachePolicy())
    async with ClientSession(
        middlewares=[
            CacheMiddleware(cache),  # outermost: a hit skips everything below
            RetryMiddleware(StepCountTimer(0.5, 3, 0.5)),
            StatusMiddleware(UnauthorisedStatusHandler(), RateLimitStatusHandler(), authoriser=auth),
            FlowControlMiddleware(rate_limit=10, pause_on_retry_after=True),  # innermost: every attempt waits here
        ]
    ) as session:
        async with session.get(url) as response:
            ...

Each middleware is usable alone, and they compose in one list, outermost first. There is one implementation
behind both entry points: each middleware runs ``RequestHandler``'s own request loop (retry steps, status
handlers, the flow-control gate, counters, hooks and log records) with the session's next step as the transport,
and the cache middleware shares ``CachedSession``'s lookups, saves and HTTP caching policy. Give a middleware the
same objects as a handler (a ``HostRateLimiter``, ``HostPauses``, a cache) and they share that state;
``RequestHandler.middleware()`` turns a whole handler into one middleware that shares everything with it.

What differs from a handler's own requests, because a middleware returns a response rather than a payload:

* the final response is returned unread (stream it, or read it); an error response whose retries ran out is
  returned too, as aiohttp returns it (call ``raise_for_status()`` if you want an exception). A transport error
  whose retries ran out is raised, as aiohttp raises it;
* no payload handler runs, and robots.txt is not consulted (its fetch would pass through the same middlewares);
* under an HTTP caching policy a stale-while-revalidate response is revalidated before it is returned, not in the
  background: a middleware cannot send its request again once its call has returned.

Flow-control parts shared through Redis start and stop with ``async with middleware:``; without it they are
used as they are. The middlewares need aiohttp 3.12 or newer and say so on older versions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import ClientResponse, ClientSession

from ._handler.transport import Transport
from .cache._access import CacheAccess
from .cache._http import HttpCaching
from .cache.response import CachedResponse
from .limits import DEFAULT_MAX_BODY_SIZE

if TYPE_CHECKING:
    from aiohttp import ClientRequest

    from .auth.base import Authoriser
    from .cache.backend.base import ResponseCache
    from .flow import HostPauses, HostRateLimiter, RateLimitInput, RetryPolicy
    from .request import RequestHandler
    from .response.status import StatusHandler
    from .timer import Timer

__all__ = (
    "CacheMiddleware",
    "FlowControlMiddleware",
    "RequestMiddleware",
    "RetryMiddleware",
    "StatusMiddleware",
    "check_middleware_support",
)

logger = logging.getLogger(__name__)


def check_middleware_support() -> None:
    """Raise ``RuntimeError`` naming the version needed when the installed aiohttp has no client middlewares."""
    if not hasattr(aiohttp, "ClientMiddlewareType"):
        raise RuntimeError(
            f"aiohttp client middlewares need aiohttp 3.12 or newer; aiohttp {aiohttp.__version__} is installed "
            "(pip install 'aiohttp>=3.12'), or use RequestHandler, which works on every supported aiohttp"
        )


def _no_session() -> ClientSession:
    raise RuntimeError("a middleware sends through the session it is part of; it has no session of its own")


def _handler(**options: Any) -> RequestHandler[Any, Any]:
    from .request import RequestHandler

    options.setdefault("response_handlers", ())
    return RequestHandler(connector=_no_session, **options)


class RequestMiddleware:
    """A ``RequestHandler``'s request loop as an aiohttp client middleware (see the module docs).

    :param handler: the handler whose retry timer, retry policy, status handlers, authoriser, flow control,
        counters (``handler.stats``) and hooks the session's requests go through. Its own session is not used.
    """

    __slots__ = ("_entered", "handler")

    def __init__(self, handler: RequestHandler[Any, Any]) -> None:
        check_middleware_support()
        self.handler = handler
        self._entered = False

    async def __call__(self, request: ClientRequest, next_step: Any) -> ClientResponse:
        return await self.handler._respond(Transport(request, next_step))

    async def __aenter__(self) -> RequestMiddleware:
        # Flow-control parts with a lifetime (Redis listeners, shared limiters) start with the middleware.
        await self.handler._enter_flow()
        self._entered = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> None:
        if self._entered:
            self._entered = False
            await self.handler._exit_flow()

    @property
    def stats(self) -> Any:
        """The counters of the requests that went through this middleware (its handler's ``stats``)."""
        return self.handler.stats


class RetryMiddleware(RequestMiddleware):
    """Retry failed attempts (transport errors, 5xx and the statuses ``retry_policy`` names) as
    ``RequestHandler(retry_timer=..., retry_policy=...)`` does.

    :param retry_timer: the timer whose steps are the waits between attempts (its count bounds the retries).
    :param retry_policy: which statuses, methods and exceptions are retried, and jitter.
    :param wait_timer: a wait after every attempt, as the handler's ``wait_timer``.
    """

    __slots__ = ()

    def __init__(
        self, retry_timer: Timer, *, retry_policy: RetryPolicy | None = None, wait_timer: Timer | None = None
    ) -> None:
        super().__init__(_handler(retry_timer=retry_timer, retry_policy=retry_policy, wait_timer=wait_timer))


class StatusMiddleware(RequestMiddleware):
    """Run status handlers on each response, as the handler does: ``UnauthorisedStatusHandler`` re-authorises once
    through ``authoriser`` on a 401 and resends; ``RateLimitStatusHandler`` waits out a 429's ``Retry-After`` and
    resends (within ``retry_timer``'s budget: without a retry timer a 429 is not waited for).

    :param handlers: the status handlers, in the handler's order.
    :param authoriser: what a 401 re-authorises with.
    :param retry_timer: the budget a ``Retry-After`` wait must fit in.
    """

    __slots__ = ()

    def __init__(
        self,
        *handlers: StatusHandler,
        authoriser: Authoriser | None = None,
        retry_timer: Timer | None = None,
    ) -> None:
        super().__init__(_handler(response_handlers=handlers, authoriser=authoriser, retry_timer=retry_timer))


class FlowControlMiddleware(RequestMiddleware):
    """Per-host flow control before every attempt, as the handler's keywords of the same names: rate limits,
    concurrency caps, host-wide ``Retry-After`` pauses, rate-limit response headers and adaptive throttling.
    Give it the same ``HostRateLimiter``/``HostPauses`` objects as a handler (or Redis-backed ones) to share them.
    """

    __slots__ = ()

    def __init__(
        self,
        *,
        rate_limit: RateLimitInput | HostRateLimiter = None,
        pause_on_retry_after: bool | HostPauses = False,
        max_in_flight: Any = None,
        max_wait: float | None = None,
        rate_limit_headers: bool = False,
        adaptive: Any = False,
        retry_timer: Timer | None = None,
    ) -> None:
        super().__init__(
            _handler(
                rate_limit=rate_limit,
                pause_on_retry_after=pause_on_retry_after,
                max_in_flight=max_in_flight,
                max_wait=max_wait,
                rate_limit_headers=rate_limit_headers,
                adaptive=adaptive,
                retry_timer=retry_timer,
            )
        )


class CacheMiddleware(CacheAccess):
    """Answer requests from a response cache, and store what the network returns, as ``CachedSession`` does: the
    cache's ``repository_getter`` picks the repository, entries are scoped to the request's credentials, a
    ``no-store`` response is never stored, and a cache with a ``policy`` follows HTTP caching (RFC 9111).

    :param cache: the response cache (entered on first use when it is closed; ``async with middleware:`` or
        ``async with cache:`` closes it).
    :param max_body_size: the largest body read to store it, in bytes after decompression (None: no limit).
    :param persist: store network responses (False: only answer from the cache).
    """

    __slots__ = ("_http", "cache", "logger", "max_body_size", "persist")

    def __init__(
        self, cache: ResponseCache[Any], *, max_body_size: int | None = DEFAULT_MAX_BODY_SIZE, persist: bool = True
    ) -> None:
        check_middleware_support()
        self.cache = cache
        self.logger = logging.getLogger("aiorequestful.cache.session")
        self.max_body_size = max_body_size
        self.persist = persist
        self._http = HttpCaching(self, background=False)

    async def __aenter__(self) -> CacheMiddleware:
        self.cache = await self.cache.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> None:
        await self._http.close()
        await self.cache.__aexit__(exc_type, exc_val, exc_tb)

    async def __call__(self, request: ClientRequest, next_step: Any) -> ClientResponse:
        info = request.request_info
        repository = self.cache.get_repository_from_requests(info)
        if repository is None:
            return await next_step(request)
        if getattr(self.cache, "closed", False):
            await self.cache  # opened on first use, as a CachedSession does

        async def send(extra: Mapping[str, str]) -> ClientResponse:
            for name, value in extra.items():
                request.headers[name] = value
            try:
                return await next_step(request)
            finally:
                for name in extra:
                    request.headers.popall(name, None)  # the next attempt starts from the caller's headers

        policy = self.cache.policy_for(repository)
        if policy is not None:
            response, plan, flight = await self._http.open(repository, policy, info, send)
            try:
                if plan is not None and self.persist and not isinstance(response, CachedResponse) and response.ok:
                    await self._persist(
                        plan.repository, plan.info, response, self.max_body_size, times=plan.times, keep=plan.keep
                    )
            finally:
                if flight is not None:
                    flight.land()
            return response
        hit = await self._lookup(repository, info)
        if hit is not None:
            return hit
        response = await send({})
        if self.persist and response.ok:
            await self._persist(repository, info, response, self.max_body_size)
        return response
