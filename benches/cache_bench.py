# SPDX-License-Identifier: MIT
"""Cache hits and cache writes through the SQLite cache.

One client process (backend chosen by the environment) measures, against the loopback ``benches.server``:

* ``network``: ``RequestHandler.get`` with no cache - the loopback network throughput the hits are compared with;
* ``cache_hit``: ``RequestHandler.get`` with a ``SQLiteCache`` whose rows all exist (every request is a hit; the
  server's request counter proves none reached the network);
* ``dict_orjson``: the plain alternative - a ``dict`` of URL -> body plus ``orjson.loads``, in the same worker pool;
* ``sqlite_ceiling``: the ceiling of a hit - on the same cache file, one read-only ``sqlite3`` connection in the
  loop's thread runs ``SELECT payload FROM items WHERE method = ? AND id = ? AND expires_at > ?`` (the primary-key
  prefix of the rows the cache wrote) and ``orjson.loads`` the payload, in the same worker pool (``run_pool``: the
  same workers pulling from one shared iterator; nothing awaits I/O, so the workers take turns);
* ``cache_writes``: ``SQLiteTable.save_response((key, payload))`` from 1,000 concurrent tasks (each save returns
  once committed), then a count of the rows.

The script runs unchanged on the original aiorequestful 1.0.20 (``benches.run`` starts it from the 1.0.20 venv with
``--modes cache_hit,sqlite_ceiling --writes 0``); there the server's request counter alone proves the hits (1.0.20
has no handler stats).

``python -m benches.cache_bench --base URL [--n N] [--items M] [--writes W] [--rounds R] [--start-round S]
[--modes ...]`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sqlite3
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from yarl import URL

from benches._data import item_body
from benches.e2e import backend_info, handler_fetcher, item_url, make_handler, run_pool, timed, verify
from benches.server import POOL

#: The number of concurrent writer tasks of the write bench (the target: "1,000 concurrent tasks").
WRITE_TASKS = 1_000


def item_settings(payload_handler: Any = None) -> Any:
    """Repository settings for ``/v2/items/{id}``: keyed by id, named by the record's name (as documented)."""
    from aiorequestful.cache.backend.base import ResponseRepositorySettings
    from aiorequestful.response.payload import JSONPayloadHandler

    class ItemSettings(ResponseRepositorySettings):
        @property
        def fields(self) -> tuple[str, ...]:
            return ("id",)

        def get_key(self, method: str, url: Any, **_: Any) -> tuple[str | None]:
            parts = URL(url).path.strip("/").split("/")
            return (parts[2] if len(parts) == 3 and parts[1] == "items" else None,)

        @staticmethod
        def get_name(payload: Any) -> str | None:
            return payload.get("name") if isinstance(payload, dict) else None

    return ItemSettings(name="items", payload_handler=payload_handler or JSONPayloadHandler())


def open_cache(path: Path) -> Any:
    """A ``SQLiteCache`` file with the items repository registered (not yet connected)."""
    from aiorequestful.cache.backend.sqlite import SQLiteCache

    cache = SQLiteCache.connect_with_path(path, repository_getter=lambda cache, url: cache.get("items"))
    cache.create_repository(item_settings())
    return cache


def server_hits(base: str) -> int:
    with urllib.request.urlopen(f"{base}/stats", timeout=10) as response:
        return int(json.loads(response.read())["items"])


