# SPDX-License-Identifier: MIT
"""Redis backend: a response cache shared by every process of a crawler fleet.

The repository contract is that of ``SQLiteTable``; the storage is Redis:

* one key per entry, a small hash (payload, display name, original status/reason/safe headers, credential
  digest, stamp), with a native Redis TTL from the repository's ``expire``: Redis itself drops expired entries;
* payloads of 1 KiB or more are zlib-compressed when that saves at least a tenth, so values stay compact;
* keys are namespaced ``<namespace>:cache:{<cache name>/<repository>}:...``, so several caches (and fleets) can
  share one server; the braces are a Redis Cluster hash tag that keeps a repository's keys in one slot;
* each repository keeps a sorted set of its keys by expiry, so ``count``/``clear``/iteration never scan the
  server's keyspace;
* entries are scoped to the credentials of the request that fetched them, as in SQLite: the keyed digest of the
  credentials is part of the entry's key (two users of one URL each have their own entry, neither evicts the
  other's), and only that digest is stored, never the credentials. The digest key is random and kept in one Redis
  key per cache, created with ``SET NX`` so that every member of a fleet uses the first one written.
  ``ResponseRepositorySettings.share_across_credentials`` opts out. Entries an earlier version stored for requests
  with credentials (under the unscoped key, with a digest made another way) are never served: they are misses
  until their TTL ends. Entries stored without credentials are read as before;
* an entry larger than ``max_entry_size`` (stored or inflated) is never read whole or inflated past the limit:
  the size is checked in Redis before the value is sent, and decompression stops at the limit (a logged miss).

Failure behaviour: when Redis is unavailable a lookup is a miss, a save is skipped and a delete finds nothing,
with one WARNING per outage (see :class:`~aiorequestful.shared.RedisConnection`); no request fails because of the
cache. ``count``, ``clear`` and iteration, which a program uses to inspect the cache, raise ``CacheError`` then,
rather than report an empty cache.

Differences from ``SQLiteTable`` that come from Redis: expired entries do not linger (``count(True)`` equals
``count(False)``, and ``clear(expired_only=True)`` only tidies the index, returning how many expired entries it
dropped); every save is durable when it returns as far as the server's persistence goes (``commit`` has nothing
to do); ``close`` leaves the connection to its owner (the cache, or the fleet's shared connection).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Generator
from datetime import timedelta
from enum import Enum
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import ClientRequest, ClientResponse, RequestInfo
from dateutil.relativedelta import relativedelta
from yarl import URL

from ..._utils import classproperty, required_modules_installed
from ...limits import DEFAULT_MAX_BODY_SIZE
from ...shared.connection import RedisConnection, RedisScript
from .._credentials import NO_CREDENTIALS, credential_digest, credential_pairs, new_key
from .._entry import (
    DEFAULT_REASON,
    DEFAULT_STATUS,
    CacheEntry,
    ResponseMeta,
    decode_headers,
    decoded_once,
    encode_headers,
    utc_now,
)
from ..exception import CacheError
from ..policy import CachePolicy, StoredTimes
from .base import (
    DEFAULT_EXPIRE,
    UNSET,
    K,
    ResponseCache,
    ResponseRepository,
    ResponseRepositorySettings,
    V,
    as_key_parts,
    check_max_entry_size,
    check_name,
    request_info_of,
)

try:
    import redis
except ImportError:  # pragma: no cover - exercised when the [redis] extra is not installed
    redis = None  # type: ignore[assignment]

__all__ = ("DEFAULT_CACHE_NAME", "RedisCache", "RedisTable", "redis")

#: The cache name ``RedisCache.connect`` uses when none is given.
DEFAULT_CACHE_NAME = "cache"

#: Payloads at least this long are compressed when that pays.
_COMPRESS_AT = 1024
_FLAG_ZLIB = 1
_FLAG_BYTES = 2
_CHUNK = 256

# Store one entry: replace the hash, set its TTL, index it by expiry (server time), tidy the index.
# KEYS: entry, index. ARGV: ttl ms, index member, then the hash's field/value pairs.
_SAVE = RedisScript(
    """
local ttl = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DEL', KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if ttl <= 0 then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 0
end
local fields = {}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], 't', string.format('%.0f', now), unpack(fields))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[2])
if redis.call('PTTL', KEYS[2]) < ttl then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
"""
)

_DELETE = RedisScript(
    """
