# SPDX-License-Identifier: MIT
"""What the response cache does with credentials and hostile stored data, on both backends.

Every test that concerns who may see an entry, or what a planted entry can do, runs against a real SQLite file
and a real redis-server, through ``CachedSession`` against a local aiohttp.web server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import warnings
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import RequestInfo, web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from aiorequestful.cache.backend.base import ResponseCache
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.cache.exception import CacheError, RepositoryNameError
from aiorequestful.cache.response import CachedResponse
from aiorequestful.cache.session import CachedSession
from aiorequestful.security import add_secret_headers

from .cache_support import PublicItemSettings, json_settings, pick_items, raw_execute

try:
    import redis as _redis  # noqa: F401 - only probing whether the Redis backend can be tested
except ImportError:  # pragma: no cover - without the [redis] extra only SQLite is tested
    HAVE_REDIS = False
else:
    HAVE_REDIS = True
    from aiorequestful.cache.backend.redis import RedisCache
    from aiorequestful.shared import RedisConnection

    from .redis_support import redis_namespace_fixture, redis_url_fixture, sync_client  # noqa: F401 - fixtures

HITS = web.AppKey("hits", Counter)
BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.skipif(not HAVE_REDIS, reason="redis-py missing"))]

#: A header name this module adds to the shared secret list at run time (process-wide, so it is unique).
RUNTIME_SECRET = "X-Cache-Security-Test-Tenant"


def identity_of(request: web.Request) -> str:
    """What the server sees of the caller: every credential-bearing header (never echoed, only hashed)."""
    seen = {name: request.headers.get(name, "") for name in ("Authorization", "X-API-Key", "Cookie", RUNTIME_SECRET)}
    return hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()[:16]


async def _item(request: web.Request) -> web.Response:
    item = request.match_info["id"]
    request.app[HITS][item] += 1
    return web.json_response({"id": item, "who": identity_of(request), "hit": request.app[HITS][item]})


@pytest.fixture
async def server(serve: Any) -> tuple[URL, web.Application]:
    app = web.Application()
    app[HITS] = Counter()
    app.router.add_get("/items/{id}", _item)
    return await serve(app), app


class Backend:
    """Makes caches of one backend that all use the same store (one file, or one Redis namespace and name)."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.path = tmp_path / "security.sqlite"
        self.connections: list[Any] = []
        if kind == "redis":
            self.redis_url = request.getfixturevalue("redis_url")
            self.namespace = request.getfixturevalue("redis_namespace")

    def cache(self, settings: Any = None, **kwargs: Any) -> ResponseCache:
        cache: ResponseCache
        if self.kind == "sqlite":
            cache = SQLiteCache.connect_with_path(self.path, repository_getter=pick_items, **kwargs)
        else:
            connection = RedisConnection(self.redis_url, namespace=self.namespace)
            self.connections.append(connection)
            cache = RedisCache.connect(connection, cache_name="security", repository_getter=pick_items, **kwargs)
        cache.create_repository(settings or json_settings())
        return cache

    async def close(self) -> None:
        for connection in self.connections:
            await connection.aclose()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = Backend(request.param, tmp_path, request)
    yield made
    await made.close()


def info(url: URL | str, headers: dict[str, str] | None = None) -> RequestInfo:
    return RequestInfo(URL(url), "GET", CIMultiDictProxy(CIMultiDict(headers or {})), URL(url))