def sqlite_ceiling(path: Path) -> tuple[sqlite3.Connection, Any]:
    """The in-thread ``sqlite3`` SELECT + ``orjson.loads`` of a stored row: what a hit cannot beat."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    stored = connection.execute('SELECT "expires_at" FROM "items" LIMIT 1').fetchone()[0]
    # The package's own format of the expiry (an aware UTC time here, a naive local one in 1.0.20).
    now = (dt.datetime.now(dt.UTC) if stored.endswith("+00:00") else dt.datetime.now()).isoformat()
    query = 'SELECT "payload" FROM "items" WHERE "method" = ? AND "id" = ? AND "expires_at" > ?'
    execute, loads = connection.execute, orjson.loads

    async def fetch(item: int) -> Any:
        return loads(execute(query, ("GET", str(item), now)).fetchone()[0])

    return connection, fetch


async def cache_throughput(
    base: str,
    n: int,
    items: int,
    concurrencies: list[int],
    rounds: int,
    writes: int,
    workdir: Path,
    start_round: int = 0,
    modes: list[str] | None = None,
) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    urls = {i: item_url(base, i) for i in range(items)}
    store = {urls[i]: item_body(i % POOL) for i in range(items)}

    async def dict_fetch(item: int) -> Any:
        return orjson.loads(store[urls[item % items]])

    def hit_ids(count: int) -> range:
        return range(count)  # fetched as id % items: every one of them is in the cache

    cache = open_cache(workdir / "hits")
    async with make_handler(cache=cache) as cached, make_handler() as plain:
        network = handler_fetcher(plain, base)
        cached_get = handler_fetcher(cached, base)

        async def hit_fetch(item: int) -> Any:
            return await cached_get(item % items)

        # Fill the cache: every id once (misses: network + write), timed as the cold crawl with the cache on.
        fill = await timed(cached_get, range(items), max(concurrencies))
        samples.append({"mode": "cache_fill", "concurrency": max(concurrencies), "round": 0, **fill})
        await verify(hit_fetch, range(0, items, max(1, items // 20)))
        await verify(network, range(0, POOL, POOL // 20))
        await run_pool(network, range(100), max(concurrencies))
        commit = getattr(cache, "commit", None)
        if commit is not None:  # 1.0.20 keeps its writes in an open transaction until it commits
            await commit()
        connection, ceiling_get = sqlite_ceiling(workdir / "hits.sqlite")

        async def ceiling_fetch(item: int) -> Any:
            return await ceiling_get(item % items)

        await verify(ceiling_fetch, range(0, items, max(1, items // 20)))

        all_modes = {
            "network": network,
            "cache_hit": hit_fetch,
            "dict_orjson": dict_fetch,
            "sqlite_ceiling": ceiling_fetch,
        }
        chosen = [m for m in all_modes if modes is None or m in modes]
        before_server, before_stats = server_hits(base), getattr(cached, "stats", None)
        for r in range(start_round, start_round + rounds):
            for concurrency in concurrencies:
                shift = r % len(chosen)
                for mode in chosen[shift:] + chosen[:shift]:
                    ids = hit_ids(n) if mode != "network" else range(10**6 + r * 10**5, 10**6 + r * 10**5 + n)
                    sample = await timed(all_modes[mode], ids, concurrency)
                    samples.append({"mode": mode, "concurrency": concurrency, "round": r, **sample})
        connection.close()
        hit_requests = sum(s["n"] for s in samples if s["mode"] == "cache_hit")
        network_requests = sum(s["n"] for s in samples if s["mode"] == "network")
        # The hits never reached the server: only the network mode's requests did.
        leaked = server_hits(base) - before_server - network_requests  # /stats reads are not counted
        checks: dict[str, Any] = {"hit_requests": hit_requests, "leaked_to_network": leaked}
        if before_stats is not None:  # the original package keeps no stats: the server's count is the proof
            after_stats = cached.stats
            checks["cache_hits"] = after_stats.cache_hits - before_stats.cache_hits
            checks["cache_misses"] = after_stats.cache_misses - before_stats.cache_misses
        if checks.get("cache_hits", hit_requests) != hit_requests or checks.get("cache_misses", 0) != 0 or leaked:
            raise AssertionError(f"cache hits were not all hits, or reached the server: {checks}")

    write = await cache_writes(workdir / "writes", writes) if writes else None
    return {"backend": backend_info(), "samples": samples, "checks": checks, "writes": write}


async def cache_writes(path: Path, writes: int, tasks: int = WRITE_TASKS) -> dict[str, Any]:
    """``writes`` saves spread over ``tasks`` concurrent tasks; each save returns once its batch is committed."""
    cache = open_cache(path)
    payloads = [json.loads(item_body(i)) for i in range(min(POOL, writes))]
    async with cache:
        repository = cache["items"]
        per_task, extra = divmod(writes, tasks)

        async def writer(task: int) -> None:
            count = per_task + (1 if task < extra else 0)
            for j in range(count):
                item = task + j * tasks
                await repository.save_response((("GET", str(item)), payloads[item % len(payloads)]))

        started = time.perf_counter()
        await asyncio.gather(*(writer(t) for t in range(tasks)))
        elapsed = time.perf_counter() - started
        stored = await repository.count()
        sample = await repository.get_response(("GET", str(writes - 1)))
    if stored != writes:
        raise AssertionError(f"{writes} saves left {stored} rows")
    if sample != payloads[(writes - 1) % len(payloads)]:
        raise AssertionError("a saved payload did not read back equal")
    return {"n": writes, "tasks": tasks, "seconds": elapsed, "rps": writes / elapsed, "rows": stored}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--n", type=int, default=2000, help="requests per timed sample")
    parser.add_argument("--items", type=int, default=2000, help="distinct cached ids")
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--writes", type=int, default=20_000, help="0: no write bench")
    parser.add_argument("--start-round", type=int, default=0)
    parser.add_argument("--modes", default=None, help="comma list of network,cache_hit,dict_orjson,sqlite_ceiling")
    args = parser.parse_args(argv)
    if not args.base.startswith("http://127.0.0.1:"):
        parser.error("the benches only ever talk to 127.0.0.1")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="aiorequestful-bench-") as workdir:
        result = asyncio.run(
            cache_throughput(
                args.base,
                args.n,
                args.items,
                concurrencies,
                args.rounds,
                args.writes,
                Path(workdir),
                args.start_round,
                args.modes.split(",") if args.modes else None,
            )
        )
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
