# SPDX-License-Identifier: MIT
"""The loopback API the end-to-end benches crawl, run in its own process so it never shares the client's core.

``python -m benches.server`` binds ``127.0.0.1`` on a free port (never another address), prints ``PORT <n>`` on
stdout and serves until SIGTERM/SIGINT or until its parent process goes away.

* ``GET /v2/items/{id}`` - one ~1 KB API record, ``benches._data.item_body(id % POOL)``, precomputed so the
  server spends its time in aiohttp, not in ``json.dumps``.
* ``GET /json`` - the same ~2 KB API record every time, ``benches._data.json_body()`` (instruction counts).
* ``GET /json50k`` - the same ~50 KB page of API records every time, ``benches._data.json_document("50KB")``
  (the 50 KB network crawl and its instruction counts).
* ``GET /stats`` - ``{"items": <number of item requests served>}``, so a bench can prove that cache hits never
  reached the network.

The revalidating origin of ``benches.http_cache_bench``, one independent origin per ``{run}`` name (a client picks a
fresh name per scenario, so the counts of one never mix with another's and nothing needs resetting):

* ``GET /revalidating/{run}/items/{id}`` - a ~4 KB API record with ``Cache-Control: max-age=0`` and an ``ETag``;
  a request whose ``If-None-Match`` names the current ETag is answered ``304 Not Modified`` with no body;
* ``POST /revalidating/{run}/change?every=K`` - every id divisible by ``K`` changes (new version, new ETag);
* ``GET /revalidating/{run}/stats`` - what that origin served: ``requests``, ``ok`` (200s), ``not_modified``
  (304s), ``conditional`` (requests that carried ``If-None-Match``) and ``body_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aiohttp import web

from benches._data import api_item, item_body, json_body, json_document

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
    page = json_document("50KB")

    async def get_json(request: web.Request) -> web.Response:
        return web.Response(body=fixed, content_type="application/json")

    async def get_json_50kb(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"items": served[0]})

    app = web.Application()
    app[_SERVED] = served
    app.router.add_get("/v2/items/{id}", get_item)
    app.router.add_get("/json", get_json)
    app.router.add_get("/json50k", get_json_50kb)
    app.router.add_get("/stats", stats)
    add_revalidating_routes(app)
    return app


#: Body size of the revalidating origin's records (what a re-crawl saves per 304).
REVALIDATING_BODY_SIZE = 4_000
# Bounds, so a client that invents run names or changes forever cannot grow the server without limit.
_MAX_RUNS = 256
_MAX_CHANGES = 64
_RUN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,80}")
_ORIGINS = web.AppKey("revalidating_origins", OrderedDict)


def revalidating_body(item: int, version: int) -> bytes:
    """The ~4 KB record of ``/revalidating/{run}/items/{item}`` at ``version`` (0 until it first changes)."""
    return _revalidating_body(item % POOL, version)


@lru_cache(maxsize=4 * POOL)
def _revalidating_body(item: int, version: int) -> bytes:
    record: dict[str, Any] = {"id": item, "version": version}
    record.update((k, v) for k, v in api_item(random.Random(f"revalidating-{item}"), item).items() if k != "id")
    words = record["description"].split()
    body = json.dumps(record, ensure_ascii=False).encode()
    # Pad the description to just under the size in one pass: the words need no JSON escaping, so each one adds
    # exactly its UTF-8 length plus a space.
    size, extra = len(body), list[str]()
    while True:
        word = words[len(extra) % len(words)]
        if size + len(word.encode()) + 1 > REVALIDATING_BODY_SIZE:
            break
        extra.append(word)
        size += len(word.encode()) + 1
    record["description"] = " ".join([record["description"], *extra])
    return json.dumps(record, ensure_ascii=False).encode()


def revalidating_version(changes: list[int], item: int) -> int:
    """How many of the changes so far (each a divisor) touched ``item``."""
    return sum(1 for every in changes if item % every == 0)


@dataclass
class _Origin:
    changes: list[int] = field(default_factory=list)
    requests: int = 0
    ok: int = 0
    not_modified: int = 0
    conditional: int = 0
    body_bytes: int = 0


def _origin(request: web.Request) -> _Origin:
    run = request.match_info["run"]
    if not _RUN_NAME.fullmatch(run):
        raise web.HTTPBadRequest(text="a run name is 1-80 letters, digits, '_', '.' or '-'")
    origins: OrderedDict[str, _Origin] = request.app[_ORIGINS]
    origin = origins.get(run)
    if origin is None:
        origin = origins[run] = _Origin()
        while len(origins) > _MAX_RUNS:
            origins.popitem(last=False)
    return origin


def _etag_matches(header: str, etag: str) -> bool:
    # If-None-Match uses the weak comparison (RFC 9110 13.1.2): "W/" prefixes are ignored.
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


def add_revalidating_routes(app: web.Application) -> None:
    app[_ORIGINS] = OrderedDict()
    for item in range(POOL):  # built before serving, so no crawl pays for making the bodies
        revalidating_body(item, 0)

    async def get_item(request: web.Request) -> web.Response:
        origin = _origin(request)
        item = int(request.match_info["id"])
        version = revalidating_version(origin.changes, item)
        headers = {"Cache-Control": "max-age=0", "ETag": f'"{item}.{version}"'}
        origin.requests += 1
        asked = request.headers.get("If-None-Match")
        if asked is not None:
            origin.conditional += 1
            if _etag_matches(asked, headers["ETag"]):
                origin.not_modified += 1
                return web.Response(status=304, headers=headers)
        body = revalidating_body(item, version)
        origin.ok += 1
        origin.body_bytes += len(body)
        return web.Response(body=body, content_type="application/json", headers=headers)

    async def change(request: web.Request) -> web.Response:
        origin = _origin(request)
        try:
            every = int(request.query.get("every", ""))
        except ValueError:
            every = 0
        if every < 1:
            raise web.HTTPBadRequest(text="change needs ?every=K with K a positive integer")
        if len(origin.changes) >= _MAX_CHANGES:
            raise web.HTTPBadRequest(text=f"a run changes at most {_MAX_CHANGES} times")
        origin.changes.append(every)
        return web.json_response({"changes": len(origin.changes)})

    async def stats(request: web.Request) -> web.Response:
        o = _origin(request)
        counts = {"requests": o.requests, "ok": o.ok, "not_modified": o.not_modified, "conditional": o.conditional}
        return web.json_response({**counts, "body_bytes": o.body_bytes})

    app.router.add_get(r"/revalidating/{run}/items/{id:\d{1,18}}", get_item)
    app.router.add_post("/revalidating/{run}/change", change)
    app.router.add_get("/revalidating/{run}/stats", stats)


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
