# SPDX-License-Identifier: MIT
"""An ``aiohttp.ClientSession`` that answers from a response cache when it can.

Corrections to aiorequestful 1.0.20 (see the migration guide, docs/migrating.md):

* Every verb (``get``/``post``/...) goes through the cached ``request``, which is awaitable *and* an async
  context manager (``await session.request(...)`` and ``async with session.request(...)``), like aiohttp's.
* Every aiohttp request option is accepted: a cache miss hands the caller's arguments to
  ``ClientSession.request`` unchanged, so aiohttp itself merges headers (per-request values win), applies
  ``auth``, ``params``, ``timeout``... The cache only *computes* the same request identity to look it up.
* A network response is released when the ``async with`` block ends.
* aiohttp warns when ``ClientSession`` is subclassed; the original silenced that by replacing
  ``ClientSession.__init_subclass__`` for the whole process. Here a mixin placed before ``ClientSession`` in
  the bases supplies a quiet ``__init_subclass__`` for this class hierarchy only.
* No private aiohttp API: the request identity is rebuilt from public values (``headers``, ``auth``,
  ``base_url``), and no ``ClientRequest`` is constructed.
* A cache that fails (locked past its patience, broken file, corrupt row) costs a cache miss and a log line,
  never the request.
* A repository with an HTTP caching policy (``cache.policy.CachePolicy``) is served as RFC 9111 says: see
  ``cache._http`` for the request flow (revalidation, ``Vary``, stale responses, one origin request per key).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Coroutine, Generator, Mapping
from http.client import InvalidURL
from http.cookies import Morsel
from types import TracebackType
from typing import Any

from aiohttp import ClientResponse, ClientSession, RequestInfo, hdrs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .._utils import format_url_log
from ..limits import DEFAULT_MAX_BODY_SIZE
from ..security import redact_url, secret_headers
from ..telemetry.logfields import log_fields
from ._access import CacheAccess
from ._credentials import NO_CREDENTIALS, credential_pairs
from ._http import HttpCaching, Send, StorePlan, with_headers
from .backend.base import ResponseCache, ResponseRepository
from .response import CachedResponse

__all__ = ("CachedSession",)

logger = logging.getLogger(__name__)


class _QuietSubclass:
    """aiohttp's ``ClientSession.__init_subclass__`` warns on every subclass. Python calls the
    ``__init_subclass__`` found *after* the new class in its MRO, so placing this mixin before ``ClientSession``
    makes class creation in this hierarchy quiet without touching ``ClientSession`` itself."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Deliberately not chained to ClientSession.__init_subclass__ (it only warns); object's takes nothing.
        object.__init_subclass__()


#: Request options that change what identifies a request to the cache (its URL, headers or credentials); a call
#: without any of them (or with empty ones: None, {}), on a session without ``auth`` and with an empty cookie jar,
#: has the identity of its method and URL alone, which is then computed once and kept (see
#: ``CachedSession._identity``).
_IDENTITY_OPTIONS = frozenset({"headers", "params", "auth", "cookies"})
#: How many such identities a session keeps (all are dropped when it is full).
_IDENTITY_MEMO_SIZE = 4096


def _basic_header(login: str, password: str, encoding: str = "latin1") -> str:
    # The same encoding aiohttp applies to credentials in a URL (without constructing a BasicAuth, which
    # newer aiohttp releases deprecate).
    return "Basic " + base64.b64encode(f"{login}:{password}".encode(encoding)).decode(encoding)


