# SPDX-License-Identifier: MIT
"""Concurrency and durability of the SQLite cache: many tasks, many processes, a held lock, kill -9.

Every test counts each row it wrote in a real database file; none relies on timing for its verdict beyond
generous bounds (the machine is a noisy 2-core box).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from aiorequestful.cache.backend import _sqlite_writer
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.cache.exception import CacheError

from .cache_support import json_settings

SCRIPT = Path(__file__).with_name("cache_writer_proc.py")


def integrity(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


def keys_in(path: Path) -> set[str]:
    connection = sqlite3.connect(path)
    try:
        return {row[0] for row in connection.execute('SELECT id FROM "items"')}
    finally:
        connection.close()


# ----------------------------------------------------------------------------------------------------------------
# one process
# ----------------------------------------------------------------------------------------------------------------
async def test_thousand_concurrent_tasks_write_every_row_in_few_transactions(tmp_path: Path) -> None:
    path = tmp_path / "many.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    begins: list[str] = []
    async with cache:
        await cache.connection.set_trace_callback(
            lambda sql: begins.append(sql) if sql.startswith("BEGIN IMMEDIATE") else None
        )
        await asyncio.gather(*(table.save_response((("GET", str(i)), {"i": i})) for i in range(1000)))
        assert await table.count() == 1000
        # mixed load: saves, reads and deletes at once
        results = await asyncio.gather(
            *(table.get_response(("GET", str(i))) for i in range(0, 1000, 2)),
            *(table.save_response((("GET", f"b{i}"), {"b": i})) for i in range(500)),
            *(table.delete_response(("GET", str(i))) for i in range(1, 1000, 2)),
        )
        assert results[:500] == [{"i": i} for i in range(0, 1000, 2)]
        assert results[1000:] == [True] * 500
        await cache.connection.set_trace_callback(None)
    assert len(keys_in(path)) == 1000  # 500 even "i" rows + 500 "b" rows
    # group commit: 2,000 writes cost far fewer transactions than writes
    assert 0 < len(begins) < 200


async def test_a_failing_write_does_not_fail_its_batch(tmp_path: Path) -> None:
    cache = SQLiteCache.connect_with_path(tmp_path / "db")
    table = cache.create_repository(json_settings())
    async with cache:
        bad = table._store(("GET", "bad"), {"not": "bindable"})  # a dict cannot be bound: this one fails
        results = await asyncio.gather(
            *(table.save_response((("GET", str(i)), {"i": i})) for i in range(50)), bad, return_exceptions=True
        )
        assert isinstance(results[-1], sqlite3.Error)
        assert results[:-1] == [None] * 50
        assert await table.count() == 50


async def test_writes_wait_for_a_lock_held_elsewhere_and_reads_go_on(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    async with cache:
        await table.save_response((("GET", "before"), {"a": 1}))
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock, longer than the busy timeout
        try:
            saves = asyncio.gather(*(table.save_response((("GET", str(i)), {"i": i})) for i in range(20)))
            await asyncio.sleep(1.5)
            assert not saves.done()  # still waiting, not failed with "database is locked"
            assert await table.get_response(("GET", "before")) == {"a": 1}  # WAL: reads are not blocked
        finally:
            await asyncio.to_thread(other.execute, "COMMIT")
            other.close()
        await asyncio.wait_for(saves, 30)
        assert await table.count() == 21


async def test_a_lock_held_past_the_patience_is_a_cache_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sqlite_writer, "LOCK_WAIT", 0.3)
    path = tmp_path / "stuck.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    async with cache:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(CacheError, match="locked"):
                await table.save_response((("GET", "x"), {"a": 1}))
        finally:
            other.execute("ROLLBACK")
            other.close()
        await table.save_response((("GET", "x"), {"a": 1}))  # and the cache works again afterwards
        assert await table.count() == 1


async def test_many_caches_on_one_file_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    caches = [SQLiteCache.connect_with_path(path) for _ in range(4)]
    tables = [cache.create_repository(json_settings()) for cache in caches]
    for cache in caches:
        await cache
    try:
        await asyncio.gather(
            *(
                table.save_response((("GET", f"{n}-{i}"), {"i": i}))
                for n, table in enumerate(tables)
                for i in range(150)
            )
        )
    finally:
        for cache in caches:
            await cache.close()
    assert len(keys_in(path)) == 600
    assert integrity(path) == "ok"


# ----------------------------------------------------------------------------------------------------------------
# several processes
# ----------------------------------------------------------------------------------------------------------------
def test_four_processes_writing_one_file_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "multi.sqlite"  # does not exist yet: the processes also race to create it and enable WAL
    writers, rows = 4, 250
    processes = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), "burst", str(path), f"w{n}", str(rows), "64"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(writers)
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=90))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert "locked" not in err.lower()
        assert out.strip() == f"ok {rows} {rows}"
    keys = keys_in(path)
    assert keys == {f"w{n}-{i}" for n in range(writers) for i in range(rows)}
    assert integrity(path) == "ok"


# ----------------------------------------------------------------------------------------------------------------
# kill -9
# ----------------------------------------------------------------------------------------------------------------
def _committed_until_killed(path: Path, writer: str, wanted: int) -> set[str]:
    """Run a writer, SIGKILL it once it reported ``wanted`` commits; return every key it reported."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "forever", str(path), writer, "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    committed: set[str] = set()
    timer = threading.Timer(60, process.kill)  # a hung writer must not hang the suite
    timer.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("committed "):
                committed.add(line.split()[1])
            if len(committed) >= wanted:
                os.kill(process.pid, signal.SIGKILL)  # mid-stream: 16 saves are in flight
                break
        rest, err = process.communicate(timeout=30)
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    committed.update(line.split()[1] for line in rest.splitlines() if line.startswith("committed "))
    assert process.returncode == -signal.SIGKILL, err
    return committed


def test_kill_9_keeps_every_committed_row_and_the_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "killed.sqlite"
    first = _committed_until_killed(path, "a", 300)
    assert integrity(path) == "ok"
    assert first <= keys_in(path)  # everything reported as saved survived

    # the file is usable afterwards, by a new writer, which is killed too
    second = _committed_until_killed(path, "b", 150)
    assert integrity(path) == "ok"
    assert first | second <= keys_in(path)


async def test_kill_9_survivor_file_is_readable_through_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "killed.sqlite"
    committed = await asyncio.to_thread(_committed_until_killed, path, "c", 100)
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    async with cache:
        values = await asyncio.gather(*(table.get_response(("GET", key)) for key in sorted(committed)))
    assert values == [{"key": key, "pad": "y" * 500} for key in sorted(committed)]
