# SPDX-License-Identifier: MIT
"""All operations relating to handling of requests to an HTTP service (api.md §7).

``RequestHandler`` owns one aiohttp session at a time and runs the request loop: send, dispatch the status to
its handler, decode the payload, or retry with the retry timer. Policy lives in the status handlers and the
timers; this module only orchestrates.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from http import HTTPMethod
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import aiohttp
from aiohttp import ClientResponse, ClientSession
from yarl import URL

from ._backend import kernels
from ._utils import format_url_log, get_iterator
from .exception import RequestError
from .response.exception import ResponseError
from .response.payload import PayloadHandler, StringPayloadHandler
from .response.status import (
    ClientErrorStatusHandler,
    RateLimitStatusHandler,
    StatusHandler,
    UnauthorisedStatusHandler,
)
from .stats import WAIT_RETRY, WAIT_STATUS, WAIT_TIMER, RequestHooks, RequestStats, StatsRecorder, call_hooks
from .timer import Timer
from .types import RequestKwargs, URLInput

if TYPE_CHECKING:
    from .auth.base import Authoriser
    from .cache.backend.base import ResponseCache

A = TypeVar("A", bound="Authoriser")
P = TypeVar("P")

#: Failures of the transport that are worth another attempt: aiohttp's connection/payload errors and
#: time-outs (aiohttp raises the built-in TimeoutError for total/connect time-outs).
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError)

#: D-8: a 401 may trigger re-authorisation once per ``request()`` call; after that it is an unhandled failure.
_MAX_REAUTHORISATIONS = 1
#: A custom handler that keeps answering "handled, send again" is stopped after this many times per call,
#: so no handler can turn one ``request()`` into an endless loop (the D-8/D-9 class of bug).
_MAX_HANDLED_PER_REQUEST = 32

#: Names whose values never reach a log line (D-14). Compared case-insensitively, as substrings for keys.
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "x-auth-token"}
)
_SECRET_KEY_PARTS = ("secret", "password", "passwd", "token", "api_key", "apikey", "code_verifier", "assertion")
_REDACTED = "<redacted>"

_ANSI_YELLOW = "\33[93m"
_ANSI_RESET = "\33[0m"


def _is_secret_key(key: Any) -> bool:
    name = str(key).lower()
    return name in _SECRET_HEADERS or any(part in name for part in _SECRET_KEY_PARTS)


def _redact(value: Any) -> Any:
    """A copy of ``value`` safe to log: secret-looking keys of mappings (recursively) are masked."""
    if isinstance(value, Mapping):
        return {k: (_REDACTED if _is_secret_key(k) else _redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(isinstance(item, tuple) and len(item) == 2 for item in value):
            return [(k, _REDACTED if _is_secret_key(k) else v) for k, v in value]
        return [_redact(item) for item in value]
    return value


def _items(value: Any) -> Iterable[tuple[Any, Any]]:
    """Key/value pairs of a mapping or of a sequence of pairs; anything else is one unnamed item (D-12)."""
    if isinstance(value, Mapping):
        return value.items()
    if isinstance(value, (list, tuple)) and all(isinstance(item, tuple) and len(item) == 2 for item in value):
        return value
    return [("", value)]


def _allowed_kwargs(session: ClientSession) -> frozenset[str]:
    """The kwarg names a session's ``request`` accepts, computed once per session class (D-16)."""
    cls = type(session)
    allowed = _ALLOWED_KWARGS.get(cls)
    if allowed is None:
        params = inspect.signature(cls.request).parameters.values()
        named = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"}
        allowed = frozenset(named) | frozenset(RequestKwargs.__annotations__)
        _ALLOWED_KWARGS[cls] = allowed
    return allowed


_ALLOWED_KWARGS: dict[type, frozenset[str]] = {}


class _Chain:
    """Per-``request()`` state: kept local so concurrent requests never share it (D-19)."""

    __slots__ = ("handled", "reauthorised", "warned")

    def __init__(self) -> None:
        self.warned = False
        self.reauthorised = 0
        self.handled = 0


