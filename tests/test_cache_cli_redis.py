# SPDX-License-Identifier: MIT
"""``python -m aiorequestful.cache redis://...``: list, show, stats and purge on a real Redis cache, written by a
real RedisCache (through CachedSession against a local server, and by direct saves), also while a crawler keeps
writing; clear refusals (unreachable server, unknown cache, vacuum); a password in the URL is never shown."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from yarl import URL

from aiorequestful.cache.backend import redis as redis_backend
from aiorequestful.cache.backend.redis import RedisCache, RedisTable
from aiorequestful.cache.cli import main
from aiorequestful.cache.session import CachedSession
from aiorequestful.limits import DEFAULT_MAX_BODY_SIZE
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.shared import RedisConnection

from .cache_support import VersionSettings, json_settings, make_app, pick_items
from .redis_support import (  # noqa: F401 - fixtures
    RedisServer,
    dedicated_redis_fixture,
    free_port,
    redis_namespace_fixture,
    redis_url_fixture,
    sync_client,
)

TOKENS = ("alice-token-8f3a", "bob-token-c41d")
PASSWORD = "s3cret-p%40ss"  # a throw-away server's password; "%40" is an "@" in the URL


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def member(*key: Any) -> str:
    return json.dumps(list(key), separators=(",", ":"))


@pytest.fixture
def raw(redis_url: str) -> Any:
    client = sync_client(redis_url)
    yield client
    client.close()


async def populate(url: str, namespace: str, base: URL | None) -> RedisCache:
    """The cache every test reads: items 1-5 and 7 (for two users) through CachedSession, a large compressible
    item and a version entry saved directly."""
    cache = RedisCache.connect(
        RedisConnection(url, namespace=namespace),
        cache_name="crawl",
        repository_getter=pick_items,
        expire=timedelta(hours=1),
    )
    items = cache.create_repository(json_settings())
    versions = cache.create_repository(VersionSettings(name="versions", payload_handler=JSONPayloadHandler()))
    async with cache:
        if base is not None:
            async with CachedSession(cache=cache) as session:
                for i in range(1, 6):
                    async with session.get(base / "items" / str(i)) as response:
                        assert response.status == 200
                for token in TOKENS:
                    async with session.get(base / "items" / "7", headers={"Authorization": f"Bearer {token}"}):
                        pass
        big = {"items": [{"id": i, "title": f"Item number {i}"} for i in range(300)], "title": "Big"}
        await items.save_response((("GET", "big"), big))
        await versions.save_response((("GET", "a", 2), {"v": 2}))
    return cache


@pytest.fixture
async def crawl(serve: Any, redis_url: str, redis_namespace: str, raw: Any) -> AsyncIterator[RedisCache]:
    """A cache written by a crawl, in which items 4 and 5 have expired since (Redis dropped their hashes; their
    index members are not tidied yet, as after a TTL ends with no save in the repository since)."""
    cache = await populate(redis_url, redis_namespace, await serve(make_app()))
    table = cache["items"]
    for i in ("4", "5"):
        raw.zadd(table.index_key, {member("GET", i): 1000})
        raw.delete(table.entry_key(("GET", i)))
    yield cache
    await cache.connection.aclose()


def target(redis_url: str, namespace: str, *rest: str) -> list[str]:
    return [redis_url, "--namespace", namespace, "--cache-name", "crawl", *rest]


# ----------------------------------------------------------------------------------------------------------------
# the commands
# ----------------------------------------------------------------------------------------------------------------
async def test_stats_counts_entries_expired_and_bytes(crawl: RedisCache, redis_url: str, redis_namespace: str) -> None:
    code, out, err = run(*target(redis_url, redis_namespace, "stats", "--json"))
    assert code == 0, err
    stats = json.loads(out)
    by_name = {row["repository"]: row for row in stats["repositories"]}
    assert set(by_name) == {"items", "versions"}
    items = by_name["items"]
    assert (items["entries"], items["live"], items["expired"]) == (8, 6, 2)  # 1-5, 7 twice, big; 4 and 5 expired
    assert by_name["versions"]["entries"] == 1
    assert (stats["entries"], stats["live"], stats["expired"]) == (9, 7, 2)
    assert stats["payload_bytes"] == sum(row["payload_bytes"] for row in stats["repositories"]) > 0
    assert stats["server"] == redis_url and stats["cache_name"] == "crawl" and stats["namespace"] == redis_namespace
    assert items["oldest"] <= items["newest"]
    code, text, _ = run(*target(redis_url, redis_namespace, "stats"))
    assert code == 0 and "total: 9 entries (7 live, 2 expired)" in text
    assert "purge --expired tidies the index" in text


async def test_list_shows_keys_scopes_status_ttl_and_names(
    crawl: RedisCache, redis_url: str, redis_namespace: str
) -> None:
    code, out, err = run(*target(redis_url, redis_namespace, "list", "--json"))
    assert code == 0, err
    rows = json.loads(out)
    items = [row for row in rows if row["repository"] == "items"]
    assert [row["key"] for row in items] == [["GET", k] for k in ("1", "2", "3", "4", "5", "7", "7", "big")]
    assert [row["key"] for row in rows if row["repository"] == "versions"] == [["GET", "a", 2]]
    by_id = {row["key"][1]: row for row in items if row["key"][1] != "7"}
    assert {k for k, row in by_id.items() if row["expired"]} == {"4", "5"}
    assert by_id["1"]["name"] == "Item 1" and by_id["1"]["status"] == 200 and by_id["1"]["bytes"] > 0
    assert by_id["1"]["scope"] == "no credentials"
    assert 0 < by_id["1"]["ttl_ms"] <= 3600 * 1000 and by_id["4"]["ttl_ms"] == 0
    assert by_id["big"]["compressed"] and not by_id["1"]["compressed"]
    assert by_id["1"]["cached_at"] < by_id["1"]["expires_at"]
    scopes = [row["scope"] for row in items if row["key"][1] == "7"]
    assert len(set(scopes)) == 2 and all(s.startswith("credentials ") and len(s) == 24 for s in scopes)
    assert not any(token in out for token in TOKENS) and "Bearer" not in out

    code, text, _ = run(*target(redis_url, redis_namespace, "list", "--repository", "items", "--expired"))
    assert code == 0
    lines = text.splitlines()
    assert lines[0].split() == ["repository", "key", "name", "status", "bytes", "cached_at", "expires_at", "ttl",
                                "expired", "scope"]  # fmt: skip
    assert [line.split()[1] for line in lines[1:]] == ["GET/4", "GET/5"]
    code, text, _ = run(*target(redis_url, redis_namespace, "list", "--limit", "2"))
    assert code == 0
    assert [line.split()[:2] for line in text.splitlines()[1:]] == [
        ["items", "GET/1"],
        ["items", "GET/2"],
        ["versions", "GET/a/2"],
    ]


async def test_show_prints_metadata_headers_and_the_payload(
    crawl: RedisCache, redis_url: str, redis_namespace: str
) -> None:
    code, out, err = run(*target(redis_url, redis_namespace, "show", "items", "3"))
    assert code == 0, err
    assert "name:        Item 3" in out and "status:      200" in out and "scope:       no credentials" in out
    assert "headers:\n" in out and "  X-Item: 3\n" in out and "Content-Type: application/json" in out
    assert "Set-Cookie" not in out and "secret-session-id" not in out and "WWW-Authenticate" not in out
    assert '"title": "Item 3"' in out

    code, out, _ = run(*target(redis_url, redis_namespace, "show", "items", "big", "--json"))
    assert code == 0
    (entry,) = json.loads(out)
    assert "zlib" in entry["stored"] and json.loads(entry["payload"])["title"] == "Big"  # inflated

    code, out, _ = run(*target(redis_url, redis_namespace, "show", "items", "7", "--json"))
    assert code == 0
    found = json.loads(out)
    assert len(found) == 2 and len({entry["scope"] for entry in found}) == 2
    assert len({json.loads(entry["payload"])["user"] for entry in found}) == 2  # each user's own response
    assert not any(token in out for token in TOKENS) and "Bearer" not in out

    code, out, _ = run(*target(redis_url, redis_namespace, "show", "versions", "a", "2"))
    assert code == 0 and '"v": 2' in out  # a number key part is typed as the user types it

    code, out, _ = run(*target(redis_url, redis_namespace, "show", "items", "4"))
    assert code == 0 and "expired:     yes" in out and "gone (Redis dropped" in out and "<no payload>" in out


async def test_show_inflates_within_the_size_limit_and_reports_corrupt_payloads(
    crawl: RedisCache, redis_url: str, redis_namespace: str, raw: Any
) -> None:
    table = crawl["items"]
    bomb = zlib.compress(b"x" * (DEFAULT_MAX_BODY_SIZE + 1), 9)  # about 32 KiB that would inflate past the limit
    raw.hset(table.entry_key(("GET", "1")), mapping={"p": bomb, "f": str(redis_backend.FLAG_ZLIB)})
    raw.hset(table.entry_key(("GET", "2")), mapping={"p": b"not zlib", "f": str(redis_backend.FLAG_ZLIB)})
    code, out, err = run(*target(redis_url, redis_namespace, "show", "items", "1"))
    assert code == 0, err
    assert f"larger than the limit of {DEFAULT_MAX_BODY_SIZE} bytes" in out and len(out) < 10_000
    code, out, _ = run(*target(redis_url, redis_namespace, "show", "items", "2"))
    assert code == 0 and "<corrupt payload: error:" in out


async def test_a_key_of_another_type_in_place_of_an_entry_does_not_stop_the_listing(
    crawl: RedisCache, redis_url: str, redis_namespace: str, raw: Any
) -> None:
    entry = crawl["items"].entry_key(("GET", "3"))
    raw.delete(entry)
    raw.set(entry, b"written by something else")  # a string, where a hash should be
    code, out, err = run(*target(redis_url, redis_namespace, "list", "--json"))
    assert code == 0, err
    rows = {row["key"][1]: row for row in json.loads(out) if row["repository"] == "items"}
    assert rows["3"]["bytes"] == 0 and rows["3"]["name"] is None and rows["2"]["name"] == "Item 2"
    assert run(*target(redis_url, redis_namespace, "stats"))[0] == 0
    code, out, err = run(*target(redis_url, redis_namespace, "show", "items", "3"))
    assert code == 0 and "<no payload>" in out, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("show", "items", "99"), "No entry GET/99 in repository 'items'"),
        (("show", "items", "1", "2"), "No entry GET/1/2 in repository 'items' (its keys have 1 part(s) after the"),
        (("show", "nope", "1"), "No repository 'nope' in cache 'crawl'"),
        (("list", "--repository", "nope"), "(repositories: items, versions)"),
        (("purge", "--all", "--repository", "nope"), "No repository 'nope'"),
        (("vacuum",), "vacuum is for SQLite cache files"),
        (("--busy-timeout", "1", "stats"), "--busy-timeout is for SQLite cache files"),
        (("--timeout", "0", "stats"), "--timeout must be a positive number of seconds"),
        (("list", "--limit", "0"), "--limit must be at least 1"),
    ],
)
async def test_bad_keys_names_and_commands_are_refused_clearly(
    crawl: RedisCache, redis_url: str, redis_namespace: str, raw: Any, argv: tuple[str, ...], message: str
) -> None:
    before = sorted(raw.scan_iter(match=f"{redis_namespace}:*"))
    code, out, err = run(redis_url, "--namespace", redis_namespace, "--cache-name", "crawl", *argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1
    assert sorted(raw.scan_iter(match=f"{redis_namespace}:*")) == before  # nothing purged or created


async def test_purge_expired_tidies_the_index_and_keeps_live_entries(
    crawl: RedisCache, redis_url: str, redis_namespace: str, raw: Any
) -> None:
    code, out, err = run(*target(redis_url, redis_namespace, "purge", "--expired"))
    assert code == 0, err
    assert "items: removed 2 expired entries" in out and "versions: removed 0 expired entries" in out
    assert "total: removed 2 expired entries" in out
    assert raw.zcard(crawl["items"].index_key) == 6
    stats = json.loads(run(*target(redis_url, redis_namespace, "stats", "--json"))[1])
    assert (stats["entries"], stats["expired"]) == (7, 0)
    assert await crawl["items"].get_response(("GET", "3")) is not None


async def test_purge_all_of_one_repository_deletes_its_entries(
    crawl: RedisCache, redis_url: str, redis_namespace: str, raw: Any
) -> None:
    code, out, err = run(*target(redis_url, redis_namespace, "purge", "--all", "--repository", "items"))
    assert code == 0, err
    assert "items: removed 6 entries" in out  # 4 and 5 were gone already: their members only are dropped
    assert "versions" not in out
    assert not [key for key in raw.scan_iter(match=f"{redis_namespace}:cache:{{crawl/items}}:*")]
    assert await crawl["versions"].get_response(("GET", "a", 2)) == {"v": 2}
    assert await crawl["items"].count() == 0
    code, text, err = run(*target(redis_url, redis_namespace, "stats"))  # the repository is gone now
    assert code == 0 and "items" not in text and "versions" in text


async def test_an_entry_whose_time_ended_counts_as_expired(redis_url: str, redis_namespace: str, raw: Any) -> None:
    connection = RedisConnection(redis_url, namespace=redis_namespace)
    short = RedisTable(connection, json_settings(), expire=timedelta(milliseconds=300), cache_name="crawl")
    long = RedisTable(connection, json_settings(), expire=timedelta(hours=1), cache_name="crawl")
    try:
        await long.save_response((("GET", "1"), {"a": 1}))
        await short.save_response((("GET", "2"), {"a": 2}))
        entry = short.entry_key(("GET", "2"))
        deadline = asyncio.get_running_loop().time() + 30
        while raw.pttl(entry) != -2:  # until Redis itself has dropped the entry
            assert asyncio.get_running_loop().time() < deadline, "Redis did not expire the entry"
            await asyncio.sleep(0.05)
    finally:
        await connection.aclose()
    stats = json.loads(run(*target(redis_url, redis_namespace, "stats", "--json"))[1])
    assert (stats["entries"], stats["live"], stats["expired"]) == (2, 1, 1)
    rows = json.loads(run(*target(redis_url, redis_namespace, "list", "--expired", "--json"))[1])
    assert [row["key"] for row in rows] == [["GET", "2"]]


async def test_any_cache_and_repository_name_is_found(redis_url: str, redis_namespace: str) -> None:
    # Names that are quoted in the keys (a slash, braces, glob characters, a colon, non-ASCII) come back as given.
    names = ["a/b", "brace}{s", "glob*?[x]", "co:lon", "ünïcode ✓"]
    connection = RedisConnection(redis_url, namespace=redis_namespace)
    try:
        for name in names:
            await RedisTable(connection, json_settings(name), cache_name="odd/*cache").save_response((("GET", "1"), {}))
        await RedisTable(connection, json_settings("other"), cache_name="odd").save_response((("GET", "1"), {}))
    finally:
        await connection.aclose()
    code, out, err = run(redis_url, "--namespace", redis_namespace, "--cache-name", "odd/*cache", "stats", "--json")
    assert code == 0, err
    assert [row["repository"] for row in json.loads(out)["repositories"]] == sorted(names)
    code, out, _ = run(redis_url, "--namespace", redis_namespace, "--cache-name", "odd/*cache", "show", "a/b", "1")
    assert code == 0 and "repository:  a/b" in out


async def test_a_namespace_with_glob_characters_is_matched_literally(redis_url: str, redis_namespace: str) -> None:
    # Both namespaces are under the test's own, so the fixture deletes their keys afterwards.
    for namespace, name in ((f"{redis_namespace}:*", "star"), (f"{redis_namespace}:x", "x")):
        connection = RedisConnection(redis_url, namespace=namespace)
        try:
            await RedisTable(connection, json_settings(name)).save_response((("GET", "1"), {}))
        finally:
            await connection.aclose()
    code, out, err = run(redis_url, "--namespace", f"{redis_namespace}:*", "stats", "--json")
    assert code == 0, err
    assert [row["repository"] for row in json.loads(out)["repositories"]] == ["star"]


# ----------------------------------------------------------------------------------------------------------------
# refusals
# ----------------------------------------------------------------------------------------------------------------
def test_unreachable_server_is_one_line_without_the_password() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"  # nothing listens there
    result = subprocess.run(
        [sys.executable, "-m", "aiorequestful.cache", url, "stats"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: Cannot reach Redis at redis://") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr and "s3cret" not in result.stderr


async def test_unknown_cache_name_is_refused_and_nothing_is_created(
    crawl: RedisCache, redis_url: str, redis_namespace: str, raw: Any
) -> None:
    before = sorted(raw.scan_iter(match=f"{redis_namespace}:*"))
    for command in (("stats",), ("list",), ("purge", "--all"), ("show", "items", "1")):
        code, out, err = run(redis_url, "--namespace", redis_namespace, "--cache-name", "other", *command)
        assert code == 2 and out == ""
        assert err == (
            f"error: No aiorequestful cache named 'other' at {redis_url} in namespace {redis_namespace!r} "
            "(caches in that namespace: 'crawl')\n"
        )
    code, _, err = run(redis_url, "--namespace", redis_namespace + "-empty", "stats")
    assert code == 2 and "named 'cache'" in err and "(no cache in that namespace)" in err  # the defaults
    assert sorted(raw.scan_iter(match=f"{redis_namespace}*")) == before


def test_without_redis_py_the_cli_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_backend, "redis", None)
    code, out, err = run(f"redis://127.0.0.1:{free_port()}/0", "stats")
    assert (code, out) == (2, "")
    assert err == "error: Redis caches need redis-py: pip install 'aiorequestful[redis]'\n"


# ----------------------------------------------------------------------------------------------------------------
# a password-protected server, a crawler writing meanwhile, and the module entry point
# ----------------------------------------------------------------------------------------------------------------
async def test_password_in_the_url_is_never_shown_and_only_scan_is_used(dedicated_redis: RedisServer) -> None:
    admin = sync_client(dedicated_redis.url)
    admin.config_set("requirepass", PASSWORD.replace("%40", "@"))
    admin.close()
    url = f"redis://:{PASSWORD}@127.0.0.1:{dedicated_redis.port}/0"
    cache = await populate(url, "fleet", None)
    await cache.connection.aclose()
    client = sync_client(url)
    try:
        client.config_resetstat()
        outputs = []
        for command in (("stats", "--json"), ("stats",), ("list",), ("show", "items", "big"), ("purge", "--all")):
            code, out, err = run(url, "--namespace", "fleet", "--cache-name", "crawl", *command)
            assert code == 0, err
            outputs.append(out + err)
        code, out, err = run(url.replace("s3cret", "wrong"), "--namespace", "fleet", "--cache-name", "crawl", "list")
        assert code == 2 and "error: Cannot reach Redis at redis://" in err
        outputs.append(out + err)
        assert not any(secret in text for text in outputs for secret in ("s3cret", "wrong-p", "p@ss", "p%40ss"))
        assert f"at redis://<redacted>@127.0.0.1:{dedicated_redis.port}/0" in outputs[1]
        commands = client.info("commandstats")
        assert "cmdstat_scan" in commands and "cmdstat_zscan" in commands
        assert "cmdstat_keys" not in commands  # never KEYS, which blocks a busy server
        # purge ran the cache's own script (loaded on first use)
        assert client.script_exists(redis_backend.CLEAR_CHUNK_SCRIPT.sha) == [True]
        assert client.dbsize() == 0
    finally:
        client.close()


async def test_reads_and_purge_work_while_a_crawler_writes(
    crawl: RedisCache, redis_url: str, redis_namespace: str, raw: Any
) -> None:
    table = crawl["items"]
    stop = asyncio.Event()
    written = 0

    async def crawler() -> None:
        nonlocal written
        while not stop.is_set():
            await table.save_response((("GET", f"w{written}"), {"title": f"written {written}"}))
            written += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(crawler())
    try:
        while written < 50:  # the crawler is under way
            await asyncio.sleep(0.01)
        at_start = written
        for command in (("stats", "--json"), ("list", "--json"), ("purge", "--expired")):
            code, out, err = await asyncio.to_thread(run, *target(redis_url, redis_namespace, *command))
            assert code == 0, err
            if command[0] == "stats":
                entries = {row["repository"]: row["entries"] for row in json.loads(out)["repositories"]}
                # 6 live entries before; the crawler's first save tidied the two expired members
                assert 6 + at_start <= entries["items"] <= 6 + written
            elif command[0] == "list":
                keys = {row["key"][1] for row in json.loads(out) if row["repository"] == "items"}
                assert {"1", "2", "3", "7", "big"} <= keys
                assert {f"w{i}" for i in range(at_start)} <= keys
    finally:
        stop.set()
        await task
    assert written > at_start  # the crawler kept writing meanwhile
    assert await table.count() == 6 + written  # nothing lost, nothing live purged


async def test_runs_as_a_module(crawl: RedisCache, redis_url: str, redis_namespace: str) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "aiorequestful.cache", *target(redis_url, redis_namespace, "stats")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "total: 9 entries (7 live, 2 expired)" in result.stdout
