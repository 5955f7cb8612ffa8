# SPDX-License-Identifier: MIT
"""SQLite backend: one table per repository, one aiosqlite connection per cache.

Behaviour beyond the original contract, each explained where it is made:

* ``clear(expired_only=True)`` deletes the expired rows; stamps are UTC; one expiry index per table; one key
  column per ``settings.fields`` entry, in order; every identifier is validated and quoted, every value a bound
  parameter; an underivable key is a miss, not an error; open/closed state is tracked here; each in-memory cache
  has its own database; URIs and ``:memory:`` given to ``connect`` are used as they are; a missing aiosqlite is
  named.
* Writes go through the connection's single writer (``_sqlite_writer``): WAL, ``BEGIN IMMEDIATE``, group
  commit, retries on a busy database. A save returns once it is committed.
* A corrupt row (undecodable payload, wrong type, garbled metadata, an unreadable ``expires_at``) is logged and
  treated as a miss; a row larger than ``max_entry_size`` is never read into memory (a logged miss).
* Rows keep the original status, reason and safe headers and the keyed digest of the credentials of the request
  that stored them (never the credentials themselves). The digest is part of the primary key: two users of one
  URL each have their own row, and neither evicts the other's. The digest key is random, made once per database
  file and kept in its ``aiorequestful_meta`` table.
* Tables made by earlier versions (whose primary key lacks the credential digest) are **migrated** when the
  cache opens: rebuilt in one transaction with the new key, keeping every row stored without credentials and
  dropping the rows stored with credentials (their digests were made another way and can never match again);
  one INFO line says how many of each.
* The database file a path-based cache creates is private to its owner (mode 0600 whatever the umask; SQLite
  gives its -wal and -shm files the same mode).
* A lookup made for a waiting request (``get_entry``) or a save made for one (``save_for_request``) gives up on
  a database locked by another process after ``lock_wait`` seconds: the lookup is a miss, the save a warning.
* A lookup in a cache that opened its own file (``connect_with_path``, ``connect_with_temp_db``) reads on a
  read-only connection in the event loop's own thread, one per thread, when the file is in WAL mode: no hop to
  the connection's worker thread for a small entry. It sees only committed rows (a save returns once committed,
  so a lookup after a save still finds it). Anything else goes through the shared connection as before: entries
  over ``SYNC_READ_MAX`` bytes, a file not in WAL mode, user URIs and in-memory databases, and any error of the
  quick read (a busy database, a missing table), so the waiting, re-creating and degrading below still apply.
* A table dropped while the cache is in use is created again (once per failing operation, with a WARNING), so
  later saves work. A file that is not a database, or is corrupt, does not stop a crawl: entering the cache logs
  one WARNING naming the file, and the cache then answers every lookup with a miss and skips every save.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import sqlite3
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Generator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientRequest, ClientResponse, RequestInfo
from dateutil.relativedelta import relativedelta

from ... import limits
from ..._utils import classproperty, required_modules_installed
from ...limits import DEFAULT_MAX_BODY_SIZE, DEFAULT_MEMORY_TIER_BYTES, DEFAULT_MEMORY_TIER_ENTRIES
from ...response.payload import JSONPayloadHandler
from .._credentials import NO_CREDENTIALS, credential_digest, credential_pairs, new_key
from .._entry import (
    DEFAULT_REASON,
    DEFAULT_STATUS,
    CacheEntry,
    ResponseMeta,
    decode_headers,
    decoded_once,
    default_headers,
    encode_headers,
    format_stamp,
    now_stamp,
    utc_now,
)
from ..exception import CacheBusyError, CacheError, RepositoryNameError
from ..policy import CachePolicy, StoredTimes
from ..response import CachedResponse
from ._sqlite_writer import LOCK_WAIT, is_busy, is_open, mark_closed, mark_open, retry_busy, writer_for
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
    folded_name,
    logger,
    request_info_of,
)

try:
    import aiosqlite
except ImportError:  # pragma: no cover - exercised by monkeypatching the global in tests
    aiosqlite = None  # type: ignore[assignment]

__all__ = (
    "DEFAULT_LOCK_WAIT",
    "META_TABLE",
    "SYNC_READ_MAX",
    "MemoryTier",
    "SQLiteCache",
    "SQLiteTable",
    "aiosqlite",
    "live_condition",
    "quote_identifier",
)

#: The table of cache-wide values (the credential digest key); no repository may take its name.
META_TABLE = "aiorequestful_meta"
#: How long, in seconds, a lookup or save made for a waiting request waits for a database locked elsewhere.
DEFAULT_LOCK_WAIT = 0.1
#: The largest payload (and the largest stored header list), in bytes, a lookup turns into a Python object in
#: the event loop's own thread; a larger entry is read through the connection's worker thread.
SYNC_READ_MAX = 256 * 1024

_KEY_NAME = "credential_key"
_KNOWN_KEY_TYPES = {"method": "VARCHAR(7)", "id": "VARCHAR(255)", "offset": "INT", "size": "INT"}
_ITER_CHUNK = 256
# SQLite binds integers up to 2**63 - 1: "no limit" is a size no row can have.
_NO_LIMIT = 2**62
# SQLITE_CORRUPT and SQLITE_NOTADB: the file cannot be used as a database at all.
_UNUSABLE_CODES = frozenset({11, 26})


def quote_identifier(identifier: str) -> str:
    """An SQL identifier in double quotes, inner quotes doubled."""
    return '"' + identifier.replace('"', '""') + '"'


_quote = quote_identifier


def live_condition(expiry: str) -> str:
    """SQL that is true for a live row: its expiry stamp (the quoted column ``expiry``) is later than the bound
    ``?`` (a :func:`now_stamp`) and readable as a time.

    Stamps are fixed-width UTC text, so text order is time order (and the index serves it); ``julianday()`` is NULL
    for text that is not a time at all, which would otherwise compare as "later" than every real stamp and never
    expire. The cache's lookups and the cache CLI share this one definition.
    """
    return f"{expiry} > ? AND julianday({expiry}) IS NOT NULL"


def _bindable(part: Any) -> Any:
    # SQLite binds None, int, float, str and bytes; anything else (a URL...) is stored as its text, and a str
    # Enum (HTTPMethod, StrEnum) as its value. A plain str is by far the common case: no hasattr probe, which
    # raises and catches an AttributeError inside.
    kind = type(part)
    if kind is str or kind is int or part is None:
        return part
    if isinstance(part, str):
        return part.value if hasattr(part, "value") else part
    if isinstance(part, (int, float, bytes)):
        return part
    return str(part)


async def _rowcount(connection: Any, sql: str, params: tuple[Any, ...]) -> int:
    cursor = await connection.execute(sql, params)
    try:
        return max(cursor.rowcount, 0)
    finally:
        await cursor.close()


def _is_missing_table(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc).lower()


def _is_unusable(exc: BaseException) -> bool:
    """True for "file is not a database" and "database disk image is malformed"."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _UNUSABLE_CODES
    message = str(exc).lower()
    return "not a database" in message or "malformed" in message


async def _load_key(connection: Any) -> bytes:
    """Inside a write transaction: the database's credential digest key, made on first use."""
    await connection.execute(
        f"CREATE TABLE IF NOT EXISTS {_quote(META_TABLE)} (name TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)"
    )
    # INSERT OR IGNORE: when several processes open a new file at once, the first key written is everyone's.
    await connection.execute(
        f"INSERT OR IGNORE INTO {_quote(META_TABLE)} (name, value) VALUES (?, ?)",  # noqa: S608
        (_KEY_NAME, new_key()),
    )
    rows = await connection.execute_fetchall(
        f"SELECT value FROM {_quote(META_TABLE)} WHERE name = ?",  # noqa: S608
        (_KEY_NAME,),
    )
    return _checked_key(rows)