class RequestHandler(Generic[A, P]):
    """Generic HTTP request handler: error responses, retries, authorisation and caching (api.md §7).

    :param connector: when called, returns a new session to use when making requests.
    :param authoriser: the authoriser used to authorise requests to the service.
    :param payload_handler: converts response payloads; defaults to :class:`StringPayloadHandler`.
    :param response_handlers: status handlers; the first listed handler for a status code wins.
        ``None`` gives a fresh default set per handler (D-20); an empty sequence means no handlers.
    :param wait_timer: time to wait after every request; grown by :class:`RateLimitStatusHandler`.
    :param retry_timer: time to wait between failed attempts; its ``count``/``final`` bounds the retries.
    """

    __slots__ = (
        "_connector",
        "_dispatch",
        "_handler_list",
        "_payload_handler",
        "_retry_timer",
        "_session",
        "_stats",
        "authoriser",
        "hooks",
        "logger",
        "wait_timer",
    )

    @classmethod
    def create(
        cls,
        authoriser: A | None = None,
        cache: ResponseCache | None = None,
        payload_handler: PayloadHandler | None = None,
        response_handlers: Sequence[StatusHandler] | None = None,
        wait_timer: Timer | None = None,
        retry_timer: Timer | None = None,
        **session_kwargs: Any,
    ) -> RequestHandler[A, P]:
        """Create a handler whose connector builds a ``CachedSession`` when ``cache`` is given, else a
        plain ``aiohttp.ClientSession``; ``session_kwargs`` go to the session."""

        def connector() -> ClientSession:
            if cache is not None:
                from .cache.session import CachedSession

                return CachedSession(cache=cache, **session_kwargs)
            return ClientSession(**session_kwargs)

        return cls(
            connector=connector,
            authoriser=authoriser,
            payload_handler=payload_handler,
            response_handlers=response_handlers,
            wait_timer=wait_timer,
            retry_timer=retry_timer,
        )

    def __init__(
        self,
        connector: Callable[[], ClientSession],
        authoriser: A | None = None,
        payload_handler: PayloadHandler | None = None,
        response_handlers: Sequence[StatusHandler] | None = None,
        wait_timer: Timer | None = None,
        retry_timer: Timer | None = None,
    ) -> None:
        #: The :class:`logging.Logger` for this object.
        self.logger: logging.Logger = logging.getLogger(__name__)
        self._connector = connector
        self._session: ClientSession | None = None
        #: The authoriser used to authorise requests.
        self.authoriser: A | None = authoriser
        self._payload_handler: PayloadHandler = payload_handler or StringPayloadHandler()
        self._handler_list: tuple[StatusHandler, ...] = ()
        self._dispatch = kernels.DispatchTable(())
        if response_handlers is None:
            # D-20: fresh instances per handler, never module-level singletons with shared state.
            response_handlers = (UnauthorisedStatusHandler(), RateLimitStatusHandler(), ClientErrorStatusHandler())
        self.response_handlers = response_handlers
        #: Time to wait after every request; shared by all requests of this handler.
        self.wait_timer: Timer | None = wait_timer
        self._retry_timer: Timer | None = retry_timer
        self._stats = StatsRecorder()
        #: Callbacks on request, response, retry and wait (see :class:`~aiorequestful.stats.RequestHooks`).
        self.hooks = RequestHooks()

    # ----------------------------------------------------------------------------------------------
    # properties
    # ----------------------------------------------------------------------------------------------
    @property
    def stats(self) -> RequestStats:
        """A snapshot of this handler's counters: calls, attempts, responses by class, retries, waits, cache."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Start counting again from zero."""
        self._stats = StatsRecorder()

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
        self._payload_handler = value
        cache = getattr(self._session, "cache", None)
        if cache is not None:
            # api.md §7.1: the cache's repositories store and read payloads with the same handler.
            for repository in cache.values():
                repository.settings.payload_handler = value

    @property
    def response_handlers(self) -> dict[int, StatusHandler]:
        """Status code -> the handler responsible for it (the first listed handler wins)."""
        return {code: self._handler_list[index] for code, index in self._dispatch.mapping().items()}

    @response_handlers.setter
    def response_handlers(self, value: Sequence[StatusHandler]) -> None:
        # D-18: a new sequence replaces the table; the dispatch table is built once here, not per response.
        handlers = tuple(value)
        self._dispatch = kernels.DispatchTable([list(handler.status_codes) for handler in handlers])
        self._handler_list = handlers

    @property
    def retry_timer(self) -> Timer | None:
        """A fresh (reset) copy of the configured retry timer, or None when unset."""
        return copy.deepcopy(self._retry_timer) if self._retry_timer is not None else None

    @retry_timer.setter
    def retry_timer(self, value: Timer | None) -> None:
        self._retry_timer = value

    def __copy__(self) -> RequestHandler[A, P]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RequestHandler[A, P]:
        return self

    # ----------------------------------------------------------------------------------------------
    # context and authorisation
    # ----------------------------------------------------------------------------------------------
    async def __aenter__(self) -> RequestHandler[A, P]:
        if self.closed:
            self._session = self._connector()
        self.payload_handler = self._payload_handler  # push it onto the cache's repositories
        session = self._session
        assert session is not None
        await session.__aenter__()
        try:
            await self.authorise()
        except BaseException:
            # D-6: a failed authorisation must not leak the session it just opened.
            await self.close()
            raise
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.__aexit__(exc_type, exc_val, exc_tb)

    async def authorise(self) -> dict[str, str]:
        """Authorise the session and return the headers that were applied (D-4: not always ``{}``)."""
        if self.closed:
            raise RequestError("Session is closed. Enter this object's context to start a new session.")
        if self.authoriser is None:
            return {}
        headers = dict(await self.authoriser)
        assert self._session is not None
        self._session.headers.update(headers)
        return headers

    async def close(self) -> None:
        """Close the current session; a no-op when none is open (D-5)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.__aexit__(None, None, None)

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

        Lazy (D-17): nothing is formatted when the level is disabled. Works for any JSON body and any
        parameter value (D-12). Secret-looking names are masked and headers/auth are never printed (D-14).
        """
        if not self.logger.isEnabledFor(level):
            return
        url = URL(url)
        parts: list[str] = [f"{k}: {_REDACTED if _is_secret_key(k) else v}" for k, v in sorted(url.query.items())]
        for name in ("params", "json"):
            value = kwargs.pop(name, None)
            if value is None:
                continue
            value = _redact(value)
            parts.extend(f"{k}: {v}" if k != "" else str(v) for k, v in _items(value))
        for key, value in kwargs.items():
            if not value:
                continue
            if key in ("headers", "proxy_headers"):
                value = _redact(dict(value)) if isinstance(value, Mapping) else _redact(list(value))
            elif key in ("auth", "proxy_auth", "data", "cookies"):
                value = _REDACTED if key != "data" else _redact(value)
            parts.append(f"{key.replace('_', ' ').title()}: {value}")
        parts.extend(str(m) for m in get_iterator(message))
        self.logger.log(level, "%s", format_url_log(method, url, parts))

    async def _log_response(self, response: ClientResponse, method: HTTPMethod | str, url: URLInput) -> None:
        """DEBUG-log a failed response: status, body and headers (lazy, D-17; never fails on bytes, D-11)."""
        if not self.logger.isEnabledFor(logging.DEBUG):
            return
        try:
            body = await response.text(errors="replace")
        except (*_TRANSIENT_ERRORS, UnicodeDecodeError, LookupError) as exc:
            body = f"<body unavailable: {type(exc).__name__}>"
        headers = json.dumps(_redact(dict(response.headers)), indent=2)
        self.log(
            method=str(method),
            url=url,
            message=[f"Status code: {response.status}", f"Response text and headers follow:\n{body}\n{headers}"],
        )

    # ----------------------------------------------------------------------------------------------
    # requests
    # ----------------------------------------------------------------------------------------------
    def _clean_requests_kwargs(self, kwargs: dict[str, Any]) -> None:
        """Drop, in place, kwargs the session's ``request`` does not take (names computed once, D-16)."""
        if self._session is None:
            return
        allowed = _allowed_kwargs(self._session)
        for key in [key for key in kwargs if key not in allowed]:
            del kwargs[key]

    @contextlib.asynccontextmanager
    async def _request(
        self,
        method: HTTPMethod,
        url: URLInput,
        log_message: str | list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ClientResponse | BaseException]:
        """One attempt: yields the response, or the transport exception that prevented one.

        D-10: only errors raised while *opening* the request are yielded; an error raised by the caller's
        block propagates normally instead of making the generator yield twice. The response is always
        released on exit. D-13: the caller's headers are passed through untouched; aiohttp merges the
        session's defaults under them (per-request values win).
        """
        session = self._session
        if session is None or session.closed:
            raise RequestError(
                "Could not send a request as the session is closed. "
                "Enter the RequestHandler's context to start a new session."
            )
        if self.logger.isEnabledFor(logging.DEBUG):
            messages = list(get_iterator(log_message))  # D-15: never append to the caller's list
            if getattr(session, "cache", None) is not None:
                messages.append("Cached Request")
            self.log(method=method.name, url=url, message=messages, **kwargs)
        self._clean_requests_kwargs(kwargs)
        self._stats.requests += 1
        if self.hooks.on_request:
            call_hooks(self.hooks.on_request, method.name, URL(url))
        try:
            response = await session.request(method=method.name, url=url, **kwargs)
        except _TRANSIENT_ERRORS as exc:
            self._stats.errors += 1
            if self.logger.isEnabledFor(logging.DEBUG):
                self.log(method=method.name, url=url, message=f"Request failed: {type(exc).__name__}: {exc}")
            yield exc
            return
        from_cache = _is_cached(response)
        stats = self._stats
        stats.response(response.status)
        if from_cache:
            stats.cache_hits += 1
        elif getattr(session, "cache", None) is not None:
            stats.cache_misses += 1
        if self.hooks.on_response:
            call_hooks(self.hooks.on_response, method.name, URL(url), response.status, from_cache)
        try:
            yield response
        finally:
            if not from_cache:
                stats.bytes_received += getattr(response.content, "total_bytes", 0)
            response.release()

    async def _handle_response(
        self, response: ClientResponse, retry_timer: Timer | None = None, _chain: _Chain | None = None
    ) -> bool:
        """Dispatch ``response`` to its status handler; True when it was handled and should be sent again."""
        status = response.status
        index = self._dispatch.lookup(status)
        if index is None:
            return False
        chain = _chain if _chain is not None else _Chain()
        # D-8: re-authorisation on 401 happens at most once per request() call; after that a 401 is an
        # unhandled failure (the ordinary retry step, bounded by the retry timer). Any other handler may ask
        # for a resend at most _MAX_HANDLED_PER_REQUEST times per call.
        if (status == 401 and chain.reauthorised >= _MAX_REAUTHORISATIONS) or chain.handled >= _MAX_HANDLED_PER_REQUEST:
            return False
        handler = self._handler_list[index]
        started = time.perf_counter()
        handled = await handler(
            response=response,
            authoriser=self.authoriser,
            session=self._session,
            payload_handler=self.payload_handler,
            wait_timer=self.wait_timer,
            retry_timer=retry_timer,
        )
        if handled:
            waited = time.perf_counter() - started
            self._stats.waited(WAIT_STATUS, waited)
            if self.hooks.on_wait:
                call_hooks(self.hooks.on_wait, WAIT_STATUS, waited, response.url)
            chain.handled += 1
            if status == 401:
                chain.reauthorised += 1
        return bool(handled)

    def _handle_retry_timer(self, method: HTTPMethod | str, url: URLInput, timer: Timer, _chain: _Chain) -> None:
        """Log the retry: a WARNING once per request chain (D-19) and the exact delay at DEBUG (D-21)."""
        if not _chain.warned:
            _chain.warned = True
            if self.logger.isEnabledFor(logging.WARNING):
                remaining = timer.count_remaining
                total = timer.total_remaining
                # D-7: unbounded timers have no count/total; say so instead of crashing on None.
                if remaining is None or total is None:
                    detail = "Will keep retrying the request with no retry limit..."
                else:
                    detail = f"Will retry request {remaining} more times and timeout in {float(total):.2f} seconds..."
                self.logger.warning("%sRequest failed. %s%s", _ANSI_YELLOW, detail, _ANSI_RESET)
        if self.logger.isEnabledFor(logging.DEBUG):
            self.log(method=str(method), url=url, message=f"Request failed: retrying in {float(timer):.2f} seconds...")

    async def _retry(
        self,
        response: ClientResponse | BaseException | None,
        method: HTTPMethod | str,
        url: URLInput,
        timer: Timer | None,
        _chain: _Chain | None = None,
    ) -> None:
        """The retry step: raise when no retry is left, else sleep the timer's current value and advance it.

        Raises the original transport exception for a connection failure, ``ResponseError`` (with the
        response) for an error response, or ``RequestError("Max retries exceeded")`` when there was neither.
        """
        if timer is None or not timer.can_increase:
            if isinstance(response, BaseException):
                raise response
            if isinstance(response, ClientResponse):
                raise ResponseError(message=await _body_text(response), response=response)
            raise RequestError("Max retries exceeded")
        self._handle_retry_timer(method, url, timer, _chain if _chain is not None else _Chain())
        delay = float(timer)
        self._stats.retries += 1
        if self.hooks.on_retry:
            cause = response.status if isinstance(response, ClientResponse) else response
            call_hooks(self.hooks.on_retry, str(method), URL(url), delay, cause)
        await timer
        timer.increase()
        self._stats.waited(WAIT_RETRY, delay)
        if self.hooks.on_wait:
            call_hooks(self.hooks.on_wait, WAIT_RETRY, delay, URL(url))

    async def request(self, **kwargs: Any) -> P:
        """Send a request, handling statuses, authorisation, retries and caching as configured.

        :raises RequestError: the session is closed, or retries ran out with no response.
        :raises ResponseError: the final response was an error.
        :raises aiohttp.ClientError | TimeoutError: the final attempt failed in transport.
        """
        if self.closed:
            raise RequestError(
                "Could not send a request as the session is closed. "
                "Enter the RequestHandler's context to start a new session."
            )
        method = HTTPMethod(kwargs.pop("method").upper())
        url = kwargs.pop("url")
        log_message = kwargs.pop("log_message", None)
        self._stats.calls += 1
        try:
            return await self._request_loop(method, url, log_message, kwargs)
        except Exception:
            self._stats.failures += 1
            raise

    async def _request_loop(
        self, method: HTTPMethod, url: URLInput, log_message: str | list[str] | None, kwargs: dict[str, Any]
    ) -> P:
        retry_timer = self.retry_timer
        chain = _Chain()

        while True:
            done = False
            payload: Any = None
            retry_after: Timer | None = None
            cause: ClientResponse | BaseException | None = None
            async with self._request(method, url, log_message, **kwargs) as response:
                failure: ClientResponse | BaseException | None = None
                if isinstance(response, BaseException):
                    failure = response
                elif await self._handle_response(response, retry_timer, chain):
                    pass  # handled: send again without a retry-timer step
                elif response.ok:
                    try:
                        payload = await self.payload_handler(response)
                    except _TRANSIENT_ERRORS as exc:
                        # D-10: a body that fails mid-read is a transient failure like any other.
                        failure = exc
                    else:
                        done = True
                else:
                    await self._log_response(response, method, url)
                    failure = response

                if failure is not None:
                    if retry_timer is None or not retry_timer.can_increase:
                        await self._retry(failure, method, url, retry_timer, chain)  # raises
                    retry_after, cause = retry_timer, failure
            # The response is released before any sleep so its connection returns to the pool at once.
            if retry_after is not None:
                await self._retry(cause, method, url, retry_after, chain)
            if self.wait_timer is not None:
                waited = float(self.wait_timer)
                await self.wait_timer
                self._stats.waited(WAIT_TIMER, waited)
                if self.hooks.on_wait:
                    call_hooks(self.hooks.on_wait, WAIT_TIMER, waited, URL(url))
            if done:
                return payload

    async def get(self, url: URLInput, **kwargs: Any) -> P:
        """Sends a GET request."""
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


def _is_cached(response: ClientResponse) -> bool:
    """True for a response served by the cache (its module is imported on first use: the cache is optional)."""
    global _CACHED_TYPES
    if _CACHED_TYPES is None:
        try:
            from .cache.response import CachedResponse
        except ImportError:
            _CACHED_TYPES = ()
        else:
            _CACHED_TYPES = (CachedResponse,)
    return isinstance(response, _CACHED_TYPES)


async def _body_text(response: ClientResponse) -> str:
    """The body for an error message; never raises (D-11: non-UTF-8 bodies are decoded leniently)."""
    try:
        return await response.text(errors="ignore")
    except (*_TRANSIENT_ERRORS, LookupError, RuntimeError):
        return ""
