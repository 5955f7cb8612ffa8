# SPDX-License-Identifier: MIT
"""The memory tier in front of a SQLite cache file, on real files and a real 127.0.0.1 origin.

What reaches SQLite is seen with sqlite3's own trace callback on the tier's (read-only) reader connection: a hit
served by the tier runs only the coherence check (``PRAGMA data_version``); one read from the file runs the
entry query too. Whether a request reached the origin is seen by the server's request counter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from aiorequestful import limits
from aiorequestful.cache.backend.sqlite import MemoryTier, SQLiteCache
from aiorequestful.limits import DEFAULT_MEMORY_TIER_BYTES, DEFAULT_MEMORY_TIER_ENTRIES
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler

from .cache_support import HITS, json_settings, make_app, open_cache

ENTRY_QUERY = "SELECT CASE WHEN"
VERSION_CHECK = "PRAGMA data_version"


@pytest.fixture
async def origin(serve: Any) -> tuple[URL, Any]:
    app = make_app()
    return await serve(app), app


def trace(tier: MemoryTier) -> list[str]:
    """Statements run on the tier's reader connection from now on (this thread, so delivered at once)."""
    seen: list[str] = []
    tier.connection.set_trace_callback(seen.append)
    return seen


def entry_reads(seen: list[str]) -> int:
    return sum(1 for sql in seen if sql.startswith(ENTRY_QUERY))


