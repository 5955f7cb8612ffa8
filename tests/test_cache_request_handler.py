# SPDX-License-Identifier: MIT
"""The cache behind RequestHandler: the documented usage as written, against a local server."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPMethod
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from aiorequestful.cache.backend.base import ResponseRepositorySettings
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import ResponseError
from aiorequestful.response.payload import JSONPayloadHandler

from .cache_support import HITS, make_app, raw_execute, raw_rows, user_of


# -- the documented example, as written ---------------------------------------------------------------------------
class ItemSettings(ResponseRepositorySettings):
    @property
    def fields(self) -> tuple[str, ...]:
        return ("id",)  # SQLite supports id / offset / size

    def get_key(self, method, url, **_) -> tuple[str | None]:  # type: ignore[no-untyped-def]
        if HTTPMethod(method) != HTTPMethod.GET:
            return (None,)  # not cacheable
        parts = URL(url).path.strip("/").split("/")  # /v2/items/<id>
        return (parts[2] if len(parts) >= 3 else None,)

    @staticmethod
    def get_name(payload) -> str | None:  # type: ignore[no-untyped-def]
        return payload.get("title") if isinstance(payload, dict) else None


def pick_repository(cache, url):  # type: ignore[no-untyped-def]
    return cache.get("items") if "/items/" in URL(url).path else None


# ------------------------------------------------------------------------------------------------------------------


@pytest.fixture
async def server(serve: Any) -> tuple[URL, Any]:
    app = make_app()
    return await serve(app), app


async def test_usage_from_the_contract_runs_as_written(
    server: tuple[URL, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, app = server
    monkeypatch.chdir(tmp_path)

    cache = SQLiteCache.connect_with_path(
        "cache/api", repository_getter=pick_repository, expire=timedelta(days=3)
    )  # file: cache/api.sqlite
    cache.create_repository(ItemSettings(name="items"))
    handler = RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler())

    url = f"{base}/v2/items/42"
    async with handler:
        first = await handler.get(url)
        second = await handler.get(url)  # 2nd call is served from SQLite
        assert isinstance(cache["items"].settings.payload_handler, JSONPayloadHandler)  # pushed by the handler
        once = await handler.get(f"{base}/v2/items/43", persist=False)  # reads the cache, stores nothing
        again = await handler.get(f"{base}/v2/items/43", persist=False)
    assert first == second == {"id": "42", "title": "Item 42", "hit": 1}
    assert (once["hit"], again["hit"]) == (1, 2)
    assert app[HITS]["42"] == 1 and app[HITS]["43"] == 2
    assert (tmp_path / "cache" / "api.sqlite").exists()
    assert raw_rows(tmp_path / "cache" / "api.sqlite", "items", "id, name") == [("42", "Item 42")]

    # Direct repository use, as 1.0.20 documents it
    async with cache:
        table = cache["items"]
        await table.save_response((("GET", "42"), {"title": "x"}))
        assert await table.get_response(("GET", "42")) == {"title": "x"}
        assert await table.contains(("GET", "42"))
        assert await table.count(False) == 1
        assert await table.delete_response(("GET", "42"))
        await table.save_response((("GET", "1"), {"title": "y"}))
        assert await table.clear() == 1


async def test_errors_are_not_cached_and_corrupt_rows_do_not_break_the_crawl(
    server: tuple[URL, Any], tmp_path: Path
) -> None:
    base, app = server
    path = tmp_path / "crawl.sqlite"
    cache = SQLiteCache.connect_with_path(path, repository_getter=pick_repository)
    cache.create_repository(ItemSettings(name="items"))
    handler = RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler())
    async with handler:
        for _ in range(2):
            with pytest.raises(ResponseError):
                await handler.get(f"{base}/v2/items/gone", params={"status": "404"})
        assert (await handler.get(f"{base}/v2/items/7"))["hit"] == 1
        raw_execute(path, "UPDATE items SET payload = ? WHERE id = '7'", ("{not json",))
        assert (await handler.get(f"{base}/v2/items/7"))["hit"] == 2  # refetched, not a crash
        assert (await handler.get(f"{base}/v2/items/7"))["hit"] == 2  # and repaired
    assert app[HITS]["gone"] == 2 and app[HITS]["7"] == 2


async def test_handlers_with_different_credentials_share_a_file_but_not_entries(
    server: tuple[URL, Any], tmp_path: Path
) -> None:
    base, app = server
    path = tmp_path / "shared"
    results = {}
    for token in ("alice", "bob", "alice"):
        cache = SQLiteCache.connect_with_path(path, repository_getter=pick_repository)
        cache.create_repository(ItemSettings(name="items"))
        handler = RequestHandler.create(
            cache=cache, payload_handler=JSONPayloadHandler(), headers={"Authorization": f"Bearer {token}"}
        )
        async with handler:
            results.setdefault(token, []).append(await handler.get(f"{base}/v2/items/me"))
    assert results["alice"][0]["user"] == user_of("Bearer alice")
    assert results["bob"][0]["user"] == user_of("Bearer bob")
    assert results["alice"][1]["user"] == user_of("Bearer alice")  # never bob's entry
    assert results["alice"][1]["hit"] == 1  # her own entry: bob's save did not replace it
    assert app[HITS]["me"] == 2
