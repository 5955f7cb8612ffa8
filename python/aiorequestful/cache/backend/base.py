# SPDX-License-Identifier: MIT
"""Cache core: repository settings, repositories and caches of repositories.

A *repository* stores the responses of one family of endpoints under keys derived from each request by its
*settings*; a *cache* is a mapping of named repositories over one backend, plus a ``repository_getter`` that
picks the repository for a URL.

Beyond aiorequestful 1.0.20 (all additive, so that subclasses written for 1.0.20 keep working):

* a saved network response keeps its original status, reason and safe headers, see ``_store``;
* entries are scoped to the credentials of the request that fetched them, so a request made with other
  credentials never gets them (``ResponseRepositorySettings.share_across_credentials`` opts out);
* ``get_entry``/``save_for_request`` are the protocol between ``CachedSession`` and a repository; their defaults
  fall back to 1.0.20's ``get_response``/``_set_item_from_key_value_pair`` for repositories that do not
  override them (the older names ``_get_entry``/``_save_for_request`` still work, as hooks and as calls);
* ``check_name``, ``as_key_parts``, ``request_info_of`` and ``UNSET`` are the helpers shared by the backends;
* repository names that differ only in ASCII case are refused (``RepositoryNameError``): SQLite would put them in
  one table, and every backend must accept the same set of names;
* a stored entry larger than the cache's ``max_entry_size`` (default ``limits.DEFAULT_MAX_BODY_SIZE``) is never
  read into memory or inflated: it is a logged miss;
* a response whose request or response says ``Cache-Control: no-store`` is never stored, with or without a
  caching policy (1.0.20 stored it: storing what the server forbids to store is a privacy defect);
* ``policy=`` (a ``cache.policy.CachePolicy``) on a cache, or ``repository.policy``, makes the cached session
  follow HTTP caching (RFC 9111): freshness from the server's headers, revalidation, ``Vary``, stale responses
  while revalidating or on errors. Off by default.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from abc import ABCMeta, abstractmethod
from collections.abc import AsyncIterable, Callable, Collection, Generator, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from aiohttp import ClientRequest, ClientResponse, RequestInfo, hdrs
from dateutil.relativedelta import relativedelta

from ..._utils import classproperty, get_iterator, required_modules_installed
from ...limits import DEFAULT_MAX_BODY_SIZE
from ...response.exception import PayloadHandlerError
from ...response.payload import PayloadHandler, StringPayloadHandler
from ...types import URLInput
from .._entry import CacheEntry, ResponseMeta
from ..exception import CacheError, RepositoryNameError
from ..policy import CachePolicy, StoredTimes, storability

if sys.version_info >= (3, 12):
    from typing import TypeAliasType
else:  # pragma: no cover - exercised on 3.11 only
    from typing_extensions import TypeAliasType

__all__ = (
    "DEFAULT_EXPIRE",
    "UNSET",
    "CacheRequestType",
    "RepositoryRequestType",
    "ResponseCache",
    "ResponseRepository",
    "ResponseRepositorySettings",
    "as_key_parts",
    "check_max_entry_size",
    "check_name",
    "check_policy",
    "folded_name",
    "request_info_of",
)

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=tuple)
V = TypeVar("V")
R = TypeVar("R", bound="ResponseRepository")

#: Anything that carries the information about a request.
CacheRequestType = TypeAliasType("CacheRequestType", RequestInfo | ClientRequest | ClientResponse)
#: A key tuple, or anything with request info.
RepositoryRequestType = TypeAliasType(
    "RepositoryRequestType", K | RequestInfo | ClientRequest | ClientResponse, type_params=(K,)
)

#: How long a stored response stays live unless the cache or repository says otherwise.
DEFAULT_EXPIRE: timedelta = timedelta(weeks=1)

#: "Not given" for optional arguments where None is a meaningful value.
UNSET: Any = object()
_UNSET = UNSET  # the older name

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def folded_name(name: str) -> str:
    """``name`` with ASCII letters in lower case: the form in which SQLite compares identifiers."""
    return name.translate(_ASCII_LOWER)


def check_max_entry_size(value: Any) -> int | None:
    """A valid ``max_entry_size``: a positive number of bytes, or None for no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"max_entry_size must be a positive number of bytes or None, not {value!r}")
    return value


