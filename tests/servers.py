# SPDX-License-Identifier: MIT
"""A behaviour server for request-loop tests: each route misbehaves in one documented way and counts hits.

Everything runs on 127.0.0.1 through the ``serve`` fixture. Counters live on the app (``app[HITS]``), keyed
by route and the ``key`` path segment, so one test's traffic never leaks into another's assertions.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from aiohttp import web

HITS = web.AppKey("hits", Counter)
SEEN_HEADERS = web.AppKey("seen_headers", list)
VALID_TOKENS = web.AppKey("valid_tokens", set)
#: Hostile routes report here: ``(route, key) -> asyncio.Event`` set when the client dropped the connection
#: before the whole body was sent, and ``(route, key) -> int`` bytes the route produced (before compression).
DROPPED = web.AppKey("dropped", dict)
PRODUCED = web.AppKey("produced", Counter)
#: ``(route, key) -> asyncio.Event`` set when the route has started answering (e.g. sent a 429's headers).
STARTED = web.AppKey("started", dict)

_MIB = 1024 * 1024
_ZEROS = bytes(_MIB)


#: Zeros sent stored (uncompressed) with every MiB of the bomb: they make the stream long enough on the wire
#: (~32 MiB for 2 GiB) that socket buffers cannot hold it all, so the server only gets far if the client reads.
_BOMB_PAD = 15 * 1024


def _bomb_blocks() -> tuple[bytes, bytes]:
    """A gzip stream's opening (header + 1 MiB of zeros) and a piece that inflates to ``1 MiB + _BOMB_PAD`` zeros.

    Both end byte-aligned (a sync flush, a stored block), so the piece may be repeated any number of times: its
    back-references only reach zeros. The server thus streams gigabytes of inflated body from two short byte
    strings, producing each piece only when the client takes it.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = compressor.compress(_ZEROS) + compressor.flush(zlib.Z_SYNC_FLUSH)
    repeat = compressor.compress(_ZEROS) + compressor.flush(zlib.Z_SYNC_FLUSH)
    # A non-final stored block: header byte, LEN and its complement, then the bytes as they are.
    stored = b"\x00" + _BOMB_PAD.to_bytes(2, "little") + (0xFFFF ^ _BOMB_PAD).to_bytes(2, "little") + bytes(_BOMB_PAD)
    return first, stored + repeat


_BOMB_FIRST, _BOMB_PIECE = _bomb_blocks()


def _crc_of_zeros(size: int) -> int:
    crc = 0
    for start in range(0, size, _MIB):
        crc = zlib.crc32(_ZEROS[: min(_MIB, size - start)], crc)
    return crc


def event(app: web.Application, slot: web.AppKey, route: str, key: str) -> asyncio.Event:
    return app[slot].setdefault((route, key), asyncio.Event())


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
    """An error whose body is not valid UTF-8."""
    _count(request, "binary")
    return web.Response(status=int(request.query.get("status", "500")), body=b"\xff\xfe\x80 not utf-8 \xc3\x28")


async def status(request: web.Request) -> web.Response:
    _count(request, "status")
    return web.Response(status=int(request.match_info["code"]), text=f"status {request.match_info['code']}")


async def _stream(request: web.Request, route: str, response: web.StreamResponse, pieces) -> web.StreamResponse:
    """Send ``pieces`` (an iterator of ``(raw size, bytes)``) one write at a time, noting a dropped client."""
    key = request.match_info.get("key", "")
    dropped = event(request.app, DROPPED, route, key)
    await response.prepare(request)
    try:
        for raw, piece in pieces:
            await response.write(piece)  # waits while the client is not reading: produced only on demand
            request.app[PRODUCED][(route, key)] += raw
        await response.write_eof()
    except (ConnectionError, RuntimeError):  # the client closed the connection (RuntimeError: transport gone)
        dropped.set()
    except asyncio.CancelledError:
        dropped.set()
        raise
    return response


