# SPDX-License-Identifier: MIT
"""All operations relating to handling of requests to an HTTP service.

``RequestHandler`` owns one aiohttp session at a time and runs the request loop: gate (flow control), send,
dispatch the status to its handler, decode the payload, or retry with the retry timer. Policy lives in the status
handlers, the timers and :mod:`aiorequestful.flow`; this module only orchestrates.

Flow control is opt-in: ``rate_limit=`` (a token bucket per host), ``pause_on_retry_after=`` (a 429/503
``Retry-After`` pauses the whole host), ``retry_policy=`` (which failures are retried, with jitter) and
``coalesce=`` (identical concurrent GETs share one request). With none of them a handler behaves exactly as
1.0.20's does, and the request loop creates no lock, task or timer of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from http import HTTPMethod
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

import aiohttp
from aiohttp import ClientResponse, ClientSession
from yarl import URL

from . import limits
from ._aiohttp import session_base_url
from ._backend import kernels
from ._handler.arguments import (
    check_authoriser,
    check_max_body_size,
    check_payload_handler,
    check_timer,
    http_method,
    what,
)
from ._handler.chain import Chain
from ._handler.gate import FlowGate
from ._handler.read_watch import ReadWatch, split_timeout, timeout_error
from ._handler.redaction import format_request_line, redact_value, scrub_urls
from ._handler.retry import TRANSIENT_ERRORS, RetryStep
from ._handler.transport import Transport
from ._utils import get_iterator
from .cache.protocol import CachingSession
from .exception import RequestError
from .flow import HostKey, HostPauses, HostRateLimiter, RateLimitInput, RetryPolicy, host_key
from .flow._adaptive import AdaptiveThrottle
from .flow._concurrency import ConcurrencyInput, HostConcurrency
from .flow.coalesce import Coalescer
from .flow.pause import PAUSE_STATUSES
from .flow.robots import RobotsTxt
from .response._body import body_ready, excerpt, read_body
from .response.exception import PayloadHandlerError, ResponseError, ResponseTooLargeError
from .response.payload import PayloadHandler, StringPayloadHandler, decode_body
from .response.status import (
    ClientErrorStatusHandler,
    RateLimitStatusHandler,
    StatusHandler,
    UnauthorisedStatusHandler,
)
from .security import redact_url
from .stats import (
    WAIT_STATUS,
    WAIT_TIMER,
    RequestHooks,
    RequestStats,
    StatsRecorder,
    call_hooks,
)
from .telemetry.logfields import begin_call, end_call, log_fields, next_attempt, response_status
from .timer import Timer
from .types import RequestKwargs, URLInput

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from .auth.base import Authoriser
    from .cache.backend.base import ResponseCache
    from .cache.response import CachedResponse

A = TypeVar("A", bound="Authoriser")
P = TypeVar("P")

#: Failures of the transport that are worth another attempt (defined with the retry step that retries them).
_TRANSIENT_ERRORS = TRANSIENT_ERRORS

#: Client errors that sending again cannot fix: a redirect loop stays a loop, a malformed URL stays malformed.
#: They are raised at once, whatever the retry timer or policy.
_NOT_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.TooManyRedirects, aiohttp.InvalidURL)
#: What an attempt raises at once instead of returning for the retry step: the above, and a body over the limit.
_RAISED_AT_ONCE: tuple[type[BaseException], ...] = (*_NOT_TRANSIENT_ERRORS, ResponseTooLargeError)

#: The status handlers known not to read the body: their responses are not read before they run, so a 429's
#: connection can be released before its Retry-After sleep without reading a body nobody needs. (Exact
#: types only: a subclass may read the body, and so gets it read within the size limit first.)
_BODYLESS_HANDLERS: tuple[type[StatusHandler], ...] = (UnauthorisedStatusHandler, RateLimitStatusHandler)

#: What ``ClientSession`` uses when it is given no ``timeout``; a session using it gets the handler's default.
_AIOHTTP_DEFAULT_TIMEOUT: Any = getattr(aiohttp.client, "DEFAULT_TIMEOUT", None)

#: Marks a keyword that was not given (None means "no limit" for ``max_body_size``).
_UNSET: Any = object()

#: What reading a body for a log line or an error message may raise (and must not escape).
_LOG_BODY_ERRORS: tuple[type[BaseException], ...] = (*_TRANSIENT_ERRORS, UnicodeDecodeError, LookupError)

#: A 401 may trigger re-authorisation once per ``request()`` call; after that it is an unhandled failure (1.0.20
#: re-authorised forever against a server that always answers 401).
_MAX_REAUTHORISATIONS = 1
#: A custom handler that keeps answering "handled, send again" is stopped after this many times per call,
#: so no handler can turn one ``request()`` into an endless loop (as 1.0.20's 401 and 429 handlers could).
_MAX_HANDLED_PER_REQUEST = 32


def _allowed_kwargs(session: ClientSession) -> frozenset[str]:
    """The kwarg names a session's ``request`` accepts, computed once per session class (not per attempt)."""
    cls = type(session)
    allowed = _ALLOWED_KWARGS.get(cls)
    if allowed is None:
        params = inspect.signature(cls.request).parameters.values()
        named = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"}
        allowed = frozenset(named) | frozenset(RequestKwargs.__annotations__)
        _ALLOWED_KWARGS[cls] = allowed
    return allowed


_ALLOWED_KWARGS: dict[type, frozenset[str]] = {}
#: Keywords of ``request()`` that are the call's own, not aiohttp's (a GET given one takes the full path).
_CALL_KEYWORDS = frozenset({"method", "url", "log_message", "max_body_size"})
#: The steps of the request path the plain GET stands in for (a subclass replacing one never takes it).
_PLAIN_STEPS = ("request", "_call", "_request_loop", "_send", "_decode", "_handle_response", "_account", "_release")
_GET = HTTPMethod.GET
_CLOSED_MESSAGE = (
    "Could not send a request as the session is closed. Enter the RequestHandler's context to start a new session."
)
#: Keywords of a caching session's ``request`` that the handler sets itself (never the caller's to pass through
#: to a lookup).
_OWN_SESSION_KWARGS = frozenset({"persist", "lookup", "max_body_size"})