def check_policy(value: Any) -> CachePolicy | None:
    """A valid ``policy``: a ``CachePolicy`` or None."""
    if value is None or isinstance(value, CachePolicy):
        return value
    raise TypeError(f"policy must be a CachePolicy or None, not {type(value).__name__}")


def check_name(value: Any, what: str) -> str:
    """A table, repository or column name every backend accepts: non-empty text without NUL."""
    if not isinstance(value, str) or not value.strip():
        raise CacheError(f"Invalid {what}: {value!r} (must be a non-empty string)")
    if "\x00" in value:
        raise CacheError(f"Invalid {what}: {value!r} (must not contain NUL)")
    return value


_check_name = check_name  # the older name


def as_key_parts(key: Any) -> tuple[Any, ...]:
    """A stored key as a tuple of parts (a list or a single part is accepted too)."""
    if isinstance(key, tuple):
        return key
    if isinstance(key, list):
        return tuple(key)
    return (key,)


_as_key_parts = as_key_parts  # the older name


@dataclass
class ResponseRepositorySettings(Generic[V], metaclass=ABCMeta):
    """How one repository names, keys and stores its responses.

    :param name: the repository's name (for SQLite: its table name).
    :param payload_handler: serialises payloads for storage and deserialises them when read back.
    """

    #: Entries are scoped to the credentials (``Authorization``) of the request that stored them: a request made
    #: with other credentials, or none, misses. Set to True on a subclass whose responses are the same whoever
    #: asks (public data), so that a token refresh does not invalidate the cache. Not a dataclass field.
    share_across_credentials: ClassVar[bool] = False

    name: str
    # One default instance shared by all settings (handlers are stateless).
    payload_handler: PayloadHandler[V] = StringPayloadHandler()  # type: ignore[assignment]  # noqa: RUF009

    @property
    @abstractmethod
    def fields(self) -> tuple[str, ...]:
        """The names of the key parts ``get_key`` returns, in the same order."""
        raise NotImplementedError

    @abstractmethod
    def get_key(self, *args: Any, **kwargs: Any) -> tuple:
        """The key parts for a request given as ``method=``, ``url=`` and ``headers=``; a None part: not cacheable.

        Declared with ``*args, **kwargs`` so that subclasses may name the keywords they use (as the settings
        in the docs' examples do) without a type checker calling the override incompatible.
        """
        raise NotImplementedError

    @staticmethod
    @abstractmethod
    def get_name(payload: V) -> str | None:
        """A display name stored with the entry, from the deserialised payload."""
        raise NotImplementedError


