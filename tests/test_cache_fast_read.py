# SPDX-License-Identifier: MIT
"""Lookups that read in the event loop's own thread (a read-only connection per thread) on real SQLite files.

Whether a lookup took the quick read or went through the shared aiosqlite connection is seen with SQLite's own
trace callback on the shared connection: the entry query ("SELECT CASE WHEN ...") shows up there only when the
lookup went through it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from aiorequestful.cache._entry import decode_headers, encode_headers
from aiorequestful.cache.backend import sqlite as sqlite_module
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.cache.response import CachedResponse
from aiorequestful.cache.session import CachedSession
from aiorequestful.security import add_secret_headers

from .cache_support import json_settings, pick_items, raw_execute

SCRIPT = Path(__file__).with_name("cache_writer_proc.py")
ENTRY_QUERY = "SELECT CASE WHEN"


async def trace_entry_reads(cache: SQLiteCache) -> list[str]:
    """Entry queries run on the cache's shared connection from now on (appended from its worker thread)."""
    seen: list[str] = []
    await cache.connection.set_trace_callback(lambda sql: seen.append(sql) if sql.startswith(ENTRY_QUERY) else None)
    return seen


async def settle(cache: SQLiteCache) -> None:
    """Wait until the trace callbacks of everything run so far on the shared connection have been delivered."""
    await cache.connection.execute_fetchall("SELECT 1")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# ----------------------------------------------------------------------------------------------------------------
