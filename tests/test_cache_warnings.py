# SPDX-License-Identifier: MIT
"""A cache set up so that it would never store anything says so once, instead of silently caching nothing."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from yarl import URL

from aiorequestful.cache.backend.base import ResponseRepositorySettings
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler


class Items(ResponseRepositorySettings):
    @property
    def fields(self) -> tuple[str, ...]:
        return ("id",)

    def get_key(self, method: str, url: Any, **_: Any) -> tuple[str | None]:
        return (URL(url).name,)

    @staticmethod
    def get_name(payload: Any) -> str | None:
        return None


def app() -> web.Application:
    async def item(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    application = web.Application()
    application.router.add_get("/{kind}/{id}", item)
    return application


def cache_warnings(caplog: Any) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aiorequestful.cache.session" and r.levelno == logging.WARNING
    ]


async def crawl(cache: SQLiteCache, base: URL, paths: list[str]) -> RequestHandler[Any, Any]:
    handler = RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler())
    async with handler:
        for path in paths:
            await handler.get(base.join(URL(path)))
    return handler


async def test_a_cache_without_repository_getter_warns_once(serve, tmp_path, caplog) -> None:
    base = await serve(app())
    cache = SQLiteCache.connect_with_path(tmp_path / "c")
    cache.create_repository(Items(name="items"))
    await crawl(cache, base, ["items/1", "items/2", "items/3"])
    (message,) = cache_warnings(caplog)
    assert "has no repository_getter: no response is stored in it or served from it" in message
    assert str(tmp_path / "c") in message


async def test_a_getter_that_matches_no_url_warns_once_naming_the_request(serve, tmp_path, caplog) -> None:
    base = await serve(app())
    cache = SQLiteCache.connect_with_path(tmp_path / "c", repository_getter=lambda c, url: None)
    cache.create_repository(Items(name="items"))
    await crawl(cache, base, ["items/1?token=SECRET", "items/2"])
    (message,) = cache_warnings(caplog)
    assert f"No repository of cache {str(tmp_path / 'c.sqlite')!r} matches GET {base}/items/1" in message
    assert "SECRET" not in message


async def test_a_getter_that_matches_some_urls_is_quiet(serve, tmp_path, caplog) -> None:
    base = await serve(app())

    def pick(cache: SQLiteCache, url: Any) -> Any:
        return cache.get("items") if URL(url).path.startswith("/items/") else None

    cache = SQLiteCache.connect_with_path(tmp_path / "c", repository_getter=pick)
    cache.create_repository(Items(name="items"))
    handler = await crawl(cache, base, ["items/1", "pages/1", "items/1", "pages/2"])
    assert cache_warnings(caplog) == []
    assert handler.stats.cache_hits == 1
