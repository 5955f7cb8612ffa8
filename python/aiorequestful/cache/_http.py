# SPDX-License-Identifier: MIT
"""What a ``CachedSession`` does for a repository with an HTTP caching policy (``cache.policy.CachePolicy``).

One object per session holds the state the policy needs across requests:

* the origin requests in flight per stored key, so that concurrent misses and revalidations of one key make one
  origin request (the others wait for it, then read what it stored);
* the background revalidations that stale-while-revalidate starts: at most one per key per process (and, on a
  backend shared by a fleet, per fleet), cancelled when the session closes, their failures logged.

The rules themselves (freshness, age, ``Vary``, what may be stored) are in ``cache.policy``; the storage in the
repositories. This module sends the requests and decides which response the caller gets.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import ClientResponse, RequestInfo
from multidict import CIMultiDict

from .._utils import format_url_log, settle
from ..limits import DEFAULT_MAX_BODY_SIZE
from ..security import is_secret_header
from ._credentials import credential_pairs
from ._entry import CacheEntry, ResponseMeta, default_headers, safe_headers
from .policy import (
    CACHEABLE_METHODS,
    CONDITIONAL_HEADERS,
    ERROR_STATUSES,
    SAFE_METHODS,
    Assessment,
    CachePolicy,
    StoredTimes,
    assess,
    freshens_stored,
    freshness_lifetime,
    refreshed_headers,
    row_lifetime,
    storability,
)
from .response import CachedResponse

if TYPE_CHECKING:
    from .backend.base import ResponseRepository
    from .session import CachedSession

#: Sends the request once more, with these extra request headers (validators), and returns the response.
Send = Callable[[Mapping[str, str]], Awaitable[ClientResponse]]

__all__ = ("CACHE_HIT", "CACHE_REVALIDATED", "CACHE_STALE", "CACHE_STALE_IF_ERROR", "HttpCaching", "StorePlan")

logger = logging.getLogger("aiorequestful.cache.session")

#: ``CachedResponse.cache_status`` values: served as stored and fresh (or without a policy) ...
CACHE_HIT = "hit"
#: ... stale within its stale-while-revalidate window (a background request revalidates it) ...
CACHE_STALE = "stale"
#: ... confirmed by the origin with a ``304 Not Modified`` (its stored body, refreshed headers) ...
CACHE_REVALIDATED = "revalidated"
#: ... stale, because the origin failed and the response allows stale-if-error.
CACHE_STALE_IF_ERROR = "stale-if-error"

#: Transport failures after which a stale-if-error response may be served instead.
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError)
#: How long a fleet-wide claim on one background revalidation holds (it is released by expiry).
_CLAIM_SECONDS = 30.0


class StorePlan:
    """How to store a network response once its body is read: the request it answers, when it was asked for
    and received, and how long to keep the row."""

    __slots__ = ("info", "keep", "repository", "times")

    def __init__(self, repository: ResponseRepository[Any, Any], info: RequestInfo, times: StoredTimes, keep: float):
        self.repository = repository
        self.info = info
        self.times = times
        self.keep = keep


class Flight:
    """One origin request for a key that concurrent callers wait for; :meth:`land` wakes them (once)."""

    __slots__ = ("_event", "_flights", "_landings", "key")

    def __init__(self, flights: dict[Any, Flight], key: Any, landings: list[int]) -> None:
        self._flights = flights
        self._landings = landings
        self.key = key
        self._event = asyncio.Event()
        flights[key] = self

    async def wait(self) -> None:
        await self._event.wait()

    def land(self) -> None:
        if self._flights.get(self.key) is self:
            del self._flights[self.key]
            self._landings[0] += 1
        self._event.set()


def with_headers(kwargs: dict[str, Any], extra: Mapping[str, str]) -> dict[str, Any]:
    """``kwargs`` with ``extra`` request headers added (the caller's own headers kept)."""
    if not extra:
        return kwargs
    headers: CIMultiDict[str] = CIMultiDict(kwargs.get("headers") or {})
    for name, value in extra.items():
        headers[name] = value
    return {**kwargs, "headers": headers}


class HttpCaching:
    """The HTTP caching policy's per-session state and request flow (see the module docs)."""

    __slots__ = ("_background", "_flights", "_landings", "_revalidating", "background", "session")

    def __init__(self, session: CachedSession | Any, *, background: bool = True) -> None:
        #: What answers for the cache: its ``cache``, ``_lookup_entry`` and ``_persist`` (a ``CachedSession``, or
        #: the cache middleware).
        self.session = session
        #: Whether stale-while-revalidate may revalidate in a background task. A middleware cannot send its
        #: request again once its call has returned, so it revalidates in the foreground instead.
        self.background = background
        self._flights: dict[Any, Flight] = {}
        # Background revalidations by key: one at a time per key. Apart from the flights, because nobody waits
        # for them: a caller that may have the stale response gets it at once.
        self._revalidating: dict[Any, Flight] = {}
        #: How many flights have landed (ever): a read that began before a landing may have missed its store.
        self._landings = [0]
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------------------------------------------------
    @staticmethod
    def flight_key(repository: ResponseRepository[Any, Any], info: RequestInfo) -> Any:
        """What identifies one stored entry in memory: repository, key and a digest of the credentials (never the
        credentials themselves); None when the request is not cacheable."""
        key = repository.get_key_from_request(info)
        if not key:
            return None
        credentials = credential_pairs(info.headers)
        scope = hashlib.sha256(repr(credentials).encode("utf-8", "surrogatepass")).digest() if credentials else b""
        return repository.settings.name, repr(key), scope

    def _shared(self, policy: CachePolicy) -> bool:
        return policy.is_shared(bool(getattr(self.session.cache, "shared_backend", False)))

    def _assess(
        self, repository: ResponseRepository[Any, Any], policy: CachePolicy, entry: CacheEntry, info: RequestInfo
    ) -> Assessment:
        headers = entry.headers if entry.headers is not None else default_headers(repository.settings.payload_handler)
        return assess(
            entry.status,
            headers,
            entry.times,
            info.headers,
            policy=policy,
            shared=self._shared(policy),
            fallback=repository.expire_seconds,
            is_secret=is_secret_header,
        )

    def _response(
        self,
        repository: ResponseRepository[Any, Any],
        info: RequestInfo,
        entry: CacheEntry,
        status: str,
        assessment: Assessment | None,
        headers: list[tuple[str, str]] | None = None,
    ) -> CachedResponse:
        if headers is None:
            headers = (
                entry.headers if entry.headers is not None else default_headers(repository.settings.payload_handler)
            )
        if assessment is not None and entry.times is not None:
            # RFC 9111 §4: a response served from the cache carries its current age.
            headers = [(name, value) for name, value in headers if name.lower() != "age"]
            headers.append(("Age", str(int(assessment.age))))
        response = CachedResponse(
            info, entry.payload, status=entry.status, reason=entry.reason, headers=headers, decoded=entry.decoded
        )
        response.cache_status = status
        return response

    async def _read(self, repository: ResponseRepository[Any, Any], info: RequestInfo) -> CacheEntry | None:
        return await self.session._lookup_entry(repository, info)

    def _plan(
        self,
        repository: ResponseRepository[Any, Any],
        policy: CachePolicy,
        info: RequestInfo,
        response: ClientResponse,
        request_time: float,
        response_time: float,
    ) -> StorePlan | None:
        """How to store ``response``, or None when it must not be (logged at DEBUG with the reason)."""
        shared = self._shared(policy)
        reason = storability(
            info.method, response.status, info.headers, response.headers, shared=shared, policy_on=True
        )
        lifetime = 0.0
        if reason is None:
            lifetime = freshness_lifetime(
                response.status,
                response.headers,
                shared=shared,
                policy=policy,
                fallback=repository.expire_seconds,
                response_time=response_time,
            )
            keep = row_lifetime(lifetime, response.headers, policy, repository.expire_seconds)
            if keep <= 0:
                reason = "it is stale at once and cannot be revalidated"
        if reason is not None:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("Not caching: %s", format_url_log(info.method, info.url, reason))
            return None
        times = StoredTimes.for_request(request_time, response_time, response.headers, info.headers, is_secret_header)
        return StorePlan(repository, info, times, keep)

    # ------------------------------------------------------------------------------------------------------------
    # lookups
    # ------------------------------------------------------------------------------------------------------------
    async def lookup(
        self,
        repository: ResponseRepository[Any, Any],
        policy: CachePolicy,
        info: RequestInfo,
        send: Send,
    ) -> CachedResponse | None:
        """A response the cache may give without asking the origin first (fresh, or stale within its
        stale-while-revalidate window, which starts one background revalidation); None otherwise.

        When another task is already asking the origin for this key, its answer is waited for first.
        """
        if info.method not in CACHEABLE_METHODS or any(name in info.headers for name in CONDITIONAL_HEADERS):
            return None
        key = self.flight_key(repository, info)
        if key is None:
            return None
        flight = self._flights.get(key) if policy.coalesce else None
        if flight is not None:
            await flight.wait()
        found = await self._usable(repository, policy, info, send)
        return found[0]

    async def _usable(
        self,
        repository: ResponseRepository[Any, Any],
        policy: CachePolicy,
        info: RequestInfo,
        send: Send,
    ) -> tuple[CachedResponse | None, CacheEntry | None, Assessment | None]:
        """``(response to give now or None, the stored entry, its assessment)``."""
        entry = await self._read(repository, info)
        if entry is None:
            return None, None, None
        assessment = self._assess(repository, policy, entry, info)
        if not assessment.matches:
            return None, None, None
        if assessment.serve:
            return self._response(repository, info, entry, CACHE_HIT, assessment), entry, assessment
        if assessment.serve_stale and self.background:
            self._revalidate_later(repository, policy, info, entry, assessment, send)
            return self._response(repository, info, entry, CACHE_STALE, assessment), entry, assessment
        return None, entry, assessment

    async def stale_if_error(
        self, repository: ResponseRepository[Any, Any], policy: CachePolicy, info: RequestInfo
    ) -> CachedResponse | None:
        """The stored response to serve because the origin cannot be asked now (e.g. its host is paused for
        longer than the request may wait), when its stale-if-error window allows; else None."""
        if info.method not in CACHEABLE_METHODS:
            return None
        entry = await self._read(repository, info)
        if entry is None:
            return None
        assessment = self._assess(repository, policy, entry, info)
        if not assessment.matches or not (assessment.serve or assessment.stale_if_error):
            return None
        return self._response(repository, info, entry, CACHE_STALE_IF_ERROR, assessment)

    # ------------------------------------------------------------------------------------------------------------
    # requests
    # ------------------------------------------------------------------------------------------------------------
    async def open(
        self,
        repository: ResponseRepository[Any, Any],
        policy: CachePolicy,
        info: RequestInfo,
        send: Send,
    ) -> tuple[ClientResponse, StorePlan | None, Flight | None]:
        """Answer one request under ``policy``: ``(response, how to store it or None, the flight to land once
        it is stored or released)``."""
        if info.method not in SAFE_METHODS:
            response = await send({})
            if response.status < 400:
                await self._invalidate(repository, info, response)
            return response, None, None
        if info.method not in CACHEABLE_METHODS or any(name in info.headers for name in CONDITIONAL_HEADERS):
            # The caller validates on its own (or the method is not cached): the origin answers, nothing is stored.
            return await send({}), None, None
        key = self.flight_key(repository, info)
        if key is None:
            return await send({}), None, None

        waited = False
        for _ in range(3):  # bounded: under constant churn, the third pass asks the origin anyway
            flight = self._flights.get(key) if policy.coalesce else None
            if flight is not None and not waited:
                waited = True
                await flight.wait()
            landings = self._landings[0]
            hit, entry, assessment = await self._usable(repository, policy, info, send)
            if hit is not None:
                return hit, None, None
            if not policy.coalesce:
                break
            if key in self._flights and not waited:
                continue  # another task started asking while this one read the store: wait for it
            if self._landings[0] == landings:
                break
            # a flight landed while this read was under way: what it stored may be what this read missed

        own = Flight(self._flights, key, self._landings) if policy.coalesce and key not in self._flights else None
        try:
            response, plan = await self._fetch(repository, policy, info, entry, assessment, send)
        except BaseException:
            if own is not None:
                own.land()
            raise
        if own is not None and (plan is None or isinstance(response, CachedResponse)):
            own.land()  # nothing more will be stored: the waiting tasks may look (and go on) now
            own = None
        return response, plan, own

    async def _fetch(
        self,
        repository: ResponseRepository[Any, Any],
        policy: CachePolicy,
        info: RequestInfo,
        entry: CacheEntry | None,
        assessment: Assessment | None,
        send: Send,
    ) -> tuple[ClientResponse, StorePlan | None]:
        """Ask the origin (conditionally when ``entry`` can be validated); serve ``entry`` instead when the origin
        confirms it (304) or fails within its stale-if-error window."""
        validators = assessment.validators if entry is not None and assessment is not None else {}
        request_time = policy.clock()
        try:
            response = await send(validators)
        except _TRANSPORT_ERRORS as exc:
            if entry is not None and assessment is not None and assessment.stale_if_error:
                self._log_stale(info, f"{type(exc).__name__}: {exc}")
                return self._response(repository, info, entry, CACHE_STALE_IF_ERROR, assessment), None
            raise
        response_time = policy.clock()
        if entry is not None and assessment is not None:
            if response.status == 304 and validators:
                stored = entry.headers if entry.headers is not None else []
                if freshens_stored(stored, response.headers):
                    return (
                        await self._refresh(repository, policy, info, entry, response, request_time, response_time),
                        None,
                    )
                # A 304 for another representation than the stored one (RFC 9111 4.3.4): it confirms nothing
                # stored, so ask again without validators for the full response.
                response.release()
                return await self._fetch(repository, policy, info, None, None, send)
            if response.status in ERROR_STATUSES and assessment.stale_if_error:
                response.release()
                self._log_stale(info, f"status {response.status}")
                return self._response(repository, info, entry, CACHE_STALE_IF_ERROR, assessment), None
        plan = self._plan(repository, policy, info, response, request_time, response_time) if response.ok else None
        if plan is None and entry is not None and 200 <= response.status < 300:
            # A full response replaced what was stored, and may not itself be stored: the old one is superseded.
            await self._delete(repository, info)
        return response, plan

    async def _refresh(
        self,
        repository: ResponseRepository[Any, Any],
        policy: CachePolicy,
        info: RequestInfo,
        entry: CacheEntry,
        response: ClientResponse,
        request_time: float,
        response_time: float,
    ) -> CachedResponse:
        """A ``304 Not Modified``: the stored response with the 304's headers, stored again and returned."""
        update = safe_headers(response.headers)
        response.release()
        stored = entry.headers if entry.headers is not None else default_headers(repository.settings.payload_handler)
        headers = refreshed_headers(stored, update)
        times = StoredTimes.for_request(request_time, response_time, headers, info.headers, is_secret_header)
        shared = self._shared(policy)
        lifetime = freshness_lifetime(
            entry.status,
            headers,
            shared=shared,
            policy=policy,
            fallback=repository.expire_seconds,
            response_time=response_time,
        )
        keep = row_lifetime(lifetime, headers, policy, repository.expire_seconds)
        meta = ResponseMeta(entry.status, entry.reason, headers, times, keep)
        try:
            await repository.store_refreshed(info, entry, meta)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the caller still gets the confirmed response
            logger.warning(
                "Could not store a revalidated response: %s", format_url_log(info.method, info.url, type(exc).__name__)
            )
        entry.headers, entry.times = headers, times
        fresh = self._assess(repository, policy, entry, info)
        return self._response(repository, info, entry, CACHE_REVALIDATED, fresh)

    def _log_stale(self, info: RequestInfo, cause: str) -> None:
        logger.warning(
            "Serving a stale cached response (stale-if-error): %s",
            format_url_log(info.method, info.url, f"the origin failed: {cause}"),
        )

    async def _delete(self, repository: ResponseRepository[Any, Any], info: RequestInfo) -> None:
        try:
            await repository.delete_response(info)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning(
                "Could not delete a superseded cache entry: %s",
                format_url_log(info.method, info.url, type(exc).__name__),
            )

    async def _invalidate(
        self, repository: ResponseRepository[Any, Any], info: RequestInfo, response: ClientResponse
    ) -> None:
        """After a non-error response to an unsafe method: drop what is stored for its URL, and for the
        same-origin ``Location``/``Content-Location`` it names (RFC 9111 §4.4)."""
        targets = [info.url]
        for name in ("Location", "Content-Location"):
            value = response.headers.get(name)
            if value:
                try:
                    target = info.url.join(type(info.url)(value))
                except (ValueError, TypeError):
                    continue
                if target.origin() == info.url.origin() and target not in targets:
                    targets.append(target)
        cache = self.session.cache
        for target in targets:
            for safe in CACHEABLE_METHODS:
                probe = RequestInfo(target, safe, info.headers, target)
                found = cache.get_repository_from_url(target) if target is not info.url else repository
                if found is None:
                    continue
                try:
                    await found.invalidate(probe)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning(
                        "Could not invalidate a cache entry: %s", format_url_log(safe, target, type(exc).__name__)
                    )

    # ------------------------------------------------------------------------------------------------------------
    # background revalidation
    # ------------------------------------------------------------------------------------------------------------
    def _revalidate_later(
        self,
        repository: ResponseRepository[Any, Any],
        policy: CachePolicy,
        info: RequestInfo,
        entry: CacheEntry,
        assessment: Assessment,
        send: Send,
    ) -> None:
        key = self.flight_key(repository, info)
        if key is None or key in self._revalidating or key in self._flights:
            return  # one revalidation per key at a time (a foreground one counts)
        flight = Flight(self._revalidating, key, self._landings)
        task = asyncio.get_running_loop().create_task(
            self._revalidate(flight, repository, policy, info, entry, assessment, send)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _revalidate(
        self,
        flight: Flight,
        repository: ResponseRepository[Any, Any],
        policy: CachePolicy,
        info: RequestInfo,
        entry: CacheEntry,
        assessment: Assessment,
        send: Send,
    ) -> None:
        try:
            if not await repository.claim_revalidation(info, _CLAIM_SECONDS):
                return  # another process of the fleet is revalidating it
            # Not stale-if-error here: the caller already has the stale response; a failure only logs.
            quiet = Assessment(
                matches=True, age=assessment.age, lifetime=assessment.lifetime, validators=assessment.validators
            )
            response, plan = await self._fetch(repository, policy, info, entry, quiet, send)
            try:
                if plan is not None and not isinstance(response, CachedResponse):
                    await self.session._persist(
                        plan.repository, plan.info, response, DEFAULT_MAX_BODY_SIZE, times=plan.times, keep=plan.keep
                    )
                elif not isinstance(response, CachedResponse) and not response.ok:
                    logger.warning(
                        "Background revalidation got an error response: %s",
                        format_url_log(info.method, info.url, f"status {response.status}"),
                    )
            finally:
                response.release()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never raised: nobody waits for this task
            logger.warning(
                "Background revalidation failed: %s",
                format_url_log(info.method, info.url, f"{type(exc).__name__}: {exc}"),
            )
        finally:
            flight.land()

    async def drain(self) -> None:
        """Wait until every background revalidation started so far has finished (they never raise)."""
        await settle(self._background)

    async def close(self) -> None:
        """Cancel the background revalidations still running and wait for them to end."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for flight in (*self._flights.values(), *self._revalidating.values()):
            flight.land()