local deleted = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return deleted
"""
)

_COUNT = RedisScript(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)

_CLEAR_EXPIRED = RedisScript(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""
)

# Delete up to ARGV[2] entries of the index (entry keys are ARGV[1] .. member); returns {deleted, left}.
_CLEAR_CHUNK = RedisScript(
    """
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local deleted = 0
for _, member in ipairs(members) do
  deleted = deleted + redis.call('DEL', ARGV[1] .. member)
end
if #members > 0 then
  redis.call('ZREM', KEYS[1], unpack(members))
end
return {deleted, redis.call('ZCARD', KEYS[1])}
"""
)

# Read one entry unless its stored payload or headers are larger than ARGV[1] bytes (-1: no limit).
# KEYS: entry. Returns HMGET's seven fields, or {false, size} for an entry over the limit.
_LOAD = RedisScript(
    """
local cap = tonumber(ARGV[1])
if cap >= 0 then
  local size = math.max(redis.call('HSTRLEN', KEYS[1], 'p'), redis.call('HSTRLEN', KEYS[1], 'h'))
  if size > cap then
    return {false, size}
  end
end
return redis.call('HMGET', KEYS[1], 'p', 'f', 's', 'r', 'h', 'c', 'm')
"""
)

# The cache's credential digest key: the first one written wins (SET NX), so a fleet agrees on it.
# KEYS: the key's key. ARGV: a fresh random key.
_CREDENTIAL_KEY = RedisScript(
    """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""
)

# Delete every user's entry for one key: members are the key JSON, alone or after "<scope>:".
# KEYS: the index. ARGV: the entry prefix, the key JSON. Returns how many entries went.
_INVALIDATE = RedisScript(
    """
local deleted = 0
local wanted = ARGV[2]
local cursor = '0'
repeat
  local page = redis.call('ZSCAN', KEYS[1], cursor, 'COUNT', 500)
  cursor = page[1]
  local items = page[2]
  for i = 1, #items, 2 do
    local member = items[i]
    local bare = member
    if string.sub(member, 1, 1) ~= '[' then
      local at = string.find(member, ':', 1, true)
      if at then bare = string.sub(member, at + 1) end
    end
    if bare == wanted then
      deleted = deleted + redis.call('DEL', ARGV[1] .. member)
      redis.call('ZREM', KEYS[1], member)
    end
  end
until cursor == '0'
return deleted
"""
)

_MISSING: Any = object()


class _EntryTooLargeError(Exception):
    """A stored entry over ``max_entry_size`` (``size`` bytes, or None when inflation was stopped at the limit)."""

    def __init__(self, size: int | None) -> None:
        super().__init__(size)
        self.size = size


def _storable(part: Any) -> Any:
    """A key part as JSON can hold it (as SQLite binds it: numbers and text as they are, anything else as text)."""
    if isinstance(part, Enum) and isinstance(part, str):
        return part.value
    if part is None or isinstance(part, (bool, int, float, str)):
        return part
    if isinstance(part, (bytes, bytearray)):
        return bytes(part).decode("utf-8", "backslashreplace")
    return str(part)


def _with_scope(member: str, scope: str) -> str:
    """An index member with its credential scope: ``<digest>:<key JSON>`` (a key JSON alone when unscoped, as
    every entry was stored before scopes were part of the key)."""
    return f"{scope}:{member}" if scope else member


def _key_of_member(member: str) -> tuple[Any, ...]:
    """The key tuple of an index member (scoped or not)."""
    if not member.startswith("["):
        member = member.partition(":")[2]
    return tuple(json.loads(member))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _encode_payload(value: str | bytes) -> tuple[bytes, int]:
    """The stored form of a serialised payload and its flags (compressed, bytes rather than text)."""
    flags = 0
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
    else:
        data, flags = bytes(value), _FLAG_BYTES
    if len(data) >= _COMPRESS_AT:
        packed = zlib.compress(data, 1)
        if len(packed) <= len(data) * 0.9:
            return packed, flags | _FLAG_ZLIB
    return data, flags


def _inflate(data: bytes, limit: int | None) -> bytes:
    """``data`` decompressed, never to more than ``limit`` bytes (a zlib bomb stops there: ``_EntryTooLargeError``)."""
    inflater = zlib.decompressobj()
    if limit is None:
        out = inflater.decompress(data) + inflater.flush()
    else:
        out = inflater.decompress(data, limit + 1)
        if len(out) > limit:
            raise _EntryTooLargeError(None)
    if not inflater.eof:
        raise zlib.error("incomplete or truncated stream")
    return out