class RequestHandler(Generic[A, P]):
    """Generic HTTP request handler: error responses, retries, authorisation and caching.

    :param connector: when called, returns a new session to use when making requests.
    :param authoriser: the authoriser used to authorise requests to the service.
    :param payload_handler: converts response payloads; defaults to :class:`StringPayloadHandler`.
    :param response_handlers: status handlers; the first listed handler for a status code wins.
        ``None`` gives a fresh default set per handler (never shared between handlers); an empty sequence means
        no handlers.
    :param wait_timer: time to wait after every request; grown by :class:`RateLimitStatusHandler`.
    :param retry_timer: time to wait between failed attempts; its ``count``/``final`` bounds the retries.

    Flow control (keyword-only, all off by default; see :mod:`aiorequestful.flow`):

    :param rate_limit: a token bucket per host ``(scheme, host, port)``, shared by every task of this handler
        and served in arrival order. A :class:`~aiorequestful.flow.RateLimit` or a number of requests per second
        for every host; a mapping from ``"host"``, ``"host:port"`` or ``"scheme://host[:port]"`` (and ``"*"`` for
        any other host) to a limit or None (no limit); or a :class:`~aiorequestful.flow.HostRateLimiter` to share
        one set of buckets between handlers (a :class:`~aiorequestful.shared.RedisHostRateLimiter` shares
        them between processes). None (default): no limit. The ``wait_timer`` still applies after every attempt,
        as a minimum gap per task.
    :param retry_policy: a :class:`~aiorequestful.flow.RetryPolicy` narrowing retries to transient failures
        (connection errors, time-outs, 5xx, 429 and the statuses it lists) of idempotent methods, with optional
        jitter; a POST/PATCH is then never retried unless the policy lists it. None (default): as in 1.0.20 -
        every failure of every method is retried while the retry timer allows.
    :param pause_on_retry_after: when True, a 429 or 503 with ``Retry-After`` pauses *every* task sending to that
        host until the time asked for, not just the task that saw it. A ``Retry-After`` longer than the 429
        handler's ``max_retry_after`` (one hour by default) is not believed and pauses nobody else (the request
        that got it is judged by its status handler and the retry step); a request whose remaining retry budget
        (``retry_timer.total_remaining``; none without a retry timer) is shorter than the pause fails fast with
        ``ResponseError`` naming the status. A
        503 is still retried by the retry step, after the larger of the retry delay and the pause. Pass a
        :class:`~aiorequestful.flow.HostPauses` to share pauses between handlers (a
        :class:`~aiorequestful.shared.RedisHostPauses` between processes). False (default): no pauses.
        Flow-control objects that are async context managers (the Redis ones) are entered with the handler.
    :param coalesce: when True, identical concurrent GET/HEAD requests (same URL, query, headers and options)
        share one network request; every caller but the first gets a deep copy of the payload. False (default).
    :param robots: a :class:`~aiorequestful.flow.robots.RobotsTxt` for the crawler's user agent: each origin's
        robots.txt is fetched once (and again when it expires), and a request to a URL it disallows fails before
        anything is sent, with :class:`~aiorequestful.flow.robots.RobotsDisallowedError` (not retried). None
        (default): robots.txt is not consulted. With ``RobotsTxt(..., use_crawl_delay=True)`` each host is also
        paced at least as slowly as its ``Crawl-delay`` asks.
    :param max_in_flight: at most this many requests in flight per host (an integer for every host, a mapping
        from host to integer as for ``rate_limit``, or a :class:`~aiorequestful.flow.HostConcurrency` to share
        the caps). A slot is taken before the rate-limit token and the connection, and given back when the
        attempt's response is done with (or it failed or was cancelled). None (default): no cap.
    :param max_wait: the most seconds a request may wait for its host's rate-limit turn (or its remaining retry
        budget, when it has a retry timer and that is shorter); a request that would wait longer fails at once
        with :class:`~aiorequestful.flow.RateLimitWaitError` naming the request, the host, the limit and the
        wait. None (default): requests wait as long as it takes.
    :param rate_limit_headers: when True, a response whose ``RateLimit``/``RateLimit-Remaining``/
        ``X-RateLimit-Remaining`` header says the quota is spent holds its host until the reset it gives (at
        most an hour; garbage is ignored). False (default).
    :param adaptive: when True (or an :class:`~aiorequestful.flow.AdaptiveThrottle`), each host's rate is found
        by AIMD: halved on 429/503/time-outs (and slow answers, with ``target_latency``), recovered while the host
        answers well. Per host; the ``wait_timer``'s handler-wide growth on 429 still applies. False (default).

    Bounds (keyword-only), so that one hostile or stalled server cannot hold memory or time without limit:

    :param max_body_size: the largest response body read, in bytes, counted after decompression while it is
        read (default :data:`aiorequestful.limits.DEFAULT_MAX_BODY_SIZE`, 32 MiB; None: no limit). A request
        may pass its own ``max_body_size=`` (None lifts it for that request). A larger body fails the request at
        once, without retrying, with :class:`~aiorequestful.response.exception.ResponseTooLargeError` (a
        ``ResponseError``) naming the method, the URL (secrets masked) and the limit; its connection is closed
        and nothing of it is cached. The body is read within the limit before any status handler (except the
        built-in 401 and 429 ones, which do not read it), payload handler or cache sees it.

    Time-outs: a session given no ``timeout`` (and a request given none) uses
    :data:`aiorequestful.limits.DEFAULT_TIMEOUT`: 30 s to connect, 60 s between reads, 5 minutes in all (for a
    request without a body the handler keeps the read part itself, with one timer for all its attempts; see the
    security page of the docs). ``create(timeout=...)`` (or a session built with one) and a request's own
    ``timeout=`` win.
    """

    __slots__ = (
        "_catch",
        "_coalescer",
        "_connector",
        "_dispatch",
        "_flow_contexts",
        "_flow_gate",
        "_handler_list",
        "_limiter",
        "_max_body_size",
        "_pauses",
        "_payload_handler",
        "_read_watch",
        "_retry_policy",
        "_retry_step",
        "_retry_timer",
        "_robots",
        "_session",
        "_session_cache",
        "_stats",
        "authoriser",
        "hooks",
        "logger",
        "wait_timer",
    )

    #: False for a subclass that replaces a step of the request path (see ``__init_subclass__``).
    _plain_class: ClassVar[bool] = True

    @classmethod
    def create(
        cls,
        authoriser: A | None = None,
        cache: ResponseCache | None = None,
        payload_handler: PayloadHandler | None = None,
        response_handlers: Sequence[StatusHandler] | None = None,
        wait_timer: Timer | None = None,
        retry_timer: Timer | None = None,
        *,
        rate_limit: RateLimitInput | HostRateLimiter = None,
        retry_policy: RetryPolicy | None = None,
        pause_on_retry_after: bool | HostPauses = False,
        coalesce: bool = False,
        max_body_size: int | None = limits.DEFAULT_MAX_BODY_SIZE,
        robots: RobotsTxt | None = None,
        max_in_flight: ConcurrencyInput | HostConcurrency = None,
        max_wait: float | None = None,
        rate_limit_headers: bool = False,
        adaptive: bool | AdaptiveThrottle = False,
        **session_kwargs: Any,
    ) -> RequestHandler[A, P]:
        """Create a handler whose connector builds a ``CachedSession`` when ``cache`` is given, else a
        plain ``aiohttp.ClientSession``; ``session_kwargs`` go to the session (without a ``timeout``, the session
        gets :data:`aiorequestful.limits.DEFAULT_TIMEOUT`). The flow-control keywords and ``max_body_size``
        are those of the constructor."""
        session_kwargs.setdefault("timeout", limits.DEFAULT_TIMEOUT)

        def connector() -> ClientSession:
            if cache is not None:
                from .cache.session import CachedSession

                return CachedSession(cache=cache, **session_kwargs)
            if session_kwargs["timeout"] is limits.DEFAULT_TIMEOUT:
                # The handler keeps the default's read part itself for the requests it can watch and sends the
                # rest with the whole default (see _handler/read_watch.py): the session carries the read-less part,
                # so the common request passes no time-out of its own.
                return ClientSession(**{**session_kwargs, "timeout": split_timeout(limits.DEFAULT_TIMEOUT)[0]})
            return ClientSession(**session_kwargs)

        return cls(
            connector=connector,
            authoriser=authoriser,
            payload_handler=payload_handler,
            response_handlers=response_handlers,
            wait_timer=wait_timer,
            retry_timer=retry_timer,
            rate_limit=rate_limit,
            retry_policy=retry_policy,
            pause_on_retry_after=pause_on_retry_after,
            coalesce=coalesce,
            max_body_size=max_body_size,
            robots=robots,
            max_in_flight=max_in_flight,
            max_wait=max_wait,
            rate_limit_headers=rate_limit_headers,
            adaptive=adaptive,
        )

    def __init__(
        self,
        connector: Callable[[], ClientSession],
        authoriser: A | None = None,
        payload_handler: PayloadHandler | None = None,
        response_handlers: Sequence[StatusHandler] | None = None,
        wait_timer: Timer | None = None,
        retry_timer: Timer | None = None,
        *,
        rate_limit: RateLimitInput | HostRateLimiter = None,
        retry_policy: RetryPolicy | None = None,
        pause_on_retry_after: bool | HostPauses = False,
        coalesce: bool = False,
        max_body_size: int | None = limits.DEFAULT_MAX_BODY_SIZE,
        robots: RobotsTxt | None = None,
        max_in_flight: ConcurrencyInput | HostConcurrency = None,
        max_wait: float | None = None,
        rate_limit_headers: bool = False,
        adaptive: bool | AdaptiveThrottle = False,
    ) -> None:
        #: The :class:`logging.Logger` for this object.
        self.logger: logging.Logger = logging.getLogger(__name__)
        if not callable(connector) or isinstance(connector, ClientSession):
            raise TypeError(
                "connector must be a callable that returns a new aiohttp.ClientSession (e.g. "
                f"lambda: aiohttp.ClientSession()), not {what(connector)}"
            )
        self._connector = connector
        self._session: ClientSession | None = None
        self._session_cache: ResponseCache[Any] | None = None
        #: The authoriser used to authorise requests.
        self.authoriser: A | None = check_authoriser(authoriser)
        self._payload_handler: PayloadHandler = (
            check_payload_handler(payload_handler) if payload_handler is not None else StringPayloadHandler()
        )
        self._handler_list: tuple[StatusHandler, ...] = ()
        self._dispatch = kernels.DispatchTable(())
        if response_handlers is None:
            # Fresh instances per handler, never module-level singletons with shared state.
            response_handlers = (UnauthorisedStatusHandler(), RateLimitStatusHandler(), ClientErrorStatusHandler())
        self.response_handlers = response_handlers
        #: Time to wait after every request; shared by all requests of this handler.
        self.wait_timer: Timer | None = check_timer(wait_timer, "wait_timer")
        self._retry_timer: Timer | None = check_timer(retry_timer, "retry_timer")
        self._stats = StatsRecorder()
        #: Keeps the default read time-out of the attempts that use it (see ``_handler/read_watch.py``).
        self._read_watch = ReadWatch()
        #: Callbacks on request, response, retry and wait (see :class:`~aiorequestful.stats.RequestHooks`).
        self.hooks = RequestHooks()

        # Flow control: each part stays None when off, so the request loop pays one test per attempt.
        if rate_limit is None or isinstance(rate_limit, HostRateLimiter):
            self._limiter: HostRateLimiter | None = rate_limit
        else:
            self._limiter = HostRateLimiter(rate_limit)
        if isinstance(pause_on_retry_after, HostPauses):
            self._pauses: HostPauses | None = pause_on_retry_after
        elif isinstance(pause_on_retry_after, bool):
            self._pauses = HostPauses() if pause_on_retry_after else None
        else:
            raise TypeError(
                f"pause_on_retry_after must be a bool or a HostPauses, not {type(pause_on_retry_after).__name__}"
            )
        if not isinstance(coalesce, bool):
            raise TypeError(f"coalesce must be a bool, not {type(coalesce).__name__}")
        self._coalescer: Coalescer | None = Coalescer() if coalesce else None
        #: Flow-control parts entered with the handler (shared ones, e.g. Redis, start and stop with it).
        self._flow_contexts: list[Any] = []
        self._flow_gate = FlowGate.build(
            self._limiter,
            self._pauses,
            self._waited,
            self.logger,
            max_in_flight=max_in_flight,
            max_wait=max_wait,
            rate_limit_headers=rate_limit_headers,
            adaptive=adaptive,
            robots=robots,
        )
        self._limiter = self._flow_gate.limiter  # one with no limits of its own when only pacing needs it
        self._retry_step = RetryStep(self.logger, self._stats, self.hooks, self.log)
        self._retry_policy: RetryPolicy | None = None
        self._catch: tuple[type[BaseException], ...] = _TRANSIENT_ERRORS
        self.retry_policy = retry_policy
        self._max_body_size: int | None = check_max_body_size(max_body_size)
        if robots is not None and not isinstance(robots, RobotsTxt):
            raise TypeError(f"robots must be a RobotsTxt (e.g. RobotsTxt('examplebot')) or None, not {what(robots)}")
        self._robots: RobotsTxt | None = robots

    # ----------------------------------------------------------------------------------------------
    # properties
    # ----------------------------------------------------------------------------------------------
    @property
    def stats(self) -> RequestStats:
        """A snapshot of this handler's counters: calls, attempts, responses by class, retries, waits, cache."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Start counting again from zero."""
        self._stats.reset()  # in place: the handler's parts count into this same recorder

    @property
    def closed(self) -> bool:
        """Is the stored client session closed."""
        return self._session is None or self._session.closed

    @property
    def session(self) -> ClientSession | None:
        """The session when it exists and is open."""
        return None if self.closed else self._session

    @property
    def payload_handler(self) -> PayloadHandler:
        """Converts response payloads to the type returned by the request methods."""
        return self._payload_handler

    @payload_handler.setter
    def payload_handler(self, value: PayloadHandler) -> None:
        self._payload_handler = check_payload_handler(value)
        cache = self._cache()
        if cache is not None:
            # The cache's repositories store and read payloads with the same handler.
            for repository in cache.values():
                repository.settings.payload_handler = value

    @property
    def response_handlers(self) -> dict[int, StatusHandler]:
        """Status code -> the handler responsible for it (the first listed handler wins)."""
        return {code: self._handler_list[index] for code, index in self._dispatch.mapping().items()}

    @response_handlers.setter
    def response_handlers(self, value: Sequence[StatusHandler]) -> None:
        # A new sequence replaces the table (1.0.20 merged it into the old one); the dispatch table is built
        # once here, not per response.
        if isinstance(value, (str, bytes, StatusHandler)) or not isinstance(value, Iterable):
            raise TypeError(f"response_handlers must be a sequence of StatusHandler instances, not {what(value)}")
        handlers = tuple(value)
        for handler in handlers:
            if not isinstance(handler, StatusHandler):
                raise TypeError(f"response_handlers must hold StatusHandler instances, not {what(handler)}")
        self._dispatch = kernels.DispatchTable([list(handler.status_codes) for handler in handlers])
        self._handler_list = handlers

    @property
    def retry_timer(self) -> Timer | None:
        """A fresh (reset) copy of the configured retry timer, or None when unset."""
        return copy.deepcopy(self._retry_timer) if self._retry_timer is not None else None

    @retry_timer.setter
    def retry_timer(self, value: Timer | None) -> None:
        self._retry_timer = check_timer(value, "retry_timer")

    @property
    def retry_policy(self) -> RetryPolicy | None:
        """Which failures are retried (None: every failure, as in 1.0.20)."""
        return self._retry_policy

    @retry_policy.setter
    def retry_policy(self, value: RetryPolicy | None) -> None:
        if value is not None and not isinstance(value, RetryPolicy):
            raise TypeError(f"retry_policy must be a RetryPolicy or None, not {type(value).__name__}")
        self._retry_policy = value
        self._retry_step.policy = value
        # An attempt that raises one of these is a failure for the retry step to judge; anything else propagates.
        extra = tuple(e for e in (value.exceptions if value else ()) if not issubclass(e, asyncio.CancelledError))
        self._catch = _TRANSIENT_ERRORS + extra

    @property
    def max_body_size(self) -> int | None:
        """The largest response body read, in bytes after decompression (None: no limit)."""
        return self._max_body_size

    @max_body_size.setter
    def max_body_size(self, value: int | None) -> None:
        self._max_body_size = check_max_body_size(value)

    @property
    def rate_limiter(self) -> HostRateLimiter | None:
        """The per-host token buckets, or None when requests are not rate-limited."""
        return self._limiter

    @property
    def host_concurrency(self) -> HostConcurrency | None:
        """The per-host caps on requests in flight, or None when there are none."""
        return self._flow_gate.concurrency

    @property
    def adaptive_throttle(self) -> AdaptiveThrottle | None:
        """The per-host adaptive throttle, or None when ``adaptive`` is off."""
        return self._flow_gate.adaptive

    @property
    def host_pauses(self) -> HostPauses | None:
        """The host-wide ``Retry-After`` pauses, or None when ``pause_on_retry_after`` is off."""
        return self._pauses

    @property
    def robots(self) -> RobotsTxt | None:
        """The robots.txt rules consulted before each request, or None."""
        return self._robots

    @property
    def coalesce(self) -> bool:
        """Whether identical concurrent GET/HEAD requests share one network request."""
        return self._coalescer is not None

    def _cache(self) -> ResponseCache[Any] | None:
        """The response cache of the current session, when it is a caching session."""
        return self._session_cache

    def __copy__(self) -> RequestHandler[A, P]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RequestHandler[A, P]:
        return self

    # ----------------------------------------------------------------------------------------------
    # context and authorisation
    # ----------------------------------------------------------------------------------------------
    async def __aenter__(self) -> RequestHandler[A, P]:
        await self._enter_flow()
        if self.closed:
            self._session = self._connector()
            # Decided once per session (a protocol check is too slow for every attempt).
            self._session_cache = self._session.cache if isinstance(self._session, CachingSession) else None
        self.payload_handler = self._payload_handler  # push it onto the cache's repositories
        session = self._session
        assert session is not None
        await session.__aenter__()
        try:
            await self.authorise()
        except BaseException:
            # A failed authorisation must not leak the session it just opened.
            await self.close()
            raise
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        session, self._session = self._session, None
        self._read_watch.close()
        try:
            if session is not None:
                await session.__aexit__(exc_type, exc_val, exc_tb)
        finally:
            await self._exit_flow()

    async def _enter_flow(self) -> None:
        """Enter the flow-control parts that are async context managers (a shared limiter or pauses backed by
        Redis start their connection and listener here); plain local ones are not, and cost nothing."""
        if self._flow_contexts:
            return
        parts: tuple[Any, ...] = (self._limiter, self._pauses, self._flow_gate.concurrency)
        for part in parts:
            if part is not None and hasattr(type(part), "__aenter__"):
                await part.__aenter__()
                self._flow_contexts.append(part)

    async def _exit_flow(self) -> None:
        contexts, self._flow_contexts = self._flow_contexts, []
        for part in reversed(contexts):
            await part.__aexit__(None, None, None)

    async def authorise(self) -> dict[str, str]:
        """Authorise the session and return the headers that were applied (1.0.20 always returned ``{}``)."""
        if self.closed:
            raise RequestError("Session is closed. Enter this object's context to start a new session.")
        if self.authoriser is None:
            return {}
        headers = dict(await self.authoriser)
        assert self._session is not None
        self._session.headers.update(headers)
        return headers

    async def close(self) -> None:
        """Close the current session; a no-op when none is open."""
        session, self._session = self._session, None
        self._read_watch.close()
        try:
            if session is not None and not session.closed:
                await session.__aexit__(None, None, None)
        finally:
            await self._exit_flow()

    # ----------------------------------------------------------------------------------------------
    # logging
    # ----------------------------------------------------------------------------------------------
    def log(
        self,
        method: str,
        url: URLInput,
        message: str | list[str] | None = None,
        level: int = logging.DEBUG,
        **kwargs: Any,
    ) -> None:
        """Format and log one request line at ``level``.

        Lazy: nothing is formatted when the level is disabled. Works for any JSON body and any parameter value.
        Secrets never reach the line: the values of secret-looking query parameters, body keys and headers
        (as :mod:`aiorequestful.security` lists them) are masked, ``auth``/``proxy_auth``/``cookies`` are not
        printed, user info in the URL and the ``proxy`` URL is masked, and a text or bytes body is shown only
        by its length.
        """
        if not self.logger.isEnabledFor(level):
            return
        self.logger.log(level, "%s", format_request_line(method, url, message, kwargs), extra=log_fields(method, url))

    async def _log_response(self, response: ClientResponse, method: HTTPMethod | str, url: URLInput) -> None:
        """DEBUG-log a failed response: status, the start of its body, and headers (lazy; never fails on bytes).

        Secret headers (``Set-Cookie``...) are masked; the body is cut to its first 300 characters.
        """
        if not self.logger.isEnabledFor(logging.DEBUG):
            return
        try:
            body = excerpt(await response.text(errors="replace"))
        except _LOG_BODY_ERRORS as exc:
            body = f"<body unavailable: {type(exc).__name__}>"
        headers = json.dumps(redact_value(dict(response.headers)), indent=2)
        self.log(
            method=str(method),
            url=url,
            message=[f"Status code: {response.status}", f"Response text and headers follow:\n{body}\n{headers}"],
        )

    # ----------------------------------------------------------------------------------------------
    # requests
    # ----------------------------------------------------------------------------------------------
    async def _send(
        self,
        method: HTTPMethod,
        url: URLInput,
        log_message: str | list[str] | None,
        kwargs: dict[str, Any],
        max_body_size: int | None = _UNSET,
        lookup: bool = True,
        transport: Transport | None = None,
    ) -> ClientResponse | BaseException:
        """One attempt: returns the response, or the transport exception that prevented one.

        The caller must pass a returned response to :meth:`_release` when done with it (the request loop does so
        in a ``finally``). A plain coroutine rather than an ``asynccontextmanager``: this runs once per attempt
        and the generator machinery was a measurable share of the per-request cost.
        Only errors raised while *opening* the request are returned; anything raised while the caller
        handles the response propagates normally. The caller's headers are passed through untouched;
        aiohttp merges the session's defaults under them (per-request values win). ``kwargs`` is not modified.
        A session whose ``request`` takes ``max_body_size`` (``CachedSession``, which reads bodies to store them)
        is given the limit; a session using aiohttp's default time-out, and a request giving none, gets
        :data:`aiorequestful.limits.DEFAULT_TIMEOUT`. A redirect loop or an invalid URL is raised, not returned:
        sending again cannot fix it.
        """
        next_attempt()  # the attempt number and status the log records of this attempt carry
        session: ClientSession | None = None
        read_limit: float | None = None
        if transport is not None:
            # Under an aiohttp client middleware: the session built the request; send it on down the chain.
            if self.logger.isEnabledFor(logging.DEBUG):
                self.log(method=method.name, url=url, message=list(get_iterator(log_message)))
        else:
            session = self._session
            if session is None or session.closed:
                raise RequestError(_CLOSED_MESSAGE)
            if self.logger.isEnabledFor(logging.DEBUG):
                messages = list(get_iterator(log_message))  # never append to the caller's list
                if self._session_cache is not None:
                    messages.append("Cached Request")
                self.log(method=method.name, url=url, message=messages, **kwargs)
            allowed = _allowed_kwargs(session)
            # Drop kwargs the session's request does not take; a new dict, so the caller's is reused untouched.
            kwargs = {key: value for key, value in kwargs.items() if key in allowed} if kwargs else {}
            if "max_body_size" in allowed:
                kwargs["max_body_size"] = self._max_body_size if max_body_size is _UNSET else max_body_size
            if not lookup and "lookup" in allowed:
                kwargs["lookup"] = False  # this attempt's lookup was made before the gate, and missed
            if "timeout" not in kwargs:
                # The default time-out, read from the module each time so the documented one is in force. A plain
                # session's request without a body keeps its read part under the handler's watch instead of
                # aiohttp's (see _handler/read_watch.py); everything else is sent with the whole default.
                default = limits.DEFAULT_TIMEOUT
                watch = self._read_watch
                if default is not watch.default:
                    watch.use(default)
                current = session.timeout
                if current is watch.readless or current is default or current is _AIOHTTP_DEFAULT_TIMEOUT:
                    if (
                        watch.read is not None
                        and self._session_cache is None
                        and "data" not in kwargs
                        and "json" not in kwargs
                    ):
                        read_limit = watch.read
                        if current is not watch.readless:
                            kwargs["timeout"] = watch.readless
                    elif current is not default:
                        kwargs["timeout"] = default
        hooks = self.hooks
        if hooks.on_request:
            call_hooks(hooks.on_request, method.name, URL(url))
        try:
            if read_limit is not None:
                assert session is not None
                # The wait for the headers, under the handler's read watch (see _handler/read_watch.py).
                watch = self._read_watch
                entry = watch.headers(read_limit + watch.connect)
                try:
                    response = await session.request(method=method._name_, url=url, **kwargs)
                except asyncio.CancelledError:
                    if not watch.headers_done(entry):
                        raise
                    raise timeout_error() from None
                except BaseException:
                    watch.headers_done(entry)
                    raise
                if watch.headers_done(entry, response):
                    response.close()
                    raise timeout_error()
            elif session is not None:
                response = await session.request(method=method._name_, url=url, **kwargs)
            else:
                assert transport is not None
                response = await transport.send()
        except asyncio.CancelledError:
            raise  # an abandoned attempt: neither a response nor an error
        except _RAISED_AT_ONCE as exc:
            self._stats.error()
            if self.logger.isEnabledFor(logging.DEBUG):
                self.log(
                    method=method.name, url=url, message=f"Request failed: {type(exc).__name__}: {scrub_urls(str(exc))}"
                )
            raise
        except self._catch as exc:
            self._stats.error()
            if self.logger.isEnabledFor(logging.DEBUG):
                self.log(
                    method=method.name, url=url, message=f"Request failed: {type(exc).__name__}: {scrub_urls(str(exc))}"
                )
            return exc
        except Exception:
            self._stats.error()  # could not be sent at all (a bad URL or option): counted, then raised as is
            raise
        self._account(method, url, response)
        return response

    def _account(self, method: HTTPMethod, url: URLInput, response: ClientResponse) -> None:
        """Count an attempt that got ``response`` (from the network or the cache) and tell the hooks."""
        from_cache = _is_cached(response)
        response_status(response.status)  # the status the attempt's log records carry from now on
        stats = self._stats
        stats.response(response.status)
        if from_cache:
            status = getattr(response, "cache_status", "hit")
            if status == "revalidated":
                stats.cache_revalidations += 1
            else:
                stats.cache_hits += 1
                if status != "hit":
                    stats.cache_stale += 1
        elif self._session_cache is not None:
            stats.cache_misses += 1
        if self.hooks.on_response:
            call_hooks(self.hooks.on_response, method.name, URL(url), response.status, from_cache)

    async def _lookup_first(self, method: HTTPMethod, url: URLInput, kwargs: dict[str, Any]) -> ClientResponse | None:
        """Ask the caching session for a stored response before the flow-control gate (or, on the plain GET, before
        sending): a hit sends nothing to the host, so it must take no rate-limit slot and wait on no pause. None: a
        miss (go through the gate and send, without asking again)."""
        if self._session is None or self._session_cache is None:
            return None
        allowed = _allowed_kwargs(self._session)
        session = cast("CachingSession", self._session)  # a caching session: checked once, when it was made
        options = {key: value for key, value in kwargs.items() if key in allowed and key not in _OWN_SESSION_KWARGS}
        hit = await session.lookup(method.name, url, **options)
        if hit is None:
            return None
        next_attempt()  # a hit is an attempt, answered from storage
        if self.logger.isEnabledFor(logging.DEBUG):
            where = "before the gate" if self._flow_gate.active else "before sending"
            self.log(method=method.name, url=url, message=f"Cached Request: answered from the cache {where}")
        if self.hooks.on_request:
            call_hooks(self.hooks.on_request, method.name, URL(url))
        self._account(method, url, hit)
        return hit

    async def _wait_at_gate(
        self, host: HostKey, method: HTTPMethod, url: URLInput, kwargs: dict[str, Any], chain: Chain
    ) -> ClientResponse | None:
        """Wait at the flow-control gate. When the gate refuses because the host is paused for longer than this
        request may wait, a caching session under an HTTP caching policy may answer with a stale response the
        server allowed for errors (stale-if-error): that response is returned instead of the error."""
        try:
            await self._flow_gate.wait(host, url, chain.handler_timer(), chain, method.name)
        except ResponseError:
            stale = await self._stale_instead(method, url, kwargs)
            if stale is None:
                raise
            return stale
        return None

    async def _stale_instead(self, method: HTTPMethod, url: URLInput, kwargs: dict[str, Any]) -> ClientResponse | None:
        session = self._session
        stale_if_error = getattr(session, "stale_if_error", None)  # CachedSession's; not in the session protocol
        if session is None or self._session_cache is None or stale_if_error is None:
            return None
        allowed = _allowed_kwargs(session)
        options = {key: value for key, value in kwargs.items() if key in allowed and key not in _OWN_SESSION_KWARGS}
        stale = await stale_if_error(method.name, url, **options)
        if stale is not None:
            self._account(method, url, stale)
        return stale

    async def _read_bounded(self, response: ClientResponse, max_body_size: int | None = _UNSET) -> bytes | None:
        """Read a network response's body within the size limit before anything else reads it; returns it
        (None: not read here - a cached response, no limit, or a transport error).

        Afterwards ``read()``/``text()``/``json()`` return the bytes read here. A body over the limit raises
        :class:`ResponseTooLargeError` (the response is closed). A transport error is left for the reader that
        comes next: the stream keeps it, so a payload or status handler meets the same error it would have met
        reading the body itself.
        """
        limit = self._max_body_size if max_body_size is _UNSET else max_body_size
        watch = self._read_watch
        watched = watch.body(response)
        if not watched and (limit is None or _is_cached(response)):
            return None
        try:
            return await read_body(response, limit)
        except _TRANSIENT_ERRORS:
            return None
        finally:
            if watched:
                watch.body_done(response)

    def _release(self, response: ClientResponse) -> None:
        """Count a network response's bytes and release it, so its connection returns to the pool at once."""
        if not _is_cached(response):
            self._stats.bytes_received += getattr(response.content, "total_bytes", 0)
            self._read_watch.forget(response)
        response.release()

    async def _handle_response(
        self,
        response: ClientResponse,
        retry_timer: Timer | None = None,
        _chain: Chain | None = None,
        max_body_size: int | None = _UNSET,
        _session: ClientSession | None = None,
    ) -> bool:
        """Dispatch ``response`` to its status handler; True when it was handled and should be sent again.

        The body is read within ``max_body_size`` (default: the handler's) first, unless the handler is one of
        the built-ins that never read it.
        """
        status = response.status
        index = self._dispatch.lookup(status)
        if index is None:
            return False
        chain = _chain if _chain is not None else Chain()
        # Re-authorisation on 401 happens at most once per request() call; after that a 401 is an
        # unhandled failure (the ordinary retry step, bounded by the retry timer). Any other handler may ask
        # for a resend at most _MAX_HANDLED_PER_REQUEST times per call.
        if (status == 401 and chain.reauthorised >= _MAX_REAUTHORISATIONS) or chain.handled >= _MAX_HANDLED_PER_REQUEST:
            return False
        handler = self._handler_list[index]
        if type(handler) not in _BODYLESS_HANDLERS:
            await self._read_bounded(response, max_body_size)
        started = time.perf_counter()
        handled = await handler(
            response=response,
            authoriser=self.authoriser,
            session=self._session if _session is None else _session,
            payload_handler=self.payload_handler,
            wait_timer=self.wait_timer,
            retry_timer=retry_timer,
        )
        if handled:
            waited = time.perf_counter() - started
            self._stats.waited(WAIT_STATUS, waited)
            self._stats.resends += 1
            if self.hooks.on_wait:
                call_hooks(self.hooks.on_wait, WAIT_STATUS, waited, response.url)
            chain.handled += 1
            if status == 401:
                chain.reauthorised += 1
        return bool(handled)

    # ----------------------------------------------------------------------------------------------
    # flow control
    # ----------------------------------------------------------------------------------------------
    def _absolute_url(self, url: URLInput, params: Any = None) -> URL:
        """``url`` as it will be sent: joined to the session's base URL when relative, with ``params`` added."""
        resolved = URL(url)
        base = session_base_url(self._session)
        if not resolved.absolute and base is not None:
            resolved = base.join(resolved)
        return resolved.extend_query(params) if params else resolved

    def _host_key(self, url: URLInput) -> HostKey:
        # A relative URL goes to the session's base URL (aiohttp keeps it private; absent means none).
        return host_key(url, session_base_url(self._session))

    def _record_pause(self, response: ClientResponse) -> float | None:
        """Pause the host that sent ``response`` (after redirects, the last one) as its Retry-After asks, capped
        by the handler that waits out this status (``RateLimitStatusHandler.max_retry_after``).

        Returns the time (loop clock) this response asked to pause until, or None.
        """
        cap = None
        index = self._dispatch.lookup(response.status)
        if index is not None:
            limit = getattr(self._handler_list[index], "max_retry_after", None)
            if isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit >= 0:
                cap = float(limit)
        return self._flow_gate.record_pause(self._host_key(response.url), response.status, response.headers, cap)

    # ----------------------------------------------------------------------------------------------
    # the semi-private members 1.0.20's tests and docs use (the loop itself calls the parts directly)
    # ----------------------------------------------------------------------------------------------
    async def _retry(
        self,
        response: ClientResponse | BaseException | None,
        method: HTTPMethod | str,
        url: URLInput,
        timer: Timer | None,
        _chain: Chain | None = None,
    ) -> None:
        """The retry step: raise when no retry is left, else sleep the timer's current value and advance it."""
        await self._retry_step(response, method, url, timer, _chain if _chain is not None else Chain())

    def _handle_retry_timer(
        self,
        method: HTTPMethod | str,
        url: URLInput,
        timer: Timer,
        _chain: Chain | None = None,
        cause: ClientResponse | BaseException | None = None,
    ) -> None:
        """Log a retry (the WARNING once per call, the delay at DEBUG)."""
        self._retry_step.announce(method, url, timer, _chain if _chain is not None else Chain(), cause)

    def _clean_requests_kwargs(self, kwargs: dict[str, Any]) -> None:
        """Drop, in place, the keyword arguments the session's ``request`` does not take."""
        if self._session is None:
            return
        allowed = _allowed_kwargs(self._session)
        for key in [key for key in kwargs if key not in allowed]:
            del kwargs[key]

    @contextlib.asynccontextmanager
    async def _request(
        self, method: HTTPMethod | str, url: URLInput, log_message: str | list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[ClientResponse | BaseException]:
        """One attempt as an async context manager: yields the response, or the transport exception that
        prevented one; a response is released when the block ends."""
        response = await self._send(http_method(method), url, log_message, kwargs)
        try:
            yield response
        finally:
            if not isinstance(response, BaseException):
                self._release(response)

    def _waited(self, reason: str, seconds: float, url: URLInput) -> None:
        self._stats.waited(reason, seconds)
        if self.hooks.on_wait:
            call_hooks(self.hooks.on_wait, reason, seconds, URL(url))

    def _retryable(self, failure: ClientResponse | BaseException, method: HTTPMethod) -> bool:
        """Whether the retry policy (if any) retries ``failure``; without one every failure is (as in 1.0.20)."""
        policy = self._retry_policy
        if policy is None:
            return True
        if isinstance(failure, BaseException):
            return policy.retries_exception(failure, method)
        return policy.retries_status(failure.status, method)

    # ----------------------------------------------------------------------------------------------
    # the request loop
    # ----------------------------------------------------------------------------------------------
    async def request(self, **kwargs: Any) -> P:
        """Send a request, handling statuses, authorisation, retries, flow control and caching as configured.

        ``max_body_size=`` (bytes, or None for no limit) replaces the handler's body size limit for this call;
        it is not passed to aiohttp.

        :raises RequestError: the session is closed, or retries ran out with no response.
        :raises ResponseError: the final response was an error, or (with ``pause_on_retry_after``) the host is
            paused for longer than the request's remaining retry budget. :class:`ResponseTooLargeError` (at
            once, never retried): a body was larger than the body size limit.
        :raises PayloadHandlerError: the payload handler could not read a successful response's body; the
            error names the method, URL, status and content type.
        :raises aiohttp.ClientError | TimeoutError: the final attempt failed in transport.
        """
        if self.closed:
            raise RequestError(_CLOSED_MESSAGE)
        method = http_method(kwargs.pop("method"))
        url = kwargs.pop("url")
        log_message = kwargs.pop("log_message", None)
        max_body_size = kwargs.pop("max_body_size", _UNSET)
        max_body_size = self._max_body_size if max_body_size is _UNSET else check_max_body_size(max_body_size)
        wrappers = self.hooks.around_call
        if wrappers:
            proceed = functools.partial(self._call, method, url, log_message, kwargs, max_body_size)
            return await _wrapped(wrappers, proceed, method.name, url, kwargs.get("params"))
        return await self._call(method, url, log_message, kwargs, max_body_size)

    async def _call(
        self,
        method: HTTPMethod,
        url: URLInput,
        log_message: str | list[str] | None,
        kwargs: dict[str, Any],
        max_body_size: int | None,
        transport: Transport | None = None,
    ) -> P:
        """One call: counted, coalesced when asked, and run through the request loop (with ``transport``: the
        request of an aiohttp client middleware's call, whose final response is returned)."""
        self._stats.calls += 1
        # What every log record of this call says about it.
        log_context = begin_call(method, url, self._session if transport is None else transport.session)
        try:
            if transport is not None:
                return await self._request_loop(method, url, log_message, kwargs, max_body_size, transport)
            coalescer = self._coalescer
            if coalescer is not None:
                key = coalescer.key(method, url, kwargs)
                if key is not None:
                    if key in coalescer:
                        self._stats.coalesced += 1  # counted on joining: the shared request may still fail
                    payload, _ = await coalescer.run(
                        key, lambda: self._request_loop(method, url, log_message, kwargs, max_body_size)
                    )
                    return payload
            return await self._request_loop(method, url, log_message, kwargs, max_body_size)
        except asyncio.CancelledError:
            self._stats.cancelled += 1
            raise
        except Exception:
            self._stats.failures += 1
            raise
        finally:
            end_call(log_context)

    async def _request_loop(
        self,
        method: HTTPMethod,
        url: URLInput,
        log_message: str | list[str] | None,
        kwargs: dict[str, Any],
        max_body_size: int | None = _UNSET,
        transport: Transport | None = None,
        first: tuple[ClientResponse | BaseException, BaseException | None] | None = None,
    ) -> P:
        # With a ``transport`` (an aiohttp client middleware's next step) the loop sends that request and returns
        # the final response itself, unread and unreleased, instead of its payload: an error response whose
        # retries ran out is returned too, as aiohttp would return it.
        # With ``first`` (from the plain GET) the first attempt was made already: its response (or transport
        # error), and the failure its payload met, if it was read; the loop goes on from there.
        if max_body_size is _UNSET:
            max_body_size = self._max_body_size
        policy = self._retry_policy
        # A method the policy does not retry gives the status handlers no retry timer: a 429 is then not waited
        # out and resent, and a host pause is not waited for either (there is no budget to wait with).
        chain = Chain(self._retry_timer, policy is None or policy.retries_method(method))
        pauses = self._pauses
        if self._robots is not None and self._session is not None and transport is None and first is None:
            # Judged once per call, before any gate or attempt: a disallowed URL is never sent.
            await self._robots.check(self._session, self._absolute_url(url, kwargs.get("params")))
        host = self._host_key(url) if self._flow_gate.active else None
        tracking = self._flow_gate.tracking  # an attempt past the gate holds a slot or reports its answer

        # With flow control on, the cache is asked before the gate (a hit costs the host nothing); only on the
        # first attempt: a retry follows a failure, and failures are not cached.
        cache_first = host is not None and self._session_cache is not None and first is None
        status_session = None if transport is None else transport.session

        while True:
            response: ClientResponse | BaseException | None = None
            failure: ClientResponse | BaseException | None = None
            if first is not None:
                response, failure = first
                first = None
            if cache_first:
                response = await self._lookup_first(method, url, kwargs)
            if response is None and host is not None:
                response = await self._wait_at_gate(host, method, url, kwargs, chain)
            if response is None:
                send = self._send(method, url, log_message, kwargs, max_body_size, not cache_first, transport)
                response = await (self._flow_gate.track(chain, send) if tracking else send)
            cache_first = False
            done = False
            payload: Any = None
            retry_after: Timer | None = None
            cause: ClientResponse | BaseException | None = None
            kept: ClientResponse | None = None  # the response a middleware returns: not released here
            try:
                pause_until: float | None = None
                if failure is not None:
                    pass  # the payload of the handed-over first attempt failed: the retry step judges it
                elif isinstance(response, BaseException):
                    failure = response
                else:
                    if pauses is not None and response.status in PAUSE_STATUSES:
                        pause_until = self._record_pause(response)
                    # Only a status that has a handler needs the call's timer (and the handler's dispatch).
                    if self._dispatch.lookup(response.status) is not None and await self._handle_response(
                        response, chain.handler_timer(), chain, max_body_size, status_session
                    ):
                        # handled: send again without a retry-timer step; the handler judged and waited out
                        # this response's own Retry-After, so the gate need not judge that pause again.
                        if pause_until is not None:
                            chain.pause_accepted = max(chain.pause_accepted, pause_until)
                    elif response.ok and transport is not None:
                        payload, done, kept = response, True, response
                    elif response.ok:
                        done, payload = await self._decode(response, method, max_body_size)
                        if not done:
                            failure, payload = payload, None
                    else:
                        await self._read_bounded(response, max_body_size)
                        await self._log_response(response, method, url)
                        failure = response

                if failure is not None:
                    timer = chain.retry_timer() if self._retryable(failure, method) else None
                    if timer is None or not timer.can_increase:
                        if transport is not None and isinstance(failure, ClientResponse) and failure is response:
                            kept = failure  # under a middleware the final error response is the caller's to judge
                            return failure  # type: ignore[return-value]
                        await self._retry_step(failure, method, url, timer, chain)  # raises
                    assert timer is not None
                    if pause_until is not None and isinstance(failure, ClientResponse):
                        # e.g. a 503 with Retry-After: the retry step runs, then the gate waits out the rest of
                        # the pause - unless the pause is longer than this request can wait.
                        self._flow_gate.check_pause(
                            pause_until - _loop_time(), failure.status, self._host_key(failure.url), timer, failure
                        )
                        chain.pause_accepted = max(chain.pause_accepted, pause_until)
                    retry_after, cause = timer, failure
            finally:
                if not isinstance(response, BaseException) and response is not kept:
                    self._release(response)
                if tracking:
                    self._flow_gate.release(chain)  # the host's concurrency slot, with the connection
            # The response is released before any sleep so its connection returns to the pool at once.
            if retry_after is not None:
                await self._retry_step(cause, method, url, retry_after, chain)
            if self.wait_timer is not None:
                waited = float(self.wait_timer)
                await self.wait_timer
                self._waited(WAIT_TIMER, waited, url)
            if done:
                return payload

    # ----------------------------------------------------------------------------------------------
    # the plain GET
    # ----------------------------------------------------------------------------------------------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass that replaces a step of the request path gets every call through the full path.
        cls._plain_class = all(getattr(cls, name) is getattr(RequestHandler, name) for name in _PLAIN_STEPS)

    def _plain(self) -> bool:
        """Whether a GET has nothing to go through but the send, the status dispatch and the payload handler:
        an open session, no coalescing, robots.txt, flow control or ``around_call`` hooks."""
        session = self._session
        return (
            self._plain_class
            and session is not None
            and not session.closed
            and self._coalescer is None
            and self._robots is None
            and not self._flow_gate.active
            and not self.hooks.around_call
        )

    async def _plain_get(self, url: URLInput, kwargs: dict[str, Any]) -> P:
        """A GET that :meth:`_plain` allows, in one coroutine: what ``request()`` -> ``_call`` -> the request loop
        would do for an attempt that succeeds at once (counted, logged, sent, read, decoded, released). Anything
        else - a transport error, an error status, a status with a handler, a payload that fails - is handed to
        the request loop with this first attempt's outcome, and goes on from there exactly as the loop would have.
        A caching session is asked first, as the loop does under flow control; a miss is then sent without a
        second lookup."""
        stats = self._stats
        stats.calls += 1
        log_context = begin_call(_GET, url, self._session)
        try:
            caching = self._session_cache is not None
            hit = await self._lookup_first(_GET, url, kwargs) if caching else None
            response = await self._send(_GET, url, None, kwargs, _UNSET, not caching) if hit is None else hit
            if (
                isinstance(response, BaseException)
                or not response.ok
                or self._dispatch.lookup(response.status) is not None
            ):
                return await self._request_loop(_GET, url, None, kwargs, _UNSET, first=(response, None))
            try:
                done, payload = await self._decode(response, _GET, self._max_body_size)
            except BaseException:
                self._release(response)
                raise
            if not done:
                return await self._request_loop(_GET, url, None, kwargs, _UNSET, first=(response, payload))
            self._release(response)
            if self.wait_timer is not None:
                waited = float(self.wait_timer)
                await self.wait_timer
                self._waited(WAIT_TIMER, waited, url)
            return cast("P", payload)
        except asyncio.CancelledError:
            stats.cancelled += 1
            raise
        except Exception:
            stats.failures += 1
            raise
        finally:
            end_call(log_context)

    async def _decode(
        self, response: ClientResponse, method: HTTPMethod, max_body_size: int | None
    ) -> tuple[bool, Any]:
        """The payload of a successful ``response``: (True, payload), or (False, the failure to retry): a body
        that failed mid-read, or a payload error a retry policy lists. Any other payload error is raised, naming
        the request."""
        handler = self.payload_handler
        if _is_cached(response):
            # A cache hit whose row the cache already decoded with this very handler (to validate it) hands that
            # value over: the same JSON is not decoded twice.
            decoded, value = response.decoded_payload(handler)
            if decoded:
                return True, value
            body = None
        else:
            # A body that is all here already and within the limit is taken without waiting (or a watch).
            body = body_ready(response, max_body_size)
            if body is None:
                body = await self._read_bounded(response, max_body_size)
        try:
            if body is not None:
                # A built-in handler decodes the body read here without its own coroutines (and the same result).
                known, value = decode_body(handler, body, response.charset)
                if known:
                    return True, value
            return True, await handler(response)
        except asyncio.CancelledError:
            raise
        except PayloadHandlerError as exc:
            error = _payload_error(exc, method, response)
            if not isinstance(error, self._catch):
                raise error from exc
            return False, error  # a retry policy that lists PayloadHandlerError retries it
        except self._catch as exc:
            return False, exc  # a body that fails mid-read is a transient failure like any other

    def middleware(self) -> Any:
        """This handler as an aiohttp client middleware (aiohttp 3.12 or newer): give it to any
        ``aiohttp.ClientSession(middlewares=[...])`` and that session's requests go through this handler's retries,
        status handlers, flow control and counters, sharing them with the handler's own requests (see
        :mod:`aiorequestful.middleware`)."""
        from .middleware import RequestMiddleware

        return RequestMiddleware(self)

    async def _respond(self, transport: Transport) -> ClientResponse:
        """Run the request loop for the request ``transport`` carries (an aiohttp client middleware's call) and
        return its final response."""
        request = transport.request
        method = http_method(request.method)
        wrappers = self.hooks.around_call
        proceed = functools.partial(self._call, method, request.url, None, {}, self._max_body_size, transport)
        if wrappers:
            return cast("ClientResponse", await _wrapped(wrappers, proceed, method.name, request.url, None))
        return cast("ClientResponse", await proceed())

    async def get(self, url: URLInput, **kwargs: Any) -> P:
        """Sends a GET request."""
        if self._plain() and (not kwargs or _CALL_KEYWORDS.isdisjoint(kwargs)):
            return await self._plain_get(url, kwargs)
        kwargs.pop("method", None)
        return await self.request(method="get", url=url, **kwargs)

    async def post(self, url: URLInput, **kwargs: Any) -> P:
        """Sends a POST request."""
        kwargs.pop("method", None)
        return await self.request(method="post", url=url, **kwargs)

    async def put(self, url: URLInput, **kwargs: Any) -> P:
        """Sends a PUT request."""
        kwargs.pop("method", None)
        return await self.request(method="put", url=url, **kwargs)

    async def delete(self, url: URLInput, **kwargs: Any) -> P:
        """Sends a DELETE request."""
        kwargs.pop("method", None)
        return await self.request(method="delete", url=url, **kwargs)

    async def options(self, url: URLInput, **kwargs: Any) -> P:
        """Sends an OPTIONS request."""
        kwargs.pop("method", None)
        return await self.request(method="options", url=url, **kwargs)

    async def head(self, url: URLInput, **kwargs: Any) -> P:
        """Sends a HEAD request."""
        kwargs.pop("method", None)
        kwargs.setdefault("allow_redirects", False)
        return await self.request(method="head", url=url, **kwargs)

    async def patch(self, url: URLInput, **kwargs: Any) -> P:
        """Sends a PATCH request."""
        kwargs.pop("method", None)
        return await self.request(method="patch", url=url, **kwargs)


_CACHED_TYPES: tuple[type, ...] | None = None


async def _wrapped(wrappers: list[Any], proceed: Any, method: str, url: Any, params: Any) -> Any:
    """Run ``proceed`` inside the ``around_call`` hooks, the first one outermost."""
    for wrapper in reversed(wrappers):
        proceed = functools.partial(wrapper, proceed, method, url, params)
    return await proceed()


def _is_cached(response: ClientResponse) -> TypeIs[CachedResponse]:
    """True for a response served by the cache (its module is imported on first use: the cache is optional)."""
    global _CACHED_TYPES
    if _CACHED_TYPES is None:
        try:
            from .cache.response import CachedResponse
        except ImportError:
            _CACHED_TYPES = ()
        else:
            _CACHED_TYPES = (CachedResponse,)
    # A network response is exactly aiohttp's class in the common case: answered without the isinstance walk.
    return type(response) is not ClientResponse and isinstance(response, _CACHED_TYPES)


def _loop_time() -> float:
    """The running loop's clock (flow control schedules with it)."""
    return asyncio.get_running_loop().time()


def _payload_error(exc: PayloadHandlerError, method: HTTPMethod, response: ClientResponse) -> PayloadHandlerError:
    """``exc`` again, naming the request and what the server sent: method, redacted URL, status, content type."""
    content_type = response.headers.get("Content-Type")
    url = redact_url(response.url)
    error = PayloadHandlerError(
        f"{exc} | {method.name} {url} | Status code: {response.status} | Content-Type: {content_type or 'none'}",
        method=method.name,
        url=url,
        status=response.status,
        content_type=content_type,
    )
    error.__cause__ = exc
    return error
