# SPDX-License-Identifier: MIT
"""SQLite backend: one table per repository, one aiosqlite connection per cache (api.md §9).

Corrections to the original (api.md §13), each cited where it is made:

* D-29 ``clear(expired_only=True)`` deletes the expired rows; D-38 stamps are UTC; D-31 one expiry index per
  table; D-32 one key column per ``settings.fields`` entry, in order; D-30/D-34 every identifier is validated
  and quoted, every value a bound parameter; D-33 an underivable key is a miss, not an error;
  D-35 open/closed state is tracked here; D-36 each in-memory cache has its own database; D-37 URIs and
  ``:memory:`` given to ``connect`` are used as they are; D-39 a missing aiosqlite is named.
* The original committed only on exit (a crash lost the whole run). Writes now go through the connection's
  single writer (``_sqlite_writer``): WAL, ``BEGIN IMMEDIATE``, group commit, retries on a busy database. A save
  returns once it is committed.
* A corrupt row (undecodable payload, wrong type, garbled metadata) is logged and treated as a miss.
* Rows keep the original status, reason and safe headers (D-47) and the digest of the credentials of the
  request that stored them (never the credentials themselves), in extra columns.
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientRequest, ClientResponse, RequestInfo
from dateutil.relativedelta import relativedelta

from ..._utils import classproperty, required_modules_installed
from .._credentials import NO_CREDENTIALS, credential_digest
from .._entry import (
    DEFAULT_REASON,
    DEFAULT_STATUS,
    CacheEntry,
    ResponseMeta,
    decode_headers,
    decoded_once,
    encode_headers,
    format_stamp,
    now_stamp,
    utc_now,
)
from ..exception import CacheError
from ._sqlite_writer import is_open, mark_closed, mark_open, retry_busy, writer_for
from .base import (
    _UNSET,
    DEFAULT_EXPIRE,
    K,
    ResponseCache,
    ResponseRepository,
    ResponseRepositorySettings,
    V,
    _as_key_parts,
    _check_name,
    _request_info,
    logger,
)

try:
    import aiosqlite
except ImportError:  # pragma: no cover - exercised by monkeypatching the global in tests
    aiosqlite = None  # type: ignore[assignment]

__all__ = ("SQLiteCache", "SQLiteTable", "aiosqlite")

_KNOWN_KEY_TYPES = {"method": "VARCHAR(7)", "id": "VARCHAR(255)", "offset": "INT", "size": "INT"}
_ITER_CHUNK = 256


def _quote(identifier: str) -> str:
    """An SQL identifier in double quotes, inner quotes doubled (D-30, D-34)."""
    return '"' + identifier.replace('"', '""') + '"'


def _bindable(part: Any) -> Any:
    # SQLite binds None, int, float, str and bytes; anything else (an Enum, a URL...) is stored as its text.
    if part is None or isinstance(part, (int, float, str, bytes)):
        return part.value if isinstance(part, str) and hasattr(part, "value") else part
    return str(part)


async def _rowcount(connection: Any, sql: str, params: tuple[Any, ...]) -> int:
    cursor = await connection.execute(sql, params)
    try:
        return max(cursor.rowcount, 0)
    finally:
        await cursor.close()


class SQLiteTable(ResponseRepository[K, V]):
    """A repository stored as one SQLite table (api.md §9.1).

    :param connection: the (shared) aiosqlite connection.
    :param settings: how requests are keyed and payloads stored; ``settings.name`` is the table name.
    :param expire: how long a saved response stays live.
    """

    __slots__ = ("_key_columns", "_sql", "_table")

    name_column = "name"
    payload_column = "payload"
    cached_column = "cached_at"
    expiry_column = "expires_at"
    #: Extra columns (not in the original): the original response's metadata and the credential digest.
    status_column = "response_status"
    reason_column = "response_reason"
    headers_column = "response_headers"
    credentials_column = "credential_digest"

    _required_module_names = ("aiosqlite",)

    @classproperty
    def _required_modules(cls: type[SQLiteTable]) -> list[Any]:  # noqa: N805 - a class property
        return [aiosqlite]

    def __init__(
        self,
        connection: Any,
        settings: ResponseRepositorySettings[V],
        expire: timedelta | relativedelta = DEFAULT_EXPIRE,
    ) -> None:
        super().__init__(settings=settings, expire=expire)
        self.connection = connection
        name = _check_name(settings.name, "table name")
        if name.lower().startswith("sqlite_"):
            raise CacheError(f"Invalid table name: {name!r} (names starting with 'sqlite_' are reserved by SQLite)")
        self._table = _quote(name)
        self._key_columns = self._validate_fields(settings.fields)
        self._sql = self._build_statements()

    def _validate_fields(self, fields: Any) -> tuple[str, ...]:
        if isinstance(fields, str):
            fields = (fields,)
        columns = ["method", *(_check_name(field, "key field name") for field in fields)]
        reserved = {
            self.name_column,
            self.payload_column,
            self.cached_column,
            self.expiry_column,
            self.status_column,
            self.reason_column,
            self.headers_column,
            self.credentials_column,
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
        ]
        insert_columns = ", ".join([*keys, *(_quote(column) for column in data)])
        placeholders = ", ".join("?" * (len(keys) + len(data)))
        expiry, payload = _quote(self.expiry_column), _quote(self.payload_column)
        meta = ", ".join(
            _quote(column)
            for column in (self.payload_column, self.status_column, self.reason_column, self.headers_column)
        )
        credentials = _quote(self.credentials_column)
        # Identifiers are validated and quoted (D-30, D-34); every value is a bound parameter.
        live = f"{expiry} > ?"
        return {
            "upsert": f"INSERT OR REPLACE INTO {table} ({insert_columns}) VALUES ({placeholders})",  # noqa: S608
            "entry": f"SELECT {meta}, {credentials} FROM {table} WHERE {where} AND {live} AND {payload} IS NOT NULL",  # noqa: S608
            "contains": f"SELECT {credentials} FROM {table} WHERE {where} AND {live}",  # noqa: S608
            "delete": f"DELETE FROM {table} WHERE {where}",  # noqa: S608
            "count": f"SELECT COUNT(*) FROM {table}",  # noqa: S608
            "count_live": f"SELECT COUNT(*) FROM {table} WHERE {live}",  # noqa: S608
            "clear": f"DELETE FROM {table}",  # noqa: S608
            "clear_expired": f"DELETE FROM {table} WHERE {expiry} <= ?",  # noqa: S608 - D-29: the expired rows
            "iterate": f"SELECT {', '.join(keys)}, {payload} FROM {table} WHERE {live}",  # noqa: S608
        }

    @property
    def _primary_key_columns(self) -> dict[str, str]:
        """Key column name -> SQL type, in key order (D-32: one per ``settings.fields`` entry)."""
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
        """Create the table and its expiry index if missing (committed); returns the table."""
        await writer_for(self._live_connection()).call(self._create_schema)
        return self

    async def _create_schema(self, connection: Any) -> None:
        table = self._table
        key_definitions = [
            f"{_quote(column)} {sql_type} NOT NULL" for column, sql_type in self._primary_key_columns.items()
        ]
        extra_definitions = self._extra_columns()
        definitions = [
            *key_definitions,
            f"{_quote(self.name_column)} TEXT",
            f"{_quote(self.cached_column)} TIMESTAMP NOT NULL",
            f"{_quote(self.expiry_column)} TIMESTAMP NOT NULL",
            f"{_quote(self.payload_column)} TEXT",
            *(f"{_quote(column)} {definition}" for column, definition in extra_definitions.items()),
            f"PRIMARY KEY ({', '.join(_quote(column) for column in self._key_columns)})",
        ]
        await connection.execute(f"CREATE TABLE IF NOT EXISTS {table} (\n    " + "\n  , ".join(definitions) + "\n)")

        # A table made by an earlier version (or the original) may lack the extra columns: add them. One made
        # for other key fields cannot be used (its rows could never be matched or saved): say so.
        info = await connection.execute_fetchall("SELECT name, pk FROM pragma_table_info(?)", (self.settings.name,))
        existing = {str(name).lower() for name, _ in info}
        primary = {str(name).lower() for name, pk in info if pk}
        expected = {column.lower() for column in self._key_columns}
        if primary != expected:
            raise CacheError(
                f"Table {self.settings.name!r} already exists with the key columns {sorted(primary)}, "
                f"but its settings give {list(self._key_columns)}"
            )
        for column, definition in extra_definitions.items():
            if column.lower() not in existing:
                await connection.execute(f"ALTER TABLE {table} ADD COLUMN {_quote(column)} {definition}")

        # D-31: an index name is database-wide, so each table gets its own.
        index = _quote(f"idx_{self.settings.name}_{self.expiry_column}")
        await connection.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table}({_quote(self.expiry_column)})")

    def _extra_columns(self) -> dict[str, str]:
        return {
            self.status_column: "INTEGER",
            self.reason_column: "TEXT",
            self.headers_column: "TEXT",
            self.credentials_column: f"TEXT NOT NULL DEFAULT '{NO_CREDENTIALS}'",
        }

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

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        connection = self._live_connection()
        return list(await retry_busy(lambda: connection.execute_fetchall(sql, params)))

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
        parts = _as_key_parts(self.settings.get_key(method=request.method, url=request.url, headers=request.headers))
        if any(part is None for part in parts):
            return None
        return (str(request.method).upper(), *parts)  # type: ignore[return-value]

    def _key_params(self, key: Any) -> tuple[Any, ...] | None:
        """The bound values for the key columns, or None when ``key`` names no cacheable entry (D-33)."""
        if key is None:
            return None
        parts = _as_key_parts(key)
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

    async def _credentials_for(self, request: Any) -> str | None:
        """The credential digest a row must carry to be served to ``request``; None: no constraint.

        A bare key tuple is the application addressing its own cache directly: no constraint.
        """
        if self.settings.share_across_credentials:
            return None
        info = _request_info(request)
        if info is None:
            return None
        return await credential_digest(info.headers)

    # ------------------------------------------------------------------------------------------------------------
    # reads
    # ------------------------------------------------------------------------------------------------------------
    async def count(self, include_expired: bool = True) -> int:
        if include_expired:
            rows = await self._fetch(self._sql["count"], ())
        else:
            rows = await self._fetch(self._sql["count_live"], (now_stamp(),))
        return int(rows[0][0])

    async def contains(self, request: Any) -> bool:
        params = self._key_params(self.get_key_from_request(request))
        if params is None:
            return False
        rows = await self._fetch(self._sql["contains"], (*params, now_stamp()))
        if not rows:
            return False
        required = await self._credentials_for(request)
        return required is None or any(row[0] == required for row in rows)

    async def get_response(self, request: Any) -> V | None:
        loaded = await self._load(request)
        return None if loaded is None else loaded[1]

    async def _get_entry(self, request: Any) -> CacheEntry | None:
        loaded = await self._load(request)
        return None if loaded is None else loaded[0]

    async def _load(self, request: Any) -> tuple[CacheEntry, Any] | None:
        """The live entry for ``request`` and its deserialised payload; None for a miss or a corrupt row."""
        key = self.get_key_from_request(request)
        params = self._key_params(key)
        if params is None:
            return None
        rows = await self._fetch(self._sql["entry"], (*params, now_stamp()))
        if not rows:
            return None
        payload, status, reason, headers, stored_credentials = rows[0]
        required = await self._credentials_for(request)
        if required is not None and stored_credentials != required:
            self.logger.debug("Cache entry in %r for %r belongs to other credentials: miss", self.settings.name, params)
            return None
        try:
            return await self._check_row(payload, status, reason, headers)
        except Exception as exc:  # a corrupt row must never crash the crawl: log it and miss
            self.logger.warning(
                "Ignoring a corrupt cache entry in %r for key %r: %s: %s",
                self.settings.name,
                params,
                type(exc).__name__,
                exc,
            )
            return None

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
        """Live rows as ``(key, deserialised payload)``; corrupt rows are logged and skipped."""
        connection = self._live_connection()
        sql, now = self._sql["iterate"], now_stamp()
        cursor = await retry_busy(lambda: connection.execute(sql, (now,)))
        try:
            while True:
                rows = await cursor.fetchmany(_ITER_CHUNK)
                if not rows:
                    break
                for row in rows:
                    key, payload = tuple(row[:-1]), row[-1]
                    if payload is None:
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
        payload: Any = _UNSET,
        meta: ResponseMeta | None = None,
        request: Any = None,
    ) -> None:
        params = self._key_params(key)
        if params is None:
            return
        connection = self._live_connection()
        if payload is _UNSET:
            payload = await self.deserialize(value)
        credentials = NO_CREDENTIALS
        if request is not None and not self.settings.share_across_credentials:
            credentials = await credential_digest(request.headers)
        now = utc_now()
        row = (
            *params,
            self._display_name(payload),
            format_stamp(now),
            format_stamp(now + self._expire),
            value,
            None if meta is None else meta.status,
            None if meta is None else meta.reason,
            None if meta is None else encode_headers(meta.headers),
            credentials,
        )
        await writer_for(connection).upsert(self._sql["upsert"], row)

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
        params = self._key_params(self.get_key_from_request(request))
        if params is None:
            return False
        sql = self._sql["delete"]
        deleted = await writer_for(self._live_connection()).call(lambda connection: _rowcount(connection, sql, params))
        return deleted > 0

    async def clear(self, expired_only: bool = False) -> int:
        params: tuple[Any, ...] = ()
        if expired_only:
            sql, params = self._sql["clear_expired"], (now_stamp(),)
        else:
            sql = self._sql["clear"]
        return await writer_for(self._live_connection()).call(lambda connection: _rowcount(connection, sql, params))


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
    """A cache of SQLite tables over one connection (api.md §9.2).

    :param cache_name: the database path or a label.
    :param connector: returns a new (not yet started) ``aiosqlite.Connection``.
    :param repository_getter: ``(cache, url) -> table | None``.
    :param expire: how long a saved response stays live.
    """

    __slots__ = ("_connector", "_lock", "connection")

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
    ) -> None:
        required_modules_installed(self._required_modules, self)
        super().__init__(cache_name=cache_name, repository_getter=repository_getter, expire=expire)
        self.connection: Any = None
        self._connector = connector
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @property
    def closed(self) -> bool:
        """True when there is no open connection (D-35: tracked here, not asked of aiosqlite)."""
        return not is_open(self.connection)

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
        """A cache for ``value``: a path (see ``connect_with_path``), an SQLite URI, or ``:memory:`` (D-37)."""
        return cls.connect_with_path(path=value, **kwargs)

    @classmethod
    def connect_with_path(cls, path: str | Path, **kwargs: Any) -> SQLiteCache:
        """A cache in the file ``path`` with its suffix replaced by ``.sqlite`` (parent directories are created).

        D-37: an SQLite URI (``file:...``) or ``:memory:`` is used as it is.
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
        return cls(
            cache_name=str(file),
            connector=lambda: aiosqlite.connect(database=file, isolation_level=None),
            **cls._clean(kwargs),
        )

    @classmethod
    def connect_with_in_memory_db(cls, **kwargs: Any) -> SQLiteCache:
        """A cache in a private in-memory database (D-36: one database per cache, not one per process)."""
        database = f"file:aiorequestful-{uuid.uuid4().hex}?mode=memory&cache=shared"
        return cls(
            cache_name="__IN_MEMORY__",
            connector=lambda: aiosqlite.connect(database=database, uri=True, isolation_level=None),
            **cls._clean(kwargs),
        )

    @classmethod
    def connect_with_temp_db(cls, name: str = "aiorequestful_db.tmp", **kwargs: Any) -> SQLiteCache:
        """A cache in ``<temp dir>/<name>`` with the suffix replaced by ``.sqlite``."""
        file = Path(tempfile.gettempdir(), name).with_suffix(".sqlite")
        return cls(
            cache_name=name,
            connector=lambda: aiosqlite.connect(database=file, isolation_level=None),
            **cls._clean(kwargs),
        )

    # ------------------------------------------------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------------------------------------------------
    def __await__(self) -> Generator[Any, None, SQLiteCache]:
        return self._open().__await__()

    async def _open(self) -> SQLiteCache:
        # Tasks entering the cache at once must share one connection.
        async with self._opening():
            opened = False
            if self.closed:
                connection = await _start(self._connector())
                mark_open(connection)
                self.connection = connection
                opened = True
            try:
                await writer_for(self.connection).flush()  # WAL, busy timeout
                for table in self._repositories.values():
                    table.connection = self.connection
                    await table.create()
            except BaseException:
                if opened:  # an __aenter__ that fails gets no __aexit__: do not leak the connection
                    await self.close()
                raise
        return self

    def _opening(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:  # a lock belongs to one event loop
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self.close()

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
        """Register a table for ``settings``; it is created when the cache is entered or the table awaited."""
        if settings.name in self._repositories:
            raise CacheError(f"Repository already exists: {settings.name}")
        table: SQLiteTable = SQLiteTable(connection=self.connection, settings=settings, expire=self.expire)
        self._repositories[settings.name] = table
        return table
