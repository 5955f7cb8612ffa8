# SPDX-License-Identifier: MIT
"""``python -m aiorequestful.cache``: list, show, stats, purge and vacuum on real cache files, also while another
process holds the file's write lock, and clear refusals of files that are not caches."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from aiorequestful.cache.backend.base import ResponseRepositorySettings
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.cache.cli import main
from aiorequestful.response.payload import JSONPayloadHandler, PayloadHandler


class Items(ResponseRepositorySettings):
    @property
    def fields(self) -> tuple[str, ...]:
        return ("id",)

    def get_key(self, method: str, url: Any, **_: Any) -> tuple[str | None]:
        return (URL(url).name or None,)

    @staticmethod
    def get_name(payload: Any) -> str | None:
        return payload.get("title") if isinstance(payload, dict) else None


class Pages(Items):
    @property
    def fields(self) -> tuple[str, ...]:
        return ("offset", "size")

    def get_key(self, method: str, url: Any, **_: Any) -> tuple[Any, ...]:
        return (0, 10)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
async def cache_file(tmp_path: Path) -> Path:
    """A cache with 5 items (2 of them expired since) and 1 page, written through SQLiteCache itself."""
    cache = SQLiteCache.connect_with_path(tmp_path / "crawl", expire=timedelta(hours=1))
    items = cache.create_repository(Items(name="items", payload_handler=JSONPayloadHandler()))
    pages = cache.create_repository(Pages(name="pages", payload_handler=JSONPayloadHandler()))
    async with cache:
        for i in range(1, 6):
            await items.save_response((("GET", str(i)), {"id": i, "title": f"Item {i}"}))
        await pages.save_response((("GET", 0, 10), {"items": [1, 2, 3]}))
    path = tmp_path / "crawl.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        # Two items whose hour has passed.
        db.execute("UPDATE items SET expires_at = '2000-01-01T00:00:00.000000+00:00' WHERE id IN ('4', '5')")
    return path


def test_stats_counts_entries_expired_and_bytes(cache_file: Path) -> None:
    code, out, err = run(str(cache_file), "stats", "--json")
    assert code == 0, err
    stats = json.loads(out)
    by_name = {row["repository"]: row for row in stats["repositories"]}
    assert by_name["items"]["entries"] == 5
    assert by_name["items"]["live"] == 3
    assert by_name["items"]["expired"] == 2
    assert by_name["pages"]["entries"] == 1
    assert stats["entries"] == 6 and stats["expired"] == 2
    assert stats["payload_bytes"] > 0 and stats["file_bytes"] >= stats["payload_bytes"]
    code, text, _ = run(str(cache_file), "stats")
    assert code == 0 and "total: 6 entries (4 live, 2 expired)" in text


def test_path_without_suffix_opens_the_sqlite_file(cache_file: Path) -> None:
    assert run(str(cache_file.with_suffix("")), "stats")[0] == 0


def test_list_shows_every_entry_with_its_key_and_expiry(cache_file: Path) -> None:
    code, out, _ = run(str(cache_file), "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert sorted(tuple(row["key"]) for row in rows if row["repository"] == "items") == [
        ("GET", str(i)) for i in range(1, 6)
    ]
    assert {row["key"][1] for row in rows if row["expired"]} == {"4", "5"}
    code, out, _ = run(str(cache_file), "list", "--repository", "items", "--expired")
    assert code == 0
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["GET/4", "GET/5"]


def test_show_prints_metadata_and_the_payload(cache_file: Path) -> None:
    code, out, _ = run(str(cache_file), "show", "items", "3")
    assert code == 0
    assert "name:        Item 3" in out
    assert '"title": "Item 3"' in out
    code, out, _ = run(str(cache_file), "show", "pages", "0", "10", "--json")
    assert code == 0 and json.loads(json.loads(out)[0]["payload"]) == {"items": [1, 2, 3]}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("show", "items", "99"), "No entry GET/99 in repository 'items'"),
        (("show", "items", "1", "2"), "keyed by method, id: give 2 key part(s), not 3"),
        (("show", "nope", "1"), "No repository 'nope'"),
        (("list", "--repository", "nope"), "(repositories: items, pages)"),
    ],
)
def test_bad_keys_and_names_are_refused_clearly(cache_file: Path, argv: tuple[str, ...], message: str) -> None:
    code, out, err = run(str(cache_file), *argv)
    assert code == 2 and out == ""
    assert message in err


def test_purge_expired_keeps_live_entries(cache_file: Path) -> None:
    code, out, _ = run(str(cache_file), "purge", "--expired")
    assert code == 0
    assert "items: removed 2 expired entries" in out and "pages: removed 0 expired entries" in out
    rows = json.loads(run(str(cache_file), "list", "--json")[1])
    assert sorted(row["key"][1] for row in rows if row["repository"] == "items") == ["1", "2", "3"]


def test_purge_all_of_one_repository(cache_file: Path) -> None:
    code, out, _ = run(str(cache_file), "purge", "--all", "--repository", "items")
    assert code == 0 and "items: removed 5 entries" in out
    stats = json.loads(run(str(cache_file), "stats", "--json")[1])
    assert {row["repository"]: row["entries"] for row in stats["repositories"]} == {"items": 0, "pages": 1}


def test_purge_needs_to_be_told_what(cache_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([str(cache_file), "purge"])
    assert "one of the arguments --expired --all is required" in capsys.readouterr().err


def test_garbage_expiry_stamps_count_as_expired(cache_file: Path) -> None:
    with contextlib.closing(sqlite3.connect(cache_file)) as db, db:
        db.execute("UPDATE items SET expires_at = 'soon' WHERE id = '1'")
    rows = json.loads(run(str(cache_file), "list", "--repository", "items", "--expired", "--json")[1])
    assert sorted(row["key"][1] for row in rows) == ["1", "4", "5"]


def test_vacuum_gives_space_back(cache_file: Path) -> None:
    assert run(str(cache_file), "purge", "--all")[0] == 0
    code, out, err = run(str(cache_file), "vacuum")
    assert code == 0, err
    before, after = (int(n) for n in out.split(": ")[1].removesuffix(" bytes\n").split(" -> "))
    assert after <= before


def test_reads_work_while_another_process_holds_the_write_lock(cache_file: Path) -> None:
    holder = subprocess.Popen(  # a crawler in the middle of a write transaction
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"db = sqlite3.connect({str(cache_file)!r}, isolation_level=None)\n"
            "db.execute('BEGIN IMMEDIATE')\n"
            "db.execute(\"DELETE FROM items WHERE id = '1'\")\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n"
            "db.execute('ROLLBACK')\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        code, out, _ = run(str(cache_file), "stats", "--json")
        assert code == 0 and json.loads(out)["entries"] == 6  # the uncommitted delete is not seen
        code, _, err = run(str(cache_file), "--busy-timeout", "0.05", "purge", "--expired")
        assert code == 2 and "Could not get the write lock" in err
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
        assert holder.stdout is not None
        holder.stdout.close()


def test_refuses_files_that_are_not_caches(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "missing.sqlite"), "stats")
    assert code == 2 and "No such cache file" in err
    text = tmp_path / "notes.sqlite"
    text.write_text("hello")
    code, _, err = run(str(text), "stats")
    assert code == 2 and "is not a SQLite database" in err
    other = tmp_path / "other.sqlite"
    with contextlib.closing(sqlite3.connect(other)) as db, db:
        db.execute("CREATE TABLE people (name TEXT)")
    code, _, err = run(str(other), "list")
    assert code == 2 and "not an aiorequestful cache" in err
    assert not (tmp_path / "missing.sqlite").exists()  # nothing was created


def test_redis_only_options_are_refused_for_a_cache_file(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "crawl.sqlite"), "--cache-name", "x", "--namespace", "y", "stats")
    assert (
        code == 2
        and err == "error: --cache-name, --namespace: only for a Redis cache (a redis:// URL), not a cache file\n"
    )


class RawBytesHandler(PayloadHandler[bytes]):
    """Stores binary payloads as bytes (a BLOB), as a user's handler may."""

    async def serialize(self, payload: Any) -> bytes:  # type: ignore[override]
        return bytes(payload)

    async def deserialize(self, response: Any) -> bytes:
        return response if isinstance(response, bytes) else await response.read()


async def test_json_output_of_a_binary_payload(tmp_path: Path) -> None:
    cache = SQLiteCache.connect_with_path(tmp_path / "blobs", expire=timedelta(hours=1))
    blobs = cache.create_repository(Items(name="blobs", payload_handler=RawBytesHandler()))
    async with cache:
        await blobs.save_response((("GET", "1"), b"\x00\x01binary"))
    path = str(tmp_path / "blobs.sqlite")
    code, out, err = run(path, "list", "--json")
    assert code == 0, err
    assert [(row["key"], row["bytes"]) for row in json.loads(out)] == [(["GET", "1"], 8)]
    code, out, err = run(path, "show", "blobs", "1", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["payload"] == "<8 bytes>"  # as in the text output: binary is not printed


def test_runs_as_a_module(cache_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiorequestful.cache", str(cache_file), "stats"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "total: 6 entries" in result.stdout
