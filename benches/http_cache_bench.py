# SPDX-License-Identifier: MIT
"""HTTP caching on a re-crawl: origin requests and body bytes a policy cache saves against a revalidating server.

The origin is the revalidating part of the loopback ``benches.server`` (its own process): ~4 KB JSON records with
``Cache-Control: max-age=0`` and an ``ETag``, ``304 Not Modified`` for an ``If-None-Match`` that names the current
ETag, and per-scenario counters of requests, 200s, 304s and body bytes sent. Every scenario crawls the same ``n``
ids twice through ``RequestHandler`` at one concurrency, each crawl with a new handler (a re-crawl is a later run
over the same cache file), with the re-crawl made through:

* ``policy``: ``SQLiteCache(..., policy=CachePolicy())`` - the stored responses are stale at once (``max-age=0``),
  so the re-crawl revalidates every one: 304s with no body, and 200s only for what changed;
* ``default_cache``: the same cache without a policy - every re-crawl request is a hit served without asking the
  server, so what changed in between is served as it was;
* ``no_cache``: a plain ``RequestHandler`` - every re-crawl request is a full 200.

Each mode runs with nothing changed between the crawls and with every ``change_every``-th id changed (the server
bumps its version and ETag). The numbers are the server's counters; the handler's stats are checked against them
(an ``AssertionError`` when they disagree), and every payload's version is checked against the server's, so a
cache that serves a changed item as it was is counted (``outdated``).

``python -m benches.http_cache_bench --base URL [--n N] [--concurrency C] [--change-every K]`` prints one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from benches.e2e import backend_info, make_handler
from benches.server import POOL

MODES = ("policy", "default_cache", "no_cache")
#: The crawl concurrency of the bench.
CONCURRENCY = 16
#: Every 10th id changes in the "changed" scenarios: 10 % of the items.
CHANGE_EVERY = 10


def item_settings() -> Any:
    """Repository settings for ``/revalidating/{run}/items/{id}``: keyed by the id (the last path segment)."""
    from aiorequestful.cache.backend.base import ResponseRepositorySettings
    from aiorequestful.response.payload import JSONPayloadHandler

    class RevalidatingItems(ResponseRepositorySettings):
        @property
        def fields(self) -> tuple[str, ...]:
            return ("id",)

        def get_key(self, method: str, url: Any, **_: Any) -> tuple[str | None]:
            parts = URL(url).path.strip("/").split("/")
            return (parts[3] if len(parts) == 4 and parts[2] == "items" else None,)

        @staticmethod
        def get_name(payload: Any) -> str | None:
            return payload.get("name") if isinstance(payload, dict) else None

    return RevalidatingItems(name="items", payload_handler=JSONPayloadHandler())


def open_cache(path: Path, policy: bool) -> Any:
    """A ``SQLiteCache`` file with the items repository, with an HTTP caching policy or without one."""
    from aiorequestful.cache.backend.sqlite import SQLiteCache

    kwargs: dict[str, Any] = {}
    if policy:
        from aiorequestful.cache.policy import CachePolicy

        kwargs["policy"] = CachePolicy()
    cache = SQLiteCache.connect_with_path(path, repository_getter=lambda cache, url: cache.get("items"), **kwargs)
    cache.create_repository(item_settings())
    return cache


def changed(item: int, change_every: int | None) -> bool:
    return change_every is not None and item % change_every == 0


async def server_stats(session: aiohttp.ClientSession, origin: str) -> dict[str, int]:
    async with session.get(f"{origin}/stats") as response:
        response.raise_for_status()
        return dict(await response.json())


def _difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after}


async def crawl(handler: Any, origin: str, n: int, concurrency: int, versions: dict[int, int]) -> dict[str, Any]:
    """GET every id once with ``concurrency`` workers; returns the wall time and how many payloads were outdated
    (their version is not the server's current ``versions`` entry, default 0)."""
    ids = iter(range(n))
    outdated = 0

    async def worker() -> None:
        nonlocal outdated
        for item in ids:  # one shared iterator: asyncio is single-threaded, so no id is taken twice
            payload = await handler.get(f"{origin}/items/{item}")
            if type(payload) is not dict or payload.get("id") != item % POOL:
                raise AssertionError(f"item {item}: the payload is not the server's record: {str(payload)[:200]}")
            if payload.get("version") != versions.get(item, 0):
                outdated += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"seconds": time.perf_counter() - started, "outdated": outdated}


