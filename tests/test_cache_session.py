# SPDX-License-Identifier: MIT
"""CachedSession against a local aiohttp.web server with a real SQLite file."""

from __future__ import annotations

import asyncio
import inspect
import logging
import subprocess
import sys
import warnings
from http.client import InvalidURL
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientSession, ClientTimeout
from yarl import URL

from aiorequestful.cache.backend.base import ResponseRepositorySettings
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.cache.exception import CacheError
from aiorequestful.cache.response import CachedResponse
from aiorequestful.cache.session import CachedSession
from aiorequestful.response.payload import StringPayloadHandler

from .cache_support import (
    HITS,
    SEEN,
    PublicItemSettings,
    json_settings,
    make_app,
    pick_items,
    raw_execute,
    raw_rows,
    user_of,
)


class AnyMethodSettings(ResponseRepositorySettings):
    """Caches every method, keyed by the path and an optional X-Variant header."""

    @property
    def fields(self) -> tuple[str, ...]:
        return ("id", "variant")

    def get_key(self, method: str, url: Any, headers: Any = None, **_: Any) -> tuple[Any, ...]:
        return (URL(url).path, (headers or {}).get("X-Variant", "-"))

    @staticmethod
    def get_name(payload: Any) -> str | None:
        return None


@pytest.fixture
async def server(serve: Any) -> tuple[URL, Any]:
    app = make_app()
    return await serve(app), app


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "session.sqlite"


@pytest.fixture
def cache(db_path: Path) -> SQLiteCache:
    cache = SQLiteCache.connect_with_path(db_path, repository_getter=pick_items)
    cache.create_repository(json_settings())
    return cache


def any_method_cache(path: Path) -> SQLiteCache:
    cache = SQLiteCache.connect_with_path(path, repository_getter=lambda c, url: c["any"])
    cache.create_repository(AnyMethodSettings(name="any", payload_handler=StringPayloadHandler()))
    return cache


# ----------------------------------------------------------------------------------------------------------------
# hits, misses and what a hit looks like
# ----------------------------------------------------------------------------------------------------------------
async def test_second_request_is_served_from_the_cache_with_the_original_metadata(
    server: tuple[URL, Any], cache: SQLiteCache
) -> None:
    base, app = server
    url = base / "items" / "42" % {"status": "203", "reason": "Partial Info"}
    async with CachedSession(cache=cache) as session:
        async with session.get(url) as first:
            assert type(first) is aiohttp.ClientResponse
            assert await first.json() == {"id": "42", "title": "Item 42", "hit": 1}
        async with session.get(url) as second:
            assert isinstance(second, CachedResponse) and isinstance(second, aiohttp.ClientResponse)
            assert await second.json() == {"id": "42", "title": "Item 42", "hit": 1}
            assert (second.status, second.reason, second.ok) == (203, "Partial Info", True)
            assert second.headers["X-Item"] == "42"
            assert second.headers["ETag"] == '"42-v1"'
            assert second.content_type == "application/json"
            assert second.links["next"]["url"] == base / "items" / "42" % {"page": "2"}
            # never the request's headers, never session secrets
            for secret in ("Set-Cookie", "WWW-Authenticate", "Authorization", "Cookie"):
                assert secret not in second.headers
            assert int(second.headers["Content-Length"]) == len(await second.read())
            assert second.url == url and second.method == "GET"
            assert second.request_info.url == url
    assert app[HITS]["42"] == 1


async def test_awaited_request_is_stored_and_persist_false_only_reads(
    server: tuple[URL, Any], cache: SQLiteCache
) -> None:
    base, app = server
    async with CachedSession(cache=cache) as session:
        response = await session.request("GET", base / "items" / "1", persist=False)  # awaitable
        assert type(response) is aiohttp.ClientResponse
        response.release()
        response = await session.request(method="GET", url=base / "items" / "1")
        await response.json()
        response.release()
        assert app[HITS]["1"] == 2  # persist=False stored nothing
        cached = await session.request("GET", base / "items" / "1", persist=False)  # but it does read
        assert isinstance(cached, CachedResponse)
        assert (await cached.json())["hit"] == 2
    assert app[HITS]["1"] == 2


