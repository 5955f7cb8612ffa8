# SPDX-License-Identifier: MIT
"""The loopback API the end-to-end benches crawl, run in its own process so it never shares the client's core.

``python -m benches.server`` binds ``127.0.0.1`` on a free port (never another address), prints ``PORT <n>`` on
stdout and serves until SIGTERM/SIGINT or until its parent process goes away.

* ``GET /v2/items/{id}`` - one ~1 KB API record, ``benches._data.item_body(id % POOL)``, precomputed so the
  server spends its time in aiohttp, not in ``json.dumps``.
* ``GET /json`` - the same ~2 KB API record every time, ``benches._data.json_body()`` (instruction counts).
* ``GET /stats`` - ``{"items": <number of item requests served>}``, so a bench can prove that cache hits never
  reached the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

from aiohttp import web

from benches._data import item_body, json_body

#: Distinct bodies kept in memory; id ``n`` is answered with ``item_body(n % POOL)``.
POOL = 1_000
_SERVED = web.AppKey("served", list)


def make_app() -> web.Application:
    bodies = [item_body(i) for i in range(POOL)]
    served = [0]

    async def get_item(request: web.Request) -> web.Response:
        item = int(request.match_info["id"])
        served[0] += 1
        return web.Response(body=bodies[item % POOL], content_type="application/json")

    fixed = json_body()

    async def get_json(request: web.Request) -> web.Response:
        return web.Response(body=fixed, content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"items": served[0]})

    app = web.Application()
    app[_SERVED] = served
    app.router.add_get("/v2/items/{id}", get_item)
    app.router.add_get("/json", get_json)
    app.router.add_get("/stats", stats)
    return app


async def _serve() -> None:
    runner = web.AppRunner(make_app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    try:
        while not stop.is_set():
            # An orphaned server (the bench driver was killed) stops by itself instead of lingering.
            if os.getppid() != parent:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def running_server(timeout: float = 30.0) -> Iterator[str]:
    """Start ``python -m benches.server`` as a child process; yields its base URL and stops it on exit."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "benches.server"], stdout=subprocess.PIPE, cwd=root, env=env, text=True
    )
    try:
        assert proc.stdout is not None
        line = _read_line(proc, timeout)
        if not line.startswith("PORT "):
            raise RuntimeError(f"bench server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise RuntimeError(f"bench server printed nothing within {timeout} s")
    return proc.stdout.readline().strip()


if __name__ == "__main__":
    asyncio.run(_serve())
