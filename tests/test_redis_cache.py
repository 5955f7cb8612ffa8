# SPDX-License-Identifier: MIT
"""RedisCache / RedisTable: the repository contract on a real redis-server.

Raw Redis reads (a synchronous redis-py client, independent of the code under test) check what is stored: one
key per entry with a native TTL, compact values, keys under the namespace.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import zlib
from datetime import timedelta
from http import HTTPMethod
from typing import Any

import aiohttp
import pytest
from dateutil.relativedelta import relativedelta
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from aiorequestful.cache import backend as backend_module
from aiorequestful.cache.backend import CACHE_CLASSES, CACHE_TYPES
from aiorequestful.cache.backend import redis as redis_backend
from aiorequestful.cache.backend.base import ResponseRepositorySettings
from aiorequestful.cache.backend.redis import RedisCache, RedisTable
from aiorequestful.cache.exception import CacheError
from aiorequestful.cache.response import CachedResponse
from aiorequestful.cache.session import CachedSession
from aiorequestful.exception import AIORequestfulImportError
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import PayloadHandlerError
from aiorequestful.response.payload import BytesPayloadHandler, JSONPayloadHandler, PayloadHandler
from aiorequestful.shared import RedisConnection

from .cache_support import HITS, ItemSettings, VersionSettings, json_settings, make_app, pick_items, user_of
from .redis_support import (  # noqa: F401 - fixtures
    RedisServer,
    dedicated_redis_fixture,
    redis_connection_fixture,
    redis_namespace_fixture,
    redis_url_fixture,
    sync_client,
)


@pytest.fixture
async def cache(redis_connection: RedisConnection) -> Any:
    cache = RedisCache.connect(redis_connection, cache_name="test", repository_getter=pick_items)
    cache.create_repository(json_settings())
    async with cache:
        yield cache


@pytest.fixture
def raw(redis_url: str) -> Any:
    client = sync_client(redis_url)
    yield client
    client.close()


@pytest.fixture
async def server(serve: Any) -> tuple[URL, Any]:
    app = make_app()
    return await serve(app), app


def _keys(raw: Any, namespace: str) -> list[str]:
    return sorted(key.decode() for key in raw.scan_iter(match=f"{namespace}:*"))


# ----------------------------------------------------------------------------------------------------------------
# the repository contract
# ----------------------------------------------------------------------------------------------------------------
async def test_save_get_contains_delete_round_trip(cache: RedisCache, raw: Any, redis_namespace: str) -> None:
    table = cache["items"]
    await table.save_response((("GET", "42"), {"title": "x", "n": [1, 2]}))
    assert await table.get_response(("GET", "42")) == {"title": "x", "n": [1, 2]}
    assert await table.contains(("GET", "42"))
    assert not await table.contains(("GET", "43"))
    assert await table.count() == 1 and await table.count(include_expired=False) == 1

    entry = table.entry_key(("GET", "42"))
    assert entry == f'{redis_namespace}:cache:{{test/items}}:e:["GET","42"]'
    stored = raw.hgetall(entry)
    assert stored[b"n"] == b"x"  # the display name from get_name
    assert json.loads(stored[b"p"]) == {"title": "x", "n": [1, 2]}
    assert 0 < raw.pttl(entry) <= timedelta(weeks=1) / timedelta(milliseconds=1)
    assert _keys(raw, redis_namespace) == sorted([entry, table.index_key])

    assert await table.delete_response(("GET", "42")) is True
    assert await table.delete_response(("GET", "42")) is False
    assert await table.get_response(("GET", "42")) is None
    assert await table.count() == 0
    assert not raw.exists(entry)


async def test_lowercase_method_in_a_key_tuple_is_normalised(cache: RedisCache) -> None:
    table = cache["items"]
    await table.save_response((("get", "1"), {"a": 1}))
    assert await table.get_response(("GET", "1")) == {"a": 1}


async def test_request_without_key_is_a_miss_not_an_error(cache: RedisCache) -> None:
    table = cache["items"]
    url = URL("http://127.0.0.1/items/x")
    info = aiohttp.RequestInfo(url, "POST", CIMultiDictProxy(CIMultiDict()), url)
    assert table.get_key_from_request(info) is None
    assert await table.get_response(info) is None
    assert await table.contains(info) is False
    assert await table.delete_response(info) is False
    await table.save_response((("GET", None), {"a": 1}))
    assert await table.count() == 0


async def test_key_of_the_wrong_length_is_a_clear_error(cache: RedisCache) -> None:
    with pytest.raises(CacheError, match="does not match the key fields"):
        await cache["items"].get_response(("GET", "1", "extra"))


async def test_multi_field_keys_in_the_given_order(redis_connection: RedisConnection) -> None:
    cache = RedisCache.connect(redis_connection, cache_name="multi")
    table = cache.create_repository(VersionSettings(name="versions", payload_handler=JSONPayloadHandler()))
    async with cache:
        await table.save_response((("GET", "a", 1), {"v": 1}))
        await table.save_response((("GET", "a", 2), {"v": 2}))
        assert await table.get_response(("GET", "a", 2)) == {"v": 2}
        assert sorted([key async for key, _ in table]) == [("GET", "a", 1), ("GET", "a", 2)]


async def test_bulk_operations_keep_order_and_count(cache: RedisCache) -> None:
    table = cache["items"]
    await table.save_responses({("GET", str(i)): {"i": i} for i in range(10)})
    got = await table.get_responses([("GET", "3"), ("GET", "missing"), ("GET", "1")])
    assert got == [{"i": 3}, {"i": 1}]
    assert await table.delete_responses([("GET", "1"), ("GET", "2"), ("GET", "nope")]) == 2
    assert await table.count() == 8


class RawBytesHandler(PayloadHandler[bytes]):
    """A user handler that stores binary payloads as bytes (the built-in ones store text)."""

    async def serialize(self, payload: Any) -> bytes:  # type: ignore[override]
        if not isinstance(payload, bytes):
            raise PayloadHandlerError("not bytes")
        return payload

    async def deserialize(self, response: Any) -> bytes:
        if isinstance(response, bytes):
            return response
        return await response.read()


async def test_text_and_binary_payloads_round_trip(redis_connection: RedisConnection, raw: Any) -> None:
    cache = RedisCache.connect(redis_connection, cache_name="kinds")
    text = cache.create_repository(ItemSettings(name="text"))  # default StringPayloadHandler
    blobs = cache.create_repository(ItemSettings(name="blobs", payload_handler=BytesPayloadHandler()))
    binary = cache.create_repository(ItemSettings(name="binary", payload_handler=RawBytesHandler()))
    async with cache:
        await text.save_response((("GET", "t"), "héllo \u2603 \udcff"))  # a lone surrogate survives too
        assert await text.get_response(("GET", "t")) == "héllo \u2603 \udcff"
        await blobs.save_response((("GET", "b"), "bytes as text ✓".encode()))
        assert await blobs.get_response(("GET", "b")) == "bytes as text ✓".encode()
        data = bytes(range(256)) * 8
        await binary.save_response((("GET", "r"), data))
        assert await binary.get_response(("GET", "r")) == data
        entry = await binary._get_entry(("GET", "r"))
        assert entry is not None and entry.payload == data
        stored = raw.hgetall(binary.entry_key(("GET", "r")))
        assert int(stored[b"f"]) == 3  # bytes, compressed (a repeating pattern)


def test_incompressible_payloads_are_stored_as_they_are() -> None:
    noise = os.urandom(4096)
    assert redis_backend._encode_payload(noise) == (noise, 2)
    assert redis_backend._decode_payload(noise, b"2") == noise
    small = "x" * 100  # below the threshold: not worth compressing
    assert redis_backend._encode_payload(small) == (small.encode(), 0)


async def test_large_payloads_are_stored_compressed(cache: RedisCache, raw: Any) -> None:
    table = cache["items"]
    payload = {"items": [{"id": i, "title": f"Item number {i}", "tags": ["a", "b", "c"]} for i in range(500)]}
    await table.save_response((("GET", "big"), payload))
    stored = raw.hgetall(table.entry_key(("GET", "big")))
    text = json.dumps(payload, separators=(",", ":"))
    assert int(stored[b"f"]) & 1, "a large JSON payload is compressed"
    assert len(stored[b"p"]) < len(text) / 4
    assert json.loads(zlib.decompress(stored[b"p"])) == payload
    assert await table.get_response(("GET", "big")) == payload


async def test_entries_expire_natively(redis_connection: RedisConnection, raw: Any) -> None:
    cache = RedisCache.connect(redis_connection, cache_name="ttl", expire=timedelta(milliseconds=400))
    table = cache.create_repository(json_settings())
    async with cache:
        await table.save_responses({("GET", str(i)): {"i": i} for i in range(3)})
        entry = table.entry_key(("GET", "0"))
        assert 0 < raw.pttl(entry) <= 400
        assert await table.count() == 3
        await asyncio.sleep(0.6)
        assert not raw.exists(entry)  # Redis dropped it itself
        assert await table.get_response(("GET", "0")) is None
        assert not await table.contains(("GET", "0"))
        assert [item async for item in table] == []
        assert await table.count() == 0
        assert await table.clear(expired_only=True) == 0  # count() already tidied the index


async def test_clear_expired_only_tidies_the_index_and_keeps_live_entries(redis_connection: RedisConnection) -> None:
    short = RedisTable(redis_connection, json_settings(), expire=timedelta(milliseconds=200), cache_name="mix")
    long = RedisTable(redis_connection, json_settings(), expire=timedelta(hours=1), cache_name="mix")
    await short.save_responses({("GET", f"s{i}"): {"i": i} for i in range(4)})
    await long.save_responses({("GET", f"l{i}"): {"i": i} for i in range(2)})
    await asyncio.sleep(0.3)
    assert await long.clear(expired_only=True) == 4  # the same repository: 4 expired, 2 live
    assert await long.count() == 2
    assert await long.get_response(("GET", "l1")) == {"i": 1}


async def test_relativedelta_and_non_positive_expiry(redis_connection: RedisConnection, raw: Any) -> None:
    table = RedisTable(redis_connection, json_settings(), expire=relativedelta(months=1), cache_name="rd")
    await table.save_response((("GET", "1"), {"a": 1}))
    assert raw.pttl(table.entry_key(("GET", "1"))) > timedelta(days=27) / timedelta(milliseconds=1)
    gone = RedisTable(redis_connection, json_settings(), expire=timedelta(seconds=-5), cache_name="rd")
    await gone.save_response((("GET", "1"), {"a": 2}))  # an already expired save replaces the live entry
    assert await table.get_response(("GET", "1")) is None
    assert await gone.count() == 0


async def test_repositories_and_caches_are_namespaced(
    redis_url: str, redis_namespace: str, redis_connection: RedisConnection, raw: Any
) -> None:
    first = RedisTable(redis_connection, json_settings(), cache_name="alpha")
    second = RedisTable(redis_connection, json_settings(), cache_name="beta")
    other_ns = RedisConnection(redis_url, namespace=redis_namespace + "-other")
    third = RedisTable(other_ns, json_settings(), cache_name="alpha")
    try:
        await first.save_response((("GET", "1"), {"from": "alpha"}))
        await second.save_response((("GET", "1"), {"from": "beta"}))
        await third.save_response((("GET", "1"), {"from": "other namespace"}))
        assert await first.get_response(("GET", "1")) == {"from": "alpha"}
        assert await second.get_response(("GET", "1")) == {"from": "beta"}
        assert await third.get_response(("GET", "1")) == {"from": "other namespace"}
        assert await first.clear() == 1
        assert await second.count() == 1 and await third.count() == 1
        assert all(key.startswith(redis_namespace + ":cache:{beta/items}:") for key in _keys(raw, redis_namespace))
    finally:
        await third.clear()
        await other_ns.aclose()


@pytest.mark.parametrize("name", ["my-table", 'quo"te', "brace}{s", "co:lon", "ünïcode ✓", "a/b"])
async def test_any_repository_name_stays_in_its_own_keys(
    redis_connection: RedisConnection, raw: Any, redis_namespace: str, name: str
) -> None:
    table = RedisTable(redis_connection, json_settings(name), cache_name="names")
    neighbour = RedisTable(redis_connection, json_settings(name + "x"), cache_name="names")
    await table.save_response((("GET", "1"), {"name": name}))
    await neighbour.save_response((("GET", "1"), {"name": "neighbour"}))
    assert await table.get_response(("GET", "1")) == {"name": name}
    assert await table.count() == 1
    keys = _keys(raw, redis_namespace)
    assert len(keys) == 4
    # one hash tag per repository: {cache/name} with both parts quoted
    assert all(key.count("{") == 1 and key.count("}") == 1 for key in keys)


@pytest.mark.parametrize("name", ["", "  ", "nul\x00", 3])
def test_invalid_names_are_rejected(redis_connection: RedisConnection, name: Any) -> None:
    with pytest.raises(CacheError, match="Invalid"):
        RedisTable(redis_connection, json_settings(name))
    with pytest.raises(CacheError, match="Invalid cache name"):
        RedisCache(cache_name=name, connector=redis_connection)


def test_repeated_fields_are_rejected(redis_connection: RedisConnection) -> None:
    class Twice(ItemSettings):
        @property
        def fields(self) -> tuple[str, ...]:
            return ("id", "id")

    with pytest.raises(CacheError, match="given twice"):
        RedisTable(redis_connection, Twice(name="twice"))


async def test_corrupt_entries_are_logged_misses_and_skipped_by_iteration(
    cache: RedisCache, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    table = cache["items"]
    for i in range(6):
        await table.save_response((("GET", str(i)), {"i": i}))
    raw.hset(table.entry_key(("GET", "0")), "p", b"{not json")
    raw.hset(table.entry_key(("GET", "1")), "f", b"64")  # unknown flags
    raw.hset(table.entry_key(("GET", "2")), "f", b"1")  # says compressed, is not
    raw.hset(table.entry_key(("GET", "3")), mapping={"s": b"999", "h": b"[]"})  # not a status code
    raw.hset(table.entry_key(("GET", "4")), mapping={"s": b"200", "h": b'[["Bad Name","x"]]'})
    caplog.set_level(logging.WARNING)
    for i in range(5):
        assert await table.get_response(("GET", str(i))) is None
        assert await table._get_entry(("GET", str(i))) is None
    assert await table.get_response(("GET", "5")) == {"i": 5}
    assert sum("corrupt cache entry" in r.getMessage() for r in caplog.records) == 10
    items = [item async for item in table]
    assert sorted(items) == [(("GET", "3"), {"i": 3}), (("GET", "4"), {"i": 4}), (("GET", "5"), {"i": 5})]


async def test_iteration_and_clear_cover_many_entries(cache: RedisCache, raw: Any, redis_namespace: str) -> None:
    table = cache["items"]
    await table.save_responses({("GET", str(i)): {"i": i} for i in range(700)})
    seen = {key: value async for key, value in table}
    assert len(seen) == 700 and seen[("GET", "699")] == {"i": 699}
    assert await table.count() == 700
    assert await table.clear() == 700
    assert await table.count() == 0
    assert _keys(raw, redis_namespace) == []


async def test_many_concurrent_writers_and_readers(redis_url: str, redis_namespace: str) -> None:
    # Two "processes" (connections) on one repository, 400 concurrent operations each.
    connections = [RedisConnection(redis_url, namespace=redis_namespace) for _ in range(2)]
    tables = [RedisTable(c, json_settings(), cache_name="shared") for c in connections]
    try:
        await asyncio.gather(
            *(tables[i % 2].save_response((("GET", str(i)), {"i": i, "pad": "x" * 300})) for i in range(400))
        )
        read = await asyncio.gather(*(tables[(i + 1) % 2].get_response(("GET", str(i))) for i in range(400)))
        assert read == [{"i": i, "pad": "x" * 300} for i in range(400)]
        assert await tables[0].count() == 400
    finally:
        for connection in connections:
            await connection.aclose()


# ----------------------------------------------------------------------------------------------------------------
# the cache
# ----------------------------------------------------------------------------------------------------------------
async def test_cache_lifecycle_and_registration(redis_url: str, redis_namespace: str) -> None:
    assert RedisCache in CACHE_CLASSES and "redis" in CACHE_TYPES and "sqlite" in CACHE_TYPES
    assert RedisCache.type == "redis"
    assert backend_module.RedisCache is RedisCache
    cache = RedisCache.connect(redis_url, cache_name="life", connection="ignored")
    assert isinstance(cache.connection, RedisConnection) and cache.cache_name == "life"
    assert cache.closed
    table = cache.create_repository(json_settings())
    with pytest.raises(CacheError, match="Repository already exists: items"):
        cache.create_repository(json_settings())
    assert await table is table  # usable at once: nothing to create
    async with cache as entered:
        assert entered is cache and not cache.closed
        await table.save_response((("GET", "1"), {"a": 1}))
        await cache.commit()
    assert cache.closed
    await cache  # awaited: open again
    assert await table.get_response(("GET", "1")) == {"a": 1}
    await table.close()  # leaves the connection to the cache
    assert await table.count() == 1
    await table.clear()
    await cache.close()
    await cache.close()
    assert RedisCache.connect(redis_url).cache_name == "cache"
    with pytest.raises(TypeError, match="RedisConnection or a Redis URL"):
        RedisCache("c", connector=42)  # type: ignore[arg-type]


def test_without_redis_py_the_module_is_named(monkeypatch: pytest.MonkeyPatch, redis_connection: Any) -> None:
    monkeypatch.setattr(redis_backend, "redis", None)
    with pytest.raises(AIORequestfulImportError, match=r"Cannot create RedisCache object\. Required modules: redis"):
        RedisCache("c", connector=redis_connection)
    with pytest.raises(AIORequestfulImportError, match=r"Cannot create RedisTable object\. Required modules: redis"):
        RedisTable(redis_connection, json_settings())


def test_one_cache_object_across_event_loops(redis_url: str, redis_namespace: str) -> None:
    cache = RedisCache.connect(RedisConnection(redis_url, namespace=redis_namespace), cache_name="loops")
    table = cache.create_repository(json_settings())

    async def use(i: int) -> Any:
        async with cache:
            await table.save_response((("GET", str(i)), {"i": i}))
            return await table.get_response(("GET", "0"))

    assert asyncio.run(use(0)) == {"i": 0}
    assert asyncio.run(use(1)) == {"i": 0}


# ----------------------------------------------------------------------------------------------------------------
# through CachedSession and RequestHandler, against a local server
# ----------------------------------------------------------------------------------------------------------------
async def test_second_request_is_a_hit_with_the_original_metadata(server: tuple[URL, Any], cache: RedisCache) -> None:
    base, app = server
    url = base / "items" / "42" % {"status": "203", "reason": "Partial Info"}
    async with CachedSession(cache=cache) as session:
        async with session.get(url) as first:
            assert await first.json() == {"id": "42", "title": "Item 42", "hit": 1}
        async with session.get(url) as second:
            assert isinstance(second, CachedResponse)
            assert await second.json() == {"id": "42", "title": "Item 42", "hit": 1}
            assert (second.status, second.reason) == (203, "Partial Info")
            assert second.headers["X-Item"] == "42" and second.content_type == "application/json"
            for secret in ("Set-Cookie", "WWW-Authenticate", "Authorization"):
                assert secret not in second.headers
    assert app[HITS]["42"] == 1


async def test_entries_are_never_served_to_other_credentials(
    server: tuple[URL, Any], cache: RedisCache, raw: Any
) -> None:
    base, app = server
    url = base / "items" / "7"
    async with CachedSession(cache=cache) as session:
        for token in ("alice-token", "bob-token", "alice-token", "bob-token"):
            async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                assert (await response.json())["user"] == user_of(f"Bearer {token}")
    # One entry per user of the key: neither replaces the other's, so the second round is all hits.
    assert app[HITS]["7"] == 2
    table = cache["items"]
    names = [await table.entry_key_for(info_with(url, f"Bearer {t}")) for t in ("alice-token", "bob-token")]
    assert len(set(names)) == 2 and table.entry_key(("GET", "7")) not in names
    for name in names:
        stored = raw.hgetall(name)
        assert stored and b"bob-token" not in b"".join(stored.values())
        assert b"alice-token" not in b"".join(stored.values()) and b"Bearer" not in b"".join(stored.values())


def info_with(url: URL, authorization: str) -> aiohttp.RequestInfo:
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": authorization}))
    return aiohttp.RequestInfo(url, "GET", headers, url)


class ApiItemSettings(ResponseRepositorySettings):
    """The documented example's settings, as written."""

    @property
    def fields(self) -> tuple[str, ...]:
        return ("id",)

    def get_key(self, method, url, **_) -> tuple[str | None]:  # type: ignore[no-untyped-def]
        if HTTPMethod(method) != HTTPMethod.GET:
            return (None,)
        parts = URL(url).path.strip("/").split("/")
        return (parts[2] if len(parts) >= 3 else None,)

    @staticmethod
    def get_name(payload) -> str | None:  # type: ignore[no-untyped-def]
        return payload.get("title") if isinstance(payload, dict) else None


