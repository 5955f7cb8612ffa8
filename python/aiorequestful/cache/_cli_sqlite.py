# SPDX-License-Identifier: MIT
"""The cache CLI on a SQLite cache file (see :mod:`aiorequestful.cache.cli`).

It is safe on a cache that a running crawler is writing to: reads use a read-only connection (in WAL mode a
reader neither blocks the writer nor waits for it), and ``purge``/``vacuum`` take SQLite's write lock for one
short transaction each, waiting at most ``--busy-timeout`` seconds for it. Nothing here creates a database: a path
that does not exist, is not SQLite, or holds no cache table is refused with a message saying which.

The standard library's ``sqlite3`` is used directly (no aiosqlite, no event loop): a command-line tool runs one
statement at a time and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ._cli_common import CacheCliError, cell, payload_text, print_rows, scope_label, write_json
from ._entry import now_stamp
from .backend.sqlite import SQLiteTable, live_condition
from .backend.sqlite import quote_identifier as _quote

__all__ = ("SQLiteCacheFile", "run")

_SQLITE_MAGIC = b"SQLite format 3\x00"
#: The columns every cache table has (the names ``SQLiteTable`` uses).
_NAME, _CACHED, _EXPIRES, _PAYLOAD = (
    SQLiteTable.name_column,
    SQLiteTable.cached_column,
    SQLiteTable.expiry_column,
    SQLiteTable.payload_column,
)
_REQUIRED = frozenset({_CACHED, _EXPIRES, _PAYLOAD})
#: Columns that are part of a row's identity but not of the user's key.
_SCOPE = SQLiteTable.credentials_column
_STATUS = SQLiteTable.status_column


@dataclass(frozen=True)
class _Table:
    name: str
    key_columns: tuple[str, ...]  # in primary-key order, without the credential scope
    has_scope: bool
    has_status: bool


def _expired_sql() -> str:
    # Exactly what the cache itself treats as expired (a garbage stamp included): not live.
    return f"NOT ({live_condition(_quote(_EXPIRES))})"


class SQLiteCacheFile:
    """One cache file opened for the CLI: read-only unless a command must write."""

    def __init__(self, path: Path, *, write: bool = False, busy_timeout: float = 5.0) -> None:
        self.path = path
        _check_is_sqlite(path)
        mode = "rw" if write else "ro"
        uri = f"file:{_uri_path(path)}?mode={mode}"
        try:
            self.db = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise CacheCliError(f"Cannot open {path}: {exc}") from exc
        try:
            self.tables = self._find_tables()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise CacheCliError(f"{path} is not a readable SQLite database: {exc}") from exc
        if not self.tables:
            self.db.close()
            raise CacheCliError(
                f"{path} is a SQLite database but not an aiorequestful cache: no table has the "
                f"{', '.join(sorted(_REQUIRED))} columns"
            )

    def close(self) -> None:
        self.db.close()

    def _find_tables(self) -> dict[str, _Table]:
        names = [
            row[0]
            for row in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                "ORDER BY name"
            )
        ]
        tables: dict[str, _Table] = {}
        for name in names:
            info = self.db.execute("SELECT name, pk FROM pragma_table_info(?)", (name,)).fetchall()
            columns = {str(column).lower() for column, _ in info}
            if not _REQUIRED <= columns:
                continue
            keys = tuple(str(column) for column, pk in sorted((c for c in info if c[1]), key=lambda c: c[1]))
            tables[name] = _Table(
                name=name,
                key_columns=tuple(k for k in keys if k.lower() != _SCOPE),
                has_scope=_SCOPE in columns,
                has_status=_STATUS in columns,
            )
        return tables

    def table(self, name: str) -> _Table:
        table = self.tables.get(name)
        if table is None:
            known = ", ".join(sorted(self.tables)) or "none"
            raise CacheCliError(f"No repository {name!r} in {self.path} (repositories: {known})")
        return table

    def selected(self, name: str | None) -> list[_Table]:
        return [self.table(name)] if name is not None else list(self.tables.values())

    # --------------------------------------------------------------------------------------------------------
    # reads
    # --------------------------------------------------------------------------------------------------------
    def entries(
        self, table: _Table, *, expired_only: bool = False, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        keys = ", ".join(_quote(column) for column in table.key_columns)
        scope = f", {_quote(_SCOPE)}" if table.has_scope else ", ''"
        status = f", {_quote(_STATUS)}" if table.has_status else ", NULL"
        sql = (
            f"SELECT {keys}, {_quote(_NAME)}, {_quote(_CACHED)}, {_quote(_EXPIRES)}, "  # noqa: S608 - quoted names
            f"length(CAST({_quote(_PAYLOAD)} AS BLOB)), {_expired_sql()}{scope}{status} FROM {_quote(table.name)}"
        )
        now = now_stamp()
        params: list[Any] = [now]
        if expired_only:
            sql += f" WHERE {_expired_sql()}"
            params.append(now)
        sql += f" ORDER BY {keys}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        width = len(table.key_columns)
        for row in self.db.execute(sql, params):
            yield {
                "repository": table.name,
                "key": list(row[:width]),
                "name": row[width],
                "cached_at": row[width + 1],
                "expires_at": row[width + 2],
                "bytes": row[width + 3] or 0,
                "expired": bool(row[width + 4]),
                "scope": scope_label(row[width + 5]),
                "status": row[width + 6],
            }

    def find(self, table: _Table, key: Sequence[str]) -> list[dict[str, Any]]:
        if len(key) != len(table.key_columns):
            raise CacheCliError(
                f"Repository {table.name!r} is keyed by {', '.join(table.key_columns)}: "
                f"give {len(table.key_columns)} key part(s), not {len(key)}"
            )
        where = " AND ".join(f"CAST({_quote(column)} AS TEXT) = ?" for column in table.key_columns)
        scope = _quote(_SCOPE) if table.has_scope else "''"
        sql = (
            f"SELECT {_quote(_NAME)}, {_quote(_CACHED)}, {_quote(_EXPIRES)}, {_quote(_PAYLOAD)}, "  # noqa: S608
            f"{_expired_sql()}, {scope} FROM {_quote(table.name)} WHERE {where}"
        )
        found = []
        for name, cached, expires, payload, expired, digest in self.db.execute(sql, [now_stamp(), *key]):
            found.append(
                {
                    "repository": table.name,
                    "key": list(key),
                    "name": name,
                    "cached_at": cached,
                    "expires_at": expires,
                    "expired": bool(expired),
                    "scope": scope_label(digest),
                    # Binary payloads by their length only, as in the text output.
                    "payload": payload_text(payload) if isinstance(payload, bytes) else payload,
                }
            )
        return found

    def stats(self, table: _Table) -> dict[str, Any]:
        sql = (
            f"SELECT COUNT(*), COALESCE(SUM({_expired_sql()}), 0), "  # noqa: S608 - quoted names
            f"COALESCE(SUM(length(CAST({_quote(_PAYLOAD)} AS BLOB))), 0), "
            f"MIN({_quote(_CACHED)}), MAX({_quote(_CACHED)}) FROM {_quote(table.name)}"
        )
        count, expired, size, oldest, newest = self.db.execute(sql, [now_stamp()]).fetchone()
        return {
            "repository": table.name,
            "key": list(table.key_columns),
            "entries": count,
            "live": count - expired,
            "expired": expired,
            "payload_bytes": size,
            "oldest": oldest,
            "newest": newest,
        }

    # --------------------------------------------------------------------------------------------------------
    # writes
    # --------------------------------------------------------------------------------------------------------
    def purge(self, tables: Sequence[_Table], *, expired_only: bool) -> dict[str, int]:
        removed: dict[str, int] = {}
        now = now_stamp()
        with self._transaction():
            for table in tables:
                if expired_only:
                    cursor = self.db.execute(f"DELETE FROM {_quote(table.name)} WHERE {_expired_sql()}", (now,))  # noqa: S608
                else:
                    cursor = self.db.execute(f"DELETE FROM {_quote(table.name)}")  # noqa: S608
                removed[table.name] = cursor.rowcount
        return removed

    def vacuum(self) -> tuple[int, int]:
        before = _file_size(self.path)
        try:
            self.db.execute("VACUUM")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as exc:
            raise CacheCliError(f"Could not vacuum {self.path}: {exc} (is another process writing to it?)") from exc
        return before, _file_size(self.path)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise CacheCliError(f"Could not get the write lock on {self.path}: {exc}") from exc
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


def _file_size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _uri_path(path: Path) -> str:
    # Characters that mean something in a URI are escaped, so any file name opens as itself.
    text = str(path.resolve())
    for char, escaped in (("%", "%25"), ("?", "%3f"), ("#", "%23")):
        text = text.replace(char, escaped)
    return text


def _check_is_sqlite(path: Path) -> None:
    if not path.exists():
        raise CacheCliError(f"No such cache file: {path}")
    if not path.is_file():
        raise CacheCliError(f"Not a file: {path}")
    with path.open("rb") as file:
        header = file.read(len(_SQLITE_MAGIC))
    if header != _SQLITE_MAGIC:
        raise CacheCliError(f"{path} is not a SQLite database, so not an aiorequestful cache")


def _resolve_path(value: str) -> Path:
    path = Path(value)
    if not path.exists() and path.suffix != ".sqlite" and path.with_suffix(".sqlite").exists():
        return path.with_suffix(".sqlite")  # the same name the cache was created with (.sqlite is added)
    return path


# ------------------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------------------
def _cmd_list(cache: SQLiteCacheFile, args: argparse.Namespace, out: TextIO) -> None:
    rows = [
        row
        for table in cache.selected(args.repository)
        for row in cache.entries(table, expired_only=args.expired, limit=args.limit)
    ]
    if args.json:
        write_json(rows, out)
        return
    if not rows:
        out.write("no entries\n")
        return
    print_rows(
        rows, ("repository", "key", "name", "status", "bytes", "cached_at", "expires_at", "expired", "scope"), out
    )


def _cmd_show(cache: SQLiteCacheFile, args: argparse.Namespace, out: TextIO) -> None:
    table = cache.table(args.repository)
    key = [args.method.upper(), *args.key] if table.key_columns and table.key_columns[0] == "method" else args.key
    found = cache.find(table, key)
    if not found:
        raise CacheCliError(f"No entry {'/'.join(key)} in repository {table.name!r}")
    if args.json:
        write_json(found, out)
        return
    for entry in found:
        for field in ("repository", "key", "name", "cached_at", "expires_at", "expired", "scope"):
            out.write(f"{field + ':':<12} {cell(entry[field])}\n")
        out.write(payload_text(entry["payload"]) + "\n")


def _cmd_stats(cache: SQLiteCacheFile, args: argparse.Namespace, out: TextIO) -> None:
    rows = [cache.stats(table) for table in cache.selected(args.repository)]
    summary = {
        "file": str(cache.path),
        "file_bytes": _file_size(cache.path),
        "entries": sum(row["entries"] for row in rows),
        "live": sum(row["live"] for row in rows),
        "expired": sum(row["expired"] for row in rows),
        "payload_bytes": sum(row["payload_bytes"] for row in rows),
        "repositories": rows,
    }
    if args.json:
        write_json(summary, out)
        return
    print_rows(rows, ("repository", "key", "entries", "live", "expired", "payload_bytes", "oldest", "newest"), out)
    out.write(
        f"total: {summary['entries']} entries ({summary['live']} live, {summary['expired']} expired), "
        f"{summary['payload_bytes']} payload bytes; file {summary['file_bytes']} bytes on disk\n"
    )
    out.write("hit counts are not stored in the cache file (see RequestHandler.stats for a running crawl)\n")


def _cmd_purge(cache: SQLiteCacheFile, args: argparse.Namespace, out: TextIO) -> None:
    removed = cache.purge(cache.selected(args.repository), expired_only=args.expired)
    what = "expired entries" if args.expired else "entries"
    for name, count in removed.items():
        out.write(f"{name}: removed {count} {what}\n")
    out.write(f"total: removed {sum(removed.values())} {what}\n")


def _cmd_vacuum(cache: SQLiteCacheFile, args: argparse.Namespace, out: TextIO) -> None:
    before, after = cache.vacuum()
    out.write(f"vacuumed {cache.path}: {before} -> {after} bytes\n")


_COMMANDS = {"list": _cmd_list, "show": _cmd_show, "stats": _cmd_stats, "purge": _cmd_purge, "vacuum": _cmd_vacuum}
_WRITES = frozenset({"purge", "vacuum"})


def run(args: argparse.Namespace, out: TextIO) -> None:
    """Run ``args.command`` on the cache file ``args.target``; ``CacheCliError`` for a refusal."""
    busy_timeout = 5.0 if args.busy_timeout is None else args.busy_timeout
    try:
        cache = SQLiteCacheFile(_resolve_path(args.target), write=args.command in _WRITES, busy_timeout=busy_timeout)
        try:
            _COMMANDS[args.command](cache, args, out)
        finally:
            cache.close()
    except sqlite3.Error as exc:
        raise CacheCliError(f"{type(exc).__name__}: {exc}") from exc