def other_process(path: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run one statement on the cache file from a separate Python process (plain sqlite3, committed)."""
    script = (
        "import json, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
        "c.execute(sys.argv[2], json.loads(sys.argv[3]))\n"
        "c.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path), sql, json.dumps(list(params))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


async def warm(handler: RequestHandler, url: str) -> Any:
    """One miss (stored), then one hit read from the file (kept in the tier)."""
    await handler.get(url)
    return await handler.get(url)


# ----------------------------------------------------------------------------------------------------------------
# served from memory
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("recheck", "checks"), [(0.0, 5), (3600.0, 0)])
async def test_a_hit_in_the_tier_runs_no_entry_query(
    origin: tuple[URL, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recheck: float, checks: int
) -> None:
    base, app = origin
    cache = open_cache(tmp_path / "t.sqlite")
    url = f"{base}/items/1"
    async with RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler()) as handler:
        assert await warm(handler, url) == {"id": "1", "title": "Item 1", "hit": 1}
        tier = cache.memory_tier
        assert tier is not None and len(tier) == 1
        monkeypatch.setattr(limits, "MEMORY_TIER_RECHECK", recheck)
        seen = trace(tier)
        for _ in range(5):
            assert await handler.get(url) == {"id": "1", "title": "Item 1", "hit": 1}
        assert entry_reads(seen) == 0
        # the coherence check: before every hit with no recheck interval, none while the last look is trusted
        assert seen.count(VERSION_CHECK) == checks
    assert app[HITS]["1"] == 1


async def test_the_default_bounds_come_from_limits(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "d.sqlite")
    assert (cache.memory_tier_entries, cache.memory_tier_bytes) == (
        DEFAULT_MEMORY_TIER_ENTRIES,
        DEFAULT_MEMORY_TIER_BYTES,
    )
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="memory_tier_entries"):
            open_cache(tmp_path / "bad.sqlite", memory_tier_entries=bad)
        with pytest.raises(ValueError, match="memory_tier_bytes"):
            open_cache(tmp_path / "bad.sqlite", memory_tier_bytes=bad)


# ----------------------------------------------------------------------------------------------------------------
# coherent with other processes
# ----------------------------------------------------------------------------------------------------------------
async def test_a_row_rewritten_by_another_process_is_seen_on_the_next_lookup(
    origin: tuple[URL, Any], tmp_path: Path
) -> None:
    base, app = origin
    path = tmp_path / "shared.sqlite"
    cache = open_cache(path)
    url = f"{base}/items/2"
    async with RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler()) as handler:
        await warm(handler, url)
        other_process(path, "UPDATE items SET payload = ? WHERE id = ?", (json.dumps({"from": "elsewhere"}), "2"))
        assert await handler.get(url) == {"from": "elsewhere"}
        assert await handler.get(url) == {"from": "elsewhere"}  # and then kept
    assert app[HITS]["2"] == 1


async def test_another_process_is_seen_once_the_last_look_is_older_than_the_recheck_interval(
    origin: tuple[URL, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = origin
    path = tmp_path / "shared.sqlite"
    cache = open_cache(path)
    url = f"{base}/items/3"
    async with RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler()) as handler:
        first = await warm(handler, url)
        monkeypatch.setattr(limits, "MEMORY_TIER_RECHECK", 3600.0)
        assert await handler.get(url) == first  # looked at the file now: trusted for the next hour
        other_process(path, "UPDATE items SET payload = ? WHERE id = ?", (json.dumps({"from": "elsewhere"}), "3"))
        assert await handler.get(url) == first  # within the interval: the tier's entry
        monkeypatch.setattr(limits, "MEMORY_TIER_RECHECK", 0.0)
        assert await handler.get(url) == {"from": "elsewhere"}  # the next look sees the other process's commit


async def test_a_row_written_by_another_process_through_the_package_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "burst.sqlite"
    cache = open_cache(path)
    table = cache["items"]
    async with cache:
        await table.save_response((("GET", "mine"), {"own": True}))
        assert await table.get_response(("GET", "mine")) == {"own": True}
        assert await table.get_entry(("GET", "other-0")) is None
        script = Path(__file__).with_name("cache_writer_proc.py")
        result = subprocess.run(
            [sys.executable, str(script), "burst", str(path), "other", "3", "2"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0 and result.stdout.strip() == "ok 3 3", result.stderr
        for i in range(3):
            assert await table.get_response(("GET", f"other-{i}")) == {"writer": "other", "i": i, "pad": "x" * 200}
        assert await table.get_response(("GET", "mine")) == {"own": True}


async def test_a_row_deleted_by_another_process_is_not_served(origin: tuple[URL, Any], tmp_path: Path) -> None:
    base, app = origin
    path = tmp_path / "deleted.sqlite"
    cache = open_cache(path)
    url = f"{base}/items/3"
    async with RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler()) as handler:
        await warm(handler, url)
        other_process(path, "DELETE FROM items WHERE id = ?", ("3",))
        assert await handler.get(url) == {"id": "3", "title": "Item 3", "hit": 2}  # from the origin again
    assert app[HITS]["3"] == 2


async def test_a_row_expired_by_another_process_is_not_served(origin: tuple[URL, Any], tmp_path: Path) -> None:
    base, app = origin
    path = tmp_path / "expired.sqlite"
    cache = open_cache(path)
    url = f"{base}/items/4"
    async with RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler()) as handler:
        await warm(handler, url)
        other_process(path, "UPDATE items SET expires_at = ? WHERE id = ?", ("2000-01-01T00:00:00.000000+00:00", "4"))
        assert (await handler.get(url))["hit"] == 2
    assert app[HITS]["4"] == 2


async def test_a_row_corrupted_by_another_process_is_a_logged_miss(
    origin: tuple[URL, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base, app = origin
    path = tmp_path / "corrupt.sqlite"
    cache = open_cache(path)
    url = f"{base}/items/5"
    async with RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler()) as handler:
        await warm(handler, url)
        other_process(path, "UPDATE items SET payload = ? WHERE id = ?", ("{not json", "5"))
        with caplog.at_level(logging.WARNING):
            assert (await handler.get(url))["hit"] == 2
        assert any("corrupt cache entry" in record.getMessage() for record in caplog.records)
    assert app[HITS]["5"] == 2


# ----------------------------------------------------------------------------------------------------------------
# expiry
# ----------------------------------------------------------------------------------------------------------------
async def test_an_entry_past_its_expiry_is_not_served_from_the_tier(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "clock.sqlite")
    table = cache["items"]
    async with cache:
        await table.save_response((("GET", "k"), {"v": 1}))
        assert await table.get_response(("GET", "k")) == {"v": 1}
        tier = cache.memory_tier
        assert tier is not None and len(tier) == 1
        seen = trace(tier)
        assert await table.get_response(("GET", "k")) == {"v": 1}
        assert entry_reads(seen) == 0
        # The tier's clock passes the row's expiry (a week from now): the entry is dropped, not served; the file
        # (whose own clock has not moved) is asked instead.
        tier.clock = lambda: 4_000_000_000.0
        assert await table.get_response(("GET", "k")) == {"v": 1}
        assert entry_reads(seen) == 1
        assert len(tier) == 0  # kept again, and at once found expired by the tier's clock on the next look
        assert await table.get_response(("GET", "k")) == {"v": 1}
        assert entry_reads(seen) == 2


# ----------------------------------------------------------------------------------------------------------------
# local writes
# ----------------------------------------------------------------------------------------------------------------
async def test_local_delete_clear_and_invalidation_drop_tier_entries(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "local.sqlite")
    table = cache["items"]
    async with cache:
        for key in ("a", "b", "c"):
            await table.save_response((("GET", key), {"k": key}))
        for key in ("a", "b", "c"):
            assert await table.get_response(("GET", key)) == {"k": key}
        tier = cache.memory_tier
        assert tier is not None and len(tier) == 3

        assert await table.delete_response(("GET", "a"))
        assert len(tier) == 2  # dropped at once, before any lookup checks the file's version
        assert await table.get_response(("GET", "a")) is None

        await table.get_response(("GET", "b"))
        assert await table.invalidate(("GET", "b")) == 1
        assert ("GET", "b") not in [key[1:3] for key in tier._entries]
        assert await table.get_response(("GET", "b")) is None

        await table.save_response((("GET", "c"), {"k": "new"}))
        assert await table.get_response(("GET", "c")) == {"k": "new"}  # a local save replaces it

        assert await table.clear() == 1
        assert len(tier) == 0
        assert await table.get_response(("GET", "c")) is None


async def test_a_local_save_is_served_at_once(origin: tuple[URL, Any], tmp_path: Path) -> None:
    base, app = origin
    cache = open_cache(tmp_path / "save.sqlite")
    table = cache["items"]
    url = f"{base}/items/6"
    async with RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler()) as handler:
        await warm(handler, url)
        await table.save_response((("GET", "6"), {"replaced": True}))
        assert await handler.get(url) == {"replaced": True}
    assert app[HITS]["6"] == 1


# ----------------------------------------------------------------------------------------------------------------
# credentials
# ----------------------------------------------------------------------------------------------------------------
async def test_two_users_never_share_a_tier_entry(origin: tuple[URL, Any], tmp_path: Path) -> None:
    base, app = origin
    cache = open_cache(tmp_path / "users.sqlite")
    url = f"{base}/items/7"
    async with RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler()) as handler:
        alice = {"Authorization": "Bearer alice"}
        bob = {"Authorization": "Bearer bob"}
        first_alice = await handler.get(url, headers=alice)
        first_bob = await handler.get(url, headers=bob)
        anonymous = await handler.get(url)
        assert len({first_alice["user"], first_bob["user"]}) == 2 and "user" not in anonymous
        for _ in range(3):
            assert await handler.get(url, headers=alice) == first_alice
            assert await handler.get(url, headers=bob) == first_bob
            assert await handler.get(url) == anonymous
        tier = cache.memory_tier
        assert tier is not None and len(tier) == 3  # one entry per scope
        seen = trace(tier)
        assert await handler.get(url, headers=alice) == first_alice
        assert await handler.get(url, headers=bob) == first_bob
        assert entry_reads(seen) == 0
        carol = await handler.get(url, headers={"Authorization": "Bearer carol"})
        assert carol["user"] not in (first_alice["user"], first_bob["user"])
    assert app[HITS]["7"] == 4


# ----------------------------------------------------------------------------------------------------------------
# bounds
# ----------------------------------------------------------------------------------------------------------------
async def test_the_entry_count_bound_evicts_the_least_recently_used(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "count.sqlite", memory_tier_entries=3)
    table = cache["items"]
    async with cache:
        for i in range(5):
            await table.save_response((("GET", str(i)), {"i": i}))
        for i in range(5):
            assert await table.get_response(("GET", str(i))) == {"i": i}
        tier = cache.memory_tier
        assert tier is not None and len(tier) == 3
        assert [key[2] for key in tier._entries] == ["2", "3", "4"]
        await table.get_response(("GET", "2"))  # used: now the most recent
        await table.get_response(("GET", "0"))
        assert [key[2] for key in tier._entries] == ["4", "2", "0"]


async def test_the_byte_bound_evicts_and_refuses_what_cannot_fit(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "bytes.sqlite", memory_tier_bytes=1000)
    table = cache["items"]
    async with cache:
        for i in range(6):
            await table.save_response((("GET", str(i)), {"i": i, "pad": "p" * 200}))
        await table.save_response((("GET", "huge"), {"pad": "h" * 2000}))
        for i in range(6):
            await table.get_response(("GET", str(i)))
        tier = cache.memory_tier
        assert tier is not None
        assert 0 < len(tier) < 6 and tier.size <= 1000
        assert await table.get_response(("GET", "huge")) == {"pad": "h" * 2000}  # served, never kept
        assert all(key[2] != "huge" for key in tier._entries) and tier.size <= 1000


# ----------------------------------------------------------------------------------------------------------------
# one value per caller
# ----------------------------------------------------------------------------------------------------------------
async def test_callers_mutating_their_payloads_do_not_affect_each_other(
    origin: tuple[URL, Any], tmp_path: Path
) -> None:
    base, _ = origin
    cache = open_cache(tmp_path / "mutate.sqlite")
    url = f"{base}/items/8"
    async with RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler()) as handler:
        await warm(handler, url)
        first = await handler.get(url)
        second = await handler.get(url)
        assert first == second and first is not second
        first["title"] = "changed"
        first.clear()
        assert await handler.get(url) == {"id": "8", "title": "Item 8", "hit": 1}
        assert second == {"id": "8", "title": "Item 8", "hit": 1}
    table = cache["items"]
    async with cache:
        one = await table.get_response(("GET", "8"))
        two = await table.get_response(("GET", "8"))
        assert one == two and one is not two


# ----------------------------------------------------------------------------------------------------------------
# off
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bound", [{"memory_tier_entries": 0}, {"memory_tier_bytes": 0}])
async def test_the_tier_off_reads_the_file_on_every_hit(
    origin: tuple[URL, Any], tmp_path: Path, bound: dict[str, int]
) -> None:
    base, app = origin
    cache = open_cache(tmp_path / "off.sqlite", **bound)
    url = f"{base}/items/9"
    async with RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler()) as handler:
        await warm(handler, url)
        assert cache.memory_tier is None
        for _ in range(3):
            assert await handler.get(url) == {"id": "9", "title": "Item 9", "hit": 1}
        assert cache.memory_tier is None
        other_process(tmp_path / "off.sqlite", "DELETE FROM items WHERE id = ?", ("9",))
        assert (await handler.get(url))["hit"] == 2
    assert app[HITS]["9"] == 2


async def test_an_in_memory_cache_has_no_tier(tmp_path: Path) -> None:
    cache = SQLiteCache.connect_with_in_memory_db()
    table = cache.create_repository(json_settings())
    async with cache:
        await table.save_response((("GET", "m"), {"m": 1}))
        assert await table.get_response(("GET", "m")) == {"m": 1}
        assert await table.get_response(("GET", "m")) == {"m": 1}
        assert cache.memory_tier is None


class _HeldJSON(JSONPayloadHandler):
    """Holds the decoding of one payload until told to go: a lookup then waits between its read and its keep."""

    __slots__ = ("entered", "go", "held")

    def __init__(self, held: str) -> None:
        super().__init__()
        self.held = held
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def deserialize(self, response: Any) -> Any:
        if isinstance(response, str) and self.held in response and not self.go.is_set():
            self.entered.set()
            await self.go.wait()
        return await super().deserialize(response)


async def test_a_row_read_before_another_lookup_saw_a_change_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "race.sqlite"
    handler = _HeldJSON('"old"')
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    table.settings.payload_handler = handler
    async with cache:
        handler.go.set()
        await table.save_response((("GET", "r"), {"v": "old"}))
        handler.go.clear()
        slow = asyncio.create_task(table.get_response(("GET", "r")))  # reads the old row, then waits
        await handler.entered.wait()
        other_process(path, "UPDATE items SET payload = ? WHERE id = ?", (json.dumps({"v": "new"}), "r"))
        assert await table.get_response(("GET", "r")) == {"v": "new"}  # saw the change: kept the new row
        handler.go.set()
        assert await slow == {"v": "old"}  # read before the change: its answer, but not kept
        tier = cache.memory_tier
        assert tier is not None
        seen = trace(tier)
        assert await table.get_response(("GET", "r")) == {"v": "new"}
        assert entry_reads(seen) == 0