def _decode_payload(data: Any, flags: Any, limit: int | None = None) -> str | bytes:
    if not isinstance(data, bytes):
        raise TypeError(f"stored payload is {type(data).__name__}, not bytes")
    bits = int(flags or 0)
    if bits & ~(_FLAG_ZLIB | _FLAG_BYTES):
        raise ValueError(f"unknown payload flags {bits}")
    if bits & _FLAG_ZLIB:
        data = _inflate(data, limit)
    elif limit is not None and len(data) > limit:
        raise _EntryTooLargeError(len(data))
    return data if bits & _FLAG_BYTES else data.decode("utf-8", "surrogatepass")


# ----------------------------------------------------------------------------------------------------------------
# The key layout, public for tools that look into a cache from outside a crawl (python -m aiorequestful.cache):
# they find, read and tidy entries with these, so there is one definition of how entries are laid out.
# ----------------------------------------------------------------------------------------------------------------
#: The scripts and batch size ``RedisTable.clear`` runs, so that a tool purges exactly as the cache does.
CLEAR_EXPIRED_SCRIPT = _CLEAR_EXPIRED
CLEAR_CHUNK_SCRIPT = _CLEAR_CHUNK
CLEAR_CHUNK_SIZE = _CHUNK
#: Bits of an entry hash's ``f`` field: the payload is zlib-compressed; it is bytes rather than UTF-8 text.
FLAG_ZLIB, FLAG_BYTES = _FLAG_ZLIB, _FLAG_BYTES
_INDEX_SUFFIX = "}:index"


def repository_keys(connection: RedisConnection, cache_name: str, repository: str) -> tuple[str, str]:
    """``(entry key prefix, index key)`` of a repository: ``<namespace>:cache:{<cache>/<repository>}:e:`` and
    ``<namespace>:cache:{<cache>/<repository>}:index``. Both names are URL-quoted, so neither can bring a brace, a
    slash or a glob character into a key, and the braces are the Redis Cluster hash tag of the repository."""
    tag = "{" + quote(cache_name, safe="") + "/" + quote(repository, safe="") + "}"
    return connection.key("cache", tag, "e", ""), connection.key("cache", tag, "index")


def index_key_pattern(connection: RedisConnection) -> str:
    """A ``SCAN ... MATCH`` pattern for the index keys of every repository of every cache in the connection's
    namespace (:func:`parse_index_key` names the cache and repository of each)."""
    head = "".join("\\" + char if char in "*?[]\\" else char for char in connection.key("cache", "{"))
    return head + "*" + _INDEX_SUFFIX


def parse_index_key(connection: RedisConnection, key: str) -> tuple[str, str] | None:
    """``(cache name, repository name)`` of an index key that :func:`repository_keys` makes for the connection's
    namespace; None for any other key."""
    head = connection.key("cache", "{")
    if not (key.startswith(head) and key.endswith(_INDEX_SUFFIX)):
        return None
    cache, slash, repository = key[len(head) : -len(_INDEX_SUFFIX)].partition("/")
    if not slash:
        return None
    names = unquote(cache), unquote(repository)
    # Only a key this module would make for those names (quoting undone and redone gives the key back).
    return names if repository_keys(connection, *names)[1] == key else None


def split_member(member: str) -> tuple[str, tuple[Any, ...]]:
    """``(credential scope, key tuple)`` of an index member; the scope is ``NO_CREDENTIALS`` for an unscoped one.

    Raises ``ValueError`` for a member that is not a key JSON array (with or without a scope).
    """
    scope, _, body = ("", "", member) if member.startswith("[") else member.partition(":")
    key = json.loads(body)
    if not isinstance(key, list) or not key:
        raise ValueError(f"index member {member[:80]!r} is not a key")
    return scope or NO_CREDENTIALS, tuple(key)


def read_stored_payload(data: Any, flags: Any, limit: int | None = DEFAULT_MAX_BODY_SIZE) -> str | bytes:
    """An entry's stored ``p`` field as its payload handler gets it: inflated when compressed (never to more than
    ``limit`` bytes) and decoded when text.

    Raises ``CacheError`` for a payload over ``limit``, and ``ValueError``, ``TypeError`` or ``zlib.error`` for a
    corrupt one.
    """
    try:
        return _decode_payload(data, flags, limit)
    except _EntryTooLargeError as exc:
        size = "" if exc.size is None else f" ({exc.size} bytes)"
        raise CacheError(f"The payload is larger than the limit of {limit} bytes{size}") from None


