# SPDX-License-Identifier: MIT
"""The bundled demo API: a small catalogue served on 127.0.0.1 that misbehaves the way real APIs do.

Deterministic by item id, so every run meets the same trouble:

* ``GET /v1/items?offset=&limit=`` pages through the catalogue (ids only);
* ``GET /v1/items/{id}`` returns one item; ids divisible by 11 answer ``503`` on their first hit, ids divisible
  by 17 answer ``429`` with ``Retry-After: 1`` on their first hit, ids divisible by 13 are slow (50 ms), and
  ids divisible by 29 drop the connection on their first two hits (aiohttp itself silently re-sends an
  idempotent request once after a dropped connection, so the second drop is the one RequestHandler sees).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from aiohttp import web

FIRST_HITS = web.AppKey("first_hits", Counter)
ITEM_COUNT = web.AppKey("item_count", int)


async def list_items(request: web.Request) -> web.Response:
    total = request.app[ITEM_COUNT]
    offset = max(0, int(request.query.get("offset", "0")))
    limit = min(100, max(1, int(request.query.get("limit", "50"))))
    ids = list(range(offset + 1, min(total, offset + limit) + 1))
    return web.json_response({"total": total, "offset": offset, "limit": limit, "items": ids})


async def get_item(request: web.Request) -> web.StreamResponse:
    item = int(request.match_info["id"])
    if not 1 <= item <= request.app[ITEM_COUNT]:
        return web.json_response({"error": "not found"}, status=404)
    hits = request.app[FIRST_HITS]
    hits[item] += 1
    first = hits[item] == 1
    if hits[item] <= 2 and item % 29 == 0:
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError
    if first and item % 11 == 0:
        return web.json_response({"error": "temporarily unavailable"}, status=503)
    if first and item % 17 == 0:
        return web.json_response({"error": "rate limited"}, status=429, headers={"Retry-After": "1"})
    if item % 13 == 0:
        await asyncio.sleep(0.05)
    return web.json_response(
        {
            "id": item,
            "title": f"Item number {item}",
            "price": round(item * 1.25, 2),
            "tags": [f"tag{item % 7}", f"group{item % 5}"],
            "stock": {"warehouse": item % 3, "store": item % 4},
        }
    )


def make_app(item_count: int = 300) -> web.Application:
    app = web.Application()
    app[FIRST_HITS] = Counter()
    app[ITEM_COUNT] = item_count
    app.router.add_get("/v1/items", list_items)
    app.router.add_get("/v1/items/{id}", get_item)
    return app


async def start(item_count: int = 300) -> tuple[web.AppRunner, str]:
    """Start the demo API on a free port of 127.0.0.1; returns the runner and the base URL."""
    runner = web.AppRunner(make_app(item_count), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"
