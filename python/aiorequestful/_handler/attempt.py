# SPDX-License-Identifier: MIT
"""One attempt of a request: sent (or answered from a cache), counted, its body read within the limit, its payload
decoded, and released.

:class:`Attempts` holds what every attempt of one handler shares: the session it sends with, the counters and
hooks it reports to, the logger of its DEBUG lines, the body size limit, the read watch that keeps the default
read time-out, and the transport errors that make an attempt a failure to retry rather than an error to raise.
The request loop (and the plain GET) decide what to do with an attempt's outcome; this module only makes it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from http import HTTPMethod
from typing import TYPE_CHECKING, Any, cast

import aiohttp
from aiohttp import ClientResponse, ClientSession
from yarl import URL

from .. import limits
from .._utils import get_iterator
from ..cache.protocol import CachingSession
from ..exception import RequestError
from ..response._body import body_ready, read_body
from ..response.exception import PayloadHandlerError, ResponseTooLargeError
from ..response.payload import PayloadHandler, decode_body
from ..security import redact_url
from ..stats import RequestHooks, StatsRecorder, call_hooks
from ..telemetry.logfields import next_attempt, response_status
from ..types import RequestKwargs
from .read_watch import ReadWatch, timeout_error
from .redaction import scrub_urls
from .retry import TRANSIENT_ERRORS, LogLine
from .transport import Transport

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from ..cache.response import CachedResponse

__all__ = ("CLOSED_MESSAGE", "UNSET", "Attempts", "allowed_kwargs", "is_cached", "lookup_options")

#: Client errors that sending again cannot fix: a redirect loop stays a loop, a malformed URL stays malformed.
#: They are raised at once, whatever the retry timer or policy.
NOT_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.TooManyRedirects, aiohttp.InvalidURL)
#: What an attempt raises at once instead of returning for the retry step: the above, and a body over the limit.
_RAISED_AT_ONCE: tuple[type[BaseException], ...] = (*NOT_TRANSIENT_ERRORS, ResponseTooLargeError)

#: What ``ClientSession`` uses when it is given no ``timeout``; a session using it gets the handler's default.
_AIOHTTP_DEFAULT_TIMEOUT: Any = getattr(aiohttp.client, "DEFAULT_TIMEOUT", None)

#: Marks a keyword that was not given (None means "no limit" for ``max_body_size``).
UNSET: Any = object()

CLOSED_MESSAGE = (
    "Could not send a request as the session is closed. Enter the RequestHandler's context to start a new session."
)
#: Keywords of a caching session's ``request`` that the handler sets itself (never the caller's to pass through
#: to a lookup).
OWN_SESSION_KWARGS = frozenset({"persist", "lookup", "max_body_size"})

_ALLOWED_KWARGS: dict[type, frozenset[str]] = {}


def allowed_kwargs(session: ClientSession) -> frozenset[str]:
    """The kwarg names a session's ``request`` accepts, computed once per session class (not per attempt)."""
    cls = type(session)
    allowed = _ALLOWED_KWARGS.get(cls)
    if allowed is None:
        params = inspect.signature(cls.request).parameters.values()
        named = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"}
        allowed = frozenset(named) | frozenset(RequestKwargs.__annotations__)
        _ALLOWED_KWARGS[cls] = allowed
    return allowed