# served without the worker thread
# ----------------------------------------------------------------------------------------------------------------
async def test_a_row_written_by_another_process_is_served_by_the_quick_read(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    async with cache:
        await table.save_response((("GET", "mine"), {"own": True}))
        seen = await trace_entry_reads(cache)
        assert await table.get_entry(("GET", "other-0")) is None  # not written yet
        result = subprocess.run(
            [sys.executable, str(SCRIPT), "burst", str(path), "other", "5", "2"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0 and result.stdout.strip() == "ok 5 5", result.stderr
        for i in range(5):
            entry = await table.get_entry(("GET", f"other-{i}"))
            assert entry is not None and json.loads(entry.payload) == {"writer": "other", "i": i, "pad": "x" * 200}
        assert await table.get_response(("GET", "mine")) == {"own": True}
        await settle(cache)
        assert seen == []  # every lookup was read in this thread


async def test_an_entry_over_the_quick_read_size_is_read_through_the_worker_thread(tmp_path: Path) -> None:
    cache = SQLiteCache.connect_with_path(tmp_path / "big.sqlite")
    table = cache.create_repository(json_settings())
    big = {"blob": "b" * (sqlite_module.SYNC_READ_MAX + 10)}
    async with cache:
        await table.save_response((("GET", "big"), big))
        await table.save_response((("GET", "small"), {"s": 1}))
        seen = await trace_entry_reads(cache)
        assert await table.get_response(("GET", "small")) == {"s": 1}
        await settle(cache)
        assert seen == []
        assert await table.get_response(("GET", "big")) == big  # still served, through the shared connection
        await settle(cache)
        assert len(seen) == 1


async def test_stored_headers_over_the_quick_read_size_are_read_through_the_worker_thread(tmp_path: Path) -> None:
    path = tmp_path / "headers.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    long_header = encode_headers([("X-Long", "h" * (sqlite_module.SYNC_READ_MAX + 10))])
    async with cache:
        await table.save_response((("GET", "h"), {"h": 1}))
        raw_execute(
            path, 'UPDATE items SET "response_status" = 200, "response_headers" = ? WHERE id = ?', (long_header, "h")
        )
        seen = await trace_entry_reads(cache)
        entry = await table.get_entry(("GET", "h"))
        assert entry is not None and entry.headers == [("X-Long", "h" * (sqlite_module.SYNC_READ_MAX + 10))]
        await settle(cache)
        assert len(seen) == 1


async def test_an_entry_over_max_entry_size_is_still_a_logged_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = SQLiteCache.connect_with_path(tmp_path / "cap.sqlite", max_entry_size=64)
    table = cache.create_repository(json_settings())
    async with cache:
        raw_value = json.dumps({"x": "y" * 100})
        raw_execute(
            Path(cache.cache_name),
            "INSERT INTO items (method, id, cached_at, expires_at, payload) VALUES (?, ?, ?, ?, ?)",
            ("GET", "huge", "2000-01-01T00:00:00.000000+00:00", "2999-01-01T00:00:00.000000+00:00", raw_value),
        )
        with caplog.at_level(logging.WARNING, logger="aiorequestful.cache.backend.base"):
            assert await table.get_entry(("GET", "huge")) is None
        assert any("huge" in record.getMessage() for record in caplog.records), caplog.records


async def test_a_corrupt_row_read_quickly_is_still_a_logged_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "corrupt.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    async with cache:
        await table.save_response((("GET", "bad"), {"a": 1}))
        raw_execute(path, 'UPDATE items SET "payload" = ? WHERE id = ?', ("{not json", "bad"))
        seen = await trace_entry_reads(cache)
        with caplog.at_level(logging.WARNING, logger="aiorequestful.cache.backend.base"):
            assert await table.get_entry(("GET", "bad")) is None
        assert any("corrupt cache entry" in record.getMessage() for record in caplog.records)
        await settle(cache)
        assert seen == []


async def test_expired_rows_are_misses_on_the_quick_read(tmp_path: Path) -> None:
    path = tmp_path / "expired.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    async with cache:
        await table.save_response((("GET", "old"), {"a": 1}))
        assert await table.get_response(("GET", "old")) == {"a": 1}
        raw_execute(path, 'UPDATE items SET "expires_at" = ? WHERE id = ?', ("2000-01-01T00:00:00.000000+00:00", "old"))
        seen = await trace_entry_reads(cache)
        assert await table.get_entry(("GET", "old")) is None
        await settle(cache)
        assert seen == []


async def test_a_lock_held_by_another_writer_does_not_delay_a_quick_read(tmp_path: Path) -> None:
    """Under WAL, a process holding the write lock (BEGIN EXCLUSIVE) does not keep readers out."""
    path = tmp_path / "held.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    async with cache:
        await table.save_response((("GET", "kept"), {"k": 1}))
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _HOLDER, str(path), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"locked\n"
            seen = await trace_entry_reads(cache)
            assert await table.get_response(("GET", "kept")) == {"k": 1}
            await settle(cache)
            assert seen == []
            assert holder.returncode is None
        finally:
            holder.stdin.write(b"\n")
            await holder.stdin.drain()
            await asyncio.wait_for(holder.wait(), 30)


_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
connection.close()
"""

_ROLLBACK_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")  # in rollback-journal mode this keeps readers out as well
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
connection.close()
"""


# ----------------------------------------------------------------------------------------------------------------
# when the quick read is not used
# ----------------------------------------------------------------------------------------------------------------
async def test_a_file_not_in_wal_mode_is_read_through_the_worker_thread(tmp_path: Path) -> None:
    path = tmp_path / "rollback.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    async with cache:
        # The only connection to the file: it can leave WAL (as when the switch to WAL failed).
        rows = await cache.connection.execute_fetchall("PRAGMA journal_mode = DELETE")
        assert rows[0][0] == "delete"
        await table.save_response((("GET", "a"), {"a": 1}))
        seen = await trace_entry_reads(cache)
        assert await table.get_response(("GET", "a")) == {"a": 1}
        assert await table.get_entry(("GET", "none")) is None
        await settle(cache)
        assert len(seen) == 2


async def test_a_locked_rollback_journal_file_is_a_miss_after_lock_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "locked-rollback.sqlite"
    cache = SQLiteCache.connect_with_path(path, lock_wait=0.2)
    table = cache.create_repository(json_settings())
    async with cache:
        await cache.connection.execute_fetchall("PRAGMA journal_mode = DELETE")
        await table.save_response((("GET", "a"), {"a": 1}))
        assert await table.get_response(("GET", "a")) == {"a": 1}
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _ROLLBACK_HOLDER,
            str(path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"locked\n"
            loop = asyncio.get_running_loop()
            started = loop.time()
            with caplog.at_level(logging.WARNING, logger="aiorequestful.cache.backend.base"):
                assert await asyncio.wait_for(table.get_entry(("GET", "a")), 30) is None
            assert loop.time() - started >= 0.2  # it waited lock_wait, then missed
            assert any("locked by another process" in record.getMessage() for record in caplog.records)
        finally:
            holder.stdin.write(b"\n")
            await holder.stdin.drain()
            await asyncio.wait_for(holder.wait(), 30)
        assert await table.get_response(("GET", "a")) == {"a": 1}


async def test_uri_and_in_memory_caches_never_read_quickly(tmp_path: Path) -> None:
    uri = f"file:{tmp_path / 'by-uri.sqlite'}?mode=rwc"
    for cache in (SQLiteCache.connect(uri), SQLiteCache.connect_with_in_memory_db()):
        table = cache.create_repository(json_settings())
        async with cache:
            await table.save_response((("GET", "a"), {"a": 1}))
            seen = await trace_entry_reads(cache)
            assert await table.get_response(("GET", "a")) == {"a": 1}
            await settle(cache)
            assert len(seen) == 1, cache.cache_name


async def test_a_table_dropped_meanwhile_falls_back_and_is_created_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dropped.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    async with cache:
        await table.save_response((("GET", "a"), {"a": 1}))
        assert await table.get_response(("GET", "a")) == {"a": 1}
        raw_execute(path, 'DROP TABLE "items"')
        with caplog.at_level(logging.WARNING, logger="aiorequestful.cache.backend.base"):
            assert await table.get_entry(("GET", "a")) is None
        assert any("is missing" in record.getMessage() for record in caplog.records)
        await table.save_response((("GET", "b"), {"b": 2}))
        seen = await trace_entry_reads(cache)
        assert await table.get_response(("GET", "b")) == {"b": 2}
        await settle(cache)
        assert seen == []  # the quick read works on the new table


async def test_a_disabled_cache_reads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"this is not an SQLite database header " * 200)
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    before = open_fds()
    async with cache:
        assert cache.unusable is not None
        assert await table.get_entry(("GET", "a")) is None
        assert open_fds() == before


# ----------------------------------------------------------------------------------------------------------------
# lifetime of the read-only connections
# ----------------------------------------------------------------------------------------------------------------
async def test_the_read_only_connection_is_closed_with_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "fds.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    before = open_fds()
    for _ in range(5):
        async with cache:
            opened = open_fds()
            await table.save_response((("GET", "a"), {"a": 1}))
            assert await table.get_response(("GET", "a")) == {"a": 1}
            assert open_fds() > opened  # the quick read opened its own connection
        assert open_fds() == before
    async with cache:
        assert await table.get_response(("GET", "a")) == {"a": 1}
        await table.close()  # closing a table closes the shared connection, and the reader with it
        assert open_fds() == before


def test_each_thread_reads_on_its_own_connection(tmp_path: Path) -> None:
    """A cache reused in another thread (its own event loop) opens a reader there instead of sharing one."""
    cache = SQLiteCache.connect_with_path(tmp_path / "threads")
    table = cache.create_repository(json_settings())
    results: list[Any] = []

    async def run(key: str) -> None:
        async with cache:
            await table.save_response((("GET", key), {"k": key}))
            seen = await trace_entry_reads(cache)
            value = await table.get_response(("GET", key))
            await settle(cache)
            results.append((value, len(seen)))

    for key in ("a", "b"):
        thread = threading.Thread(target=lambda key=key: asyncio.run(run(key)))
        thread.start()
        thread.join(60)
    assert results == [({"k": "a"}, 0), ({"k": "b"}, 0)]


# ----------------------------------------------------------------------------------------------------------------
# decoded headers kept by their stored text
# ----------------------------------------------------------------------------------------------------------------
def test_decoded_headers_are_not_shared_between_callers() -> None:
    text = encode_headers([("X-A", "1"), ("Content-Type", "application/json")])
    first = decode_headers(text)
    first.append(("X-Injected", "2"))
    first[0] = ("X-A", "changed")
    assert decode_headers(text) == [("X-A", "1"), ("Content-Type", "application/json")]


def test_a_corrupt_header_text_fails_every_time() -> None:
    text = '[["bad name", "1"]]'
    for _ in range(2):
        with pytest.raises(ValueError, match="invalid header name"):
            decode_headers(text)


def test_a_secret_header_added_after_decoding_is_dropped_at_once() -> None:
    name = "X-Fast-Read-Tenant-Key"
    text = encode_headers([(name, "tenant-secret"), ("X-Public", "p")])
    assert decode_headers(text) == [(name, "tenant-secret"), ("X-Public", "p")]
    add_secret_headers(name)
    assert decode_headers(text) == [("X-Public", "p")]


async def test_a_header_made_secret_after_a_hit_is_not_replayed(serve: Any, tmp_path: Path) -> None:
    name = "X-Fast-Read-Session-Tag"

    async def item(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"]}, headers={name: "per-user-tag", "X-Plain": "v"})

    app = web.Application()
    app.router.add_get("/items/{id}", item)
    base: URL = await serve(app)
    cache = SQLiteCache.connect_with_path(tmp_path / "secret.sqlite", repository_getter=pick_items)
    cache.create_repository(json_settings())
    async with cache, CachedSession(cache=cache) as session:
        for _ in range(3):
            async with session.get(base / "items" / "1") as response:
                assert response.headers[name] == "per-user-tag"
        add_secret_headers(name)
        async with session.get(base / "items" / "1") as response:
            assert isinstance(response, CachedResponse)
            assert name not in response.headers and response.headers["X-Plain"] == "v"


def test_cached_response_headers_follow_the_payload() -> None:
    """Content-Length and the charset come from the payload of each response, even for the same stored headers."""
    from aiohttp import RequestInfo
    from multidict import CIMultiDict, CIMultiDictProxy

    url = URL("http://127.0.0.1/items/1")
    info = RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    headers = [("Content-Type", "text/plain; charset=latin-1"), ("Content-Length", "999")]
    text = CachedResponse(info, "abc", headers=headers)
    raw = CachedResponse(info, b"abcdef", headers=headers)
    again = CachedResponse(info, "abcd", headers=headers)
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8" and text.headers["Content-Length"] == "3"
    assert raw.headers["Content-Type"] == "text/plain; charset=latin-1" and raw.headers["Content-Length"] == "6"
    assert again.headers["Content-Length"] == "4"
    assert text.headers.getall("Content-Length") == ["3"]


def test_responses_with_the_same_stored_headers_get_read_only_headers() -> None:
    from aiohttp import RequestInfo
    from multidict import CIMultiDict, CIMultiDictProxy

    url = URL("http://127.0.0.1/items/1")
    info = RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    headers = [("Content-Type", "application/json"), ("ETag", '"1"')]
    first, second = CachedResponse(info, "{}", headers=headers), CachedResponse(info, "[]", headers=headers)
    assert first.headers == second.headers
    with pytest.raises(TypeError):
        first.headers["ETag"] = '"2"'  # type: ignore[index]
    copy = first.headers.copy()
    copy["ETag"] = '"2"'
    assert second.headers["ETag"] == '"1"'


def test_now_stamp_is_the_fixed_width_utc_time() -> None:
    from datetime import UTC, datetime

    from aiorequestful.cache._entry import format_stamp, now_stamp

    for _ in range(1000):
        before = format_stamp(datetime.now(UTC))
        stamp = now_stamp()
        after = format_stamp(datetime.now(UTC))
        assert before <= stamp <= after
        assert len(stamp) == len(before) and stamp.endswith("+00:00")
        assert format_stamp(datetime.fromisoformat(stamp)) == stamp