class CachedSession(_QuietSubclass, CacheAccess, ClientSession):
    """A client session that serves cacheable requests from ``cache`` and stores new responses in it.

    :param cache: the response cache; its ``repository_getter`` decides which URLs are cached.
    :param kwargs: passed to ``aiohttp.ClientSession``.
    """

    # aiohttp (in debug mode) warns when attributes it does not know are set on a session.
    ATTRS = ClientSession.ATTRS | frozenset(
        {
            "cache",
            "logger",
            "_cache_base_url",
            "_cache_opened_here",
            "_cache_matched",
            "_cache_warned",
            "_http",
            "_cache_ids",
            "_cache_ids_headers",
            "_cache_ids_secret",
        }
    )

    def __init__(self, cache: ResponseCache, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self.logger: logging.Logger = logger
        base_url = kwargs.get("base_url")
        self._cache_base_url: URL | None = None if base_url is None else URL(base_url)
        self._cache_opened_here = False
        self._cache_matched = False  # some request had a repository
        self._cache_warned = False  # the "nothing is cached" warning was given
        self._http = HttpCaching(self)  # the HTTP caching policy's state (used only by repositories with one)
        #: (method, url) -> request info of requests without credentials (see ``_identity``), valid while the
        #: session's default headers and the set of secret header names are those they were computed with.
        self._cache_ids: dict[tuple[Any, Any], RequestInfo] = {}
        self._cache_ids_headers: CIMultiDict[str] | None = None
        self._cache_ids_secret: frozenset[str] | None = None

    @property
    def base_url(self) -> URL | None:
        """The base URL relative request URLs are joined to (None when the session was given none)."""
        return self._cache_base_url

    def _repository_for(self, info: RequestInfo) -> ResponseRepository | None:
        """The repository for ``info``; warns once when a cache is set up so that nothing would ever be cached."""
        repository = self.cache.get_repository_from_requests(info)
        if repository is not None:
            self._cache_matched = True
        elif not self._cache_warned and not self._cache_matched:
            # A cache that silently stores nothing looks like one that works: say so, once per session.
            self._cache_warned = True
            name = getattr(self.cache, "cache_name", type(self.cache).__name__)
            if self.cache.repository_getter is None:
                self.logger.warning(
                    "Cache %r has no repository_getter: no response is stored in it or served from it",
                    name,
                    extra=log_fields(info.method, info.url),
                )
            else:
                self.logger.warning(
                    "No repository of cache %r matches %s %s, so it is not cached (said once per session: check "
                    "the cache's repository_getter if such URLs should be)",
                    name,
                    info.method,
                    redact_url(info.url),
                    extra=log_fields(info.method, info.url),
                )
        return repository

    async def __aenter__(self) -> CachedSession:
        try:
            self.cache = await self.cache.__aenter__()
        except BaseException:
            await ClientSession.close(self)  # the session was created with this object: do not leak it
            raise
        await super().__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc_val, exc_tb)
        finally:
            self._cache_opened_here = False
            await self.cache.__aexit__(exc_type, exc_val, exc_tb)

    async def close(self) -> None:
        """Close the session, and the cache too when the session opened it on first use. Background
        revalidations still running are cancelled first."""
        try:
            await self._http.close()
            await super().close()
        finally:
            if self._cache_opened_here:
                self._cache_opened_here = False
                await self.cache.close()

    async def _ensure_cache_open(self) -> None:
        # aiohttp sessions work without ``async with``; so does this one: a closed cache is opened on first use
        # (and closed with the session).
        if getattr(self.cache, "closed", False):
            await self.cache
            self._cache_opened_here = True

    # ------------------------------------------------------------------------------------------------------------
    # requests
    # ------------------------------------------------------------------------------------------------------------
    def request(  # type: ignore[override]
        self,
        method: str,
        url: Any = None,
        *,
        persist: bool = True,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        lookup: bool = True,
        **kwargs: Any,
    ) -> _CachedRequest:
        """Send a request, or answer it from the cache.

        Usable as ``await session.request(...)`` and as ``async with session.request(...) as response``.

        :param method: the HTTP method.
        :param url: the URL (resolved against the session's ``base_url``).
        :param persist: store a successful network response in the cache (False: read the cache only).
        :param max_body_size: the largest body read to store it, in bytes after decompression (None: no limit);
            a larger one raises ``ResponseTooLargeError`` and is not stored.
        :param lookup: answer from the cache when it holds the response (False: the caller already asked
            :meth:`lookup` and missed, so go to the network at once; the response is still stored).
        :param kwargs: any ``aiohttp.ClientSession.request`` option.
        """
        if url is None:
            url = kwargs.pop("str_or_url", None)  # aiohttp's own name for the argument
        if url is None:
            raise TypeError("request() missing required argument: 'url'")
        return _CachedRequest(self, method, url, persist, kwargs, max_body_size, lookup)

    async def lookup(self, method: str, url: Any, **kwargs: Any) -> CachedResponse | None:
        """The cached response for this request, or None (not cacheable, not stored, expired or unreadable).

        Nothing is sent. ``RequestHandler`` asks this first when flow control is on, so that a hit, which costs
        the host nothing, takes no rate-limit slot and waits on no host pause; a miss then goes through the gate
        and on to ``request(..., lookup=False)``.
        """
        if self.closed:
            raise RuntimeError("Session is closed")
        identity = self._identity(method, url, kwargs)
        if identity is None:
            return None
        info, scope = identity
        repository = self._repository_for(info)
        if repository is None:
            return None
        await self._ensure_cache_open()
        policy = self.cache.policy_for(repository)
        if policy is not None:
            return await self._http.lookup(repository, policy, info, self._sender(method, url, kwargs))
        return await self._lookup(repository, info, scope)

    async def _cached_target(
        self, method: str, url: Any, kwargs: dict[str, Any]
    ) -> tuple[RequestInfo, ResponseRepository] | None:
        """The request identity and repository of a request that may be answered from the cache (the cache
        opened for it), or None when no repository takes it. Nothing is sent."""
        if self.closed:
            raise RuntimeError("Session is closed")
        identity = self._identity(method, url, kwargs)
        if identity is None:
            return None
        info = identity[0]
        repository = self._repository_for(info)
        if repository is None:
            return None
        await self._ensure_cache_open()
        return info, repository

    def _identity(self, method: str, url: Any, kwargs: dict[str, Any]) -> tuple[RequestInfo, str | None] | None:
        """The request info of this call and its credential scope when known without a digest
        (``NO_CREDENTIALS``: it carries no secret header; None: the repository computes it); None for a relative
        URL without a base URL (aiohttp's error to report, on the network path).

        A call whose identity is its method and URL alone (no identity option, no session ``auth``, an empty
        cookie jar) and that carries no credentials is computed once and kept: the same call again costs a
        dictionary look-up. Kept identities are dropped when the session's default headers or the set of secret
        header names change.
        """
        plain = not kwargs or _IDENTITY_OPTIONS.isdisjoint(kwargs) or not any(kwargs.get(n) for n in _IDENTITY_OPTIONS)
        if plain and self.auth is None and not len(self.cookie_jar):
            if self._cache_ids_secret is not secret_headers() or self._cache_ids_headers != self.headers:
                self._cache_ids.clear()
                self._cache_ids_headers = CIMultiDict(self.headers)
                self._cache_ids_secret = secret_headers()
            try:
                memo_key = (method, url)
                info = self._cache_ids.get(memo_key)
            except TypeError:  # an unhashable URL argument: computed every time
                memo_key, info = None, None
            if info is not None:
                return info, NO_CREDENTIALS
            resolved = self._resolve_url(url)
            if not resolved.absolute:
                return None
            info = self._request_info(method, resolved, kwargs)
            if credential_pairs(info.headers):
                return info, None
            if memo_key is not None:
                if len(self._cache_ids) >= _IDENTITY_MEMO_SIZE:
                    self._cache_ids.clear()
                self._cache_ids[memo_key] = info
            return info, NO_CREDENTIALS
        resolved = self._resolve_url(url)
        if not resolved.absolute:
            return None
        info = self._request_info(method, resolved, kwargs)
        return info, None

    def _sender(self, method: str, url: Any, kwargs: dict[str, Any]) -> Send:
        """Sends this request to the network (past the cache), with extra headers (a policy's validators)."""

        def send(extra: Any) -> Any:
            return ClientSession.request(self, method, url, **with_headers(kwargs, extra))

        return send

    async def wait_for_revalidations(self) -> None:
        """Wait until the background revalidations started so far (stale-while-revalidate) have finished."""
        await self._http.drain()

    async def stale_if_error(self, method: str, url: Any, **kwargs: Any) -> CachedResponse | None:
        """The stored response to give instead of an error when the origin cannot be asked now (its host is
        paused for longer than the request may wait): only under an HTTP caching policy, and only within the
        response's stale-if-error window. None otherwise. Nothing is sent."""
        target = await self._cached_target(method, url, kwargs)
        if target is None:
            return None
        info, repository = target
        policy = self.cache.policy_for(repository)
        if policy is None:
            return None
        return await self._http.stale_if_error(repository, policy, info)

    def get(self, url: Any, *, allow_redirects: bool = True, **kwargs: Any) -> _CachedRequest:  # type: ignore[override]
        """Perform a GET request through the cache."""
        return self.request(hdrs.METH_GET, url, allow_redirects=allow_redirects, **kwargs)

    def options(self, url: Any, *, allow_redirects: bool = True, **kwargs: Any) -> _CachedRequest:  # type: ignore[override]
        """Perform an OPTIONS request through the cache."""
        return self.request(hdrs.METH_OPTIONS, url, allow_redirects=allow_redirects, **kwargs)

    def head(self, url: Any, *, allow_redirects: bool = False, **kwargs: Any) -> _CachedRequest:  # type: ignore[override]
        """Perform a HEAD request through the cache."""
        return self.request(hdrs.METH_HEAD, url, allow_redirects=allow_redirects, **kwargs)

    def post(self, url: Any, *, data: Any = None, **kwargs: Any) -> _CachedRequest:  # type: ignore[override]
        """Perform a POST request through the cache."""
        return self.request(hdrs.METH_POST, url, data=data, **kwargs)

    def put(self, url: Any, *, data: Any = None, **kwargs: Any) -> _CachedRequest:  # type: ignore[override]
        """Perform a PUT request through the cache."""
        return self.request(hdrs.METH_PUT, url, data=data, **kwargs)

    def patch(self, url: Any, *, data: Any = None, **kwargs: Any) -> _CachedRequest:  # type: ignore[override]
        """Perform a PATCH request through the cache."""
        return self.request(hdrs.METH_PATCH, url, data=data, **kwargs)

    def delete(self, url: Any, **kwargs: Any) -> _CachedRequest:  # type: ignore[override]
        """Perform a DELETE request through the cache."""
        return self.request(hdrs.METH_DELETE, url, **kwargs)

    # ------------------------------------------------------------------------------------------------------------
    # request identity (what aiohttp would send, computed from public values only)
    # ------------------------------------------------------------------------------------------------------------
    def _resolve_url(self, url: Any) -> URL:
        try:
            resolved = URL(url)
        except (ValueError, TypeError) as exc:
            raise InvalidURL(url) from exc
        if self._cache_base_url is not None and not resolved.absolute:
            resolved = self._cache_base_url.join(resolved)
        return resolved

    def _request_info(self, method: str, url: URL, kwargs: dict[str, Any]) -> RequestInfo:
        """The request info aiohttp would report for this call: method, URL with params, merged headers, with
        the ``Authorization`` that ``auth=``/session auth/URL user info become and the ``Cookie`` header the
        cookie jar and ``cookies=`` add. The cache scopes entries by every secret header in it."""
        url_auth: str | None = None
        if url.raw_user is not None or url.raw_password is not None:
            url_auth = _basic_header(url.user or "", url.password or "")
            url = url.with_user(None)  # never part of a key or a log line
        params = kwargs.get("params")
        if params:
            url = url.extend_query(params)

        # The session's defaults first, then the request's own values replace them (as aiohttp does).
        headers: CIMultiDict[str] = CIMultiDict(self.headers)
        given = kwargs.get("headers")
        if given:
            given_headers = given if isinstance(given, CIMultiDict) else CIMultiDict(given)
            replaced: set[str] = set()
            for name, value in given_headers.items():
                if name.lower() in replaced:
                    headers.add(name, value)
                else:
                    headers[name] = value
                    replaced.add(name.lower())

        auth = kwargs.get("auth")
        if auth is not None and url_auth is not None:
            raise ValueError("Cannot combine AUTH argument with credentials encoded in URL")
        authorization = auth.encode() if auth is not None else url_auth
        if authorization is None and self.auth is not None:
            base = self._cache_base_url
            if base is None or base.origin() == url.origin():
                authorization = self.auth.encode()
        if authorization is not None:
            if given and hdrs.AUTHORIZATION in CIMultiDict(given):
                raise ValueError("Cannot combine AUTHORIZATION header with AUTH argument or credentials encoded in URL")
            headers[hdrs.AUTHORIZATION] = authorization
        cookies = self._cookies_for(url, kwargs.get("cookies"))
        if cookies:
            # As aiohttp sends them: the request's own Cookie header first, then the jar's and the call's cookies.
            # They are credentials: the cache scopes its entries by this header (never stores it).
            present = headers.get(hdrs.COOKIE)
            headers[hdrs.COOKIE] = f"{present}; {cookies}" if present else cookies

        request_url = url.with_fragment(None) if url.raw_fragment else url
        return RequestInfo(request_url, str(method).upper(), CIMultiDictProxy(headers), url)

    def _cookies_for(self, url: URL, given: Any) -> str:
        """The cookies aiohttp would add to a request for ``url``: the session cookie jar's for that URL
        (``filter_cookies``, its public API), overridden by the call's ``cookies=``; as ``Cookie`` header text
        in name order, or "" when there are none."""
        found: dict[str, str] = {}
        jar = self.cookie_jar
        if len(jar):  # an empty jar (the usual case) costs nothing
            for name, morsel in jar.filter_cookies(url).items():
                found[str(name)] = morsel.coded_value
        if given:
            items = given.items() if isinstance(given, Mapping) else given
            for name, value in items:
                found[str(name)] = value.coded_value if isinstance(value, Morsel) else str(value)
        return "; ".join(f"{name}={found[name]}" for name in sorted(found))

    # ------------------------------------------------------------------------------------------------------------
    # cache access that never fails the request
    # ------------------------------------------------------------------------------------------------------------