class ResponseRepository(AsyncIterable[tuple[K, V]], Generic[K, V], metaclass=ABCMeta):
    """A store of responses for one family of endpoints.

    :param settings: how requests are keyed and payloads stored.
    :param expire: how long a saved response stays live.
    """

    __slots__ = ("_expire", "_oversize_warned", "connection", "logger", "max_entry_size", "policy", "settings")

    #: The optional modules this backend needs (checked on construction).
    _required_modules: ClassVar[list[Any]] = []
    #: The names of ``_required_modules``, in order, for the error message, which names the missing modules.
    _required_module_names: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, settings: ResponseRepositorySettings[V], expire: timedelta | relativedelta = DEFAULT_EXPIRE
    ) -> None:
        required_modules_installed(self._required_modules, self)
        self.logger: logging.Logger = logger
        self.settings = settings
        self.connection: Any = None
        self._expire = expire
        #: The largest stored entry (in bytes, after decompression) that is read back; None: no limit.
        self.max_entry_size: int | None = DEFAULT_MAX_BODY_SIZE
        self._oversize_warned: set[str] = set()
        #: This repository's HTTP caching policy: a ``CachePolicy``, None for none even when the cache has one,
        #: or ``UNSET`` (default) for the cache's.
        self.policy: CachePolicy | None = UNSET

    @property
    def expire_seconds(self) -> float:
        """How many seconds a save made now stays live (the repository's expiry)."""
        now = datetime.now()
        return ((now + self._expire) - now).total_seconds()

    @property
    def expire(self) -> datetime:
        """The expiry a save made now would get, as naive local time like 1.0.20's ``datetime.now()``.

        Only this informational property keeps 1.0.20's naive type (so comparing it with
        ``datetime.now()`` still works); what is stored is UTC.
        """
        return datetime.now() + self._expire

    def __hash__(self) -> int:
        return hash(self.settings.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.settings.name!r})"

    # ------------------------------------------------------------------------------------------------------------
    # backend hooks
    # ------------------------------------------------------------------------------------------------------------
    @abstractmethod
    def create(self, *args: Any, **kwargs: Any) -> Any:
        """Set up the backing store for this repository; returns the repository."""
        raise NotImplementedError

    @abstractmethod
    def __await__(self) -> Generator[Any, None, Any]:
        raise NotImplementedError

    @abstractmethod
    async def commit(self) -> None:
        """Make every save so far durable."""
        raise NotImplementedError

    @abstractmethod
    async def close(self) -> None:
        """Commit and close the connection."""
        raise NotImplementedError

    @abstractmethod
    async def count(self, include_expired: bool = True) -> int:
        """The number of stored responses (only live ones when ``include_expired`` is False)."""
        raise NotImplementedError

    @abstractmethod
    async def contains(self, request: Any) -> bool:
        """True when a live response is stored for ``request``."""
        raise NotImplementedError

    @abstractmethod
    async def clear(self, expired_only: bool = False) -> int:
        """Delete every stored response (only expired ones when ``expired_only``); returns how many went."""
        raise NotImplementedError

    @abstractmethod
    def get_key_from_request(self, request: Any) -> K | None:
        """The key for ``request`` (a key tuple is returned unchanged); None when it is not cacheable."""
        raise NotImplementedError

    @abstractmethod
    async def get_response(self, request: Any) -> V | None:
        """The deserialised live payload stored for ``request``, or None."""
        raise NotImplementedError

    @abstractmethod
    async def _set_item_from_key_value_pair(self, key: K, value: Any) -> None:
        """Store the already serialised ``value`` under ``key``."""
        raise NotImplementedError

    @abstractmethod
    async def delete_response(self, request: Any) -> bool:
        """Delete the response stored for ``request``; True if one was deleted."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------------------------
    # payload conversion
    # ------------------------------------------------------------------------------------------------------------
    async def serialize(self, value: Any) -> Any:
        """``value`` in its stored form, or None when the payload handler cannot serialise it."""
        if value is None:
            return None
        try:
            return await self.settings.payload_handler.serialize(value)
        except PayloadHandlerError:
            return None

    async def deserialize(self, value: Any) -> Any:
        """``value`` (a stored payload or a response) deserialised, or None when the handler cannot."""
        if value is None:
            return None
        try:
            return await self.settings.payload_handler.deserialize(value)
        except PayloadHandlerError:
            return None

    # ------------------------------------------------------------------------------------------------------------
    # bulk and convenience operations
    # ------------------------------------------------------------------------------------------------------------
    async def get_responses(self, requests: Iterable[Any]) -> list[V]:
        """The stored payloads for ``requests``, in order, misses dropped."""
        results = await asyncio.gather(*(self.get_response(request) for request in requests))
        return [result for result in results if result is not None]

    async def save_response(self, response: Any) -> None:
        """Store ``response``: a ``(key, value)`` pair, or a response whose body is read through the payload
        handler and stored under the key of its request."""
        if isinstance(response, Collection) and not isinstance(response, (str, bytes, bytearray)):
            key, value = response
            await self._store(key, await self.serialize(value), payload=value)
            return
        await self.save_for_request(response, response, prompt=False)

    async def save_responses(self, responses: Mapping[Any, Any] | Iterable[Any]) -> None:
        """Store many responses concurrently: a mapping of key to value, or an iterable for ``save_response``."""
        if isinstance(responses, Mapping):
            await asyncio.gather(*(self._store_value(key, value) for key, value in responses.items()))
            return
        await asyncio.gather(*(self.save_response(response) for response in responses))

    async def delete_responses(self, requests: Iterable[Any]) -> int:
        """Delete the responses for ``requests`` concurrently; returns how many were deleted."""
        results = await asyncio.gather(*(self.delete_response(request) for request in requests))
        return sum(1 for result in results if result)

    async def _store_value(self, key: Any, value: Any) -> None:
        await self._store(key, await self.serialize(value), payload=value)

    # ------------------------------------------------------------------------------------------------------------
    # the protocol CachedSession uses (not part of the original contract; defaults fall back to its methods)
    # ------------------------------------------------------------------------------------------------------------
    async def _store(
        self,
        key: Any,
        value: Any,
        *,
        payload: Any = UNSET,
        meta: ResponseMeta | None = None,
        request: Any = None,
        prompt: bool = False,
    ) -> None:
        """Store the serialised ``value`` under ``key``.

        ``payload`` is the deserialised value when the caller has it (saves decoding it again for the display
        name), ``meta`` the original response's metadata and ``request`` the request info whose credentials
        scope the entry. ``prompt``: a request is waiting on this save, so a store that another process holds
        locked is given up on quickly (a warning, not a stall). The base implementation only knows the
        contract's two-argument hook.
        """
        await self._set_item_from_key_value_pair(key, value)

    async def save_for_request(
        self,
        request: Any,
        response: ClientResponse,
        *,
        prompt: bool = True,
        times: StoredTimes | None = None,
        keep: float | None = None,
    ) -> None:
        """Store the body of ``response`` under the key of ``request`` (its own request info, or the request a
        ``CachedSession`` computed before any redirect), scoped to the credentials ``request`` carried.

        ``prompt`` (the default, as ``CachedSession`` saves while its caller waits): give up quickly on a store
        locked elsewhere, raising ``CacheError``; False waits as long as a direct save does. ``times`` and
        ``keep`` are stored with it by an HTTP caching policy (see ``ResponseMeta``).

        A response that says ``Cache-Control: no-store``, or answers a request that said it, is not stored.
        """
        key = self.get_key_from_request(request)
        if not key:
            return
        info = request_info_of(request)
        forbidden = storability(
            str(getattr(response, "method", "") or (info.method if info is not None else "GET")),
            int(getattr(response, "status", 200) or 200),
            None if info is None else info.headers,
            getattr(response, "headers", None),
            shared=False,
            policy_on=False,
        )
        if forbidden is not None:
            self.logger.debug("Not caching a response for %r: %s", self.settings.name, forbidden)
            return
        if isinstance(response, ClientResponse) and not await _body_is_complete(response):
            self.logger.warning(
                "Not caching a response for %r: its body is shorter than its Content-Length "
                "(it was consumed as a stream or cut off)",
                self.settings.name,
            )
            return
        value = await self.deserialize(response)
        if value is None:
            # Nothing the payload handler can read back (e.g. HTML for a JSON repository, an empty body): an
            # entry would only ever be a miss.
            self.logger.warning(
                "Not caching a response for %r: the payload handler cannot read its body", self.settings.name
            )
            return
        meta = ResponseMeta.from_response(response)
        if meta is not None:
            meta.times, meta.keep = times, keep
        await self._store(key, await self.serialize(value), payload=value, meta=meta, request=info, prompt=prompt)

    async def store_refreshed(
        self, request: Any, entry: CacheEntry, meta: ResponseMeta, *, prompt: bool = True
    ) -> None:
        """Store ``entry``'s payload again with new metadata (a ``304 Not Modified`` refreshed its headers)."""
        key = self.get_key_from_request(request)
        if not key:
            return
        if entry.decoded is not None:
            value = entry.decoded[1]
        else:
            value = await self.deserialize(entry.payload)
        await self._store(key, entry.payload, payload=value, meta=meta, request=request_info_of(request), prompt=prompt)

    async def invalidate(self, request: Any) -> int:
        """Delete what is stored for the key of ``request`` after a change to the resource; returns how many
        entries went. The backends delete every user's entry for the key; this default only the caller's."""
        return 1 if await self.delete_response(request) else 0

    async def claim_revalidation(self, request: Any, seconds: float) -> bool:
        """Whether this process is the one to revalidate ``request``'s entry in the background now. A backend
        shared by a fleet answers True for one process only; this default (one process) always does."""
        return True

    async def _save_for_request(self, request: Any, response: ClientResponse) -> None:
        """The older name of :meth:`save_for_request` (waits for a locked store as a direct save does)."""
        await self.save_for_request(request, response, prompt=False)

    async def get_entry(self, request: Any) -> CacheEntry | None:
        """The live stored response for ``request`` with its metadata, or None (the lookup ``CachedSession``
        makes; a store locked elsewhere past a short wait is a miss in the backends that can be locked)."""
        return await self._get_entry(request)

    async def _get_entry(self, request: Any) -> CacheEntry | None:
        """The older name of :meth:`get_entry`; by default built from 1.0.20's ``get_response``."""
        payload: Any = await self.get_response(request)
        if payload is None:
            return None
        if not isinstance(payload, (str, bytes)):
            payload = await self.serialize(payload)
            if not isinstance(payload, (str, bytes)):
                return None
        return CacheEntry(payload)

    # ------------------------------------------------------------------------------------------------------------
    # the size cap on stored entries
    # ------------------------------------------------------------------------------------------------------------
    def exceeds_max_entry_size(self, size: int) -> bool:
        """True when an entry of ``size`` bytes is larger than ``max_entry_size`` allows."""
        limit = self.max_entry_size
        return limit is not None and size > limit

    def payload_exceeds_max_entry_size(self, value: Any) -> bool:
        """True when the serialised ``value`` (text as UTF-8) is larger than ``max_entry_size`` allows."""
        limit = self.max_entry_size
        if limit is None:
            return False
        if isinstance(value, str):
            if len(value) > limit:
                return True
            if len(value) * 4 <= limit:  # UTF-8 takes at most 4 bytes a character
                return False
            return len(value.encode("utf-8", "surrogatepass")) > limit
        try:
            return len(value) > limit
        except TypeError:
            return False

    def warn_oversize(self, key: Any, size: int | None, action: str = "ignoring it (a miss)") -> None:
        """Log, once per key, that the entry for ``key`` is larger than ``max_entry_size``."""
        text = repr(key)
        if text in self._oversize_warned:
            return
        if len(self._oversize_warned) >= 4096:  # bounded: a flood of huge entries must not grow memory
            self._oversize_warned.clear()
        self._oversize_warned.add(text)
        shown = "more than" if size is None else f"{size} bytes,"
        self.logger.warning(
            "Cache entry in %r for key %s is %s over the limit of %s bytes (max_entry_size): %s",
            self.settings.name,
            text,
            shown,
            self.max_entry_size,
            action,
        )