async def test_requests_the_getter_does_not_map_are_never_cached(server: tuple[URL, Any], cache: SQLiteCache) -> None:
    base, app = server
    async with CachedSession(cache=cache) as session:
        for _ in range(2):
            async with session.get(base / "echo") as response:
                assert type(response) is aiohttp.ClientResponse
            async with session.post(base / "items" / "9", json={"a": 1}) as response:  # not cacheable (POST)
                assert type(response) is aiohttp.ClientResponse
    assert app[HITS]["echo"] == 2 and app[HITS]["9"] == 2
    assert raw_rows(cache.cache_name, "items") == []


async def test_every_verb_goes_through_the_cache(server: tuple[URL, Any], tmp_path: Path) -> None:
    base, app = server
    async with CachedSession(cache=any_method_cache(tmp_path / "any")) as session:
        verbs = {
            "GET": session.get,
            "POST": session.post,
            "PUT": session.put,
            "PATCH": session.patch,
            "DELETE": session.delete,
            "OPTIONS": session.options,
            "HEAD": session.head,
        }
        for method, call in verbs.items():
            url = base / "items" / method.lower()
            for attempt in range(2):
                async with call(url) as response:
                    assert response.method == method
                    assert isinstance(response, CachedResponse) is (attempt == 1), method  # every verb cached
    assert all(app[HITS][method.lower()] == 1 for method in verbs)


async def test_coroutine_protocol_like_aiohttp(server: tuple[URL, Any], cache: SQLiteCache) -> None:
    base, _ = server
    async with CachedSession(cache=cache) as session:
        responses = await asyncio.gather(*(asyncio.create_task(session.get(base / "items" / str(i))) for i in range(5)))
        for response in responses:
            await response.read()
            response.release()
        assert await cache["items"].count() == 5
        request = session.get(base / "items" / "0")
        request.close()  # never awaited: closed without a "never awaited" warning


# ----------------------------------------------------------------------------------------------------------------
# aiohttp semantics kept: every option, release, per-request values win
# ----------------------------------------------------------------------------------------------------------------
async def test_every_aiohttp_option_is_accepted(server: tuple[URL, Any], cache: SQLiteCache) -> None:
    base, _ = server
    options: dict[str, Any] = {
        "params": {"q": "1"},
        "cookies": {"c": "v"},
        "headers": {"Accept": "application/json"},
        "skip_auto_headers": ["User-Agent"],
        "allow_redirects": True,
        "max_redirects": 3,
        "compress": None,
        "chunked": None,
        "expect100": False,
        "raise_for_status": True,
        "read_until_eof": True,
        "proxy": None,
        "timeout": ClientTimeout(total=10),
        "ssl": True,
        "server_hostname": None,
        "proxy_headers": None,
        "trace_request_ctx": SimpleNamespace(tag="t"),
        "read_bufsize": 2**16,
        "auto_decompress": True,
        "max_line_size": 8190,
        "max_field_size": 8190,
    }
    async with CachedSession(cache=cache) as session:
        for _ in range(2):  # a miss (aiohttp gets every option) then a hit (the options are accepted too)
            async with session.get(base / "items" / "opts", **options) as response:
                assert (await response.json())["hit"] == 1
        async with session.post(base / "echo", data=b"raw", **options) as response:
            assert (await response.json())["query"] == {"q": "1"}


async def test_per_request_headers_win_over_session_defaults(server: tuple[URL, Any], tmp_path: Path) -> None:
    base, app = server
    cache = any_method_cache(tmp_path / "variants")
    async with CachedSession(cache=cache, headers={"X-Variant": "session", "X-Other": "s"}) as session:
        async with session.get(base / "items" / "v", headers={"X-Variant": "mine"}) as response:
            await response.read()
        assert app[SEEN][-1]["X-Variant"] == "mine"  # per-request values win
        async with session.get(base / "items" / "v") as response:
            assert not isinstance(response, CachedResponse)  # another variant: a different key
        async with session.get(base / "items" / "v", headers=[("X-Variant", "mine")]) as response:
            assert isinstance(response, CachedResponse)  # the same key, whatever the header container
    assert sorted(row[0] for row in raw_rows(tmp_path / "variants.sqlite", "any", "variant")) == ["mine", "session"]


async def test_network_response_is_released_when_the_block_ends(server: tuple[URL, Any], cache: SQLiteCache) -> None:
    base, _ = server
    async with CachedSession(cache=cache) as session:
        async with session.get(base / "big" / "items" / "1") as response:
            assert response.connection is not None  # 5 MB, not read
        assert response.connection is None and response.closed  # released
        connector = session.connector
        assert connector is not None
        async with session.get(base / "echo") as response:
            await response.read()