async def gzip_bomb(request: web.Request) -> web.StreamResponse:
    """``Content-Encoding: gzip``: over ``mib`` MiB of zeros (default 2048: 2 GiB inflated, ~32 MiB on the wire)."""
    _count(request, "bomb")
    mib = int(request.query.get("mib", "2048"))

    def pieces():
        yield _MIB, _BOMB_FIRST
        for _ in range(mib - 1):
            yield _MIB + _BOMB_PAD, _BOMB_PIECE
        # Only a client that inflated everything gets here: an empty final block and the gzip trailer.
        total = _MIB + (mib - 1) * (_MIB + _BOMB_PAD)
        trailer = _crc_of_zeros(total).to_bytes(4, "little") + (total % 2**32).to_bytes(4, "little")
        yield 0, b"\x03\x00" + trailer

    response = web.StreamResponse(headers={"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"})
    return await _stream(request, "bomb", response, pieces())


async def big(request: web.Request) -> web.StreamResponse:
    """A ``size``-byte body of ``x`` (status ``status``, default 200), streamed in 64 KiB writes."""
    _count(request, "big")
    size = int(request.query.get("size", str(_MIB)))
    chunk = b"x" * 65536

    def pieces():
        left = size
        while left > 0:
            yield min(left, len(chunk)), chunk[: min(left, len(chunk))]
            left -= len(chunk)

    response = web.StreamResponse(
        status=int(request.query.get("status", "200")), headers={"Content-Type": "text/plain"}
    )
    response.content_length = size
    return await _stream(request, "big", response, pieces())


async def html_page(request: web.Request) -> web.Response:
    """A login page where an API answer was expected (e.g. a captive portal)."""
    _count(request, "html")
    return web.Response(text="<!doctype html><html><body>Please log in</body></html>", content_type="text/html")


async def redirect_loop(request: web.Request) -> web.Response:
    """Redirect to itself, for ever."""
    _count(request, "loop")
    raise web.HTTPFound(location=str(request.rel_url))


async def redirect_invalid(request: web.Request) -> web.Response:
    """Redirect to a URL without a host."""
    _count(request, "badredirect")
    raise web.HTTPFound(location="http:///nowhere")


async def hang(request: web.Request) -> web.StreamResponse:
    """Accept the request and never answer (until the client goes away)."""
    _count(request, "hang")
    event(request.app, STARTED, "hang", request.match_info["key"]).set()
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def slow_429(request: web.Request) -> web.StreamResponse:
    """A 429 with ``Retry-After: <retry_after>`` whose body never ends: its connection is busy until released."""
    _count(request, "slow429")
    key = request.match_info["key"]
    response = web.StreamResponse(status=429, headers={"Retry-After": request.query.get("retry_after", "60")})
    await response.prepare(request)
    await response.write(b"slow down")
    event(request.app, STARTED, "slow429", key).set()
    await asyncio.Event().wait()  # the rest of the body never comes
    raise AssertionError("unreachable")


async def validated(request: web.Request) -> web.Response:
    """A resource with a validator: ``ETag: "v1"`` and the ``Cache-Control`` given as ``?cc=`` (default
    ``no-cache``); a request with a matching ``If-None-Match`` gets a 304 (counted as "validated-304")."""
    key = request.match_info["key"]
    headers = {"ETag": '"v1"', "Cache-Control": request.query.get("cc", "no-cache")}
    if request.headers.get("If-None-Match") == '"v1"':
        _count(request, "validated-304")
        return web.Response(status=304, headers=headers)
    _count(request, "validated")
    return web.json_response({"id": key, "title": f"Item {key}"}, headers=headers)


def make_app() -> web.Application:
    app = web.Application()
    app[HITS] = Counter()
    app[SEEN_HEADERS] = []
    app[VALID_TOKENS] = set()
    app[DROPPED] = {}
    app[PRODUCED] = Counter()
    app[STARTED] = {}
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
    app.router.add_get("/bomb/{key}", gzip_bomb)
    app.router.add_route("*", "/big/{key}", big)
    app.router.add_get("/html", html_page)
    app.router.add_get("/loop/{key}", redirect_loop)
    app.router.add_get("/badredirect", redirect_invalid)
    app.router.add_get("/hang/{key}", hang)
    app.router.add_get("/slow429/{key}", slow_429)
    app.router.add_get("/validated/{key}", validated)
    return app


def hits(app: web.Application, name: str, key: str = "") -> int:
    return app[HITS][(name, key)]


__all__ = [
    "DROPPED",
    "HITS",
    "PRODUCED",
    "SEEN_HEADERS",
    "STARTED",
    "VALID_TOKENS",
    "event",
    "hits",
    "json",
    "make_app",
]