class _CachedRequest(Coroutine[Any, Any, ClientResponse]):
    """What ``CachedSession.request`` returns: a coroutine giving the response, usable with ``async with``.

    Awaited, a successful network response is stored before it is returned (its body is read). As a context
    manager, it is stored when the block ends without an exception, and then released.
    """

    __slots__ = (
        "_coro",
        "_flight",
        "_in_context",
        "_info",
        "_max_body_size",
        "_plan",
        "_repository",
        "_response",
        "_session",
    )

    def __init__(
        self,
        session: CachedSession,
        method: str,
        url: Any,
        persist: bool,
        kwargs: dict[str, Any],
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        lookup: bool = True,
    ) -> None:
        self._session = session
        self._max_body_size = max_body_size
        self._in_context = False
        self._repository: ResponseRepository | None = None
        self._info: RequestInfo | None = None
        self._response: ClientResponse | None = None
        self._plan: StorePlan | None = None  # how an HTTP caching policy stores the response
        self._flight: Any = None  # other tasks wait for this one's response to be stored (a policy's coalescing)
        self._coro = self._open(session, method, url, persist, kwargs, lookup)

    async def _open(
        self, session: CachedSession, method: str, url: Any, persist: bool, kwargs: dict[str, Any], lookup: bool
    ) -> ClientResponse:
        if session.closed:
            raise RuntimeError("Session is closed")
        identity = session._identity(method, url, kwargs)
        response: ClientResponse | None = None
        repository: ResponseRepository | None = None
        info: RequestInfo | None = None
        if identity is not None:  # a relative URL without a base URL is aiohttp's error to report
            info, scope = identity
            repository = session._repository_for(info)
            if repository is not None:
                await session._ensure_cache_open()
                policy = session.cache.policy_for(repository)
                if policy is not None:
                    return await self._open_with_policy(session, repository, policy, info, method, url, persist, kwargs)
                if lookup:
                    response = await session._lookup(repository, info, scope)
            if session.logger.isEnabledFor(logging.DEBUG):
                hit = "CACHE HIT" if response is not None else "HTTP REQUEST"
                session.logger.debug(
                    "%s", format_url_log("CACHE", info.url, hit), extra=log_fields(info.method, info.url)
                )
        if response is None:
            response = await ClientSession.request(session, method, url, **kwargs)
            if persist and repository is not None and info is not None:
                self._repository, self._info = repository, info
                if not self._in_context and response.ok:
                    await session._persist(repository, info, response, self._max_body_size)
                    self._repository = None
        self._response = response
        return response

    async def _open_with_policy(
        self,
        session: CachedSession,
        repository: ResponseRepository,
        policy: Any,
        info: RequestInfo,
        method: str,
        url: Any,
        persist: bool,
        kwargs: dict[str, Any],
    ) -> ClientResponse:
        response, plan, flight = await session._http.open(
            repository, policy, info, session._sender(method, url, kwargs)
        )
        self._response, self._flight = response, flight
        if session.logger.isEnabledFor(logging.DEBUG):
            shown = getattr(response, "cache_status", "HTTP REQUEST").upper()
            session.logger.debug("%s", format_url_log("CACHE", info.url, shown))
        if plan is None or not persist:
            self._land()
            return response
        self._plan = plan
        if not self._in_context:
            try:
                await self._store_planned(response)
            finally:
                self._land()
        return response

    async def _store_planned(self, response: ClientResponse) -> None:
        plan, self._plan = self._plan, None
        if plan is not None and response.ok:
            await self._session._persist(
                plan.repository, plan.info, response, self._max_body_size, times=plan.times, keep=plan.keep
            )

    def _land(self) -> None:
        flight, self._flight = self._flight, None
        if flight is not None:
            flight.land()

    # Coroutine protocol (so that create_task/gather accept it, as they accept aiohttp's)
    def send(self, value: Any) -> Any:
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        return self._coro.throw(*args)

    def close(self) -> None:
        self._land()
        self._coro.close()

    def __await__(self) -> Generator[Any, None, ClientResponse]:
        return self._coro.__await__()

    async def __aenter__(self) -> ClientResponse:
        self._in_context = True
        response = await self._coro
        return await response.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        response = self._response
        if response is None:
            self._land()
            return
        try:
            if exc_type is None and self._plan is not None:
                await self._store_planned(response)
            elif exc_type is None and self._repository is not None and self._info is not None and response.ok:
                await self._session._persist(self._repository, self._info, response, self._max_body_size)
        finally:
            self._land()
            await response.__aexit__(exc_type, exc_val, exc_tb)  # release the network response