def _checked_key(rows: Any) -> bytes:
    rows = list(rows)
    if not rows or not isinstance(rows[0][0], bytes) or len(rows[0][0]) < 16:
        raise CacheError(f"The credential key in the table {META_TABLE!r} is missing or damaged")
    return bytes(rows[0][0])


def _private_file(file: Path) -> None:
    """Create ``file`` empty with mode 0600 if it does not exist (an empty file is an empty SQLite database).

    The mode is set explicitly after creation, so the umask cannot widen or narrow it; SQLite then creates the
    -wal and -shm files with the mode of the database file. An existing file keeps the mode it has.
    """
    try:
        descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


class _FileConnector:
    """Connects to a database file the cache names itself (created private); the cache may also read it on
    its own read-only connections (see ``_LoopReader``), which it never does for a connector given by a user."""

    __slots__ = ("file",)

    def __init__(self, file: Path) -> None:
        self.file = file

    def __call__(self) -> Any:
        _private_file(self.file)
        return aiosqlite.connect(database=self.file, isolation_level=None)


def _file_connector(file: Path) -> Callable[[], Any]:
    return _FileConnector(file)


class MemoryTier:
    """Hot entries of one cache file kept in memory, in front of it, for one thread (the thread of its reader
    connection): a hit costs no SQL statement beyond the coherence check.

    What is kept is what the row holds, already validated: the stored payload (text or bytes), status, reason,
    header text and times text, the expiry and the size. Nothing decoded is kept: every hit decodes its own
    payload (and headers, when they are asked for), so no two callers ever share a mutable value.

    Coherent with the file: before a lookup, the reader connection's ``PRAGMA data_version`` is read (unless it
    was read less than :data:`aiorequestful.limits.MEMORY_TIER_RECHECK` ago); it changes when any other
    connection (this process's writer, or another process) has committed, and then the whole tier is dropped.
    An entry read from the file after that check is newer than the version recorded, so it may be kept. The
    expiry is checked on every hit (``clock``: wall-clock seconds, the clock the stored stamps are in). Bounded by
    ``max_entries`` and ``max_bytes`` (least recently used first out).
    """

    __slots__ = ("_entries", "checked", "clock", "connection", "max_bytes", "max_entries", "size", "version")

    def __init__(self, connection: sqlite3.Connection, max_entries: int, max_bytes: int) -> None:
        self.connection = connection
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        self.version: Any = None
        #: When (``time.monotonic()``) the version was last read.
        self.checked = -math.inf
        self.clock: Callable[[], float] = time.time
        self._entries: OrderedDict[tuple[Any, ...], tuple[Any, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The live slot for ``key`` (made most recently used), or None; an expired one is dropped."""
        slot = self._entries.get(key)
        if slot is None:
            return None
        if slot[5] <= self.clock():
            self.discard(key)
            return None
        self._entries.move_to_end(key)
        return slot

    def put(self, key: tuple[Any, ...], slot: tuple[Any, ...]) -> None:
        """Keep ``slot`` (``(payload, status, reason, header text, times text, expires, size)``) for ``key``."""
        size = slot[6]
        if size > self.max_bytes or slot[5] <= self.clock():
            self.discard(key)
            return
        self.discard(key)
        entries = self._entries
        entries[key] = slot
        self.size += size
        while len(entries) > self.max_entries or self.size > self.max_bytes:
            _, dropped = entries.popitem(last=False)
            self.size -= dropped[6]

    def discard(self, key: tuple[Any, ...]) -> None:
        slot = self._entries.pop(key, None)
        if slot is not None:
            self.size -= slot[6]

    def discard_table(self, table: str) -> None:
        """Drop every entry of one table (keys start with the table name)."""
        for key in [key for key in self._entries if key[0] == table]:
            self.discard(key)

    def discard_key(self, table: str, params: tuple[Any, ...]) -> None:
        """Drop every user's entry for one key of one table."""
        width = len(params) + 1
        for key in [key for key in self._entries if key[0] == table and key[1:width] == params]:
            self.discard(key)

    def clear(self) -> None:
        self._entries.clear()
        self.size = 0


def _expiry_seconds(stamp: Any) -> float | None:
    """The expiry stamp of a row as wall-clock seconds, when it is in the cache's own fixed-width UTC form
    (whose text order, used by the SQL, is time order); None otherwise (such a row is not kept in the tier)."""
    if not isinstance(stamp, str) or len(stamp) != 32 or not stamp.endswith("+00:00"):
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


class _LoopReader:
    """Read-only ``sqlite3`` connections to one cache file, one per thread, for lookups that read in the event
    loop's thread instead of a round trip to the aiosqlite worker thread; and the memory tier of each thread.

    Used only while the file is in WAL mode (checked on the reader itself: the writer's switch may have failed),
    where a reader never blocks a writer nor waits for one. Opened with ``mode=ro``: it never creates the file
    or changes it. ``timeout=0``: a busy database is an error at once, and the caller falls back to the shared
    connection, which knows how long to wait. Every read fetches all its rows, so no statement is left open to
    pin an old snapshot (which would keep the WAL from being checkpointed). A thread whose connection cannot be
    opened, or whose file is not in WAL mode, reads through the shared connection until the cache is reopened.
    """

    __slots__ = ("_closed", "_connections", "_tier_bytes", "_tier_entries", "_tiers", "_uri")

    def __init__(
        self,
        file: Path,
        tier_entries: int = DEFAULT_MEMORY_TIER_ENTRIES,
        tier_bytes: int = DEFAULT_MEMORY_TIER_BYTES,
    ) -> None:
        self._uri = file.absolute().as_uri() + "?mode=ro"
        self._connections: dict[int, sqlite3.Connection | None] = {}
        self._tiers: dict[int, MemoryTier] = {}
        self._tier_entries = tier_entries
        self._tier_bytes = tier_bytes
        self._closed = False

    def tier(self) -> MemoryTier | None:
        """This thread's memory tier, checked against the file: emptied when another connection committed since
        the last look (see ``MemoryTier``). None when there is none, or the check cannot be made (the tier is
        then emptied and not used for this lookup)."""
        tier = self._tiers.get(threading.get_ident())
        if tier is None:
            if self._tier_entries <= 0 or self._tier_bytes <= 0:
                return None
            ident = threading.get_ident()
            if ident in self._connections:
                connection = self._connections[ident]
            else:
                connection = self._open(ident)
            if connection is None:
                return None
            tier = self._tiers[ident] = MemoryTier(connection, self._tier_entries, self._tier_bytes)
        now = time.monotonic()
        if now - tier.checked < limits.MEMORY_TIER_RECHECK:
            return tier  # looked a moment ago (the look is a statement that takes the file's read lock)
        try:
            version = tier.connection.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            tier.clear()
            tier.version, tier.checked = None, -math.inf
            return None
        if version != tier.version:
            tier.clear()
            tier.version = version
        tier.checked = now
        return tier

    def tiers(self) -> list[MemoryTier]:
        """Every thread's tier (for local writes, which drop what they change from all of them)."""
        return list(self._tiers.values())

    def fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any] | None:
        """The rows of a read, or None when this read must go through the shared connection."""
        ident = threading.get_ident()
        try:
            connection = self._connections[ident]
        except KeyError:
            connection = self._open(ident)
        if connection is None:
            return None
        try:
            return connection.execute(sql, params).fetchall()
        except sqlite3.Error as exc:  # busy, a missing table, a damaged file: the shared path deals with it
            logger.debug("Quick cache read fell back to the shared connection: %s", exc)
            return None

    def _open(self, ident: int) -> sqlite3.Connection | None:
        if self._closed:
            return None
        try:
            connection = sqlite3.connect(self._uri, uri=True, timeout=0, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as exc:
            logger.debug("No quick cache reads: the file cannot be opened read-only: %s", exc)
            self._connections[ident] = None
            return None
        try:
            rows = connection.execute("PRAGMA journal_mode").fetchall()
        except sqlite3.Error as exc:
            connection.close()
            if not is_busy(exc):  # busy: try again on the next lookup
                self._connections[ident] = None
            return None
        if not rows or str(rows[0][0]).lower() != "wal":
            connection.close()
            self._connections[ident] = None
            return None
        self._connections[ident] = connection
        return connection

    def close(self) -> None:
        """Close the connections and drop the tiers; no new one is opened afterwards."""
        self._closed = True
        tiers, self._tiers = self._tiers, {}
        for tier in tiers.values():
            tier.clear()
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            if connection is None:
                continue
            try:
                connection.close()
            except sqlite3.ProgrammingError:
                # Made in another thread (check_same_thread): only that thread may close it. Dropping the last
                # reference closes it all the same.
                pass


class SQLiteTable(ResponseRepository[K, V]):
    """A repository stored as one SQLite table.

    :param connection: the (shared) aiosqlite connection.
    :param settings: how requests are keyed and payloads stored; ``settings.name`` is the table name.
    :param expire: how long a saved response stays live.
    :param max_entry_size: the largest stored payload, in bytes, that is read back (None: no limit).
    :param lock_wait: how long a lookup or save made for a waiting request waits for a database locked by
        another process before it gives up (a miss, or a warning).
    """

    __slots__ = (
        "_credential_key",
        "_key_columns",
        "_locked_since",
        "_plain_keys",
        "_reader",
        "_sql",
        "_table",
        "disabled",
        "lock_wait",
    )

    name_column = "name"
    payload_column = "payload"
    cached_column = "cached_at"
    expiry_column = "expires_at"
    #: Extra columns (not in the original): the original response's metadata and the credential digest.
    status_column = "response_status"
    reason_column = "response_reason"
    headers_column = "response_headers"
    credentials_column = "credential_digest"
    #: With an HTTP caching policy: when the response was asked for and received, and what it varies on (JSON).
    times_column = "response_times"

    _required_module_names = ("aiosqlite",)

    @classproperty
    def _required_modules(cls: type[SQLiteTable]) -> list[Any]:  # noqa: N805 - a class property
        return [aiosqlite]

    def __init__(
        self,
        connection: Any,
        settings: ResponseRepositorySettings[V],
        expire: timedelta | relativedelta = DEFAULT_EXPIRE,
        *,
        max_entry_size: int | None = DEFAULT_MAX_BODY_SIZE,
        lock_wait: float = DEFAULT_LOCK_WAIT,
    ) -> None:
        super().__init__(settings=settings, expire=expire)
        self.connection = connection
        name = check_name(settings.name, "table name")
        if name.lower().startswith("sqlite_"):
            raise CacheError(f"Invalid table name: {name!r} (names starting with 'sqlite_' are reserved by SQLite)")
        if folded_name(name) == META_TABLE:
            raise RepositoryNameError(f"Invalid table name: {name!r} (the cache keeps its own values in that table)")
        self.max_entry_size = check_max_entry_size(max_entry_size)
        self.lock_wait = float(lock_wait)
        #: Set by the cache when its database cannot be used: lookups miss and saves are skipped.
        self.disabled = False
        self._credential_key: bytes | None = None
        self._locked_since: float | None = None  # while lookups find the database locked elsewhere
        #: Set by the cache for its own file: quick reads in the event loop's thread (see _LoopReader).
        self._reader: _LoopReader | None = None
        self._table = _quote(name)
        self._key_columns = self._validate_fields(settings.fields)
        self._sql = self._build_statements()
        #: The key of a request is made by this class's own methods (not a subclass's): ``_request_params``
        #: may then take its short way for keys of plain text parts.
        kind = type(self)
        self._plain_keys = all(
            getattr(kind, name) is SQLiteTable.__dict__[name] for name in ("get_key_from_request", "_key_params")
        )

    def _validate_fields(self, fields: Any) -> tuple[str, ...]:
        if isinstance(fields, str):
            fields = (fields,)
        columns = ["method", *(check_name(field, "key field name") for field in fields)]
        reserved = {
            self.name_column,
            self.payload_column,
            self.cached_column,
            self.expiry_column,
            self.status_column,
            self.reason_column,
            self.headers_column,
            self.credentials_column,
            self.times_column,
        }
        seen: set[str] = set()
        for column in columns:
            folded = column.lower()  # SQLite column names are case-insensitive
            if folded in seen:
                raise CacheError(f"Key field {column!r} of repository {self.settings.name!r} is given twice")
            if folded in reserved:
                raise CacheError(f"Key field {column!r} of repository {self.settings.name!r} is a reserved column name")
            seen.add(folded)
        return tuple(columns)

    def _build_statements(self) -> dict[str, str]:
        table = self._table
        keys = [_quote(column) for column in self._key_columns]
        where = " AND ".join(f"{column} = ?" for column in keys)
        data = [
            self.name_column,
            self.cached_column,
            self.expiry_column,
            self.payload_column,
            self.status_column,
            self.reason_column,
            self.headers_column,
            self.credentials_column,
            self.times_column,
        ]
        insert_columns = ", ".join([*keys, *(_quote(column) for column in data)])
        placeholders = ", ".join("?" * (len(keys) + len(data)))
        expiry, payload = _quote(self.expiry_column), _quote(self.payload_column)
        status, reason, headers = (_quote(c) for c in (self.status_column, self.reason_column, self.headers_column))
        credentials, times = _quote(self.credentials_column), _quote(self.times_column)
        # Sizes in bytes, known to SQLite without handing the value to Python: a row over the size cap is never
        # read into memory.
        size, headers_size = f"length(CAST({payload} AS BLOB))", f"COALESCE(length(CAST({headers} AS BLOB)), 0)"
        live = live_condition(expiry)
        scoped = f"{where} AND {credentials} = ?"
        # Identifiers are validated and quoted; every value is a bound parameter.
        return {
            "upsert": f"INSERT OR REPLACE INTO {table} ({insert_columns}) VALUES ({placeholders})",  # noqa: S608
            "entry": (
                f"SELECT CASE WHEN {size} <= ? THEN {payload} END, {status}, {reason}, "  # noqa: S608
                f"CASE WHEN {headers_size} <= ? THEN {headers} END, {size}, {headers_size}, {times}, {expiry} "
                f"FROM {table} WHERE {scoped} AND {live} AND {payload} IS NOT NULL"
            ),
            "contains": f"SELECT 1 FROM {table} WHERE {scoped} AND {live}",  # noqa: S608
            "delete": f"DELETE FROM {table} WHERE {scoped}",  # noqa: S608
            "delete_all_scopes": f"DELETE FROM {table} WHERE {where}",  # noqa: S608
            # A 304 refreshes the metadata and the expiry of a stored response; the payload stays as it is.
            "refresh": (
                f"UPDATE {table} SET {_quote(self.cached_column)} = ?, {expiry} = ?, {status} = ?, "  # noqa: S608
                f"{reason} = ?, {headers} = ?, {times} = ? WHERE {scoped}"
            ),
            "count": f"SELECT COUNT(*) FROM {table}",  # noqa: S608
            "count_live": f"SELECT COUNT(*) FROM {table} WHERE {live}",  # noqa: S608
            "clear": f"DELETE FROM {table}",  # noqa: S608
            "clear_expired": f"DELETE FROM {table} WHERE NOT ({live})",  # noqa: S608
            "iterate": (
                f"SELECT {', '.join(keys)}, CASE WHEN {size} <= ? THEN {payload} END, {size} "  # noqa: S608
                f"FROM {table} WHERE {live}"
            ),
        }

    @property
    def _primary_key_columns(self) -> dict[str, str]:
        """Key column name -> SQL type, in key order (one per ``settings.fields`` entry). The stored primary key
        adds the credential digest column after these."""
        return {column: _KNOWN_KEY_TYPES.get(column, "") for column in self._key_columns}

    # ------------------------------------------------------------------------------------------------------------
    # connection and schema
    # ------------------------------------------------------------------------------------------------------------
    def _live_connection(self) -> Any:
        if self.connection is None:
            raise ValueError("Connection closed")
        return self.connection

    def __await__(self) -> Generator[Any, None, SQLiteTable[K, V]]:
        return self.create().__await__()

    async def create(self) -> SQLiteTable[K, V]:
        """Create the table, its expiry index and the cache's credential key if missing (committed), migrating a
        table made by an earlier version; returns the table.

        When everything is already in place (the common case) this only reads, so opening a cache does not
        wait for a write lock another process holds.
        """
        connection = self._live_connection()
        if not await self._schema_ready(connection):
            await writer_for(connection).call(self._create_schema)
        return self

    def _definitions(self) -> list[str]:
        key_definitions = [
            f"{_quote(column)} {sql_type} NOT NULL" for column, sql_type in self._primary_key_columns.items()
        ]
        primary = ", ".join(_quote(column) for column in (*self._key_columns, self.credentials_column))
        return [
            *key_definitions,
            f"{_quote(self.name_column)} TEXT",
            f"{_quote(self.cached_column)} TIMESTAMP NOT NULL",
            f"{_quote(self.expiry_column)} TIMESTAMP NOT NULL",
            f"{_quote(self.payload_column)} TEXT",
            *(f"{_quote(column)} {definition}" for column, definition in self._extra_columns().items()),
            f"PRIMARY KEY ({primary})",
        ]

    def _index_name(self) -> str:
        # An index name is database-wide, so each table gets its own.
        return f"idx_{self.settings.name}_{self.expiry_column}"

    async def _same_name_in_other_case(self, connection: Any) -> None:
        """Refuse a table whose name differs from ours only in case (SQLite would make them one table)."""
        rows = await connection.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE", (self.settings.name,)
        )
        for (existing,) in rows:
            if existing != self.settings.name:
                raise RepositoryNameError(
                    f"Table name {self.settings.name!r} clashes with the table {existing!r} already in the "
                    "database: names that differ only in case are one table in SQLite"
                )

    async def _schema_ready(self, connection: Any) -> bool:
        """True when the table, its index and the credential key are all in place (reads only)."""

        async def read(sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
            return list(await retry_busy(lambda: connection.execute_fetchall(sql, params)))

        try:
            await self._same_name_in_other_case(connection)
            info = await read("SELECT name, pk FROM pragma_table_info(?)", (self.settings.name,))
            index = await read("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (self._index_name(),))
            key = await read(f"SELECT value FROM {_quote(META_TABLE)} WHERE name = ?", (_KEY_NAME,))  # noqa: S608
        except sqlite3.OperationalError as exc:
            if _is_missing_table(exc):  # no metadata table yet: a new file
                return False
            raise
        columns = {str(name).lower() for name, _ in info}
        primary = [str(name).lower() for name, pk in sorted(info, key=lambda row: row[1]) if pk]
        if primary != self._stored_primary_key() or not index or not key:
            return False
        if any(column.lower() not in columns for column in self._extra_columns()):
            return False
        self._credential_key = _checked_key(key)
        return True

    def _stored_primary_key(self) -> list[str]:
        return [column.lower() for column in (*self._key_columns, self.credentials_column)]

    async def _create_schema(self, connection: Any) -> None:
        """Inside the writer's transaction: create, check or migrate the table; load the credential key."""
        table = self._table
        await self._same_name_in_other_case(connection)
        definitions = "\n  , ".join(self._definitions())
        await connection.execute(f"CREATE TABLE IF NOT EXISTS {table} (\n    {definitions}\n)")

        info = await connection.execute_fetchall("SELECT name, pk FROM pragma_table_info(?)", (self.settings.name,))
        existing = {str(name).lower() for name, _ in info}
        primary = [str(name).lower() for name, pk in sorted(info, key=lambda row: row[1]) if pk]
        expected = [column.lower() for column in self._key_columns]
        if primary == expected:
            # Made by an earlier version (or the original): its key lacks the credential digest.
            await self._migrate(connection, existing)
        elif primary != self._stored_primary_key():
            shown = [column for column in primary if column != self.credentials_column]
            raise CacheError(
                f"Table {self.settings.name!r} already exists with the key columns {sorted(shown)}, "
                f"but its settings give {list(self._key_columns)}"
            )
        else:
            for column, definition in self._extra_columns().items():
                if column.lower() not in existing:
                    await connection.execute(f"ALTER TABLE {table} ADD COLUMN {_quote(column)} {definition}")

        index = _quote(self._index_name())
        await connection.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table}({_quote(self.expiry_column)})")
        self._credential_key = await _load_key(connection)

    async def _migrate(self, connection: Any, existing: set[str]) -> None:
        """Rebuild a table whose primary key lacks the credential digest, in the current transaction.

        Rows stored without credentials are kept. Rows stored with credentials are dropped: their digests were
        made by a slow unkeyed derivation this version no longer computes, so they could never be served again.
        """
        table, name = self._table, self.settings.name
        rebuilt = _quote(f"{name}__aiorequestful_rebuild")
        await connection.execute(f"DROP TABLE IF EXISTS {rebuilt}")
        await connection.execute(f"CREATE TABLE {rebuilt} (\n    " + "\n  , ".join(self._definitions()) + "\n)")
        wanted = [*self._key_columns, self.name_column, self.cached_column, self.expiry_column, self.payload_column]
        wanted += list(self._extra_columns())
        common = ", ".join(_quote(column) for column in wanted if column.lower() in existing)
        credentials = _quote(self.credentials_column)
        keep = f" WHERE COALESCE({credentials}, '') = ''" if self.credentials_column in existing else ""
        total = (await connection.execute_fetchall(f"SELECT COUNT(*) FROM {table}"))[0][0]  # noqa: S608
        await connection.execute(f"INSERT OR IGNORE INTO {rebuilt} ({common}) SELECT {common} FROM {table}{keep}")  # noqa: S608
        kept = (await connection.execute_fetchall(f"SELECT COUNT(*) FROM {rebuilt}"))[0][0]  # noqa: S608
        await connection.execute(f"DROP TABLE {table}")
        await connection.execute(f"ALTER TABLE {rebuilt} RENAME TO {table}")
        self.logger.info(
            "Cache table %r was made by an earlier version: migrated it to entries keyed by credentials "
            "(kept %d entries stored without credentials, dropped %d stored with credentials)",
            name,
            kept,
            total - kept,
        )

    def _extra_columns(self) -> dict[str, str]:
        return {
            self.status_column: "INTEGER",
            self.reason_column: "TEXT",
            self.headers_column: "TEXT",
            self.credentials_column: f"TEXT NOT NULL DEFAULT '{NO_CREDENTIALS}'",
            self.times_column: "TEXT",
        }

    async def _recreate(self, exc: BaseException) -> None:
        """The table (or the metadata table) was dropped while in use: create it again, with one WARNING."""
        self.logger.warning(
            "Cache table %r is missing (%s): creating it again; its entries are gone", self.settings.name, exc
        )
        await writer_for(self._live_connection()).call(self._create_schema)

    async def commit(self) -> None:
        """Wait until every write so far is committed (writes commit in small batches on their own)."""
        connection = self.connection
        if connection is None:
            return
        try:
            await writer_for(connection).flush()
            await connection.commit()
        except ValueError:  # closed connection
            pass

    async def close(self) -> None:
        """Commit, then close the connection (shared with the cache and its other tables)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        connection = self.connection
        if connection is None:
            return
        try:
            await self.commit()
            await connection.close()
        except ValueError:
            pass
        finally:
            mark_closed(connection)

    async def _fetch(self, sql: str, params: tuple[Any, ...], patience: float | None = None) -> list[Any]:
        """Rows of a read; a table dropped meanwhile is created again (and the read then finds nothing)."""
        connection = self._live_connection()
        try:
            return list(await retry_busy(lambda: connection.execute_fetchall(sql, params), patience))
        except sqlite3.OperationalError as exc:
            if not _is_missing_table(exc):
                raise
            await self._recreate(exc)
            return list(await retry_busy(lambda: connection.execute_fetchall(sql, params), patience))

    # ------------------------------------------------------------------------------------------------------------
    # keys and credentials
    # ------------------------------------------------------------------------------------------------------------
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

    def _request_params(self, request: Any) -> tuple[Any, ...] | None:
        """``_key_params(get_key_from_request(request))``, the same values, without the general conversions
        for the common case: a request info whose key parts are all text."""
        if self._plain_keys and type(request) is RequestInfo:
            parts = self.settings.get_key(method=request.method, url=request.url, headers=request.headers)
            if type(parts) is tuple and len(parts) + 1 == len(self._key_columns):
                for part in parts:
                    if type(part) is not str:
                        break
                else:
                    return (str(request.method).upper(), *parts)
            parts = as_key_parts(parts)
            if any(part is None for part in parts):
                return None
            return self._key_params((str(request.method).upper(), *parts))
        return self._key_params(self.get_key_from_request(request))

    def _key_params(self, key: Any) -> tuple[Any, ...] | None:
        """The bound values for the key columns, or None when ``key`` names no cacheable entry."""
        if key is None:
            return None
        parts = as_key_parts(key)
        if not parts or any(part is None for part in parts):
            return None
        if len(parts) != len(self._key_columns):
            raise CacheError(
                f"Key {parts!r} does not match the key columns {list(self._key_columns)} "
                f"of repository {self.settings.name!r}"
            )
        method, *rest = parts
        method = _bindable(method)
        if isinstance(method, str):
            method = method.upper()
        return (method, *(_bindable(part) for part in rest))

    async def _key_for_digests(self) -> bytes:
        key = self._credential_key
        if key is None:
            connection = self._live_connection()
            try:
                rows = await retry_busy(
                    lambda: connection.execute_fetchall(
                        f"SELECT value FROM {_quote(META_TABLE)} WHERE name = ?",  # noqa: S608
                        (_KEY_NAME,),
                    )
                )
                key = _checked_key(rows)
            except (sqlite3.OperationalError, CacheError):
                key = await writer_for(connection).call(_load_key)
            self._credential_key = key
        return key

    async def _scope(self, request: Any) -> str:
        """The credential digest that scopes the entry of ``request``.

        ``NO_CREDENTIALS`` for a request without credentials, for settings shared across credentials, and for a
        bare key tuple (the application addressing its own cache: the entry stored without credentials).
        """
        if self.settings.share_across_credentials:
            return NO_CREDENTIALS
        info = request_info_of(request)
        if info is None or not credential_pairs(info.headers):
            return NO_CREDENTIALS
        return credential_digest(await self._key_for_digests(), info.headers)

    # ------------------------------------------------------------------------------------------------------------
    # reads
    # ------------------------------------------------------------------------------------------------------------
    async def count(self, include_expired: bool = True) -> int:
        """The number of stored rows (every user's entry for a key counts)."""
        if include_expired:
            rows = await self._fetch(self._sql["count"], ())
        else:
            rows = await self._fetch(self._sql["count_live"], (now_stamp(),))
        return int(rows[0][0])

    async def contains(self, request: Any) -> bool:
        params = self._key_params(self.get_key_from_request(request))
        if params is None:
            return False
        rows = await self._fetch(self._sql["contains"], (*params, await self._scope(request), now_stamp()))
        return bool(rows)

    async def get_response(self, request: Any) -> V | None:
        loaded = await self._load(request)
        return None if loaded is None else loaded[1]

    async def get_entry(self, request: Any) -> CacheEntry | None:
        """The live entry for ``request`` with its metadata, or None.

        A database locked by another process for longer than ``lock_wait`` is a miss: one WARNING when that
        starts, one INFO when lookups get through again (not a line per request while the lock is held).
        """
        if self.disabled:
            return None
        found = await self._guarded(request, None)
        if found is None:
            return None
        slot, loaded = found
        if loaded is None:
            loaded = await self._from_slot(request, slot)
        return None if loaded is None else loaded[0]

    _get_entry = get_entry  # the older name

    async def cached_response(self, info: RequestInfo, scope: str | None = None) -> CachedResponse | None:
        """The ``CachedResponse`` for ``info``, or None: the lookup ``CachedSession`` makes without an HTTP
        caching policy, as :meth:`get_entry` (the same rows, misses, lock handling), but built lazily. A hit from
        the memory tier decodes nothing here: the payload is decoded by ``decoded_payload`` (once per response),
        the headers when they are first read. ``scope``: the credential digest when the caller knows it."""
        if self.disabled:
            return None
        try:
            found = await self._slot(info, self.lock_wait, scope)
        except CacheBusyError as exc:
            self._locked(exc)
            return None
        if self._locked_since is not None:
            self._unlocked()
        if found is None:
            return None
        slot, loaded = found
        handler = self.settings.payload_handler
        if loaded is not None:
            entry = loaded[0]
            headers = entry.headers
            if headers is None:
                headers = default_headers(handler)
            return CachedResponse(
                info, entry.payload, status=entry.status, reason=entry.reason, headers=headers, decoded=entry.decoded
            )
        payload, status, reason, header_text = slot[0], slot[1], slot[2], slot[3]
        if status is None:
            status, reason = DEFAULT_STATUS, DEFAULT_REASON if reason is None else reason
        return CachedResponse.from_store(
            info,
            payload,
            status,
            reason,
            default_headers(handler) if header_text is None else header_text,
            type(handler) is JSONPayloadHandler,
        )

    async def _guarded(self, request: Any, scope: str | None) -> tuple[tuple[Any, ...], Any] | None:
        """``_slot`` for a waiting request: a database locked elsewhere past ``lock_wait`` is a miss."""
        try:
            found = await self._slot(request, self.lock_wait, scope)
        except CacheBusyError as exc:
            self._locked(exc)
            return None
        if self._locked_since is not None:
            self._unlocked()
        return found

    def _locked(self, exc: BaseException) -> None:
        if self._locked_since is None:
            self._locked_since = asyncio.get_running_loop().time()
            self.logger.warning(
                "Cache table %r is locked by another process (%s): lookups are misses until it is free",
                self.settings.name,
                exc,
            )

    def _unlocked(self) -> None:
        self._locked_since = None
        self.logger.info("Cache table %r can be read again", self.settings.name)

    def _cap(self) -> int:
        return _NO_LIMIT if self.max_entry_size is None else self.max_entry_size

    async def _load(self, request: Any, patience: float | None = None) -> tuple[CacheEntry, Any] | None:
        """The live entry for ``request`` and its deserialised payload; None for a miss or a corrupt row."""
        found = await self._slot(request, patience)
        if found is None:
            return None
        slot, loaded = found
        return loaded if loaded is not None else await self._from_slot(request, slot)

    async def _slot(
        self, request: Any, patience: float | None = None, scope: str | None = None
    ) -> tuple[tuple[Any, ...], tuple[CacheEntry, Any] | None] | None:
        """The live row for ``request`` as a tier slot, with its checked entry and payload when it was read from
        the file now (None when the memory tier had it: nothing decoded yet); None for a miss or a corrupt row."""
        params = self._request_params(request)
        if params is None:
            return None
        if scope is None:
            scope = await self._scope(request)
        reader = self._reader
        tier = None
        version: Any = None
        if reader is not None:
            # Checked before the file is read: a row read after the check is at least as new as the version
            # recorded, so it may be kept under it.
            tier = reader.tier()
            if tier is not None:
                slot = tier.get((self._table, *params, scope))
                if slot is not None:
                    return slot, None
                version = tier.version
        cap = self._cap()
        sql, stamp = self._sql["entry"], now_stamp()
        rows = None
        if reader is not None:
            quick = cap if cap < SYNC_READ_MAX else SYNC_READ_MAX
            rows = reader.fetch(sql, (quick, quick, *params, scope, stamp))
            if rows:
                payload, _, _, headers, size, headers_size, _, _ = rows[0]
                if (payload is None and size <= cap) or (headers is None and headers_size and headers_size <= cap):
                    rows = None  # too large to decode in the loop's thread: read it in the connection's thread
        if rows is None:
            rows = await self._fetch(sql, (cap, cap, *params, scope, stamp), patience)
        if not rows:
            return None
        payload, status, reason, headers, size, headers_size, times, expires = rows[0]
        if payload is None or (headers is None and headers_size):
            self.warn_oversize(params, max(int(size or 0), int(headers_size or 0)))
            return None
        try:
            loaded = await self._check_row(payload, status, reason, headers)
            loaded[0].times = None if times is None else StoredTimes.decode(times)
        except Exception as exc:  # a corrupt row must never crash the crawl: log it and miss
            self._corrupt(params, exc)
            return None
        slot = (payload, status, reason, headers, times, _expiry_seconds(expires), int(size) + int(headers_size))
        # Kept only if no other lookup saw the file change while this one waited for its read (the row may be
        # older than the version that lookup recorded).
        if tier is not None and tier.version == version and slot[5] is not None and slot[6] <= SYNC_READ_MAX:
            tier.put((self._table, *params, scope), slot)
        return slot, loaded

    async def _from_slot(self, request: Any, slot: tuple[Any, ...]) -> tuple[CacheEntry, Any] | None:
        """The entry and deserialised payload of a memory tier slot, decoded for this caller alone."""
        payload, status, reason, headers, times = slot[:5]
        try:
            loaded = await self._check_row(payload, status, reason, headers)
        except Exception as exc:  # it was checked when kept; a payload handler that changes its mind: a miss
            params = self._key_params(self.get_key_from_request(request))
            self._corrupt(params, exc)
            if params is not None:
                for tier in self._reader.tiers() if self._reader is not None else ():
                    tier.discard_key(self._table, params)
            return None
        loaded[0].times = None if times is None else StoredTimes.decode(times)
        return loaded

    def _forget(self, key: tuple[Any, ...] | None = None, params: tuple[Any, ...] | None = None) -> None:
        """Drop from every thread's memory tier what a local write changed: one user's entry (``key``, the
        params and the scope), every user's entry for ``params``, or (neither) the whole table. The commit drops
        the tiers anyway on their next check (the file's version moved); this makes it immediate."""
        reader = self._reader
        if reader is None:
            return
        for tier in reader.tiers():
            if key is not None:
                tier.discard((self._table, *key))
            elif params is not None:
                tier.discard_key(self._table, params)
            else:
                tier.discard_table(self._table)

    def _corrupt(self, params: Any, exc: BaseException) -> None:
        self.logger.warning(
            "Ignoring a corrupt cache entry in %r for key %r: %s: %s",
            self.settings.name,
            params,
            type(exc).__name__,
            exc,
        )

    async def _check_row(self, payload: Any, status: Any, reason: Any, headers: Any) -> tuple[CacheEntry, Any]:
        if not isinstance(payload, (str, bytes)):
            raise TypeError(f"stored payload is {type(payload).__name__}, not text")
        handler = self.settings.payload_handler
        value = await handler.deserialize(payload)
        if status is None:  # saved by key, or by a version that kept no metadata
            entry_status, entry_reason = DEFAULT_STATUS, DEFAULT_REASON if reason is None else reason
        elif isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
            entry_status, entry_reason = status, reason
        else:
            raise ValueError(f"stored status {status!r} is not an HTTP status code")
        if entry_reason is not None and not isinstance(entry_reason, str):
            raise TypeError(f"stored reason is {type(entry_reason).__name__}, not text")
        entry_headers = None if headers is None else decode_headers(headers)
        decoded = decoded_once(handler, payload, value)
        return CacheEntry(payload, entry_status, entry_reason, entry_headers, decoded), value

    def __aiter__(self) -> AsyncIterator[tuple[K, V]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[K, V]]:
        """Live rows as ``(key, deserialised payload)`` (a key stored for several users appears once for each);
        corrupt and oversized rows are logged and skipped."""
        connection = self._live_connection()
        sql, now = self._sql["iterate"], now_stamp()
        cursor = await retry_busy(lambda: connection.execute(sql, (self._cap(), now)))
        try:
            while True:
                rows = await cursor.fetchmany(_ITER_CHUNK)
                if not rows:
                    break
                for row in rows:
                    key, payload, size = tuple(row[:-2]), row[-2], row[-1]
                    if payload is None:
                        if size is not None:
                            self.warn_oversize(key, int(size), "skipping it")
                            continue
                        yield key, None  # type: ignore[misc]
                        continue
                    try:
                        if not isinstance(payload, (str, bytes)):
                            raise TypeError(f"stored payload is {type(payload).__name__}, not text")
                        value = await self.settings.payload_handler.deserialize(payload)
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
        finally:
            await cursor.close()

    # ------------------------------------------------------------------------------------------------------------
    # writes (all through the connection's single writer)
    # ------------------------------------------------------------------------------------------------------------
    async def _set_item_from_key_value_pair(self, key: K, value: Any) -> None:
        await self._store(key, value)

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
        if self.disabled and prompt:
            return
        params = self._key_params(key)
        if params is None:
            return
        if value is not None and self.payload_exceeds_max_entry_size(value):
            self.warn_oversize(params, None, "not storing it")
            return
        connection = self._live_connection()
        if payload is UNSET:
            payload = await self.deserialize(value)
        credentials = NO_CREDENTIALS
        if request is not None:
            credentials = await self._scope(request)
        now = utc_now()
        expires = now + self._expire
        if meta is not None and meta.keep is not None:
            expires = now + timedelta(seconds=meta.keep_seconds((expires - now).total_seconds()))
        row = (
            *params,
            self._display_name(payload),
            format_stamp(now),
            format_stamp(expires),
            value,
            None if meta is None else meta.status,
            None if meta is None else meta.reason,
            None if meta is None else encode_headers(meta.headers),
            credentials,
            None if meta is None else meta.encoded_times(),
        )
        patience = self.lock_wait if prompt else None
        sql = self._sql["upsert"]
        try:
            await writer_for(connection).upsert(sql, row, patience=patience)
        except sqlite3.OperationalError as exc:
            if not _is_missing_table(exc):
                raise
            await self._recreate(exc)
            await writer_for(connection).upsert(sql, row, patience=patience)
        finally:
            self._forget((*params, credentials))

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
        params = self._key_params(self.get_key_from_request(request))
        if params is None:
            return False
        sql, bound = self._sql["delete"], (*params, await self._scope(request))
        try:
            deleted = await writer_for(self._live_connection()).call(
                lambda connection: _rowcount(connection, sql, bound)
            )
        finally:
            self._forget(bound)
        return deleted > 0

    async def store_refreshed(
        self, request: Any, entry: CacheEntry, meta: ResponseMeta, *, prompt: bool = True
    ) -> None:
        """Update the stored response's metadata and expiry after a ``304 Not Modified``, leaving its payload
        untouched (nothing is serialised again); a row gone meanwhile is stored again in full."""
        if self.disabled and prompt:
            return
        params = self._key_params(self.get_key_from_request(request))
        if params is None:
            return
        now = utc_now()
        expires = now + self._expire
        if meta.keep is not None:
            expires = now + timedelta(seconds=meta.keep_seconds((expires - now).total_seconds()))
        bound = (
            format_stamp(now),
            format_stamp(expires),
            meta.status,
            meta.reason,
            encode_headers(meta.headers),
            meta.encoded_times(),
            *params,
            await self._scope(request),
        )
        sql = self._sql["refresh"]
        writer = writer_for(self._live_connection())
        patience = self.lock_wait if prompt else None
        try:
            updated = await writer.call(lambda connection: _rowcount(connection, sql, bound), patience=patience)
        finally:
            self._forget(bound[6:])
        if not updated:
            await super().store_refreshed(request, entry, meta, prompt=prompt)

    async def invalidate(self, request: Any) -> int:
        """Delete every user's entry for the key of ``request`` (what a change to the resource makes stale);
        returns how many went."""
        params = self._key_params(self.get_key_from_request(request))
        if params is None:
            return 0
        sql = self._sql["delete_all_scopes"]
        try:
            return int(
                await writer_for(self._live_connection()).call(lambda connection: _rowcount(connection, sql, params))
            )
        finally:
            self._forget(params=params)

    async def clear(self, expired_only: bool = False) -> int:
        """Delete every row (only the expired ones, and those whose expiry cannot be read, when
        ``expired_only``); returns how many went."""
        params: tuple[Any, ...] = ()
        if expired_only:
            sql, params = self._sql["clear_expired"], (now_stamp(),)
        else:
            sql = self._sql["clear"]
        try:
            return await writer_for(self._live_connection()).call(lambda connection: _rowcount(connection, sql, params))
        finally:
            self._forget()


async def _start(candidate: Any) -> Any:
    """Start the connection a connector returned (an aiosqlite connection, or an awaitable giving one)."""
    if aiosqlite is not None and isinstance(candidate, aiosqlite.Connection):
        try:
            return await candidate
        except RuntimeError as exc:
            if "once" not in str(exc):  # "threads can only be started once": it was already started
                raise
            return candidate
    if inspect.isawaitable(candidate):
        return await _start(await candidate)
    return candidate


class SQLiteCache(ResponseCache[SQLiteTable]):
    """A cache of SQLite tables over one connection.

    :param cache_name: the database path or a label.
    :param connector: returns a new (not yet started) ``aiosqlite.Connection``.
    :param repository_getter: ``(cache, url) -> table | None``.
    :param expire: how long a saved response stays live.
    :param max_entry_size: the largest stored payload, in bytes, that is read back or saved (a larger one is a
        logged miss); ``None`` lifts the limit. Default ``aiorequestful.limits.DEFAULT_MAX_BODY_SIZE``.
    :param lock_wait: how long, in seconds, a lookup or save made for a waiting request waits for a database
        another process holds locked: then the lookup is a miss and the save a warning. Default 0.1 s. Direct
        calls (``get_response``, ``save_response``...) wait up to a minute, then raise ``CacheError``.
    :param policy: a :class:`~aiorequestful.cache.policy.CachePolicy` to follow HTTP caching (RFC 9111); None
        (default): entries are stored and served by expiry alone.
    :param memory_tier_entries: the most entries the memory tier in front of the file keeps (per event-loop
        thread); 0 turns the tier off. Default ``aiorequestful.limits.DEFAULT_MEMORY_TIER_ENTRIES``. Only a file
        the cache opened itself in WAL mode has a tier (see ``MemoryTier``).
    :param memory_tier_bytes: the most bytes of stored payload and header text the tier keeps (per thread);
        0 turns it off. Default ``aiorequestful.limits.DEFAULT_MEMORY_TIER_BYTES``.
    """

    __slots__ = (
        "_connector",
        "_lock",
        "_reader",
        "connection",
        "lock_wait",
        "memory_tier_bytes",
        "memory_tier_entries",
        "unusable",
    )

    _required_module_names = ("aiosqlite",)

    @classproperty
    def _required_modules(cls: type[SQLiteCache]) -> list[Any]:  # noqa: N805 - a class property
        return [aiosqlite]

    @classproperty
    def type(cls: type[SQLiteCache]) -> str:  # noqa: N805 - a class property
        return "sqlite"

    def __init__(
        self,
        cache_name: str,
        connector: Callable[[], Any],
        repository_getter: Callable[[ResponseCache, Any], SQLiteTable | None] | None = None,
        expire: timedelta | relativedelta = DEFAULT_EXPIRE,
        *,
        max_entry_size: int | None = DEFAULT_MAX_BODY_SIZE,
        lock_wait: float = DEFAULT_LOCK_WAIT,
        policy: CachePolicy | None = None,
        memory_tier_entries: int = DEFAULT_MEMORY_TIER_ENTRIES,
        memory_tier_bytes: int = DEFAULT_MEMORY_TIER_BYTES,
    ) -> None:
        required_modules_installed(self._required_modules, self)
        for name, limit in (("memory_tier_entries", memory_tier_entries), ("memory_tier_bytes", memory_tier_bytes)):
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ValueError(f"{name} must be a whole number from 0 up (0: no memory tier), not {limit!r}")
        self.memory_tier_entries = memory_tier_entries
        self.memory_tier_bytes = memory_tier_bytes
        super().__init__(
            cache_name=cache_name,
            repository_getter=repository_getter,
            expire=expire,
            max_entry_size=max_entry_size,
            policy=policy,
        )
        if isinstance(lock_wait, bool) or not isinstance(lock_wait, (int, float)) or not 0 <= lock_wait <= LOCK_WAIT:
            raise ValueError(f"lock_wait must be a number of seconds from 0 to {LOCK_WAIT:.0f}, not {lock_wait!r}")
        self.lock_wait = float(lock_wait)
        self.connection: Any = None
        #: Why the database cannot be used (it is not a database, or is corrupt), or None. While set, every
        #: lookup is a miss and every save is skipped; leaving the cache clears it (the next entry tries again).
        self.unusable: str | None = None
        self._connector = connector
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        #: Quick lookups in the loop's thread, only for a file the cache opened itself (never a user's URI,
        #: connector or in-memory database); made when the connection opens, closed with it.
        self._reader: _LoopReader | None = None

    @property
    def closed(self) -> bool:
        """True when there is no open connection (tracked here, not asked of aiosqlite)."""
        return not is_open(self.connection)

    @property
    def memory_tier(self) -> MemoryTier | None:
        """The memory tier of the calling thread (made by its first lookup), or None: none yet, turned off
        (``memory_tier_entries=0``), or a database the cache did not open itself (see ``MemoryTier``)."""
        reader = self._reader
        return None if reader is None else reader._tiers.get(threading.get_ident())

    # ------------------------------------------------------------------------------------------------------------
    # constructors
    # ------------------------------------------------------------------------------------------------------------
    @staticmethod
    def _is_uri(value: Any) -> bool:
        return isinstance(value, str) and (value == ":memory:" or value.startswith("file:"))

    @classmethod
    def _clean(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.pop("cache_name", None)
        kwargs.pop("connection", None)
        return kwargs

    @classmethod
    def connect(cls, value: str | Path, **kwargs: Any) -> SQLiteCache:  # type: ignore[override]
        """A cache for ``value``: a path (see ``connect_with_path``), an SQLite URI, or ``:memory:``."""
        return cls.connect_with_path(path=value, **kwargs)

    @classmethod
    def connect_with_path(cls, path: str | Path, **kwargs: Any) -> SQLiteCache:
        """A cache in the file ``path`` with its suffix replaced by ``.sqlite`` (parent directories are created;
        a new file is created with mode 0600).

        An SQLite URI (``file:...``) or ``:memory:`` is used as it is.
        """
        if cls._is_uri(path):
            database, uri = str(path), path != ":memory:"
            return cls(
                cache_name=database,
                connector=lambda: aiosqlite.connect(database=database, uri=uri, isolation_level=None),
                **cls._clean(kwargs),
            )
        file = Path(path).with_suffix(".sqlite")
        file.parent.mkdir(parents=True, exist_ok=True)
        return cls(cache_name=str(file), connector=_file_connector(file), **cls._clean(kwargs))

    @classmethod
    def connect_with_in_memory_db(cls, **kwargs: Any) -> SQLiteCache:
        """A cache in a private in-memory database (one database per cache, not one per process)."""
        database = f"file:aiorequestful-{uuid.uuid4().hex}?mode=memory&cache=shared"
        return cls(
            cache_name="__IN_MEMORY__",
            connector=lambda: aiosqlite.connect(database=database, uri=True, isolation_level=None),
            **cls._clean(kwargs),
        )

    @classmethod
    def connect_with_temp_db(cls, name: str = "aiorequestful_db.tmp", **kwargs: Any) -> SQLiteCache:
        """A cache in ``<temp dir>/<name>`` with the suffix replaced by ``.sqlite`` (a new file gets mode 0600)."""
        file = Path(tempfile.gettempdir(), name).with_suffix(".sqlite")
        return cls(cache_name=name, connector=_file_connector(file), **cls._clean(kwargs))

    # ------------------------------------------------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------------------------------------------------
    def __await__(self) -> Generator[Any, None, SQLiteCache]:
        return self._open().__await__()

    async def _open(self) -> SQLiteCache:
        if self.unusable is not None:  # told once already; the session opens a closed cache on every request
            return self
        # Tasks entering the cache at once must share one connection.
        async with self._opening():
            if self.unusable is not None:
                return self
            opened = False
            try:
                if self.closed:
                    self._close_reader()
                    connection = await _start(self._connector())
                    mark_open(connection)
                    self.connection = connection
                    opened = True
                await writer_for(self.connection).flush()  # WAL, busy timeout
                if self._reader is None and isinstance(self._connector, _FileConnector):
                    self._reader = _LoopReader(self._connector.file, self.memory_tier_entries, self.memory_tier_bytes)
                for table in self._repositories.values():
                    table.connection = self.connection
                    table._reader = self._reader
                    table.disabled = False
                    await table.create()
            except sqlite3.DatabaseError as exc:
                if not _is_unusable(exc):
                    if opened:
                        await self.close()
                    raise
                await self._give_up(exc)
            except BaseException:
                if opened:  # an __aenter__ that fails gets no __aexit__: do not leak the connection
                    await self.close()
                raise
        return self

    async def _give_up(self, exc: BaseException) -> None:
        """The file cannot be used as a database: carry on without a cache (one WARNING), never fail the crawl."""
        self._close_reader()
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                await connection.close()  # nothing was written: no flush, no commit
            except (sqlite3.Error, ValueError) as error:
                logger.debug("Closing the unusable cache database failed: %s", error)
            finally:
                mark_closed(connection)
        self.unusable = f"{type(exc).__name__}: {exc}"
        for table in self._repositories.values():
            table.disabled = True
        logger.warning(
            "Cache database %s cannot be used (%s): carrying on without a cache (every request goes to the network)",
            self.cache_name,
            self.unusable,
        )

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        for table in self._repositories.values():
            table._reader = None

    def _opening(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:  # a lock belongs to one event loop
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self.close()
        self.unusable = None  # the next entry tries the file again

    async def commit(self) -> None:
        """Wait until every write so far is committed."""
        if self.closed:
            return
        try:
            await writer_for(self.connection).flush()
            await self.connection.commit()
        except ValueError:
            pass

    async def close(self) -> None:
        """Commit everything written so far, then close the connection."""
        self._close_reader()  # first: the last connection to close may then checkpoint the WAL
        connection = self.connection
        if connection is None:
            return
        try:
            if is_open(connection):
                try:
                    await writer_for(connection).flush()
                except (CacheError, sqlite3.Error) as exc:  # the failed writes were reported to their callers
                    logger.warning("Closing the cache with unsaved writes: %s", exc)
                await connection.commit()
            await connection.close()
        except ValueError:
            pass
        finally:
            mark_closed(connection)
            self.connection = None

    def create_repository(self, settings: ResponseRepositorySettings[Any]) -> SQLiteTable:
        """Register a table for ``settings``; it is created when the cache is entered or the table awaited.

        Raises ``CacheError`` for a name already registered and ``RepositoryNameError`` (also a ``ValueError``)
        for one that differs from a registered name only in case.
        """
        self.check_repository_name(settings.name)
        table: SQLiteTable = SQLiteTable(
            connection=self.connection,
            settings=settings,
            expire=self.expire,
            max_entry_size=self.max_entry_size,
            lock_wait=self.lock_wait,
        )
        table.disabled = self.unusable is not None
        table._reader = self._reader
        return self.register_repository(table)