def lookup_options(session: ClientSession, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The caller's keywords a caching session's lookup takes: those of its ``request``, without the ones the
    handler sets itself."""
    allowed = allowed_kwargs(session)
    return {key: value for key, value in kwargs.items() if key in allowed and key not in OWN_SESSION_KWARGS}


_CACHED_TYPES: tuple[type, ...] | None = None


def is_cached(response: ClientResponse) -> TypeIs[CachedResponse]:
    """True for a response served by the cache (its module is imported on first use: the cache is optional)."""
    global _CACHED_TYPES
    if _CACHED_TYPES is None:
        try:
            from ..cache.response import CachedResponse
        except ImportError:
            _CACHED_TYPES = ()
        else:
            _CACHED_TYPES = (CachedResponse,)
    # A network response is exactly aiohttp's class in the common case: answered without the isinstance walk.
    return type(response) is not ClientResponse and isinstance(response, _CACHED_TYPES)


class Attempts:
    """How the attempts of one handler are made (see the module documentation).

    :param stats: the handler's counters (one per attempt: a response by its status class, or an error).
    :param hooks: the handler's hooks (``on_request`` before a send, ``on_response`` after it).
    :param logger: where the DEBUG lines of attempts go.
    :param log: writes a request's DEBUG line (the handler's ``log``).
    :param max_body_size: the handler's body size limit (None: no limit).
    """

    __slots__ = ("caching", "catch", "hooks", "log", "logger", "max_body_size", "session", "stats", "watch")

    def __init__(
        self,
        stats: StatsRecorder,
        hooks: RequestHooks,
        logger: logging.Logger,
        log: LogLine,
        max_body_size: int | None,
    ) -> None:
        self.stats = stats
        self.hooks = hooks
        self.logger = logger
        self.log = log
        self.max_body_size = max_body_size
        #: The session attempts are sent with (None: none is open), and whether it is a caching one.
        self.session: ClientSession | None = None
        self.caching = False
        #: The transport errors an attempt returns as a failure (the retry policy's, or every transient one).
        self.catch: tuple[type[BaseException], ...] = TRANSIENT_ERRORS
        #: Keeps the default read time-out of the attempts that use it (see ``read_watch.py``).
        self.watch = ReadWatch()

    def open(self, session: ClientSession | None) -> None:
        """Send with ``session`` from now on (None: the handler's session is closed)."""
        self.session = session
        self.caching = isinstance(session, CachingSession)
        if session is None:
            self.watch.close()

    # ------------------------------------------------------------------------------------------------------
    # sending
    # ------------------------------------------------------------------------------------------------------
    async def send(
        self,
        method: HTTPMethod,
        url: Any,
        log_message: str | list[str] | None,
        kwargs: dict[str, Any],
        max_body_size: int | None = UNSET,
        lookup: bool = True,
        transport: Transport | None = None,
    ) -> ClientResponse | BaseException:
        """One attempt: returns the response, or the transport exception that prevented one.

        The caller must pass a returned response to :meth:`release` when done with it (the request loop does so
        in a ``finally``). A plain coroutine rather than an ``asynccontextmanager``: this runs once per attempt
        and the generator machinery was a measurable share of the per-request cost.
        Only errors raised while *opening* the request are returned; anything raised while the caller
        handles the response propagates normally. The caller's headers are passed through untouched;
        aiohttp merges the session's defaults under them (per-request values win). ``kwargs`` is not modified.
        A session whose ``request`` takes ``max_body_size`` (``CachedSession``, which reads bodies to store them)
        is given the limit; a session using aiohttp's default time-out, and a request giving none, gets
        :data:`aiorequestful.limits.DEFAULT_TIMEOUT`. A redirect loop or an invalid URL is raised, not returned:
        sending again cannot fix it. With ``transport`` (an aiohttp client middleware's next step), the request
        the session built is sent on down the chain instead.
        """
        next_attempt()  # the attempt number and status the log records of this attempt carry
        session: ClientSession | None = None
        read_limit: float | None = None
        if transport is not None:
            if self.logger.isEnabledFor(logging.DEBUG):
                self.log(method=method.name, url=url, message=list(get_iterator(log_message)))
        else:
            session = self.session
            if session is None or session.closed:
                raise RequestError(CLOSED_MESSAGE)
            if self.logger.isEnabledFor(logging.DEBUG):
                messages = list(get_iterator(log_message))  # never append to the caller's list
                if self.caching:
                    messages.append("Cached Request")
                self.log(method=method.name, url=url, message=messages, **kwargs)
            allowed = allowed_kwargs(session)
            # Drop kwargs the session's request does not take; a new dict, so the caller's is reused untouched.
            kwargs = {key: value for key, value in kwargs.items() if key in allowed} if kwargs else {}
            if "max_body_size" in allowed:
                kwargs["max_body_size"] = self.max_body_size if max_body_size is UNSET else max_body_size
            if not lookup and "lookup" in allowed:
                kwargs["lookup"] = False  # this attempt's lookup was made before the gate, and missed
            if "timeout" not in kwargs:
                read_limit = self._plan_timeout(session, kwargs)
        hooks = self.hooks
        if hooks.on_request:
            call_hooks(hooks.on_request, method.name, URL(url))
        try:
            if read_limit is not None:
                assert session is not None
                # The wait for the headers, under the read watch (see read_watch.py).
                watch = self.watch
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
            self._failed(method, url, exc)
            raise
        except self.catch as exc:
            self._failed(method, url, exc)
            return exc
        except Exception:
            self.stats.error()  # could not be sent at all (a bad URL or option): counted, then raised as is
            raise
        self.account(method, url, response)
        return response

    def _plan_timeout(self, session: ClientSession, kwargs: dict[str, Any]) -> float | None:
        """Give a request with no ``timeout`` of its own the default one (in ``kwargs`` when the session does not
        carry it already); returns the read limit the watch keeps for it, or None when aiohttp keeps it.

        The default is read from :mod:`aiorequestful.limits` each time, so the documented one is in force. A plain
        session's request without a body keeps its read part under the watch instead of aiohttp's (see
        read_watch.py); everything else is sent with the whole default.
        """
        default = limits.DEFAULT_TIMEOUT
        watch = self.watch
        if default is not watch.default:
            watch.use(default)
        current = session.timeout
        if current is watch.readless or current is default or current is _AIOHTTP_DEFAULT_TIMEOUT:
            if watch.read is not None and not self.caching and "data" not in kwargs and "json" not in kwargs:
                if current is not watch.readless:
                    kwargs["timeout"] = watch.readless
                return watch.read
            if current is not default:
                kwargs["timeout"] = default
        return None

    def _failed(self, method: HTTPMethod, url: Any, exc: BaseException) -> None:
        self.stats.error()
        if self.logger.isEnabledFor(logging.DEBUG):
            self.log(
                method=method.name, url=url, message=f"Request failed: {type(exc).__name__}: {scrub_urls(str(exc))}"
            )

    async def lookup(self, method: HTTPMethod, url: Any, kwargs: dict[str, Any], where: str) -> ClientResponse | None:
        """Ask the caching session for a stored response before sending (``where``: before what, for the DEBUG
        line): a hit is an attempt answered from storage, counted as such. None: a miss (send it, without asking
        the session again)."""
        session = self.session
        if session is None or not self.caching:
            return None
        hit = await cast("CachingSession", session).lookup(method.name, url, **lookup_options(session, kwargs))
        if hit is None:
            return None
        next_attempt()
        if self.logger.isEnabledFor(logging.DEBUG):
            self.log(method=method.name, url=url, message=f"Cached Request: answered from the cache {where}")
        if self.hooks.on_request:
            call_hooks(self.hooks.on_request, method.name, URL(url))
        self.account(method, url, hit)
        return hit

    def account(self, method: HTTPMethod, url: Any, response: ClientResponse) -> None:
        """Count an attempt that got ``response`` (from the network or the cache) and tell the hooks."""
        from_cache = is_cached(response)
        response_status(response.status)  # the status the attempt's log records carry from now on
        stats = self.stats
        stats.response(response.status)
        if from_cache:
            status = getattr(response, "cache_status", "hit")
            if status == "revalidated":
                stats.cache_revalidations += 1
            else:
                stats.cache_hits += 1
                if status != "hit":
                    stats.cache_stale += 1
        elif self.caching:
            stats.cache_misses += 1
        if self.hooks.on_response:
            call_hooks(self.hooks.on_response, method.name, URL(url), response.status, from_cache)

    # ------------------------------------------------------------------------------------------------------
    # reading
    # ------------------------------------------------------------------------------------------------------
    async def read_bounded(self, response: ClientResponse, max_body_size: int | None = UNSET) -> bytes | None:
        """Read a network response's body within the size limit before anything else reads it; returns it
        (None: not read here - a cached response, no limit, or a transport error).

        Afterwards ``read()``/``text()``/``json()`` return the bytes read here. A body over the limit raises
        :class:`ResponseTooLargeError` (the response is closed). A transport error is left for the reader that
        comes next: the stream keeps it, so a payload or status handler meets the same error it would have met
        reading the body itself.
        """
        limit = self.max_body_size if max_body_size is UNSET else max_body_size
        watch = self.watch
        watched = watch.body(response)
        if not watched and (limit is None or is_cached(response)):
            return None
        try:
            return await read_body(response, limit)
        except TRANSIENT_ERRORS:
            return None
        finally:
            if watched:
                watch.body_done(response)

    async def decode(
        self, response: ClientResponse, handler: PayloadHandler[Any], method: HTTPMethod, max_body_size: int | None
    ) -> tuple[bool, Any]:
        """The payload of a successful ``response``: (True, payload), or (False, the failure to retry): a body
        that failed mid-read, or a payload error a retry policy lists. Any other payload error is raised, naming
        the request."""
        if is_cached(response):
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
                body = await self.read_bounded(response, max_body_size)
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
            error = payload_error(exc, method, response)
            if not isinstance(error, self.catch):
                raise error from exc
            return False, error  # a retry policy that lists PayloadHandlerError retries it
        except self.catch as exc:
            return False, exc  # a body that fails mid-read is a transient failure like any other

    def release(self, response: ClientResponse) -> None:
        """Count a network response's bytes and release it, so its connection returns to the pool at once."""
        if not is_cached(response):
            self.stats.bytes_received += getattr(response.content, "total_bytes", 0)
            self.watch.forget(response)
        response.release()


def payload_error(exc: PayloadHandlerError, method: HTTPMethod, response: ClientResponse) -> PayloadHandlerError:
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
