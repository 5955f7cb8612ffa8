# SPDX-License-Identifier: MIT
"""The demo crawl: list a local API's catalogue, fetch every item concurrently, then do it again from cache.

Pass 1 goes to the network and meets 503s, 429s with Retry-After, dropped connections and slow items, which
RequestHandler retries and waits out. Every response is stored in the embedded SQLite cache. Pass 2 repeats
the crawl with a fresh handler on the same cache file and is served from it. A summary of each pass prints at
the end: requests, retries, waits, errors, cache hits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPMethod
from pathlib import Path
from typing import Any, TextIO

from yarl import URL

from .. import __version__, backend_info
from ..cache.backend.base import ResponseRepositorySettings
from ..cache.backend.sqlite import SQLiteCache
from ..request import RequestHandler
from ..response.payload import JSONPayloadHandler
from ..stats import RequestStats
from ..timer import StepCeilingTimer, StepCountTimer
from . import server

DEFAULT_CACHE = Path("cache") / "demo"


class ItemSettings(ResponseRepositorySettings):
    """Items are keyed by their id: ``/v1/items/<id>``."""

    @property
    def fields(self) -> tuple[str, ...]:
        return ("id",)

    def get_key(self, method: str, url: URL, **_: Any) -> tuple[str | None]:
        if HTTPMethod(method) != HTTPMethod.GET:
            return (None,)
        parts = URL(url).path.strip("/").split("/")
        return (parts[2] if len(parts) == 3 else None,)

    @staticmethod
    def get_name(payload: Any) -> str | None:
        return payload.get("title") if isinstance(payload, dict) else None


class PageSettings(ResponseRepositorySettings):
    """Catalogue pages are keyed by offset and size: ``/v1/items?offset=&limit=``."""

    @property
    def fields(self) -> tuple[str, ...]:
        return ("offset", "size")

    def get_key(self, method: str, url: URL, **_: Any) -> tuple[int | None, int | None]:
        query = URL(url).query
        if HTTPMethod(method) != HTTPMethod.GET or "offset" not in query or "limit" not in query:
            return (None, None)
        return int(query["offset"]), int(query["limit"])

    @staticmethod
    def get_name(payload: Any) -> str | None:
        return None


def pick_repository(cache: SQLiteCache, url: Any) -> Any:
    path = URL(url).path.rstrip("/")
    if path == "/v1/items":
        return cache.get("pages")
    if path.startswith("/v1/items/"):
        return cache.get("items")
    return None


@dataclass
class PassResult:
    name: str
    items: dict[int, Any]
    failed: dict[int, str]
    seconds: float
    stats: RequestStats


class Progress:
    """The crawl's progress: a tqdm bar on a terminal, a plain line per 10% elsewhere (logs, pipes, CI).

    tqdm is used where it is installed because its ``logging_redirect_tqdm`` moves log records above the bar
    instead of letting ``-v`` output run into it; the plain fallback keeps the demo free of extra dependencies.
    """

    def __init__(self, label: str, total: int, stream: TextIO, enabled: bool = True) -> None:
        self.label, self.total, self.stream, self.enabled = label, max(total, 1), stream, enabled
        self.done = 0
        self._last_decile = -1
        self._bar: Any = None
        if enabled and stream.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=self.total, desc=label, file=stream, unit="item", leave=True)

    def advance(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(1)
            if self.done == self.total:
                self._bar.close()
            return
        fraction = self.done / self.total
        if (decile := int(fraction * 10)) != self._last_decile:
            self._last_decile = decile
            self.stream.write(f"{self.label:<8} {self.done:>5}/{self.total} ({fraction:.0%})\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextlib.contextmanager
def logs_above_progress() -> Iterator[None]:
    """While a tqdm bar is drawn, route log records through tqdm so they print above the bar."""
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm
    except ImportError:
        yield
        return
    with logging_redirect_tqdm():
        yield


def make_cache(path: Path) -> SQLiteCache:
    cache = SQLiteCache.connect_with_path(path, repository_getter=pick_repository, expire=timedelta(hours=1))
    cache.create_repository(ItemSettings(name="items"))
    cache.create_repository(PageSettings(name="pages"))
    return cache


async def crawl_once(
    name: str, base: str, cache_path: Path | None, concurrency: int, stream: TextIO, progress: bool
) -> PassResult:
    handler: RequestHandler[Any, Any] = RequestHandler.create(
        cache=make_cache(cache_path) if cache_path is not None else None,
        payload_handler=JSONPayloadHandler(),
        # 3 retries sleeping 0.2, 0.4, 0.6 s: enough budget for a 1 s Retry-After.
        retry_timer=StepCountTimer(initial=0.2, count=3, step=0.2),
        # Grows by 10 ms per 429 up to 50 ms between requests.
        wait_timer=StepCeilingTimer(initial=0, final=0.05, step=0.01),
    )
    api = URL(base) / "v1" / "items"
    items: dict[int, Any] = {}
    failed: dict[int, str] = {}
    start = time.perf_counter()
    async with handler:
        first = await handler.get(api, params={"offset": "0", "limit": "100"})
        ids = list(first["items"])
        offsets = range(100, int(first["total"]), 100)
        pages = await asyncio.gather(*(handler.get(api, params={"offset": str(o), "limit": "100"}) for o in offsets))
        for page in pages:
            ids.extend(page["items"])

        bar = Progress(name, len(ids), stream, enabled=progress)
        gate = asyncio.Semaphore(concurrency)

        async def fetch(item: int) -> None:
            async with gate:
                try:
                    items[item] = await handler.get(api / str(item))
                except Exception as exc:  # a demo reports failures instead of stopping at the first
                    failed[item] = f"{type(exc).__name__}: {exc}"
                finally:
                    bar.advance()

        try:
            with logs_above_progress():
                await asyncio.gather(*(fetch(item) for item in ids))
        finally:
            bar.close()
    return PassResult(name, items, failed, time.perf_counter() - start, handler.stats)


def format_summary(result: PassResult) -> str:
    stats = result.stats
    responses = ", ".join(f"{k}: {v}" for k, v in stats.responses.items()) or "none"
    waits = ", ".join(f"{k} {v:.2f}s" for k, v in stats.wait_seconds_by_reason.items() if v) or "none"
    # Waits overlap: 16 tasks each sleeping 1 s wait 16 task-seconds in 1 s of wall clock.
    rate = stats.requests / result.seconds if result.seconds else 0.0
    lines = [
        f"{result.name}: {len(result.items)} items in {result.seconds:.2f}s "
        f"({stats.calls} calls, {stats.requests} requests, {rate:.0f} req/s)",
        f"  responses     {responses}",
        f"  retries       {stats.retries} after failures, {stats.resends} resends after a handled status",
        f"  errors        {stats.errors} transport, {stats.failures} failed calls, {stats.cancelled} cancelled",
        f"  waits         {stats.wait_seconds:.2f} task-seconds, summed over concurrent requests ({waits})",
        f"  cache         {stats.cache_hits} hits, {stats.cache_misses} misses, hit rate {stats.cache_hit_rate:.0%}",
        f"  received      {stats.bytes_received} bytes from the network",
    ]
    lines.extend(f"  FAILED item {item}: {why}" for item, why in sorted(result.failed.items()))
    return "\n".join(lines)


async def run(items: int, concurrency: int, cache_path: Path | None, progress: bool, stream: TextIO) -> int:
    runner, base = await server.start(items)
    try:
        if cache_path is not None:
            for suffix in (".sqlite", ".sqlite-wal", ".sqlite-shm"):
                cache_path.with_suffix(suffix).unlink(missing_ok=True)  # every demo run starts cold
        info = backend_info()
        stream.write(f"Demo API on {base}; cache: {cache_path.with_suffix('.sqlite') if cache_path else 'off'}\n")
        stream.write(f"aiorequestful {__version__}, {info.name} kernels ({info.reason})\n")
        first = await crawl_once("network", base, cache_path, concurrency, stream, progress)
        results = [first]
        if cache_path is not None:
            results.append(await crawl_once("cache", base, cache_path, concurrency, stream, progress))
    finally:
        await runner.cleanup()

    stream.write("\n" + "\n\n".join(format_summary(r) for r in results) + "\n")
    ok = all(not r.failed and len(r.items) == items for r in results)
    if len(results) == 2:
        same = results[0].items == results[1].items
        stream.write(f"\nCached pass returned the same {len(results[1].items)} items: {'yes' if same else 'NO'}\n")
        ok = ok and same
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiorequestful.demo", description=__doc__)
    parser.add_argument("--items", type=int, default=300, help="catalogue size (default 300)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent requests (default 16)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache path, .sqlite added")
    parser.add_argument("--no-cache", action="store_true", help="crawl once, without the cache")
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log retries and waits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.ERROR, format="%(levelname)s %(message)s")
    cache_path = None if args.no_cache else args.cache
    return asyncio.run(run(args.items, args.concurrency, cache_path, not args.no_progress, sys.stdout))
