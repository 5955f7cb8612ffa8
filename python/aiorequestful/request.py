# SPDX-License-Identifier: MIT
"""All operations relating to handling of requests to an HTTP service.

``RequestHandler`` owns one aiohttp session at a time and runs the request loop: gate (flow control), send,
dispatch the status to its handler, decode the payload, or retry with the retry timer. Policy lives in the status
handlers, the timers and :mod:`aiorequestful.flow`; the mechanics in the parts of :mod:`aiorequestful._handler`
(an attempt, the retry step, the flow gate, redaction); this module only orchestrates. A GET with nothing to do but
send, read and decode takes a path of one coroutine that hands over to the request loop at the first sign of
anything else, so that the common request costs little more than aiohttp's own.

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
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from http import HTTPMethod
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

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
from ._handler.attempt import CLOSED_MESSAGE, UNSET, Attempts, allowed_kwargs, lookup_options
from ._handler.chain import Chain
from ._handler.gate import FlowGate
from ._handler.read_watch import split_timeout
from ._handler.redaction import format_request_line, redact_value
from ._handler.retry import TRANSIENT_ERRORS, RetryStep
from ._handler.transport import Transport
from .cache.protocol import CachingSession
from .exception import RequestError
from .flow import HostKey, HostPauses, HostRateLimiter, RateLimitInput, RetryPolicy, host_key
from .flow._adaptive import AdaptiveThrottle
from .flow._concurrency import ConcurrencyInput, HostConcurrency
from .flow.coalesce import Coalescer
from .flow.pause import PAUSE_STATUSES
from .flow.robots import RobotsTxt
from .response._body import excerpt
from .response.exception import ResponseError
from .response.payload import PayloadHandler, StringPayloadHandler
from .response.status import (
    ClientErrorStatusHandler,
    RateLimitStatusHandler,
    StatusHandler,
    UnauthorisedStatusHandler,
)
from .stats import (
    WAIT_STATUS,
    WAIT_TIMER,
    RequestHooks,
    RequestStats,
    StatsRecorder,
    call_hooks,
)
from .telemetry.logfields import begin_call, end_call, log_fields
from .timer import Timer
from .types import URLInput

if TYPE_CHECKING:
    from .auth.base import Authoriser
    from .cache.backend.base import ResponseCache

A = TypeVar("A", bound="Authoriser")
P = TypeVar("P")

#: Failures of the transport that are worth another attempt (defined with the retry step that retries them).
_TRANSIENT_ERRORS = TRANSIENT_ERRORS

#: The status handlers known not to read the body: their responses are not read before they run, so a 429's
#: connection can be released before its Retry-After sleep without reading a body nobody needs. (Exact
#: types only: a subclass may read the body, and so gets it read within the size limit first.)
_BODYLESS_HANDLERS: tuple[type[StatusHandler], ...] = (UnauthorisedStatusHandler, RateLimitStatusHandler)

#: What reading a body for a log line or an error message may raise (and must not escape).
_LOG_BODY_ERRORS: tuple[type[BaseException], ...] = (*_TRANSIENT_ERRORS, UnicodeDecodeError, LookupError)

#: A 401 may trigger re-authorisation once per ``request()`` call; after that it is an unhandled failure (1.0.20
#: re-authorised forever against a server that always answers 401).
_MAX_REAUTHORISATIONS = 1
#: A custom handler that keeps answering "handled, send again" is stopped after this many times per call,
#: so no handler can turn one ``request()`` into an endless loop (as 1.0.20's 401 and 429 handlers could).
_MAX_HANDLED_PER_REQUEST = 32


#: Keywords of ``request()`` that are the call's own, not aiohttp's (a GET given one takes the full path).
_CALL_KEYWORDS = frozenset({"method", "url", "log_message", "max_body_size"})
#: The steps of the request path the plain GET stands in for (a subclass replacing one never takes it).
_PLAIN_STEPS = ("request", "_call", "_request_loop", "_handle_response", "payload_handler")
_GET = HTTPMethod.GET


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
        "_attempts",
        "_coalescer",
        "_connector",
        "_dispatch",
        "_flow_contexts",
        "_flow_gate",
        "_handler_list",
        "_hooks",
        "_limiter",
        "_logger",
        "_max_body_size",
        "_pauses",
        "_payload_handler",
        "_retry_policy",
        "_retry_step",
        "_retry_timer",
        "_robots",
        "_session",
        "_session_cache",
        "_stats",
        "authoriser",
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
        self._logger: logging.Logger = logging.getLogger(__name__)
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
        self._hooks = RequestHooks()
        self._max_body_size: int | None = check_max_body_size(max_body_size)
        #: How each attempt is sent, counted, read, decoded and released.
        self._attempts = Attempts(self._stats, self._hooks, self._logger, self.log, self._max_body_size)

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
        self._retry_step = RetryStep(self._logger, self._stats, self._hooks, self.log)
        self._retry_policy: RetryPolicy | None = None
        self.retry_policy = retry_policy
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
        self._attempts.catch = _TRANSIENT_ERRORS + extra

    @property
    def max_body_size(self) -> int | None:
        """The largest response body read, in bytes after decompression (None: no limit)."""
        return self._max_body_size

    @max_body_size.setter
    def max_body_size(self, value: int | None) -> None:
        self._max_body_size = self._attempts.max_body_size = check_max_body_size(value)

    @property
    def logger(self) -> logging.Logger:
        """The :class:`logging.Logger` for this object (replacing it moves every line the handler logs)."""
        return self._logger

    @logger.setter
    def logger(self, value: logging.Logger) -> None:
        self._logger = self._attempts.logger = self._retry_step.logger = self._flow_gate.logger = value

    @property
    def hooks(self) -> RequestHooks:
        """Callbacks on request, response, retry and wait (see :class:`~aiorequestful.stats.RequestHooks`)."""
        return self._hooks

    @hooks.setter
    def hooks(self, value: RequestHooks) -> None:
        if not isinstance(value, RequestHooks):
            raise TypeError(f"hooks must be a RequestHooks, not {what(value)}")
        self._hooks = self._attempts.hooks = self._retry_step.hooks = value

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
            self._attempts.open(self._session)
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
        self._attempts.open(None)
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
        parts: tuple[Any, ...] = (self._limiter, self._pauses, self._flow_gate.concurrency, self._flow_gate.adaptive)
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
        self._attempts.open(None)
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
        stale = await stale_if_error(method.name, url, **lookup_options(session, kwargs))
        if stale is not None:
            self._attempts.account(method, url, stale)
        return stale

    async def _handle_response(
        self,
        response: ClientResponse,
        retry_timer: Timer | None = None,
        _chain: Chain | None = None,
        max_body_size: int | None = UNSET,
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
            await self._attempts.read_bounded(response, max_body_size)
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
            if self._hooks.on_wait:
                call_hooks(self._hooks.on_wait, WAIT_STATUS, waited, response.url)
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
        allowed = allowed_kwargs(self._session)
        for key in [key for key in kwargs if key not in allowed]:
            del kwargs[key]

    @contextlib.asynccontextmanager
    async def _request(
        self, method: HTTPMethod | str, url: URLInput, log_message: str | list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[ClientResponse | BaseException]:
        """One attempt as an async context manager: yields the response, or the transport exception that
        prevented one; a response is released when the block ends."""
        response = await self._attempts.send(http_method(method), url, log_message, kwargs)
        try:
            yield response
        finally:
            if not isinstance(response, BaseException):
                self._attempts.release(response)

    def _waited(self, reason: str, seconds: float, url: URLInput) -> None:
        self._stats.waited(reason, seconds)
        if self._hooks.on_wait:
            call_hooks(self._hooks.on_wait, reason, seconds, URL(url))

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
            raise RequestError(CLOSED_MESSAGE)
        method = http_method(kwargs.pop("method"))
        url = kwargs.pop("url")
        log_message = kwargs.pop("log_message", None)
        max_body_size = kwargs.pop("max_body_size", UNSET)
        max_body_size = self._max_body_size if max_body_size is UNSET else check_max_body_size(max_body_size)
        wrappers = self._hooks.around_call
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
                    looked_up = self._session_cache is not None and self._robots is None
                    if looked_up:
                        # A hit costs nothing to share: it is answered at once, without joining or starting a
                        # shared request (a disallowed URL is judged by robots.txt first, in the loop).
                        hit = await self._attempts.lookup(method, url, kwargs, "before coalescing")
                        if hit is not None:
                            return await self._request_loop(
                                method, url, log_message, kwargs, max_body_size, first=(hit, None)
                            )
                    if key in coalescer:
                        self._stats.coalesced += 1  # counted on joining: the shared request may still fail
                    payload, _ = await coalescer.run(
                        key,
                        lambda: self._request_loop(
                            method, url, log_message, kwargs, max_body_size, looked_up=looked_up
                        ),
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
        max_body_size: int | None = UNSET,
        transport: Transport | None = None,
        first: tuple[ClientResponse | BaseException, BaseException | None] | None = None,
        looked_up: bool = False,
    ) -> P:
        # With a ``transport`` (an aiohttp client middleware's next step) the loop sends that request and returns
        # the final response itself, unread and unreleased, instead of its payload: an error response whose
        # retries ran out is returned too, as aiohttp would return it.
        # With ``first`` (from the plain GET) the first attempt was made already: its response (or transport
        # error), and the failure its payload met, if it was read; the loop goes on from there. ``looked_up``: the
        # cache was asked already, and missed, so the first attempt neither asks it again nor looks up first.
        if max_body_size is UNSET:
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
        cache_first = host is not None and self._session_cache is not None and first is None and not looked_up
        lookup = not looked_up  # whether the next attempt's session asks the cache itself
        status_session = None if transport is None else transport.session

        while True:
            response: ClientResponse | BaseException | None = None
            failure: ClientResponse | BaseException | None = None
            if first is not None:
                response, failure = first
                first = None
            if cache_first:
                response = await self._attempts.lookup(method, url, kwargs, "before the gate")
            if response is None and host is not None:
                response = await self._wait_at_gate(host, method, url, kwargs, chain)
            if response is None:
                lookup = lookup and not cache_first
                send = self._attempts.send(method, url, log_message, kwargs, max_body_size, lookup, transport)
                response = await (self._flow_gate.track(chain, send) if tracking else send)
            cache_first, lookup = False, True
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
                        done, payload = await self._attempts.decode(
                            response, self.payload_handler, method, max_body_size
                        )
                        if not done:
                            failure, payload = payload, None
                    else:
                        await self._attempts.read_bounded(response, max_body_size)
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
                    self._attempts.release(response)
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
            and not self._hooks.around_call
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
            # A caching session is asked before sending (as under flow control) - unless DEBUG lines are written: then
            # the session's request asks it, so the lines are those of the full path (request, then cache).
            caching = self._session_cache is not None and not self._logger.isEnabledFor(logging.DEBUG)
            attempts = self._attempts
            hit = await attempts.lookup(_GET, url, kwargs, "before sending") if caching else None
            response = await attempts.send(_GET, url, None, kwargs, UNSET, not caching) if hit is None else hit
            if (
                isinstance(response, BaseException)
                or not response.ok
                or self._dispatch.lookup(response.status) is not None
            ):
                return await self._request_loop(_GET, url, None, kwargs, UNSET, first=(response, None))
            try:
                done, payload = await attempts.decode(response, self.payload_handler, _GET, self._max_body_size)
            except BaseException:
                self._attempts.release(response)
                raise
            if not done:
                return await self._request_loop(_GET, url, None, kwargs, UNSET, first=(response, payload))
            self._attempts.release(response)
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
        wrappers = self._hooks.around_call
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


async def _wrapped(wrappers: list[Any], proceed: Any, method: str, url: Any, params: Any) -> Any:
    """Run ``proceed`` inside the ``around_call`` hooks, the first one outermost."""
    for wrapper in reversed(wrappers):
        proceed = functools.partial(wrapper, proceed, method, url, params)
    return await proceed()


def _loop_time() -> float:
    """The running loop's clock (flow control schedules with it)."""
    return asyncio.get_running_loop().time()