async def test_request_handler_with_a_redis_cache(
    server: tuple[URL, Any], redis_url: str, redis_namespace: str
) -> None:
    base, app = server
    connection = RedisConnection(redis_url, namespace=redis_namespace)
    cache = RedisCache.connect(connection, cache_name="api", repository_getter=pick_items, expire=timedelta(days=3))
    cache.create_repository(ApiItemSettings(name="items"))
    handler = RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler())
    async with handler:
        first = await handler.get(base / "v2" / "items" / "42")
        second = await handler.get(base / "v2" / "items" / "42")
        assert first == second == {"id": "42", "title": "Item 42", "hit": 1}
        await handler.get(base / "v2" / "items" / "43", persist=False)
        await handler.get(base / "v2" / "items" / "43", persist=False)
    assert app[HITS]["42"] == 1 and app[HITS]["43"] == 2
    assert handler.stats.cache_hits == 1
    # A second "worker" (its own connection and handler) gets the hit too.
    other = RedisCache.connect(RedisConnection(redis_url, namespace=redis_namespace), cache_name="api",
                               repository_getter=pick_items)  # fmt: skip
    other.create_repository(ApiItemSettings(name="items"))
    handler = RequestHandler.create(cache=other, payload_handler=JSONPayloadHandler())
    async with handler:
        assert await handler.get(base / "v2" / "items" / "42") == {"id": "42", "title": "Item 42", "hit": 1}
    assert app[HITS]["42"] == 1


