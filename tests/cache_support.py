# SPDX-License-Identifier: MIT
"""Shared pieces of the cache tests: repository settings, a repository getter and a local test server.

Also imported by the subprocess scripts (``cache_writer_proc.py``), so it must not import pytest fixtures.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web
from yarl import URL

from aiorequestful.cache.backend.base import ResponseRepositorySettings
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.response.payload import JSONPayloadHandler

HITS = web.AppKey("hits", Counter)
SEEN = web.AppKey("seen", list)


class ItemSettings(ResponseRepositorySettings):
    """GET /.../items/<id> keyed by id (as in the documented cache example)."""

    @property
    def fields(self) -> tuple[str, ...]:
        return ("id",)

    def get_key(self, method: str, url: Any, **_: Any) -> tuple[str | None]:
        if str(method).upper() != "GET":
            return (None,)
        parts = URL(url).path.strip("/").split("/")
        return (parts[-1] if len(parts) >= 2 and parts[-2] == "items" else None,)

    @staticmethod
    def get_name(payload: Any) -> str | None:
        return payload.get("title") if isinstance(payload, dict) else None


class PublicItemSettings(ItemSettings):
    """Items whose responses are the same whoever asks: shared across credentials."""

    share_across_credentials = True


class VersionSettings(ResponseRepositorySettings):
    """Keyed by ("id", "version") - the documented example 1.0.20 could not store."""

    @property
    def fields(self) -> tuple[str, ...]:
        return ("id", "version")

    def get_key(self, method: str, url: Any, **_: Any) -> tuple[Any, ...]:
        query = URL(url).query
        return (query.get("id"), int(query["v"]) if "v" in query else None)

    @staticmethod
    def get_name(payload: Any) -> str | None:
        return None


class PageSettings(ResponseRepositorySettings):
    """Keyed by offset then id: fields in an order other than 1.0.20's fixed id/offset/size: every field is stored."""

    @property
    def fields(self) -> tuple[str, ...]:
        return ("offset", "id")

    def get_key(self, method: str, url: Any, **_: Any) -> tuple[Any, ...]:
        query = URL(url).query
        return (int(query.get("offset", 0)), URL(url).path)

    @staticmethod
    def get_name(payload: Any) -> str | None:
        return None


def json_settings(name: str = "items", cls: type[ResponseRepositorySettings] = ItemSettings) -> Any:
    return cls(name=name, payload_handler=JSONPayloadHandler())


def pick_items(cache: Any, url: Any) -> Any:
    """The documented example's repository getter: the "items" table for /items/ URLs, nothing otherwise."""
    return cache.get("items") if "/items/" in URL(url).path else None


def open_cache(path: Path, **kwargs: Any) -> SQLiteCache:
    """A SQLite cache file at ``path`` with the JSON ``items`` repository (``kwargs`` go to the cache)."""
    cache = SQLiteCache.connect_with_path(path, repository_getter=pick_items, **kwargs)
    cache.create_repository(json_settings())
    return cache


def user_of(authorization: str) -> str:
    """The user a test server reports for an ``Authorization`` value."""
    return "user-" + hashlib.sha256(authorization.encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------------------------------
# test server
# ----------------------------------------------------------------------------------------------------------------
async def _item(request: web.Request) -> web.Response:
    item = request.match_info["id"]
    request.app[HITS][item] += 1
    request.app[SEEN].append(dict(request.headers))
    status = int(request.query.get("status", "200"))
    body = {"id": item, "title": f"Item {item}", "hit": request.app[HITS][item]}
    auth = request.headers.get("Authorization")
    if auth is not None:
        body["user"] = user_of(auth)  # a response that differs per user (without echoing the credential)
    return web.json_response(
        body,
        status=status,
        reason=request.query.get("reason"),
        headers={
            "Set-Cookie": "session=secret-session-id; HttpOnly",
            "WWW-Authenticate": 'Bearer realm="x"',
            "X-Item": item,
            "ETag": f'"{item}-v1"',
            "Link": f'</items/{item}?page=2>; rel="next"',
        },
    )


async def _latin1(request: web.Request) -> web.Response:
    request.app[HITS]["latin1"] += 1
    return web.Response(body="café".encode("latin-1"), content_type="text/plain", charset="latin-1")


async def _big(request: web.Request) -> web.Response:
    request.app[HITS]["big"] += 1
    return web.Response(body=b"x" * (5 * 1024 * 1024), content_type="application/octet-stream")


async def _redirect(request: web.Request) -> web.Response:
    request.app[HITS]["redirect"] += 1
    raise web.HTTPFound(f"/items/{request.match_info['id']}")


async def _not_json(request: web.Request) -> web.Response:
    request.app[HITS][request.match_info["id"]] += 1
    return web.Response(text="<html>not json</html>", content_type="text/html")


async def _echo(request: web.Request) -> web.Response:
    request.app[HITS]["echo"] += 1
    return web.json_response(
        {"method": request.method, "headers": dict(request.headers), "query": dict(request.query)},
    )


def make_app() -> web.Application:
    app = web.Application()
    app[HITS] = Counter()
    app[SEEN] = []
    app.router.add_route("*", "/v2/items/{id}", _item)
    app.router.add_route("*", "/items/{id}", _item)
    app.router.add_get("/html/items/{id}", _not_json)
    app.router.add_get("/redirect/items/{id}", _redirect)
    app.router.add_get("/big/items/{id}", _big)
    app.router.add_get("/latin1/items/{id}", _latin1)
    app.router.add_route("*", "/echo", _echo)
    return app


# ----------------------------------------------------------------------------------------------------------------
# raw database access (independent of the code under test)
# ----------------------------------------------------------------------------------------------------------------
def raw_rows(path: Path | str, table: str, columns: str = "*") -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(f'SELECT {columns} FROM "{table}"').fetchall()
    finally:
        connection.close()


def raw_execute(path: Path | str, sql: str, params: tuple[Any, ...] = ()) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(sql, params)
    finally:
        connection.close()


def dumps(value: Any) -> str:
    return json.dumps(value)
