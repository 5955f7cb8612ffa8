# SPDX-License-Identifier: MIT
"""A behaviour server for request-loop tests: each route misbehaves in one documented way and counts hits.

Everything runs on 127.0.0.1 through the ``serve`` fixture. Counters live on the app (``app[HITS]``), keyed
by route and the ``key`` path segment, so one test's traffic never leaks into another's assertions.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from aiohttp import web

HITS = web.AppKey("hits", Counter)
SEEN_HEADERS = web.AppKey("seen_headers", list)
VALID_TOKENS = web.AppKey("valid_tokens", set)


def _count(request: web.Request, name: str) -> int:
    key = (name, request.match_info.get("key", ""))
    request.app[HITS][key] += 1
    return request.app[HITS][key]


async def json_item(request: web.Request) -> web.Response:
    _count(request, "json")
    item = request.match_info["key"]
    return web.json_response({"id": item, "title": f"Item {item}", "tags": ["a", "b"], "price": 1.5})


async def text(request: web.Request) -> web.Response:
    _count(request, "text")
    return web.Response(text="plain text")


async def echo(request: web.Request) -> web.Response:
    _count(request, "echo")
    request.app[SEEN_HEADERS].append(dict(request.headers))
    body = await request.text()
    return web.json_response(
        {
            "method": request.method,
            "query": sorted(request.query.items()),
            "headers": dict(request.headers),
            "body": body,
        }
    )


async def flaky(request: web.Request) -> web.Response:
    """Fail ``fail`` times with ``status`` (default 503), then succeed."""
    hits = _count(request, "flaky")
    fail = int(request.query.get("fail", "1"))
    status = int(request.query.get("status", "503"))
    if hits <= fail:
        return web.Response(status=status, text=f"failure {hits}")
    return web.json_response({"ok": True, "hits": hits})


async def protected(request: web.Request) -> web.Response:
    """401 unless the bearer token is one of the app's valid tokens."""
    _count(request, "protected")
    auth = request.headers.get("Authorization", "")
    if auth.removeprefix("Bearer ") in request.app[VALID_TOKENS]:
        return web.json_response({"ok": True})
    return web.Response(status=401, text="unauthorised")


async def rate_limited(request: web.Request) -> web.Response:
    """429 with ``Retry-After: <retry_after>`` for the first ``n`` hits (``date`` = an HTTP-date)."""
    hits = _count(request, "ratelimit")
    n = int(request.query.get("n", "1"))
    if hits <= n:
        value = request.query.get("retry_after")
        headers = {}
        if value == "date":
            delay = float(request.query.get("delay", "1"))
            when = datetime.now(UTC) + timedelta(seconds=delay)
            headers["Retry-After"] = format_datetime(when, usegmt=True)
        elif value is not None:
            headers["Retry-After"] = value
        return web.Response(status=429, text="slow down", headers=headers)
    return web.json_response({"ok": True, "hits": hits})


async def slow(request: web.Request) -> web.Response:
    """Sleep ``delay`` seconds for the first ``n`` hits, then answer at once."""
    hits = _count(request, "slow")
    if hits <= int(request.query.get("n", "1")):
        await asyncio.sleep(float(request.query.get("delay", "2")))
    return web.json_response({"ok": True, "hits": hits})


async def reset(request: web.Request) -> web.StreamResponse:
    """Drop the connection without a response for the first ``n`` hits."""
    hits = _count(request, "reset")
    if hits <= int(request.query.get("n", "1")):
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError  # nothing more to send on an aborted transport
    return web.json_response({"ok": True, "hits": hits})


async def truncated(request: web.Request) -> web.StreamResponse:
    """Promise a long body, send part of it, then drop the connection (a mid-body failure)."""
    hits = _count(request, "truncated")
    if hits <= int(request.query.get("n", "1")):
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b'{"partial": ')
        assert request.transport is not None
        request.transport.abort()
        return response
    return web.json_response({"ok": True, "hits": hits})


async def bad_json(request: web.Request) -> web.Response:
    _count(request, "badjson")
    return web.Response(text='{"broken": ', content_type="application/json")


async def binary_error(request: web.Request) -> web.Response:
    """An error whose body is not valid UTF-8 (D-11)."""
    _count(request, "binary")
    return web.Response(status=int(request.query.get("status", "500")), body=b"\xff\xfe\x80 not utf-8 \xc3\x28")


async def status(request: web.Request) -> web.Response:
    _count(request, "status")
    return web.Response(status=int(request.match_info["code"]), text=f"status {request.match_info['code']}")


def make_app() -> web.Application:
    app = web.Application()
    app[HITS] = Counter()
    app[SEEN_HEADERS] = []
    app[VALID_TOKENS] = set()
    app.router.add_get("/json/{key}", json_item)
    app.router.add_get("/text", text)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/flaky/{key}", flaky)
    app.router.add_get("/protected/{key}", protected)
    app.router.add_get("/ratelimit/{key}", rate_limited)
    app.router.add_get("/slow/{key}", slow)
    app.router.add_get("/reset/{key}", reset)
    app.router.add_get("/truncated/{key}", truncated)
    app.router.add_get("/badjson", bad_json)
    app.router.add_get("/binary", binary_error)
    app.router.add_route("*", "/status/{code}", status)
    return app


def hits(app: web.Application, name: str, key: str = "") -> int:
    return app[HITS][(name, key)]


__all__ = ["HITS", "SEEN_HEADERS", "VALID_TOKENS", "hits", "json", "make_app"]
