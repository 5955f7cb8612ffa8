# SPDX-License-Identifier: MIT
"""SQLiteTable and SQLiteCache on real database files."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest
from aiohttp import RequestInfo
from dateutil.relativedelta import relativedelta
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from aiorequestful.cache.backend import sqlite as sqlite_module
from aiorequestful.cache.backend.base import DEFAULT_EXPIRE
from aiorequestful.cache.backend.sqlite import SQLiteCache, SQLiteTable
from aiorequestful.cache.exception import CacheError
from aiorequestful.exception import AIORequestfulImportError
from aiorequestful.response.payload import StringPayloadHandler

from .cache_support import ItemSettings, PageSettings, VersionSettings, json_settings, pick_items, raw_execute, raw_rows


def info(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> RequestInfo:
    return RequestInfo(URL(url), method, CIMultiDictProxy(CIMultiDict(headers or {})), URL(url))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite"


@pytest.fixture
async def cache(db_path: Path):
    cache = SQLiteCache.connect_with_path(db_path, repository_getter=pick_items)
    cache.create_repository(json_settings())
    async with cache:
        yield cache


# ----------------------------------------------------------------------------------------------------------------
# schema
# ----------------------------------------------------------------------------------------------------------------
async def test_schema_has_contract_columns_and_one_key_column_per_field_in_order(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    cache.create_repository(VersionSettings(name="versions"))
    cache.create_repository(PageSettings(name="pages"))
    async with cache:
        pass
    connection = sqlite3.connect(path)
    try:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(versions)")]
        assert columns[:3] == ["method", "id", "version"]  # every field, in fields order
        for name in ("name", "cached_at", "expires_at", "payload"):
            assert name in columns
        pk = [row[1] for row in sorted(connection.execute("PRAGMA table_info(pages)"), key=lambda r: r[5]) if row[5]]
        assert pk == ["method", "offset", "id", "credential_digest"]  # one row per key and credentials
        indexes = {
            row[0]: row[1]
            for row in connection.execute(
                "SELECT name, tbl_name FROM sqlite_master WHERE type='index' AND name LIKE 'idx_%'"
            )
        }
        assert indexes == {"idx_versions_expires_at": "versions", "idx_pages_expires_at": "pages"}  # expiry indexes
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()


async def test_documented_id_version_settings_store_and_read(tmp_path: Path) -> None:
    cache = SQLiteCache.connect_with_path(tmp_path / "db")
    table = cache.create_repository(VersionSettings(name="versions"))
    async with cache:
        await table.save_response((("GET", "a", 1), "first"))
        await table.save_response((("GET", "a", 2), "second"))
        assert await table.get_response(info("http://h/x?id=a&v=2")) == "second"
        assert await table.get_response(("GET", "a", 1)) == "first"
        assert await table.count() == 2


@pytest.mark.parametrize("name", ["my-table", 'we"ird', "spaces and; DROP TABLE x", "select"])
async def test_any_table_name_is_quoted(tmp_path: Path, name: str) -> None:
    cache = SQLiteCache.connect_with_path(tmp_path / "db")
    table = cache.create_repository(json_settings(name))
    async with cache:
        await table.save_response((("GET", "1"), {"title": "t"}))
        assert await table.get_response(("GET", "1")) == {"title": "t"}  # get_response quotes too
        assert await table.contains(("GET", "1"))
        assert [key async for key, _ in table] == [("GET", "1")]
        assert await table.delete_response(("GET", "1"))
        assert await table.clear() == 0
    assert {row[0] for row in raw_rows(tmp_path / "db.sqlite", "sqlite_master", "name")} >= {name}


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "sqlite_master", "SQLITE_x", 3])
def test_invalid_table_names_are_rejected(name: object) -> None:
    with pytest.raises(CacheError, match="Invalid table name"):
        SQLiteTable(connection=None, settings=json_settings(name))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields", [("id", "ID"), ("method",), ("payload",), ("expires_at",), ("credential_digest",), ("",)]
)
def test_invalid_or_clashing_fields_are_rejected(fields: tuple[str, ...]) -> None:
    class Settings(ItemSettings):
        @property
        def fields(self) -> tuple[str, ...]:
            return fields

    with pytest.raises(CacheError):
        SQLiteTable(connection=None, settings=Settings(name="t"))


async def test_table_created_by_other_settings_is_refused(tmp_path: Path) -> None:
    cache = SQLiteCache.connect_with_path(tmp_path / "db")
    cache.create_repository(VersionSettings(name="items"))
    async with cache:
        pass
    cache = SQLiteCache.connect_with_path(tmp_path / "db")
    cache.create_repository(json_settings("items"))
    with pytest.raises(CacheError, match="key columns"):
        await cache.__aenter__()
    assert cache.closed  # the failed enter closed its connection


async def test_table_from_the_original_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "legacy.sqlite"
    later = (datetime.now() + timedelta(days=1)).isoformat()  # the original's naive local stamps
    raw_execute(
        path,
        'CREATE TABLE "items" ("method" VARCHAR(7) NOT NULL, "id" VARCHAR(255) NOT NULL, "name" TEXT, '
        '"cached_at" TIMESTAMP NOT NULL, "expires_at" TIMESTAMP NOT NULL, "payload" TEXT, '
        'PRIMARY KEY ("method", "id"))',
    )
    raw_execute(
        path,
        'INSERT INTO "items" VALUES (?, ?, ?, ?, ?, ?)',
        ("GET", "7", "x", datetime.now().isoformat(), later, '{"a": 1}'),
    )
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    async with cache:
        assert await table.get_response(("GET", "7")) == {"a": 1}
        await table.save_response((("GET", "8"), {"b": 2}))
        assert await table.count() == 2


# ----------------------------------------------------------------------------------------------------------------
# reads and writes
# ----------------------------------------------------------------------------------------------------------------
async def test_save_get_contains_delete_round_trip(cache: SQLiteCache, db_path: Path) -> None:
    table = cache["items"]
    request = info("http://h/v2/items/42")
    assert table.get_key_from_request(request) == ("GET", "42")
    assert not await table.contains(request)
    assert await table.get_response(request) is None

    await table.save_response((("GET", "42"), {"title": "Answer"}))
    assert await table.contains(request)
    assert await table.get_response(request) == {"title": "Answer"}
    assert await cache.get_response(request) == {"title": "Answer"}
    # committed before save_response returned: another connection sees it at once
    assert raw_rows(db_path, "items", "method, id, name, payload") == [("GET", "42", "Answer", '{"title": "Answer"}')]

    assert await table.delete_response(request) is True
    assert await table.delete_response(request) is False
    assert await table.count() == 0


async def test_lowercase_method_in_a_key_tuple_is_normalised(cache: SQLiteCache) -> None:
    table = cache["items"]
    await table.save_response((("get", "1"), {"title": "x"}))
    assert await table.get_response(info("http://h/items/1")) == {"title": "x"}


async def test_request_without_key_is_a_miss_not_an_error(cache: SQLiteCache) -> None:
    table = cache["items"]
    post = info("http://h/items/1", method="POST")  # ItemSettings returns (None,) for non-GET
    assert table.get_key_from_request(post) is None
    assert await table.contains(post) is False  # a POST is not cacheable
    assert await table.delete_response(post) is False
    assert await table.get_response(post) is None
    assert await table.contains(None) is False


async def test_key_of_the_wrong_length_is_a_clear_error(cache: SQLiteCache) -> None:
    with pytest.raises(CacheError, match="does not match the key columns"):
        await cache["items"].get_response(("GET", "1", "extra"))


async def test_bulk_operations_keep_order_and_count(cache: SQLiteCache) -> None:
    table = cache["items"]
    await table.save_responses({("GET", str(i)): {"title": f"t{i}"} for i in range(10)})
    got = await table.get_responses([("GET", "3"), ("GET", "missing"), ("GET", "1")])
    assert got == [{"title": "t3"}, {"title": "t1"}]
    assert await table.delete_responses([("GET", "1"), ("GET", "2"), ("GET", "nope")]) == 2
    assert await table.count() == 8
    assert sorted(key for key, _ in [item async for item in table]) == sorted(
        ("GET", str(i)) for i in range(10) if i not in (1, 2)
    )


async def test_string_handler_default_and_display_name(tmp_path: Path) -> None:
    cache = SQLiteCache.connect_with_path(tmp_path / "db")
    table = cache.create_repository(ItemSettings(name="plain"))
    assert isinstance(table.settings.payload_handler, StringPayloadHandler)
    async with cache:
        await table.save_response((("GET", "1"), b"bytes become text"))
        assert await table.get_response(("GET", "1")) == "bytes become text"
    assert raw_rows(tmp_path / "db.sqlite", "plain", "name") == [(None,)]  # get_name of a str payload is None


# ----------------------------------------------------------------------------------------------------------------
# expiry
# ----------------------------------------------------------------------------------------------------------------
async def test_expiry_is_stored_in_utc(cache: SQLiteCache, db_path: Path) -> None:
    before = datetime.now(UTC)
    await cache["items"].save_response((("GET", "1"), {"title": "x"}))
    ((cached, expires),) = raw_rows(db_path, "items", "cached_at, expires_at")
    assert cached.endswith("+00:00") and expires.endswith("+00:00")
    cached_at, expires_at = datetime.fromisoformat(cached), datetime.fromisoformat(expires)
    assert before - timedelta(seconds=5) <= cached_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert expires_at - cached_at == DEFAULT_EXPIRE
    assert cache["items"].expire > datetime.now()  # the public property stays naive (as in 1.0.20)


async def test_clear_expired_only_deletes_only_expired_rows(db_path: Path) -> None:
    cache = SQLiteCache.connect_with_path(db_path, expire=timedelta(days=1))
    table = cache.create_repository(json_settings())
    async with cache:
        await table.save_responses({("GET", str(i)): {"i": i} for i in range(5)})
        past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        raw_execute(db_path, "UPDATE items SET expires_at = ? WHERE id IN ('0', '1')", (past,))

        assert await table.count() == 5
        assert await table.count(include_expired=False) == 3
        assert await table.get_response(("GET", "0")) is None  # expired rows are misses
        assert not await table.contains(("GET", "1"))
        assert sorted([key[1] async for key, _ in table]) == ["2", "3", "4"]

        assert await table.clear(expired_only=True) == 2  # the expired ones
        assert sorted(row[0] for row in raw_rows(db_path, "items", "id")) == ["2", "3", "4"]
        assert await table.clear() == 3
        assert await table.count() == 0


async def test_relativedelta_and_negative_expiry(tmp_path: Path) -> None:
    cache = SQLiteCache.connect_with_path(tmp_path / "db", expire=relativedelta(months=1))
    table = cache.create_repository(json_settings())
    gone = SQLiteCache.connect_with_path(tmp_path / "db2", expire=timedelta(seconds=-1))
    stale = gone.create_repository(json_settings())
    async with cache, gone:
        await table.save_response((("GET", "1"), {"a": 1}))
        await stale.save_response((("GET", "1"), {"a": 1}))
        assert await table.get_response(("GET", "1")) == {"a": 1}
        assert await stale.get_response(("GET", "1")) is None
        assert await stale.count() == 1 and await stale.count(False) == 0


# ----------------------------------------------------------------------------------------------------------------
# corrupt rows are misses (never crashes)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("payload", '{"broken": '),  # bad JSON
        ("payload", b"\xff\xfe\x00garbage"),  # a blob that is not text
        ("response_status", "abc"),
        ("response_status", 99),
        ("response_headers", "not json"),
        ("response_headers", '[["X-Ok", "1"], ["Bad\\nName", "v"]]'),
        ("response_headers", '{"a": "b"}'),
        ("response_status", 2.5),  # a REAL stays REAL in an INTEGER column: wrong type
        ("response_headers", b"\x00\x01"),  # a blob where text belongs
    ],
)
async def test_corrupt_row_is_a_logged_miss(
    cache: SQLiteCache, db_path: Path, caplog: pytest.LogCaptureFixture, column: str, value: object
) -> None:
    table = cache["items"]
    await table.save_response((("GET", "1"), {"title": "ok"}))
    await table.save_response((("GET", "2"), {"title": "fine"}))
    raw_execute(db_path, f'UPDATE items SET "{column}" = ? WHERE id = ?', (value, "1"))
    with caplog.at_level(logging.WARNING, logger="aiorequestful.cache.backend.base"):
        assert await table.get_response(("GET", "1")) is None
        assert await table._get_entry(("GET", "1")) is None
    assert any("corrupt cache entry" in record.getMessage() for record in caplog.records)
    assert await table.get_response(("GET", "2")) == {"title": "fine"}
    # overwriting the corrupt row repairs it
    await table.save_response((("GET", "1"), {"title": "again"}))
    assert await table.get_response(("GET", "1")) == {"title": "again"}


async def test_iteration_skips_corrupt_payloads(
    cache: SQLiteCache, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = cache["items"]
    await table.save_responses({("GET", str(i)): {"i": i} for i in range(3)})
    raw_execute(db_path, "UPDATE items SET payload = ? WHERE id = '1'", ("{nope",))
    with caplog.at_level(logging.WARNING):
        items = sorted([(key, value) async for key, value in table])
    assert items == [(("GET", "0"), {"i": 0}), (("GET", "2"), {"i": 2})]
    assert any("corrupt" in record.getMessage() for record in caplog.records)


# ----------------------------------------------------------------------------------------------------------------
# cache lifecycle and constructors
# ----------------------------------------------------------------------------------------------------------------
async def test_closed_state_is_tracked_and_reentry_reconnects(db_path: Path) -> None:
    cache = SQLiteCache.connect_with_path(db_path)
    table = cache.create_repository(json_settings())
    assert cache.closed and cache.connection is None
    async with cache:
        assert not cache.closed
        await table.save_response((("GET", "1"), {"a": 1}))
        first = cache.connection
    assert cache.closed and cache.connection is None  # no is_alive() needed
    await cache.commit()  # no-op when closed
    await cache.close()
    async with cache:
        assert cache.connection is not first and table.connection is cache.connection
        assert await table.get_response(("GET", "1")) == {"a": 1}


async def test_table_operations_without_a_connection_raise_value_error() -> None:
    table = SQLiteTable(connection=None, settings=json_settings())
    with pytest.raises(ValueError, match="Connection closed"):
        await table.count()
    with pytest.raises(ValueError, match="Connection closed"):
        await table.save_response((("GET", "1"), {"a": 1}))


async def test_awaiting_a_registered_table_creates_it_on_a_connected_cache(db_path: Path) -> None:
    async with SQLiteCache.connect_with_path(db_path) as cache:
        table = await cache.create_repository(json_settings("late"))
        await table.save_response((("GET", "1"), {"a": 1}))
        assert await table.count() == 1
        with pytest.raises(CacheError, match="Repository already exists: late"):
            cache.create_repository(json_settings("late"))


async def test_table_close_closes_the_shared_connection(db_path: Path) -> None:
    cache = SQLiteCache.connect_with_path(db_path)
    table = cache.create_repository(json_settings())
    await cache
    await table.save_response((("GET", "1"), {"a": 1}))
    await table.commit()
    await table.close()
    assert cache.closed
    await table.close()  # closing twice is harmless
    await cache.close()
    assert raw_rows(db_path, "items", "id") == [("1",)]


async def test_connect_with_path_replaces_the_suffix_and_creates_directories(tmp_path: Path) -> None:
    cache = SQLiteCache.connect_with_path(tmp_path / "deep" / "er" / "api.db", repository_getter=pick_items)
    assert cache.cache_name == str(tmp_path / "deep" / "er" / "api.sqlite")
    assert cache.repository_getter is pick_items
    async with cache:
        pass
    assert (tmp_path / "deep" / "er" / "api.sqlite").exists()
    assert SQLiteCache.connect(tmp_path / "x").cache_name == str(tmp_path / "x.sqlite")


async def test_connect_keeps_uris_and_memory_as_given(tmp_path: Path) -> None:
    # The documented URI must not become "...cache=shared.sqlite"
    uri = f"file:{tmp_path / 'uri.db'}?mode=rwc"
    for value in (uri, ":memory:", "file::memory:?cache=shared"):
        cache = SQLiteCache.connect(value=value)
        assert cache.cache_name == value
        table = cache.create_repository(json_settings())
        async with cache:
            await table.save_response((("GET", "1"), {"a": 1}))
            assert await table.get_response(("GET", "1")) == {"a": 1}
    assert (tmp_path / "uri.db").exists()


async def test_in_memory_caches_are_isolated() -> None:
    first, second = SQLiteCache.connect_with_in_memory_db(), SQLiteCache.connect_with_in_memory_db()
    assert first.cache_name == second.cache_name == "__IN_MEMORY__"
    one = first.create_repository(json_settings())
    two = second.create_repository(json_settings())
    async with first, second:
        await one.save_response((("GET", "1"), {"from": "first"}))
        assert await two.get_response(("GET", "1")) is None  # separate in-memory caches do not share rows
        assert await two.count() == 0


async def test_temp_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    cache = SQLiteCache.connect_with_temp_db("mine.tmp", expire=timedelta(hours=1))
    assert cache.cache_name == "mine.tmp" and cache.expire == timedelta(hours=1)
    async with cache:
        pass
    assert (tmp_path / "mine.sqlite").exists()


async def test_user_connector_returning_a_started_or_awaitable_connection(tmp_path: Path) -> None:
    started = await aiosqlite.connect(tmp_path / "started.sqlite")

    async def make() -> aiosqlite.Connection:
        return aiosqlite.connect(tmp_path / "async.sqlite")

    for connector in (lambda: started, make, lambda: aiosqlite.connect(tmp_path / "plain.sqlite")):
        cache = SQLiteCache(cache_name="custom", connector=connector)
        table = cache.create_repository(json_settings())
        async with cache:
            await table.save_response((("GET", "1"), {"a": 1}))
            assert await table.get_response(("GET", "1")) == {"a": 1}
    for name in ("started", "async", "plain"):
        assert raw_rows(tmp_path / f"{name}.sqlite", "items", "id") == [("1",)]


def test_missing_aiosqlite_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "aiosqlite", None)
    with pytest.raises(
        AIORequestfulImportError, match=r"^Cannot create SQLiteCache object\. Required modules: aiosqlite$"
    ):
        SQLiteCache(cache_name="x", connector=lambda: None)
    with pytest.raises(
        AIORequestfulImportError, match=r"^Cannot create SQLiteTable object\. Required modules: aiosqlite$"
    ):
        SQLiteTable(connection=None, settings=json_settings())
    assert SQLiteTable._required_modules == [None]


def test_type_and_column_names() -> None:
    assert SQLiteCache.type == "sqlite"
    assert (SQLiteTable.name_column, SQLiteTable.payload_column) == ("name", "payload")
    assert (SQLiteTable.cached_column, SQLiteTable.expiry_column) == ("cached_at", "expires_at")
    assert SQLiteTable._required_modules == [aiosqlite]
    table = SQLiteTable(connection=None, settings=PageSettings(name="p"))
    assert table._primary_key_columns == {"method": "VARCHAR(7)", "offset": "INT", "id": "VARCHAR(255)"}
    assert hash(table) == hash("p")


def test_one_cache_object_across_event_loops(tmp_path: Path) -> None:
    """Scripts call asyncio.run more than once with the same cache: each run gets a working connection."""
    cache = SQLiteCache.connect_with_path(tmp_path / "loops")
    table = cache.create_repository(json_settings())

    async def run(key: str) -> int:
        async with cache:
            await table.save_response((("GET", key), {"k": key}))
            return await table.count()

    assert asyncio.run(run("a")) == 1
    assert asyncio.run(run("b")) == 2
    assert cache.closed