@pytest.mark.slow
async def test_redis_down_means_misses_not_errors_and_caching_resumes(
    server: tuple[URL, Any], dedicated_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    base, app = server
    connection = RedisConnection(dedicated_redis.url, namespace="down", retry_min=0.05, retry_max=0.2)
    cache = RedisCache.connect(connection, cache_name="down", repository_getter=pick_items)
    cache.create_repository(json_settings())
    caplog.set_level(logging.INFO, logger="aiorequestful.shared.connection")
    handler = RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler())
    async with handler:
        await handler.get(base / "items" / "1")
        await handler.get(base / "items" / "1")
        assert app[HITS]["1"] == 1
        dedicated_redis.kill()
        # Every request is answered from the network; no exception, no stall.
        results = await asyncio.gather(*(handler.get(base / "items" / str(i % 3)) for i in range(30)))
        assert len(results) == 30 and all(r["id"] == str(i % 3) for i, r in enumerate(results))
        assert app[HITS]["1"] == 1 + 10
        with pytest.raises(CacheError, match="unavailable"):
            await cache["items"].count()
        dedicated_redis.start()  # empty: no persistence
        deadline = asyncio.get_running_loop().time() + 10
        while handler.stats.cache_hits < 2:  # one hit before the outage; the next one proves caching resumed
            assert asyncio.get_running_loop().time() < deadline, "caching did not resume"
            await handler.get(base / "items" / "5")
            await asyncio.sleep(0.05)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and len(infos) == 1
    assert handler.stats.failures == 0