async def fetch(session: CachedSession, url: URL, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    async with session.get(url, **kwargs) as response:
        return isinstance(response, CachedResponse), await response.json()


# ----------------------------------------------------------------------------------------------------------------
# every credential a request carries scopes its entry
# ----------------------------------------------------------------------------------------------------------------
def _per_request(name: str) -> Callable[[str], tuple[dict[str, Any], dict[str, Any]]]:
    return lambda value: ({}, {"headers": {name: value}})


CALLERS: dict[str, Callable[[str], tuple[dict[str, Any], dict[str, Any]]]] = {
    # (session keyword arguments, request keyword arguments) for a caller whose credential is ``value``
    "x-api-key per request": _per_request("X-API-Key"),
    "x-api-key session default": lambda value: ({"headers": {"X-API-Key": value}}, {}),
    "cookie header": _per_request("Cookie"),
    "cookies argument": lambda value: ({}, {"cookies": {"sid": value}}),
    "session cookie jar": lambda value: ({"cookies": {"sid": value}}, {}),
    "header added at run time": _per_request(RUNTIME_SECRET),
    "authorization": _per_request("Authorization"),
    "auth argument": lambda value: ({}, {"auth": _basic(value)}),
    "session auth": lambda value: ({"auth": _basic(value)}, {}),
    "user info in the url": lambda value: ({}, {"user_info": value}),
}


def _basic(password: str) -> Any:
    import aiohttp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # newer aiohttp releases deprecate BasicAuth
        return aiohttp.BasicAuth("login", password)


@pytest.mark.parametrize("how", list(CALLERS))
async def test_callers_differing_only_by_one_credential_never_share_entries(
    server: tuple[URL, web.Application], backend: Backend, how: str
) -> None:
    base, app = server
    add_secret_headers(RUNTIME_SECRET)  # the cache must honour a name added after import
    url = base / "items" / "private"
    cache = backend.cache()
    results: dict[str, list[tuple[bool, dict[str, Any]]]] = {"alice": [], "bob": []}
    with warnings.catch_warnings():
        if "auth" in how:
            warnings.simplefilter("ignore", DeprecationWarning)  # newer aiohttp releases deprecate auth=
        await _run_callers(cache, how, url, results)
    for user in ("alice", "bob"):
        (first_cached, first), (second_cached, second) = results[user]
        assert not first_cached, f"{user}'s first request was answered from another caller's entry"
        assert second_cached and second == first  # her own entry, not evicted by the other caller's save
    assert results["alice"][0][1]["who"] != results["bob"][0][1]["who"]
    assert app[HITS]["private"] == 2


async def _run_callers(cache: Any, how: str, url: URL, results: dict[str, list[Any]]) -> None:
    """Two rounds of requests by alice and bob, each with a session of their own."""
    async with cache:
        for _ in range(2):
            for user in ("alice", "bob"):
                session_kwargs, request_kwargs = CALLERS[how](f"{user}-secret")
                user_info = request_kwargs.pop("user_info", None)
                target = url if user_info is None else url.with_user("login").with_password(user_info)
                async with CachedSession(cache=cache, **session_kwargs) as session:
                    results[user].append(await fetch(session, target, **request_kwargs))


async def test_shared_settings_keep_sharing_across_credentials(
    server: tuple[URL, web.Application], backend: Backend
) -> None:
    base, app = server
    cache = backend.cache(json_settings(cls=PublicItemSettings))
    async with cache, CachedSession(cache=cache) as session:
        for headers in ({"X-API-Key": "one"}, {"Cookie": "sid=two"}, {}):
            await fetch(session, base / "items" / "public", headers=headers)
    assert app[HITS]["public"] == 1


async def test_no_credential_is_stored(server: tuple[URL, web.Application], backend: Backend) -> None:
    base, _ = server
    cache = backend.cache()
    async with cache:
        async with CachedSession(cache=cache, cookies={"sid": "jar-secret-1"}) as session:
            await fetch(session, base / "items" / "s", headers={"X-API-Key": "key-secret-2"}, cookies={"c": "kw-3"})
        await cache.commit()
    if backend.kind == "sqlite":
        files = [backend.path, backend.path.parent / (backend.path.name + "-wal")]
        dump = b"".join(file.read_bytes() for file in files if file.exists())
    else:
        client = sync_client(backend.redis_url)
        try:
            dump = b"".join(
                key + b"".join(client.hgetall(key).values()) if client.type(key) == b"hash" else key
                for key in client.scan_iter(match=f"{backend.namespace}:*")
            )
        finally:
            client.close()
    for secret in (b"jar-secret-1", b"key-secret-2", b"kw-3"):
        assert secret not in dump


# ----------------------------------------------------------------------------------------------------------------
# the credential digest: keyed, inline, stable
# ----------------------------------------------------------------------------------------------------------------
class CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting the work handed to it (the pool aiohttp's DNS lookups need)."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(*args, **kwargs)


async def test_thousand_tokens_are_looked_up_without_the_thread_pool(backend: Backend) -> None:
    executor = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    cache = backend.cache()
    try:
        async with cache:
            table = cache["items"]
            url = "http://127.0.0.1/items/t"
            # A response body as its payload handler reads it (the value itself): only the scope matters here.
            await table.save_for_request(info(url, {"Authorization": "Bearer token-7"}), {"n": 7})
            found = [await table.get_entry(info(url, {"Authorization": f"Bearer token-{i}"})) for i in range(1000)]
        assert [i for i, entry in enumerate(found) if entry is not None] == [7]
        assert executor.submitted == 0  # no digest, lookup or save went through the default thread pool
    finally:
        executor.shutdown(wait=True)


async def test_digests_are_the_same_after_reopening_the_cache(backend: Backend) -> None:
    url = "http://127.0.0.1/items/d"
    alice = info(url, {"Authorization": "Bearer alice", "X-API-Key": "k1"})
    reordered = info(url, {"X-API-Key": "k1", "Authorization": "Bearer alice"})  # same credentials
    cache = backend.cache()
    async with cache:
        first = await cache["items"]._scope(alice)
        await cache["items"].save_for_request(alice, {"who": "alice"})
    other = backend.cache()  # a new cache object (as in another process or after a restart)
    async with other:
        table = other["items"]
        assert await table._scope(alice) == await table._scope(reordered) == first != ""
        entry = await table.get_entry(reordered)
        assert entry is not None and json.loads(entry.payload) == {"who": "alice"}
        assert await table.get_entry(info(url, {"Authorization": "Bearer alice"})) is None  # key differs


# ----------------------------------------------------------------------------------------------------------------
# repository names that differ only in case
# ----------------------------------------------------------------------------------------------------------------
def test_names_differing_only_in_case_are_refused(backend: Backend) -> None:
    cache = backend.cache(json_settings("items"))
    with pytest.raises(RepositoryNameError, match=r"'ITEMS' clashes with the repository 'items'") as caught:
        cache.create_repository(json_settings("ITEMS"))
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, CacheError)
    assert list(cache) == ["items"]
    with pytest.raises(CacheError, match="already exists"):
        cache.create_repository(json_settings("items"))


async def test_a_table_of_another_case_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "case.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    cache.create_repository(json_settings("items"))
    async with cache:
        pass
    other = SQLiteCache.connect_with_path(path)
    other.create_repository(json_settings("Items"))
    with pytest.raises(RepositoryNameError, match=r"'Items' clashes with the table 'items'"):
        await other.__aenter__()
    assert other.closed


# ----------------------------------------------------------------------------------------------------------------
# planted entries larger than the cap
# ----------------------------------------------------------------------------------------------------------------
def _plant_oversized(backend: Backend, cache: Any, id_: str, size: int) -> None:
    """Store, behind the cache's back, an entry for ("GET", id_) whose payload is ``size`` bytes of JSON: a plain
    row in SQLite, a zlib bomb (a few KiB inflating to ``size``) in Redis."""
    payload = b"[" + b"0," * ((size - 2) // 2) + b"0]"
    if backend.kind == "sqlite":
        raw_execute(
            backend.path,
            'INSERT OR REPLACE INTO "items" ("method", "id", "cached_at", "expires_at", "payload", '
            '"credential_digest") VALUES (?, ?, ?, ?, ?, ?)',
            ("GET", id_, "2000-01-01T00:00:00.000000+00:00", "2999-01-01T00:00:00.000000+00:00", payload.decode(), ""),
        )
        return
    name = cache["items"].entry_key(("GET", id_))
    bomb = zlib.compress(payload, 9)
    assert len(bomb) < size // 100
    client = sync_client(backend.redis_url)
    try:
        client.hset(name, mapping={"p": bomb, "f": "1", "c": ""})
    finally:
        client.close()


async def test_an_entry_over_the_size_cap_is_a_logged_miss(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    cache = backend.cache(max_entry_size=64 * 1024)
    async with cache:
        table = cache["items"]
        await table.save_response((("GET", "small"), {"fits": True}))
        _plant_oversized(backend, cache, "big", 4 * 1024 * 1024)
        with caplog.at_level(logging.WARNING, logger="aiorequestful.cache.backend.base"):
            assert await table.get_entry(("GET", "big")) is None
            assert await table.get_response(("GET", "big")) is None
            assert [key async for key, _ in table] == [("GET", "small")]
        assert await table.get_response(("GET", "small")) == {"fits": True}
    warnings = [record.getMessage() for record in caplog.records if "max_entry_size" in record.getMessage()]
    assert len(warnings) == 1, warnings  # once per key, though it was looked up three times
    assert "('GET', 'big')" in warnings[0] or '["GET","big"]' in warnings[0], warnings

    lifted = backend.cache(max_entry_size=None)
    async with lifted:
        assert len(await lifted["items"].get_response(("GET", "big"))) == 2 * 1024 * 1024


async def test_the_default_cap_is_the_shared_body_limit(backend: Backend) -> None:
    from aiorequestful.limits import DEFAULT_MAX_BODY_SIZE

    cache = backend.cache()
    assert cache.max_entry_size == DEFAULT_MAX_BODY_SIZE == cache["items"].max_entry_size
    with pytest.raises(ValueError, match="max_entry_size"):
        backend.cache(max_entry_size=0)


async def test_a_response_over_the_cap_is_not_stored(
    server: tuple[URL, web.Application], backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    base, app = server
    cache = backend.cache(max_entry_size=10)
    async with cache, CachedSession(cache=cache) as session:
        with caplog.at_level(logging.WARNING):
            for _ in range(2):
                cached, body = await fetch(session, base / "items" / "large")
                assert not cached and body["id"] == "large"
    assert app[HITS]["large"] == 2
    assert any("not storing it" in record.getMessage() for record in caplog.records)


# ----------------------------------------------------------------------------------------------------------------
# SQLite: unreadable expiry stamps, unusable files, locks held by other processes, file modes, older schemas
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stamp", ["not a date", "9999-99-99T99:99:99", "zzzz"])
async def test_a_garbage_expiry_stamp_counts_as_expired(tmp_path: Path, stamp: str) -> None:
    path = tmp_path / "stamps.sqlite"
    cache = SQLiteCache.connect_with_path(path)
    table = cache.create_repository(json_settings())
    async with cache:
        await table.save_response((("GET", "bad"), {"a": 1}))
        await table.save_response((("GET", "good"), {"b": 2}))
        raw_execute(path, "UPDATE items SET expires_at = ? WHERE id = 'bad'", (stamp,))
        assert await table.get_response(("GET", "bad")) is None
        assert await table.get_entry(("GET", "bad")) is None
        assert not await table.contains(("GET", "bad"))
        assert [key async for key, _ in table] == [("GET", "good")]
        assert (await table.count(), await table.count(include_expired=False)) == (2, 1)
        assert await table.clear(expired_only=True) == 1
        assert await table.count() == 1 and await table.get_response(("GET", "good")) == {"b": 2}


async def test_a_file_that_is_not_a_database_degrades_to_uncached_with_one_warning(
    server: tuple[URL, web.Application], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aiorequestful.request import RequestHandler
    from aiorequestful.response.payload import JSONPayloadHandler

    base, app = server
    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"this is not an SQLite database header " * 200)
    cache = SQLiteCache.connect_with_path(path, repository_getter=pick_items)
    cache.create_repository(json_settings())
    handler = RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler())
    with caplog.at_level(logging.WARNING):
        async with handler:
            for _ in range(3):
                assert (await handler.get(base / "items" / "n"))["id"] == "n"
    assert app[HITS]["n"] == 3  # every request went to the network, none was lost
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and "without a cache" in warnings[0], warnings
    assert path.read_bytes().startswith(b"this is not")  # the file is left as it was


_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
connection.close()
print("released", flush=True)
"""


async def test_a_lock_held_by_another_process_does_not_stall_requests(
    server: tuple[URL, web.Application], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    base, app = server
    path = tmp_path / "locked.sqlite"
    cache = SQLiteCache.connect_with_path(path, repository_getter=pick_items)
    cache.create_repository(json_settings())
    async with cache, CachedSession(cache=cache) as session:
        await fetch(session, base / "items" / "before")  # stored before the lock
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _HOLDER, str(path), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"locked\n"
            with caplog.at_level(logging.WARNING):
                # A bound only so that a regression fails instead of hanging for the minute a direct save waits.
                cached, body = await asyncio.wait_for(fetch(session, base / "items" / "during"), 10)
                assert not cached and body["id"] == "during"
                hit, _ = await asyncio.wait_for(fetch(session, base / "items" / "before"), 10)
                assert hit  # under WAL, reads go on while another process writes
            assert holder.returncode is None  # the lock was held all along
            assert any("Could not cache the response" in r.getMessage() for r in caplog.records)
        finally:
            holder.stdin.write(b"\n")
            await holder.stdin.drain()
            assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"released\n"
            await holder.wait()
        for _ in range(2):  # once the lock is gone, saving works again
            await fetch(session, base / "items" / "during")
    assert app[HITS]["during"] == 2 and app[HITS]["before"] == 1


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
async def test_database_files_are_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    import os
    import stat

    path = tmp_path / "private.sqlite"
    previous = os.umask(umask)
    try:
        cache = SQLiteCache.connect_with_path(path)
        table = cache.create_repository(json_settings())
        async with cache:
            await table.save_response((("GET", "1"), {"a": 1}))
            modes = {
                file.name: stat.S_IMODE(os.stat(file).st_mode)
                for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
            }
    finally:
        os.umask(previous)
    assert modes == {"private.sqlite": 0o600, "private.sqlite-wal": 0o600, "private.sqlite-shm": 0o600}


async def test_a_table_of_the_previous_schema_is_migrated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A table whose primary key lacks the credential digest (as the previous version made them) is rebuilt:
    rows stored without credentials are kept, rows stored with (old-style) digests are dropped."""
    path = tmp_path / "previous.sqlite"
    later = "2999-01-01T00:00:00.000000+00:00"
    raw_execute(
        path,
        'CREATE TABLE "items" ("method" VARCHAR(7) NOT NULL, "id" VARCHAR(255) NOT NULL, "name" TEXT, '
        '"cached_at" TIMESTAMP NOT NULL, "expires_at" TIMESTAMP NOT NULL, "payload" TEXT, '
        '"response_status" INTEGER, "response_reason" TEXT, "response_headers" TEXT, '
        '"credential_digest" TEXT NOT NULL DEFAULT \'\', PRIMARY KEY ("method", "id"))',
    )
    for id_, digest in (("public", ""), ("private", "0f" * 32)):
        raw_execute(
            path,
            'INSERT INTO "items" ("method", "id", "cached_at", "expires_at", "payload", "response_status", '
            '"credential_digest") VALUES (?, ?, ?, ?, ?, ?, ?)',
            ("GET", id_, later, later, json.dumps({"id": id_}), 203, digest),
        )
    for attempt in range(2):
        cache = SQLiteCache.connect_with_path(path)
        table = cache.create_repository(json_settings())
        with caplog.at_level(logging.INFO, logger="aiorequestful.cache.backend.base"):
            async with cache:
                entry = await table.get_entry(("GET", "public"))
                assert entry is not None and entry.status == 203
                assert await table.count() == 1 + attempt  # the old-style private row is gone
                await table.save_response((("GET", f"new-{attempt}"), {"n": attempt}))
    migrated = [r.getMessage() for r in caplog.records if "migrated" in r.getMessage()]
    assert len(migrated) == 1 and "kept 1" in migrated[0] and "dropped 1" in migrated[0]
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        info_rows = connection.execute("PRAGMA table_info(items)").fetchall()
        primary = [row[1] for row in sorted(info_rows, key=lambda row: row[5]) if row[5]]
        assert primary == ["method", "id", "credential_digest"]
        assert connection.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 3
    finally:
        connection.close()


_READER_THEN_WRITER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN")
connection.execute('SELECT COUNT(*) FROM "items"').fetchall()  # a shared lock: the file cannot turn to WAL
print("reading", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
connection.execute("BEGIN EXCLUSIVE")  # in rollback-journal mode this keeps readers out too
print("locked", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
connection.close()
print("released", flush=True)
"""


async def test_a_lookup_that_cannot_read_a_locked_file_is_a_prompt_miss(
    server: tuple[URL, web.Application], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file another program keeps in rollback-journal mode: there a writer's lock blocks reads as well."""
    import sqlite3
    import sys

    base, app = server
    path = tmp_path / "rollback.sqlite"
    cache = SQLiteCache.connect_with_path(path, repository_getter=pick_items)
    cache.create_repository(json_settings())
    async with cache, CachedSession(cache=cache) as session:
        await fetch(session, base / "items" / "kept")
    plain = sqlite3.connect(path, isolation_level=None)
    assert plain.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    plain.close()

    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _READER_THEN_WRITER,
        str(path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdin is not None and holder.stdout is not None

    async def step(expected: bytes) -> None:
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == expected  # type: ignore[union-attr]

    try:
        await step(b"reading\n")
        cache = SQLiteCache.connect_with_path(path, repository_getter=pick_items)
        cache.create_repository(json_settings())
        async with cache, CachedSession(cache=cache) as session:
            holder.stdin.write(b"\n")
            await step(b"locked\n")
            with caplog.at_level(logging.WARNING):
                # Bounds only so that a regression fails instead of hanging for the minute direct calls wait.
                for hit in (2, 3):
                    cached, body = await asyncio.wait_for(fetch(session, base / "items" / "kept"), 10)
                    assert not cached and body["hit"] == hit  # the stored entry could not be read in time: a miss
            assert holder.returncode is None  # the lock was held all along
            locked = [r.getMessage() for r in caplog.records if "locked by another process" in r.getMessage()]
            assert len(locked) == 1, locked  # one line for the episode, not one per request
            holder.stdin.write(b"\n")
            await step(b"released\n")
            with caplog.at_level(logging.INFO, logger="aiorequestful.cache.backend.base"):
                cached, _ = await fetch(session, base / "items" / "kept")
            assert cached
            assert any("can be read again" in r.getMessage() for r in caplog.records)
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()
    assert app[HITS]["kept"] == 3


async def test_caches_opened_at_once_on_a_new_store_agree_on_the_digest_key(backend: Backend) -> None:
    """Fleet members starting together: the first key written is everyone's (INSERT OR IGNORE / SET NX)."""
    caches = [backend.cache() for _ in range(4)]
    await asyncio.gather(*(cache.__aenter__() for cache in caches))
    try:
        request = info("http://127.0.0.1/items/k", {"X-API-Key": "shared-key"})
        scopes = await asyncio.gather(*(cache["items"]._scope(request) for cache in caches))
        assert len(set(scopes)) == 1 and scopes[0] != ""
    finally:
        for cache in caches:
            await cache.__aexit__(None, None, None)