def request_info_of(request: Any) -> RequestInfo | None:
    """The ``RequestInfo`` of ``request`` (itself, or its ``request_info``); None for anything else (a key)."""
    if isinstance(request, RequestInfo):
        return request
    info = getattr(request, "request_info", None)
    return info if isinstance(info, RequestInfo) else None


_request_info = request_info_of  # the older name


async def _body_is_complete(response: ClientResponse) -> bool:
    """False when the body read back is shorter than the response declared (so it must not be cached)."""
    body = await response.read()
    if response.method == hdrs.METH_HEAD or response.status in (204, 304):
        return True
    headers = response.headers
    declared = headers.get(hdrs.CONTENT_LENGTH)
    if declared is None or headers.get(hdrs.CONTENT_ENCODING):  # decompression changes the length
        return True
    try:
        return int(declared) == len(body)
    except ValueError:
        return True


class ResponseCache(MutableMapping[str, R], Generic[R], metaclass=ABCMeta):
    """A mapping of repository name to repository over one backend.

    :param cache_name: the cache's name (for SQLite: the database path or a label).
    :param repository_getter: ``(cache, url) -> repository | None``; picks the repository for a URL (None: do not
        cache it).
    :param expire: how long a saved response stays live, for every repository created by this cache.
    :param max_entry_size: the largest stored entry, in bytes after decompression, that is read back (or saved)
        by this cache's repositories; a larger one is a logged miss. ``None`` lifts the limit. Defaults to
        ``aiorequestful.limits.DEFAULT_MAX_BODY_SIZE``.
    :param policy: a :class:`~aiorequestful.cache.policy.CachePolicy` to follow HTTP caching (RFC 9111) for
        every repository that does not set its own; None (default): store and serve by expiry alone.
    """

    __slots__ = ("_repositories", "cache_name", "expire", "max_entry_size", "policy", "repository_getter")

    #: Whether many clients share this backend (a Redis fleet): an HTTP caching policy with ``shared=None``
    #: then follows the rules for shared caches.
    shared_backend: ClassVar[bool] = False

    def __init__(
        self,
        cache_name: str,
        repository_getter: Callable[[ResponseCache, URLInput], R | None] | None = None,
        expire: timedelta | relativedelta = DEFAULT_EXPIRE,
        *,
        max_entry_size: int | None = DEFAULT_MAX_BODY_SIZE,
        policy: CachePolicy | None = None,
    ) -> None:
        self.cache_name = cache_name
        self.repository_getter = repository_getter
        self.expire = expire
        self.max_entry_size = check_max_entry_size(max_entry_size)
        self.policy = check_policy(policy)
        self._repositories: dict[str, R] = {}

    def policy_for(self, repository: ResponseRepository[Any, Any]) -> CachePolicy | None:
        """The HTTP caching policy ``repository`` follows: its own when it sets one (None included), else the
        cache's."""
        own = getattr(repository, "policy", UNSET)
        return self.policy if own is UNSET else check_policy(own)

    def check_repository_name(self, name: str) -> None:
        """Refuse ``name`` for a new repository: ``CacheError`` when it is taken, ``RepositoryNameError`` (a
        ``ValueError`` too) when it differs from a registered name only in ASCII case. SQLite compares table
        names that way, so the two would silently share one table; every backend refuses them alike."""
        if name in self._repositories:
            raise CacheError(f"Repository already exists: {name}")
        folded = folded_name(name)
        for existing in self._repositories:
            if folded_name(existing) == folded:
                raise RepositoryNameError(
                    f"Repository name {name!r} clashes with the repository {existing!r}: names that differ only "
                    "in case would share one store"
                )

    def register_repository(self, repository: R) -> R:
        """Add ``repository`` under its settings' name after :meth:`check_repository_name`, giving it this
        cache's ``max_entry_size``; returns it."""
        name = repository.settings.name
        self.check_repository_name(name)
        repository.max_entry_size = self.max_entry_size
        self._repositories[name] = repository
        return repository

    @classproperty
    def type(cls: type[ResponseCache[Any]]) -> str | None:  # noqa: N805 - a class property
        """The name of the backend (None on the abstract base)."""
        return None

    # ------------------------------------------------------------------------------------------------------------
    # backend hooks
    # ------------------------------------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    async def connect(cls, value: Any, **kwargs: Any) -> ResponseCache[R]:
        """Create a cache connected to ``value``."""
        raise NotImplementedError

    @abstractmethod
    def __await__(self) -> Generator[Any, None, ResponseCache[R]]:
        raise NotImplementedError

    async def __aenter__(self) -> ResponseCache[R]:
        return await self

    @abstractmethod
    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        raise NotImplementedError

    @abstractmethod
    async def commit(self) -> None:
        """Make every save so far durable."""
        raise NotImplementedError

    @abstractmethod
    async def close(self) -> None:
        """Commit and close the backend connection."""
        raise NotImplementedError

    @abstractmethod
    def create_repository(self, settings: ResponseRepositorySettings[Any]) -> R:
        """Register a repository for ``settings`` (the backend store is set up when the cache is entered)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------------------------
    # mapping
    # ------------------------------------------------------------------------------------------------------------
    def __getitem__(self, key: str) -> R:
        return self._repositories[key]

    def __setitem__(self, key: str, value: R) -> None:
        self._repositories[key] = value

    def __delitem__(self, key: str) -> None:
        del self._repositories[key]

    def __iter__(self) -> Any:
        return iter(self._repositories)

    def __len__(self) -> int:
        return len(self._repositories)

    def __repr__(self) -> str:
        return repr(self._repositories)

    def __str__(self) -> str:
        return str(self._repositories)

    # ------------------------------------------------------------------------------------------------------------
    # repository selection and delegation
    # ------------------------------------------------------------------------------------------------------------
    def get_repository_from_url(self, url: URLInput) -> R | None:
        """The repository for ``url`` chosen by ``repository_getter``, or None."""
        if self.repository_getter is None:
            return None
        return self.repository_getter(self, url)

    def get_repository_from_requests(self, requests: Any) -> R | None:
        """The one repository for ``requests`` (one request or a collection of them), or None.

        Raises ``CacheError`` when the requests map to different repositories (no repository counts as one).
        """
        if isinstance(requests, RequestInfo):  # one request (every cache lookup): no collection to walk
            single: Any = requests.url
            if single is None:
                raise CacheError(f"Cannot find a repository for {type(requests).__name__} object: it has no URL")
            return self.get_repository_from_url(single)
        found: list[R | None] = []
        for request in get_iterator(requests):
            url = getattr(request, "url", None)
            if url is None:
                raise CacheError(f"Cannot find a repository for {type(request).__name__} object: it has no URL")
            repository = self.get_repository_from_url(url)
            if not any(repository is seen for seen in found):
                found.append(repository)
        if len(found) > 1:
            raise CacheError(
                "Too many different types of requests given. Given requests must relate to the same repository type"
            )
        return found[0] if found else None

    async def get_response(self, request: Any) -> Any:
        """The stored payload for ``request`` from its repository (None when none matches)."""
        repository = self.get_repository_from_requests(request)
        if repository is None:
            return None
        return await repository.get_response(request)

    async def get_responses(self, requests: Collection[Any]) -> list[Any] | None:
        """The stored payloads for ``requests`` from their repository (None when none matches)."""
        repository = self.get_repository_from_requests(requests)
        if repository is None:
            return None
        return await repository.get_responses(requests)

    async def save_response(self, response: Any) -> None:
        """Store ``response`` in its repository (nothing when none matches)."""
        repository = self.get_repository_from_requests(response)
        if repository is None:
            return None
        return await repository.save_response(response)

    async def save_responses(self, responses: Collection[Any]) -> None:
        """Store ``responses`` in their repository (nothing when none matches)."""
        repository = self.get_repository_from_requests(responses)
        if repository is None:
            return None
        return await repository.save_responses(responses)

    async def delete_response(self, request: Any) -> bool | None:
        """Delete the response for ``request`` from its repository (None when none matches)."""
        repository = self.get_repository_from_requests(request)
        if repository is None:
            return None
        return await repository.delete_response(request)

    async def delete_responses(self, requests: Collection[Any]) -> int | None:
        """Delete the responses for ``requests`` from their repository (None when none matches)."""
        repository = self.get_repository_from_requests(requests)
        if repository is None:
            return None
        return await repository.delete_responses(requests)
