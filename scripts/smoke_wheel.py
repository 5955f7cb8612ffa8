# SPDX-License-Identifier: MIT
"""Smoke test for an installed wheel: the native kernels load, and a request goes through RequestHandler to a
server on 127.0.0.1 with JSON decoding, a retried 503 and a status check. Run from outside the source tree."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

import aiorequestful
from aiorequestful import RequestHandler
from aiorequestful.response import JSONPayloadHandler
from aiorequestful.timer import StepCountTimer


async def main() -> None:
    info = aiorequestful.backend_info()
    assert info.name == "native", info
    assert "site-packages" in aiorequestful.__file__, aiorequestful.__file__
    hits = 0

    async def item(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        if hits == 1:
            return web.Response(status=503)
        return web.json_response({"id": int(request.match_info["id"]), "ok": True})

    app = web.Application()
    app.router.add_get("/items/{id}", item)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        handler = RequestHandler.create(payload_handler=JSONPayloadHandler(), retry_timer=StepCountTimer(0, 2, 0))
        async with handler:
            payload = await handler.get(f"http://127.0.0.1:{port}/items/7")
        assert payload == {"id": 7, "ok": True}, payload
        assert handler.stats.retries == 1, handler.stats
    finally:
        await runner.cleanup()
    print(f"ok: aiorequestful {aiorequestful.__version__} on Python {sys.version.split()[0]}, {info.name} kernels")


if __name__ == "__main__":
    asyncio.run(main())
