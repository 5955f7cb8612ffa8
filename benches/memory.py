# SPDX-License-Identifier: MIT
"""RSS over a long loopback crawl with the SQLite cache on: it must stay flat after warm-up.

``RequestHandler.get`` with a ``SQLiteCache`` crawls ``n`` URLs at concurrency 32 against ``benches.server``.
URL ``i`` is item ``i % (n // 2)``: the first half are misses (network + cache write), the second half hits,
so both paths run long enough to show a leak. The client process's RSS (psutil) is sampled every
``n // 100`` requests, with the number of entries in the cache's memory tier: the tier is a bounded cache that
fills (to ``limits.DEFAULT_MEMORY_TIER_ENTRIES``) once the crawl starts hitting, so growth is judged from the later
of the warm-up share and the first sample with the tier at its fullest.

``python -m benches.memory --base URL [--n 100000] [--concurrency 32]`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from benches.cache_bench import open_cache
from benches.e2e import backend_info, handler_fetcher, make_handler, run_pool

#: The share of the crawl treated as warm-up (connection pool, caches, allocator arenas settling).
WARMUP_FRACTION = 0.2


def flatness(samples: list[dict[str, Any]], warmup_fraction: float = WARMUP_FRACTION) -> dict[str, Any]:
    """Growth of RSS after warm-up: absolute, relative, and the least-squares slope per 10,000 requests."""
    total = samples[-1]["requests"]
    fullest = max((s.get("tier", 0) for s in samples), default=0)
    settled = next((s["requests"] for s in samples if fullest and s.get("tier", 0) >= fullest), 0)
    start = max(warmup_fraction * total, settled)
    after = [s for s in samples if s["requests"] >= start] or samples[-1:]
    warm = after[0]["rss"]
    final = samples[-1]["rss"]
    peak = max(s["rss"] for s in after)
    xs = [s["requests"] for s in after]
    ys = [s["rss"] for s in after]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    growth = final - warm
    # Flat: after warm-up the process grew by at most 5 MB or 5 % (whichever is larger); allocator noise is not
    # growth, a per-request leak of a few hundred bytes over 80,000 requests would already exceed it.
    limit = max(5 * 2**20, 0.05 * warm)
    return {
        "warm_rss": warm,
        "final_rss": final,
        "peak_rss_after_warmup": peak,
        "growth_bytes": growth,
        "growth_pct": 100.0 * growth / warm if warm else 0.0,
        "slope_bytes_per_10k": slope * 10_000,
        "limit_bytes": limit,
        "flat": growth <= limit and peak - warm <= 2 * limit,
        "judged_from": after[0]["requests"],
        "tier_entries": fullest,
    }


async def crawl(base: str, n: int, concurrency: int, workdir: Path) -> dict[str, Any]:
    process = psutil.Process()
    distinct = max(1, n // 2)
    every = max(1, n // 100)
    samples: list[dict[str, Any]] = [{"requests": 0, "rss": process.memory_info().rss, "seconds": 0.0, "tier": 0}]
    done = 0
    cache = open_cache(workdir / "crawl")
    async with make_handler(cache=cache) as handler:
        fetch = handler_fetcher(handler, base)
        started = time.perf_counter()

        async def sampled(i: int) -> Any:
            nonlocal done
            result = await fetch(i % distinct)
            done += 1
            if done % every == 0:
                tier = getattr(cache, "memory_tier", None)
                samples.append(
                    {
                        "requests": done,
                        "rss": process.memory_info().rss,
                        "seconds": time.perf_counter() - started,
                        "tier": 0 if tier is None else len(tier),
                    }
                )
            return result

        ok = await run_pool(sampled, range(n), concurrency)
        elapsed = time.perf_counter() - started
        stats = handler.stats
    if ok != n:
        raise AssertionError(f"only {ok} of {n} requests returned a JSON object")
    # Every distinct id misses once; a repeat can also miss when it starts while its first request's save is still
    # queued for the group commit, so only the totals and the lower bound are exact.
    if stats.cache_hits + stats.cache_misses != n or stats.cache_misses < distinct or stats.failures:
        raise AssertionError(f"expected {n} cache lookups, at least {distinct} misses and no failures, got {stats}")
    if n > distinct + 4 * concurrency and stats.cache_hits < (n - distinct) // 2:
        raise AssertionError(f"the second half of the crawl should be served from the cache, got {stats}")
    return {
        "backend": backend_info(),
        "n": n,
        "concurrency": concurrency,
        "seconds": elapsed,
        "rps": n / elapsed,
        "cache_hits": stats.cache_hits,
        "cache_misses": stats.cache_misses,
        "samples": samples,
        "flatness": flatness(samples),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    if not args.base.startswith("http://127.0.0.1:"):
        parser.error("the benches only ever talk to 127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="aiorequestful-bench-") as workdir:
        result = asyncio.run(crawl(args.base, args.n, args.concurrency, Path(workdir)))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