async def test_redirects_and_base_url(server: tuple[URL, Any], cache: SQLiteCache) -> None:
    base, app = server
    async with CachedSession(cache=cache, base_url=base) as session:
        for _ in range(2):
            async with session.get("/redirect/items/5") as response:
                assert (await response.json())["id"] == "5"
        for _ in range(2):
            async with session.get("items/6") as response:
                assert (await response.json())["hit"] == 1
    assert app[HITS]["redirect"] == 1 and app[HITS]["5"] == 1 and app[HITS]["6"] == 1


async def test_invalid_url_and_closed_session(server: tuple[URL, Any], cache: SQLiteCache) -> None:
    base, _ = server
    session = CachedSession(cache=cache)
    async with session:
        with pytest.raises(InvalidURL):
            await session.get("http://[::1")
        async with session.get(base / "items" / "1") as response:
            await response.read()
    with pytest.raises(RuntimeError, match="Session is closed"):
        await session.get(base / "items" / "1")  # even though the answer is cached
    assert cache.closed  # leaving the session left the cache


# ----------------------------------------------------------------------------------------------------------------
# credentials (never shared, never stored)
# ----------------------------------------------------------------------------------------------------------------
async def test_entries_are_never_served_to_other_credentials(
    server: tuple[URL, Any], cache: SQLiteCache, db_path: Path
) -> None:
    base, app = server
    url = base / "items" / "secret"

    async def fetch(session: CachedSession, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
        async with session.get(url, **kwargs) as response:
            return isinstance(response, CachedResponse), await response.json()

    alice = {"headers": {"Authorization": "Bearer alice-token"}}
    bob = {"headers": {"Authorization": "Bearer bob-token"}}
    async with CachedSession(cache=cache) as session:
        assert await fetch(session, **alice) == (
            False,
            {"id": "secret", "title": "Item secret", "hit": 1, "user": user_of("Bearer alice-token")},
        )
        assert (await fetch(session, **alice))[0] is True
        cached, body = await fetch(session, **bob)
        assert (cached, body.get("user")) == (False, user_of("Bearer bob-token"))
        cached, body = await fetch(session)  # no credentials at all
        assert (cached, "user" in body) == (False, False)
        assert (await fetch(session))[0] is True
        cached, body = await fetch(session, **alice)
        # alice's own entry is still there: entries of other credentials live beside it, never replace it
        assert (cached, body["user"], body["hit"]) == (True, user_of("Bearer alice-token"), 1)

    async with CachedSession(cache=cache, headers={"Authorization": "Bearer carol"}) as session:
        cached, body = await fetch(session)  # session-level credentials count too
        assert (cached, body["user"]) == (False, user_of("Bearer carol"))
        assert (await fetch(session))[0] is True

    dump = repr(raw_rows(db_path, "items"))
    for secret in ("alice-token", "bob-token", "carol", "Bearer"):
        assert secret not in dump  # only a digest of the credentials is stored
    assert app[HITS]["secret"] == 4


async def test_basic_auth_and_url_credentials_are_credentials(
    server: tuple[URL, Any], cache: SQLiteCache, db_path: Path
) -> None:
    base, _ = server
    url = base / "items" / "b"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # aiohttp >= 3.14 deprecates auth= / BasicAuth
        auth_one, auth_two = aiohttp.BasicAuth("one", "pw1"), aiohttp.BasicAuth("two", "pw2")
        kinds = []

        async def fetch(session: CachedSession, target: URL, **kwargs: Any) -> None:
            async with session.get(target, **kwargs) as response:
                kinds.append((isinstance(response, CachedResponse), (await response.json()).get("user")))

        async with CachedSession(cache=cache) as session:
            await fetch(session, url, auth=auth_one)
            await fetch(session, url, auth=auth_one)
            await fetch(session, url, auth=auth_two)
            await fetch(session, url.with_user("two").with_password("pw2"))  # the same credentials, in the URL
        async with CachedSession(cache=cache, auth=auth_two) as session:
            await fetch(session, url)  # the session's auth: the same credentials again
        async with CachedSession(cache=cache) as session:
            await fetch(session, url)  # none
    assert kinds == [
        (False, user_of(auth_one.encode())),
        (True, user_of(auth_one.encode())),
        (False, user_of(auth_two.encode())),
        (True, user_of(auth_two.encode())),
        (True, user_of(auth_two.encode())),
        (False, None),
    ]
    assert "pw" not in repr(raw_rows(db_path, "items")) and auth_one.encode() not in repr(raw_rows(db_path, "items"))


async def test_shared_settings_serve_every_caller(server: tuple[URL, Any], db_path: Path) -> None:
    base, app = server
    cache = SQLiteCache.connect_with_path(db_path, repository_getter=pick_items)
    cache.create_repository(json_settings(cls=PublicItemSettings))
    async with CachedSession(cache=cache) as session:
        for token in ("one", "two", None):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with session.get(base / "items" / "pub", headers=headers) as response:
                await response.read()
    assert app[HITS]["pub"] == 1


# ----------------------------------------------------------------------------------------------------------------
# a failing cache costs a miss, never the request
# ----------------------------------------------------------------------------------------------------------------
async def test_broken_storage_falls_back_to_the_network(
    server: tuple[URL, Any], cache: SQLiteCache, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base, app = server
    async with CachedSession(cache=cache) as session:
        # Someone replaced the table with one the cache cannot use: every lookup and save fails.
        raw_execute(db_path, 'DROP TABLE "items"')
        raw_execute(db_path, 'CREATE TABLE "items" ("unrelated" TEXT)')
        with caplog.at_level(logging.WARNING):
            for _ in range(2):
                async with session.get(base / "items" / "1") as response:
                    assert (await response.json())["id"] == "1"
    assert app[HITS]["1"] == 2  # lookups find nothing usable
    messages = [record.getMessage() for record in caplog.records]
    assert any("Could not cache the response" in message for message in messages)


async def test_a_table_dropped_under_a_running_crawl_is_created_again(
    server: tuple[URL, Any], cache: SQLiteCache, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base, app = server
    async with CachedSession(cache=cache) as session:
        async with session.get(base / "items" / "0") as response:
            await response.read()
        raw_execute(db_path, 'DROP TABLE "items"')
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                async with session.get(base / "items" / "1") as response:
                    assert (await response.json())["id"] == "1"
        assert await cache["items"].count() == 1  # saved into the new table
    assert app[HITS]["1"] == 1  # the first request's save worked: the others were hits
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "'items' is missing" in warnings[0], warnings


async def test_corrupt_row_is_refetched_and_repaired(
    server: tuple[URL, Any], cache: SQLiteCache, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base, app = server
    async with CachedSession(cache=cache) as session:
        async with session.get(base / "items" / "c") as response:
            await response.read()
        raw_execute(db_path, "UPDATE items SET payload = ? WHERE id = 'c'", ('{"truncated": [1, 2',))
        with caplog.at_level(logging.WARNING):
            async with session.get(base / "items" / "c") as response:
                assert not isinstance(response, CachedResponse)
                assert (await response.json())["hit"] == 2
        async with session.get(base / "items" / "c") as response:
            assert isinstance(response, CachedResponse) and (await response.json())["hit"] == 2
    assert app[HITS]["c"] == 2
    assert any("corrupt" in record.getMessage() for record in caplog.records)


async def test_partly_consumed_or_undecodable_bodies_are_not_cached(
    server: tuple[URL, Any], cache: SQLiteCache, caplog: pytest.LogCaptureFixture
) -> None:
    base, app = server
    async with CachedSession(cache=cache) as session:
        with caplog.at_level(logging.WARNING):
            async with session.get(base / "items" / "s") as response:
                await response.content.read(5)  # the caller streamed part of the body itself
            async with session.get(base / "html" / "items" / "h") as response:  # not JSON for a JSON repository
                await response.read()
        for name in ("s", "h"):
            path = "items" if name == "s" else "html/items"
            async with session.get(base / path / name) as response:
                assert not isinstance(response, CachedResponse)
        assert await cache["items"].count() == 1  # only the complete "s" body of the second request
    assert app[HITS]["s"] == 2 and app[HITS]["h"] == 2


async def test_text_in_another_charset_is_served_as_utf8(server: tuple[URL, Any], db_path: Path) -> None:
    base, _ = server
    cache = SQLiteCache.connect_with_path(db_path, repository_getter=pick_items)
    cache.create_repository(PublicItemSettings(name="items", payload_handler=StringPayloadHandler()))
    async with CachedSession(cache=cache) as session:
        for _ in range(2):
            async with session.get(base / "latin1" / "items" / "1") as response:
                assert await response.text() == "café"
        assert isinstance(response, CachedResponse)
        assert response.charset == "utf-8" and response.content_type == "text/plain"


# ----------------------------------------------------------------------------------------------------------------
# the class itself
# ----------------------------------------------------------------------------------------------------------------
def test_request_signature_declares_persist() -> None:
    parameters = inspect.signature(CachedSession.request).parameters
    assert list(parameters)[:4] == ["self", "method", "url", "persist"]
    assert parameters["persist"].default is True
    assert parameters["persist"].kind is inspect.Parameter.KEYWORD_ONLY


def test_subclassing_is_quiet_without_patching_aiohttp() -> None:
    # aiohttp's own hook is untouched and still warns for direct subclasses of ClientSession
    assert ClientSession.__dict__["__init_subclass__"].__func__.__qualname__ == "ClientSession.__init_subclass__"
    with pytest.warns(DeprecationWarning, match="discouraged"):

        class Direct(ClientSession):
            pass

    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Mine(CachedSession):
            pass

    assert issubclass(Mine, ClientSession)


async def test_a_cache_that_cannot_open_closes_the_session(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    raw_execute(path.with_suffix(".sqlite"), 'CREATE TABLE "items" ("x" TEXT PRIMARY KEY)')
    cache = SQLiteCache.connect_with_path(path, repository_getter=pick_items)
    cache.create_repository(json_settings())
    session = CachedSession(cache=cache)
    with pytest.raises(CacheError, match="key columns"):
        async with session:
            pass
    assert session.closed and cache.closed


async def test_cache_attribute_set_in_debug_mode_without_warnings(cache: SQLiteCache) -> None:
    assert {"cache", "logger"} <= CachedSession.ATTRS
    session = CachedSession(cache=cache)
    try:
        assert session.cache is cache and session.logger.name == "aiorequestful.cache.session"
    finally:
        await session.close()


async def test_session_used_without_async_with_opens_and_closes_the_cache(
    server: tuple[URL, Any], cache: SQLiteCache
) -> None:
    base, app = server
    session = CachedSession(cache=cache)
    try:
        first = await asyncio.gather(*(session.get(base / "items" / "lazy") for _ in range(10)))
        for response in first:
            await response.read()
            response.release()
        assert not cache.closed  # opened once, on first use, however many tasks asked at once
        response = await session.get(base / "items" / "lazy")
        assert isinstance(response, CachedResponse)
        assert await cache["items"].count() == 1
    finally:
        await session.close()
    assert cache.closed  # closed with the session that opened it
    assert 1 <= app[HITS]["lazy"] <= 10  # tasks that found the cache open after the first save got a hit


def test_no_warnings_in_aiohttp_debug_mode() -> None:
    """In dev mode aiohttp warns about unknown session attributes; CachedSession declares its own (ATTRS)."""
    code = (
        "import asyncio\n"
        "from aiohttp import client\n"
        "from aiorequestful.cache.backend.sqlite import SQLiteCache\n"
        "from aiorequestful.cache.session import CachedSession\n"
        "assert client.DEBUG\n"
        "async def main():\n"
        "    cache = SQLiteCache.connect_with_in_memory_db()\n"
        "    async with CachedSession(cache=cache) as session:\n"
        "        session.cache = cache\n"
        "    assert session.closed and cache.closed\n"
        "asyncio.run(main())\n"
        "print('clean')\n"
    )
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout.strip()) == (0, "clean"), result.stderr


async def test_entries_saved_by_key_get_a_content_type_from_the_payload_handler(
    server: tuple[URL, Any], cache: SQLiteCache
) -> None:
    base, app = server
    async with CachedSession(cache=cache) as session:
        await cache["items"].save_response((("GET", "k"), {"saved": "directly"}))
        async with session.get(base / "items" / "k") as response:
            assert isinstance(response, CachedResponse)
            assert response.content_type == "application/json"
            assert await response.json() == {"saved": "directly"}  # aiohttp's default content-type check passes
    assert app[HITS]["k"] == 0