def client_counts(stats: Any) -> dict[str, int]:
    """What the handler believes reached the origin, from its stats (a fresh handler per crawl)."""
    network = stats.requests - stats.cache_hits  # a revalidation is one origin request answered 304
    return {
        "requests": network,
        "ok": network - stats.cache_revalidations,
        "not_modified": stats.cache_revalidations,
        "body_bytes": stats.bytes_received,
        "cache_hits": stats.cache_hits,
        "cache_misses": stats.cache_misses,
        "failures": stats.failures,
        "retries": stats.retries,
    }


def disagreements(server: dict[str, int], client: dict[str, int]) -> list[str]:
    """Where the handler's stats and the server's counters differ (an empty list when they agree)."""
    out = [
        f"{name}: server {server[name]}, handler {client[name]}"
        for name in ("requests", "ok", "not_modified", "body_bytes")
        if server[name] != client[name]
    ]
    if client["failures"] or client["retries"]:
        out.append(f"the handler had {client['failures']} failures and {client['retries']} retries")
    return out


async def scenario(
    base: str, mode: str, n: int, concurrency: int, change_every: int | None, workdir: Path
) -> dict[str, Any]:
    """Two crawls of ``n`` ids against a fresh origin, the second after ``change_every`` changed (None: none)."""
    run = f"{mode}-{'changed' if change_every else 'same'}-{uuid.uuid4().hex[:12]}"
    origin = f"{base}/revalidating/{run}"
    path = workdir / run
    versions: dict[int, int] = {}
    crawls: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as control:
        for number in (1, 2):
            if number == 2 and change_every is not None:
                async with control.post(f"{origin}/change", params={"every": str(change_every)}) as response:
                    response.raise_for_status()
                versions = {item: 1 for item in range(n) if changed(item, change_every)}
            cache = None if mode == "no_cache" else open_cache(path, policy=mode == "policy")
            before = await server_stats(control, origin)
            async with make_handler(cache=cache) as handler:
                timing = await crawl(handler, origin, n, concurrency, versions)
                stats = handler.stats
            server = _difference(await server_stats(control, origin), before)
            client = client_counts(stats)
            crawls.append({"crawl": number, **timing, "server": server, "client": client})
            wrong = disagreements(server, client)
            if wrong:
                raise AssertionError(f"{mode}, crawl {number}: handler stats disagree with the server: {wrong}")
    return {
        "mode": mode,
        "n": n,
        "concurrency": concurrency,
        "change_every": change_every,
        "changed": len(versions),
        "crawls": crawls,
    }


async def recrawl(
    base: str,
    n: int,
    concurrency: int = CONCURRENCY,
    change_every: int = CHANGE_EVERY,
    workdir: Path | None = None,
    modes: tuple[str, ...] = MODES,
) -> dict[str, Any]:
    """Every mode, with nothing changed and with every ``change_every``-th id changed between the crawls."""
    scenarios = []
    with tempfile.TemporaryDirectory(prefix="aiorequestful-http-cache-") as tmp:
        where = workdir or Path(tmp)
        for every in (None, change_every):
            for mode in modes:
                scenarios.append(await scenario(base, mode, n, concurrency, every, where))
    from benches.server import REVALIDATING_BODY_SIZE

    return {"backend": backend_info(), "body_size": REVALIDATING_BODY_SIZE, "scenarios": scenarios}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="base URL of a running benches.server (127.0.0.1)")
    parser.add_argument("--n", type=int, default=2000, help="ids per crawl")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--change-every", type=int, default=CHANGE_EVERY, help="change every K-th id (K >= 1)")
    args = parser.parse_args(argv)
    if not args.base.startswith("http://127.0.0.1:"):
        parser.error("the benches only ever talk to 127.0.0.1")
    if args.n < 1 or args.concurrency < 1 or args.change_every < 1:
        parser.error("--n, --concurrency and --change-every must be positive")
    result = asyncio.run(recrawl(args.base, args.n, args.concurrency, args.change_every))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