class RedisTable(ResponseRepository[K, V]):
    """A repository stored in Redis: one hash per entry with a native TTL (see the module docs).

    :param connection: the shared Redis.
    :param settings: how requests are keyed and payloads stored; ``settings.name`` names the repository.
    :param expire: how long a saved response stays live (the entry's Redis TTL).
    :param cache_name: the name of the cache the repository belongs to (part of every key).
    :param max_entry_size: the largest stored payload, in bytes after decompression, that is read back (None: no
        limit).
    """

    __slots__ = ("_credential_key", "_credential_key_name", "_entry_prefix", "_fields", "_index_key")

    _required_module_names = ("redis",)

    @classproperty
    def _required_modules(cls: type[RedisTable]) -> list[Any]:  # noqa: N805 - a class property
        return [redis]

    def __init__(
        self,
        connection: RedisConnection,
        settings: ResponseRepositorySettings[V],
        expire: timedelta | relativedelta = DEFAULT_EXPIRE,
        cache_name: str = DEFAULT_CACHE_NAME,
        *,
        max_entry_size: int | None = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        super().__init__(settings=settings, expire=expire)
        if not isinstance(connection, RedisConnection):
            raise TypeError(f"connection must be a RedisConnection, not {type(connection).__name__}")
        self.connection = connection
        name = check_name(settings.name, "repository name")
        cache = check_name(cache_name, "cache name")
        self.max_entry_size = check_max_entry_size(max_entry_size)
        self._fields = self._validate_fields(settings.fields)
        self._entry_prefix, self._index_key = repository_keys(connection, cache, name)
        self._credential_key_name = connection.key("cache", quote(cache, safe=""), "credential-key")
        self._credential_key: bytes | None = None

    def _validate_fields(self, fields: Any) -> tuple[str, ...]:
        if isinstance(fields, str):
            fields = (fields,)
        columns = ["method", *(check_name(field, "key field name") for field in fields)]
        seen: set[str] = set()
        for column in columns:
            if column in seen:
                raise CacheError(f"Key field {column!r} of repository {self.settings.name!r} is given twice")
            seen.add(column)
        return tuple(columns)

    @property
    def index_key(self) -> str:
        """The Redis key of this repository's index (a sorted set of entry members by expiry, in ms)."""
        return self._index_key

    def entry_key(self, key: Any) -> str | None:
        """The Redis key of the entry stored without credentials for ``key`` (a key tuple, or a request whose
        credentials are ignored); None when it is not cacheable. See :meth:`entry_key_for` for a request's own."""
        member = self._member(self.get_key_from_request(key))
        return None if member is None else self._entry_prefix + member

    async def entry_key_for(self, request: Any) -> str | None:
        """The Redis key of the entry for ``request``, scoped to its credentials; None when it is not cacheable
        (or when Redis is unavailable and the scope cannot be known)."""
        member = await self._scoped_member(request)
        return None if member is None else self._entry_prefix + member

    # ----------------------------------------------------------------------------------------------
    # lifecycle (nothing to create or commit in Redis)
    # ----------------------------------------------------------------------------------------------
    def __await__(self) -> Generator[Any, None, RedisTable[K, V]]:
        return self.create().__await__()

    async def create(self) -> RedisTable[K, V]:
        """Nothing to set up in Redis (entries and the index appear with the first save); returns the table."""
        return self

    async def commit(self) -> None:
        """Nothing to do: a save is written when it returns."""

    async def close(self) -> None:
        """Nothing to do: the connection belongs to the cache (or to the fleet's shared connection)."""

    # ----------------------------------------------------------------------------------------------
    # keys and credentials
    # ----------------------------------------------------------------------------------------------
    def get_key_from_request(self, request: Any) -> K | None:
        """The key of ``request``: ``(METHOD, *settings.get_key(...))``; a key tuple is returned unchanged.

        None when the settings give a None part (the request is not cacheable).
        """
        if isinstance(request, (ClientRequest, ClientResponse)):
            request = request.request_info
        if not isinstance(request, RequestInfo):
            return request
        parts = as_key_parts(self.settings.get_key(method=request.method, url=request.url, headers=request.headers))
        if any(part is None for part in parts):
            return None
        return (str(request.method).upper(), *parts)  # type: ignore[return-value]

    def _member(self, key: Any) -> str | None:
        """The index member (and entry key suffix) for ``key``: its parts as compact JSON; None: not cacheable."""
        if key is None:
            return None
        parts = as_key_parts(key)
        if not parts or any(part is None for part in parts):
            return None
        if len(parts) != len(self._fields):
            raise CacheError(
                f"Key {parts!r} does not match the key fields {list(self._fields)} of repository {self.settings.name!r}"
            )
        method, *rest = (_storable(part) for part in parts)
        if isinstance(method, str):
            method = method.upper()
        return json.dumps([method, *rest], ensure_ascii=False, separators=(",", ":"))

    async def _key_for_digests(self) -> bytes | None:
        """The cache's credential digest key (made on first use, shared by the fleet); None while Redis is
        unavailable."""
        key = self._credential_key
        if key is None:
            name, fresh = self._credential_key_name, new_key()

            async def load(client: Any) -> Any:
                return await _CREDENTIAL_KEY(client, keys=(name,), args=(fresh,))

            stored = await self.connection.call(load, None)
            if not isinstance(stored, bytes) or len(stored) < 16:
                if stored is not None:
                    self.logger.warning("The credential key of the Redis cache at %s is damaged", name)
                return None
            key = self._credential_key = stored
        return key

    async def _scope(self, request: Any) -> str | None:
        """The credential digest that scopes the entry of ``request`` (``NO_CREDENTIALS`` for a request without
        credentials, for shared settings and for a bare key tuple); None when it cannot be known now."""
        if self.settings.share_across_credentials:
            return NO_CREDENTIALS
        info = request_info_of(request)
        if info is None or not credential_pairs(info.headers):
            return NO_CREDENTIALS
        key = await self._key_for_digests()
        return None if key is None else credential_digest(key, info.headers)

    async def _scoped_member(self, request: Any) -> str | None:
        """The index member of the entry for ``request``: the key's member, prefixed by the credential digest
        when there is one; None when not cacheable or the scope cannot be known."""
        member = self._member(self.get_key_from_request(request))
        if member is None:
            return None
        scope = await self._scope(request)
        if scope is None:
            return None
        return _with_scope(member, scope)

    def _unavailable(self) -> CacheError:
        return CacheError(f"Redis at {self.connection.display_url} is unavailable")

    # ----------------------------------------------------------------------------------------------
    # reads
    # ----------------------------------------------------------------------------------------------
    async def count(self, include_expired: bool = True) -> int:
        """The number of stored responses (expired ones are gone already, so ``include_expired`` changes nothing).

        Raises ``CacheError`` when Redis is unavailable.
        """
        index = self._index_key

        async def count(client: Any) -> Any:
            return await _COUNT(client, keys=(index,))

        result = await self.connection.call(count, _MISSING)
        if result is _MISSING:
            raise self._unavailable()
        return int(result)

    async def contains(self, request: Any) -> bool:
        member = await self._scoped_member(request)
        if member is None:
            return False
        name = self._entry_prefix + member
        return bool(await self.connection.call(lambda client: client.exists(name), 0))

    async def get_response(self, request: Any) -> V | None:
        loaded = await self._load(request)
        return None if loaded is None else loaded[1]

    async def get_entry(self, request: Any) -> CacheEntry | None:
        """The live entry for ``request`` with its metadata, or None (also while Redis is unavailable)."""
        loaded = await self._load(request)
        return None if loaded is None else loaded[0]

    _get_entry = get_entry  # the older name

    def _cap_arg(self) -> str:
        return "-1" if self.max_entry_size is None else str(self.max_entry_size)

    async def _load(self, request: Any) -> tuple[CacheEntry, Any] | None:
        """The live entry for ``request`` and its deserialised payload; None for a miss, a corrupt or oversized
        entry, or when Redis is unavailable."""
        member = await self._scoped_member(request)
        if member is None:
            return None
        keys, args = (self._entry_prefix + member,), (self._cap_arg(),)

        async def load(client: Any) -> Any:
            return await _LOAD(client, keys=keys, args=args)

        row = await self.connection.call(load, None)
        if row is None or row[0] is None:
            if row is not None and len(row) == 2:
                self.warn_oversize(member, int(row[1]))
            return None
        data, flags, status, reason, headers, stored_credentials, times = row
        expected = member.partition(":")[0] if ":" in member and not member.startswith("[") else NO_CREDENTIALS
        if (_text(stored_credentials) or NO_CREDENTIALS) != expected:
            # The scope is in the key already; a stored digest that disagrees is an entry written by something
            # else under this key: never serve it.
            self.logger.debug(
                "Cache entry in %r for %s was stored for other credentials: miss", self.settings.name, member
            )
            return None
        try:
            loaded = await self._check(data, flags, status, reason, headers)
        except _EntryTooLargeError as exc:
            self.warn_oversize(member, exc.size)
            return None
        except Exception as exc:  # a corrupt entry must never crash the crawl: log it and miss
            self.logger.warning(
                "Ignoring a corrupt cache entry in %r for key %s: %s: %s",
                self.settings.name,
                member,
                type(exc).__name__,
                exc,
            )
            return None
        loaded[0].times = None if times is None else StoredTimes.decode(_text(times))
        return loaded

    async def _check(self, data: Any, flags: Any, status: Any, reason: Any, headers: Any) -> tuple[CacheEntry, Any]:
        payload = _decode_payload(data, flags, self.max_entry_size)
        handler = self.settings.payload_handler
        value = await handler.deserialize(payload)
        if status is None:  # saved by key: no response metadata
            entry_status, entry_reason = DEFAULT_STATUS, DEFAULT_REASON if reason is None else _text(reason)
        else:
            entry_status = int(status)
            if not 100 <= entry_status <= 599:
                raise ValueError(f"stored status {entry_status!r} is not an HTTP status code")
            entry_reason = _text(reason)
        entry_headers = None if headers is None else decode_headers(_text(headers))
        decoded = decoded_once(handler, payload, value)
        return CacheEntry(payload, entry_status, entry_reason, entry_headers, decoded), value

    def __aiter__(self) -> AsyncIterator[tuple[K, V]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[K, V]]:
        """Live entries as ``(key, deserialised payload)``; corrupt ones are logged and skipped.

        Raises ``CacheError`` when Redis is unavailable.
        """
        index, prefix = self._index_key, self._entry_prefix
        cursor: Any = 0
        seen: set[bytes] = set()
        while True:
            current = cursor

            async def scan(client: Any, at: Any = current) -> Any:
                return await client.zscan(index, cursor=at, count=_CHUNK)

            page = await self.connection.call(scan, None)
            if page is None:
                raise self._unavailable()
            cursor, members = page
            # No clock comparison: an entry Redis still holds is live (its TTL is the expiry).
            chunk = [member for member, _score in members if member not in seen]
            seen.update(chunk)
            if chunk:
                names = [prefix + member.decode("utf-8") for member in chunk]
                cap = self._cap_arg()

                async def fetch(client: Any, names: list[str] = names, cap: str = cap) -> Any:
                    async with client.pipeline(transaction=False) as pipe:
                        for name in names:
                            pipe.eval(_LOAD.source, 1, name, cap)
                        return await pipe.execute()

                rows = await self.connection.call(fetch, None)
                if rows is None:
                    raise self._unavailable()
                for member, row in zip(chunk, rows, strict=True):
                    if row[0] is None:
                        if len(row) == 2:
                            self.warn_oversize(member.decode("utf-8"), int(row[1]), "skipping it")
                        continue  # expired or deleted since the scan
                    data, flags = row[0], row[1]
                    key = _key_of_member(member.decode("utf-8"))
                    try:
                        payload = _decode_payload(data, flags, self.max_entry_size)
                        value = await self.settings.payload_handler.deserialize(payload)
                    except _EntryTooLargeError as exc:
                        self.warn_oversize(key, exc.size, "skipping it")
                        continue
                    except Exception as exc:
                        self.logger.warning(
                            "Skipping a corrupt cache entry in %r for key %r: %s: %s",
                            self.settings.name,
                            key,
                            type(exc).__name__,
                            exc,
                        )
                        continue
                    yield key, value  # type: ignore[misc]
            if int(cursor) == 0:
                return

    # ----------------------------------------------------------------------------------------------
    # writes
    # ----------------------------------------------------------------------------------------------
    async def _set_item_from_key_value_pair(self, key: K, value: Any) -> None:
        await self._store(key, value)

    def _ttl_ms(self, meta: ResponseMeta | None = None) -> int:
        now = utc_now()
        seconds = ((now + self._expire) - now).total_seconds()
        if meta is not None:
            seconds = meta.keep_seconds(seconds)
        return int(seconds * 1000)

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
        member = self._member(key)
        if member is None or value is None:
            return
        if not isinstance(value, (str, bytes, bytearray)):
            raise CacheError(f"Cannot store a {type(value).__name__} payload in {self.settings.name!r}: not serialised")
        if self.payload_exceeds_max_entry_size(value):
            self.warn_oversize(member, None, "not storing it")
            return
        credentials = NO_CREDENTIALS
        if request is not None:
            scope = await self._scope(request)
            if scope is None:
                return  # Redis is unavailable (already reported): the save is skipped
            credentials = scope
        member = _with_scope(member, credentials)
        if payload is UNSET:
            payload = await self.deserialize(value)
        data, flags = _encode_payload(bytes(value) if isinstance(value, bytearray) else value)
        fields: list[Any] = ["p", data, "f", str(flags), "c", credentials]
        name = self._display_name(payload)
        if name is not None:
            fields += ["n", name]
        if meta is not None:
            fields += ["s", str(meta.status), "h", encode_headers(meta.headers)]
            if meta.reason is not None:
                fields += ["r", meta.reason]
            times = meta.encoded_times()
            if times is not None:
                fields += ["m", times]
        keys = (self._entry_prefix + member, self._index_key)
        args = (str(self._ttl_ms(meta)), member, *fields)

        async def save(client: Any) -> Any:
            return await _SAVE(client, keys=keys, args=args)

        await self.connection.call(save, None)

    def _display_name(self, payload: Any) -> str | None:
        if payload is None:
            return None
        try:
            name = self.settings.get_name(payload)
        except Exception as exc:  # a display name is never worth losing the entry for
            self.logger.debug("get_name failed for repository %r: %s: %s", self.settings.name, type(exc).__name__, exc)
            return None
        return name if name is None or isinstance(name, str) else str(name)

    async def delete_response(self, request: Any) -> bool:
        """Delete the entry of ``request`` (for a request: the one of its credentials; for a key tuple: the one
        stored without credentials); True if one was deleted."""
        member = await self._scoped_member(request)
        if member is None:
            return False
        keys = (self._entry_prefix + member, self._index_key)

        async def delete(client: Any) -> Any:
            return await _DELETE(client, keys=keys, args=(member,))

        return bool(await self.connection.call(delete, 0))

    async def invalidate(self, request: Any) -> int:
        """Delete every user's entry for the key of ``request`` (what a change to the resource makes stale);
        returns how many went (0 while Redis is unavailable)."""
        member = self._member(self.get_key_from_request(request))
        if member is None:
            return 0
        keys, args = (self._index_key,), (self._entry_prefix, member)

        async def invalidate(client: Any) -> Any:
            return await _INVALIDATE(client, keys=keys, args=args)

        return int(await self.connection.call(invalidate, 0))

    async def claim_revalidation(self, request: Any, seconds: float) -> bool:
        """Claim the one background revalidation of ``request``'s entry across the fleet for ``seconds``: True
        for the one process that gets it (and when Redis is unavailable: then each process decides alone)."""
        member = await self._scoped_member(request)
        if member is None:
            return False
        name = f"{self._entry_prefix}{member}:revalidating"
        milliseconds = max(1, int(seconds * 1000))

        async def claim(client: Any) -> Any:
            return await client.set(name, b"1", nx=True, px=milliseconds)

        return bool(await self.connection.call(claim, True))

    async def clear(self, expired_only: bool = False) -> int:
        """Delete every entry (or, with ``expired_only``, tidy the index of the entries Redis already expired);
        returns how many went. Raises ``CacheError`` when Redis is unavailable."""
        index, prefix = self._index_key, self._entry_prefix
        if expired_only:

            async def tidy(client: Any) -> Any:
                return await _CLEAR_EXPIRED(client, keys=(index,))

            result = await self.connection.call(tidy, _MISSING)
            if result is _MISSING:
                raise self._unavailable()
            return int(result)
        total = 0
        while True:

            async def chunk(client: Any) -> Any:
                return await _CLEAR_CHUNK(client, keys=(index,), args=(prefix, str(_CHUNK)))

            result = await self.connection.call(chunk, _MISSING)
            if result is _MISSING:
                raise self._unavailable()
            deleted, left = result
            total += int(deleted)
            if int(left) == 0:
                return total


class RedisCache(ResponseCache[RedisTable]):
    """A cache of Redis repositories, shared by every process that uses the same server, namespace and name.

    :param cache_name: names this cache in Redis (several caches can share one server).
    :param connector: the :class:`~aiorequestful.shared.RedisConnection` to use (shared with the fleet's other
        components), or a Redis URL for a connection of the cache's own.
    :param repository_getter: ``(cache, url) -> repository | None``.
    :param expire: how long a saved response stays live.
    :param max_entry_size: the largest entry, in bytes after decompression, that is read back or saved (a larger
        one is a logged miss); ``None`` lifts the limit. Default ``aiorequestful.limits.DEFAULT_MAX_BODY_SIZE``.
    :param policy: a :class:`~aiorequestful.cache.policy.CachePolicy` to follow HTTP caching (RFC 9111); with
        ``shared=None`` it follows the rules for a shared cache, as a fleet shares this one. None (default):
        entries are stored and served by expiry alone.
    """

    __slots__ = ("_open", "connection")

    shared_backend = True

    _required_module_names = ("redis",)

    @classproperty
    def _required_modules(cls: type[RedisCache]) -> list[Any]:  # noqa: N805 - a class property
        return [redis]

    @classproperty
    def type(cls: type[RedisCache]) -> str:  # noqa: N805 - a class property
        return "redis"

    def __init__(
        self,
        cache_name: str,
        connector: RedisConnection | str | URL,
        repository_getter: Any = None,
        expire: timedelta | relativedelta = DEFAULT_EXPIRE,
        *,
        max_entry_size: int | None = DEFAULT_MAX_BODY_SIZE,
        policy: CachePolicy | None = None,
    ) -> None:
        required_modules_installed(self._required_modules, self)
        super().__init__(
            cache_name=check_name(cache_name, "cache name"),
            repository_getter=repository_getter,
            expire=expire,
            max_entry_size=max_entry_size,
            policy=policy,
        )
        if isinstance(connector, RedisConnection):
            self.connection = connector
        elif isinstance(connector, (str, URL)):
            self.connection = RedisConnection(connector)
        else:
            raise TypeError(f"connector must be a RedisConnection or a Redis URL, not {type(connector).__name__}")
        self._open = False

    @classmethod
    def connect(cls, value: RedisConnection | str | URL, **kwargs: Any) -> RedisCache:  # type: ignore[override]
        """A cache on ``value`` (a shared connection or a Redis URL); ``cache_name`` defaults to ``"cache"``."""
        kwargs.pop("connection", None)
        cache_name = kwargs.pop("cache_name", DEFAULT_CACHE_NAME)
        return cls(cache_name=cache_name, connector=value, **kwargs)

    @property
    def closed(self) -> bool:
        """True until the cache is entered (or awaited), and again after it is closed."""
        return not self._open

    def __await__(self) -> Generator[Any, None, RedisCache]:
        return self._enter().__await__()

    async def _enter(self) -> RedisCache:
        if not self._open:
            await self.connection.__aenter__()
            self._open = True
            # Tell the user now, not at the first request, when Redis cannot be reached (never raises).
            await self.connection.call(lambda client: client.ping(), None)
        for table in self._repositories.values():
            table.connection = self.connection
            await table.create()
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self.close()

    async def commit(self) -> None:
        """Nothing to do: every save is written when it returns."""

    async def close(self) -> None:
        """Leave the connection (closed when nothing else uses it)."""
        if not self._open:
            return
        self._open = False
        await self.connection.__aexit__(None, None, None)

    def create_repository(self, settings: ResponseRepositorySettings[Any]) -> RedisTable:
        """Register a repository for ``settings`` (usable at once: Redis needs no schema).

        Raises ``CacheError`` for a name already registered and ``RepositoryNameError`` (also a ``ValueError``)
        for one that differs from a registered name only in case (refused as SQLite must refuse it).
        """
        self.check_repository_name(settings.name)
        table: RedisTable = RedisTable(
            connection=self.connection,
            settings=settings,
            expire=self.expire,
            cache_name=self.cache_name,
            max_entry_size=self.max_entry_size,
        )
        return self.register_repository(table)
