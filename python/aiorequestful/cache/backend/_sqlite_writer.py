# SPDX-License-Identifier: MIT
"""The single writer of one SQLite connection: group commit, WAL, and no "database is locked".

Why a single writer per connection:

* Every write of a connection goes through one queue, and one task turns whatever is queued into one
  ``BEGIN IMMEDIATE ... COMMIT`` transaction (at most ``MAX_BATCH`` operations). While a transaction runs, new
  writes queue up and become the next one, so 1,000 concurrent saves cost a handful of commits, and a
  process never holds the database's write lock for long.
* ``BEGIN IMMEDIATE`` takes the write lock up front. A deferred transaction that reads first and upgrades later
  fails at once with SQLITE_BUSY (snapshot conflict) whatever the busy timeout: the classic source of
  "database is locked" in requests-cache, aiohttp-client-cache and hishel.
* WAL lets readers (here and in other processes) run while a write is in progress; ``synchronous=NORMAL``
  keeps every commit durable when the process dies (kill -9) and only risks the last commits on power loss.
* A busy database is waited for in two layers: SQLite's busy handler (a short ``busy_timeout``, so the
  connection's thread is not blocked for long and reads get through between attempts), then asyncio backoff
  until the operation's patience has passed: ``LOCK_WAIT`` seconds unless the caller gives less (a save made
  while a request waits gives up after a fraction of a second). Only then does the operation fail, with
  ``CacheError``; the other operations of its batch keep their own patience.
* A save returns once its transaction has committed, so what a caller was told is saved survives a crash,
  and a read that follows a save sees it.
* A failing operation never takes its batch down with it: on any error other than a busy database, the batch
  is rolled back and its operations are retried one per transaction, so only the faulty one fails.

Only aiosqlite's public API is used: one ``execute``/``executemany`` per statement group, then
``commit``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..exception import CacheBusyError, CacheError

__all__ = (
    "BUSY_TIMEOUT_MS",
    "LOCK_WAIT",
    "MAX_BATCH",
    "WAL_WAIT",
    "SQLiteWriter",
    "is_busy",
    "is_open",
    "mark_closed",
    "mark_open",
    "retry_busy",
    "writer_for",
)

logger = logging.getLogger("aiorequestful.cache.backend.base")

#: The most operations one transaction takes (bounds how long the write lock is held).
MAX_BATCH = 512
#: SQLite's own busy wait per attempt, in milliseconds. Short: while SQLite waits, the connection's one thread
#: does nothing else (every lookup of the cache queues behind it); longer waits happen in asyncio, between
#: attempts.
BUSY_TIMEOUT_MS = 20
#: How long, in seconds, an operation keeps retrying a locked database before it fails with CacheError.
LOCK_WAIT = 60.0

#: How long, in seconds, opening a connection tries to switch a database in use elsewhere to WAL.
WAL_WAIT = 1.0

# SQLITE_BUSY and SQLITE_LOCKED, also as the primary code of their extended codes (e.g. SQLITE_BUSY_SNAPSHOT).
_BUSY_CODES = frozenset({5, 6})


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked"/"busy" errors (worth waiting and retrying)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _BUSY_CODES
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _backoff(attempt: int) -> float:
    return min(0.005 * 2**attempt, 0.1) * random.uniform(0.5, 1.5)  # jitter, not security


def _lock_error(exc: BaseException, patience: float = LOCK_WAIT) -> CacheBusyError:
    shown = f"{patience:.0f} seconds" if patience >= 10 else f"{patience:.3g} s"
    return CacheBusyError(f"The cache database stayed locked for more than {shown}: {exc}")


async def retry_busy(operation: Callable[[], Awaitable[Any]], patience: float | None = None) -> Any:
    """Run ``operation`` (a read, or anything outside the writer), retrying while the database is busy for up to
    ``patience`` seconds (default ``LOCK_WAIT``), then raising ``CacheError``."""
    loop = asyncio.get_running_loop()
    wait = LOCK_WAIT if patience is None else patience
    deadline = loop.time() + wait
    attempt = 0
    while True:
        try:
            return await operation()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            if loop.time() >= deadline:
                raise _lock_error(exc, wait) from exc
        await asyncio.sleep(min(_backoff(attempt), max(deadline - loop.time(), 0.001)))
        attempt += 1


class _Op:
    """One queued write: an upsert (``sql`` + ``params``, grouped with its neighbours into ``executemany``),
    a call (``call(connection)`` inside the transaction; its return value is the result), or a barrier."""

    __slots__ = ("call", "future", "params", "patience", "sql")

    def __init__(
        self,
        future: asyncio.Future[Any],
        sql: str | None = None,
        params: Sequence[Any] = (),
        call: Callable[[Any], Awaitable[Any]] | None = None,
        patience: float | None = None,
    ) -> None:
        self.future = future
        self.sql = sql
        self.params = params
        self.call = call
        #: How long this operation may wait for a database locked elsewhere (None: ``LOCK_WAIT``).
        self.patience = patience


class SQLiteWriter:
    """Serialises and batches the writes of one aiosqlite connection (see the module docstring)."""

    __slots__ = ("__weakref__", "_connection", "_queue", "_ready", "_task")

    def __init__(self, connection: Any) -> None:
        self._connection = weakref.ref(connection)
        self._queue: deque[_Op] = deque()
        self._task: asyncio.Task[None] | None = None
        self._ready = False

    # ------------------------------------------------------------------------------------------------------------
    # submitting
    # ------------------------------------------------------------------------------------------------------------
    def _submit(
        self, sql: str | None = None, params: Sequence[Any] = (), call: Any = None, patience: float | None = None
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append(_Op(future, sql, params, call, patience))
        task = self._task
        # A task left on another (finished) event loop can never run again: start a fresh one on this loop.
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._run())
        return future

    async def upsert(self, sql: str, params: Sequence[Any], *, patience: float | None = None) -> None:
        """Run one write statement; returns once it is committed. ``patience``: how long to wait for a database
        locked elsewhere before failing with ``CacheError`` (default ``LOCK_WAIT``)."""
        await self._submit(sql=sql, params=params, patience=patience)

    async def call(self, call: Callable[[Any], Awaitable[Any]], *, patience: float | None = None) -> Any:
        """Run ``call(connection)`` inside a write transaction; returns its result once committed."""
        return await self._submit(call=call, patience=patience)

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed (also sets the connection up on first use)."""
        if not self._queue and (self._task is None or self._task.done()) and self._ready:
            return
        await self._submit()

    @property
    def pending(self) -> int:
        """The number of operations queued and not yet committed."""
        return len(self._queue)

    # ------------------------------------------------------------------------------------------------------------
    # running
    # ------------------------------------------------------------------------------------------------------------
    def _live_connection(self) -> Any:
        connection = self._connection()
        if connection is None:
            raise ValueError("Connection closed")
        return connection

    async def _run(self) -> None:
        queue = self._queue
        while queue:
            batch = [queue.popleft() for _ in range(min(len(queue), MAX_BATCH))]
            try:
                await self._run_batch(batch)
            except asyncio.CancelledError:
                # The loop is shutting down: the transaction was rolled back, so nothing queued was written.
                _fail(batch, asyncio.CancelledError())
                _fail(list(queue), asyncio.CancelledError())
                queue.clear()
                raise
            except BaseException as exc:  # pragma: no cover - _run_batch settles its own failures
                _fail(batch, exc)

    async def _run_batch(self, batch: list[_Op]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        while True:
            try:
                connection = self._live_connection()
                await self._setup(connection)
                results = await self._transaction(connection, batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_busy(exc):
                    # Each operation has its own patience: those whose time is up fail, the others wait on.
                    waited = loop.time() - started
                    expired = [op for op in batch if waited >= _patience(op)]
                    for op in expired:
                        _fail([op], _lock_error(exc, _patience(op)), cause=exc)
                    batch = [op for op in batch if waited < _patience(op)]
                    if not batch:
                        return
                    left = min(_patience(op) for op in batch) - waited
                    await asyncio.sleep(min(_backoff(attempt), max(left, 0.001)))
                    attempt += 1
                    continue
                if isinstance(exc, sqlite3.Error) or not isinstance(exc, ValueError):
                    if len(batch) > 1:
                        # One bad operation must not fail its neighbours: retry them one per transaction.
                        for op in batch:
                            await self._run_batch([op])
                        return
                _fail(batch, exc)
                return
            for op, result in zip(batch, results, strict=True):
                if not op.future.done():
                    op.future.set_result(result)
            return

    async def _transaction(self, connection: Any, batch: list[_Op]) -> list[Any]:
        if all(op.sql is None and op.call is None for op in batch):
            return [None] * len(batch)  # barriers only: everything before them is already committed
        try:
            await connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            # A connection opened with autocommit=False (Python >= 3.12) always has a transaction open: use it.
            if "within a transaction" not in str(exc):
                raise
        try:
            results: list[Any] = []
            index, size = 0, len(batch)
            while index < size:
                op = batch[index]
                if op.sql is not None:
                    end = index + 1
                    while end < size and batch[end].sql == op.sql:
                        end += 1
                    if end - index == 1:
                        await connection.execute(op.sql, op.params)
                    else:
                        await connection.executemany(op.sql, [item.params for item in batch[index:end]])
                    results.extend([None] * (end - index))
                    index = end
                    continue
                results.append(await op.call(connection) if op.call is not None else None)
                index += 1
            await connection.commit()
        except BaseException:
            await _rollback(connection)
            raise
        return results

    async def _setup(self, connection: Any) -> None:
        """Once per connection: a short busy timeout, WAL, and synchronous=NORMAL under WAL."""
        if self._ready:
            return
        await connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        rows = await connection.execute_fetchall("PRAGMA journal_mode")
        mode = str(rows[0][0]).lower() if rows else ""
        if mode not in ("wal", "memory"):
            try:
                # Switching needs a moment with no other process reading. Waiting long for it would hold up
                # opening the cache; the mode is kept in the file, so the next connection switches it instead.
                rows = await retry_busy(lambda: connection.execute_fetchall("PRAGMA journal_mode = WAL"), WAL_WAIT)
                mode = str(rows[0][0]).lower() if rows else mode
            except (sqlite3.Error, CacheError) as exc:  # e.g. a read-only file, or in use: keep its journal mode
                logger.debug("Could not switch the cache database to WAL: %s", exc)
        if mode == "wal":
            await connection.execute("PRAGMA synchronous = NORMAL")
        self._ready = True


def _patience(op: _Op) -> float:
    return LOCK_WAIT if op.patience is None else op.patience


async def _rollback(connection: Any) -> None:
    try:
        await connection.rollback()
    except (sqlite3.Error, ValueError) as exc:  # the connection is gone or there was no transaction
        logger.debug("Rollback after a failed cache write did not run: %s", exc)


def _fail(batch: list[_Op], exc: BaseException, cause: BaseException | None = None) -> None:
    if cause is not None:
        exc.__cause__ = cause
    for op in batch:
        if op.future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            op.future.cancel()
        else:
            op.future.set_exception(exc)


# ----------------------------------------------------------------------------------------------------------------
# one writer per connection, shared by every table on it
# ----------------------------------------------------------------------------------------------------------------
_writers: weakref.WeakKeyDictionary[Any, SQLiteWriter] = weakref.WeakKeyDictionary()


def writer_for(connection: Any) -> SQLiteWriter:
    """The writer of ``connection`` (created on first use)."""
    writer = _writers.get(connection)
    if writer is None:
        writer = _writers[connection] = SQLiteWriter(connection)
    return writer


# Whether a connection is open is tracked here, not asked of aiosqlite (0.22 dropped Thread.is_alive()).
_open: weakref.WeakSet[Any] = weakref.WeakSet()


def mark_open(connection: Any) -> None:
    """Record that ``connection`` was started by us and is usable."""
    _open.add(connection)


def mark_closed(connection: Any) -> None:
    """Record that ``connection`` was closed, and drop its writer."""
    _open.discard(connection)
    _writers.pop(connection, None)


def is_open(connection: Any) -> bool:
    """True while ``connection`` is one we started and have not closed."""
    return connection is not None and connection in _open
