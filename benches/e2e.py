# SPDX-License-Identifier: MIT
"""End-to-end throughput: N GETs through ``RequestHandler.get`` vs raw ``aiohttp`` + orjson.

One client process measures every mode, rotating their order every round, against the loopback server of
``benches.server`` (a separate process). The backend (native or pure) is the one ``aiorequestful._backend`` picks
from the environment, so ``benches.run`` starts one client per backend and interleaves them round by round.

``python -m benches.e2e --base URL [--n N] [--concurrency 1,32] [--rounds R] [--warmup W] [--modes ...]`` prints
one JSON object.

Modes:

* ``raw``: ``aiohttp.ClientSession.get`` + status check + ``orjson.loads(await resp.read())`` - the ceiling;
* ``handler``: ``RequestHandler.create(payload_handler=JSONPayloadHandler(), retry_timer=GeometricCountTimer(
  0.2, 3))`` then ``await handler.get(url)`` - the default status handlers, a retry budget, JSON decoding;
* ``handler_flow``: the same with every flow-control feature on but never binding (a per-host token bucket of
  a million requests per second, ``RetryPolicy()``, ``pause_on_retry_after=True``, ``coalesce=True``): the cost
  of the gate, the coalescing key and the bookkeeping on every request. Skipped for the original package;
* ``raw_json50k`` and ``handler_json50k``: ``raw`` and ``handler`` on ``/json50k`` (the same ~50 KB page of records
  on every request), where the JSON decode is a large part of a request. Only when asked for with ``--modes``
  (``benches.run`` runs them as their own step, to compare the backends on a large body).

Each mode runs ``n`` requests with ``concurrency`` workers pulling ids from one shared iterator, the way a
crawler does. Outside the timed part, a sample of results is compared with ``json.loads`` of what the server sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
import orjson

from benches._data import item_body, json_document
from benches.server import POOL

Fetch = Callable[[int], Awaitable[Any]]


def item_url(base: str, item: int) -> str:
    return f"{base}/v2/items/{item}"


def expected_item(item: int) -> Any:
    """What a correct client decodes for ``/v2/items/{item}``."""
    return json.loads(item_body(item % POOL))


async def run_pool(fetch: Fetch, ids: Iterable[int], concurrency: int) -> int:
    """Run ``fetch`` over ``ids`` with ``concurrency`` workers; returns how many results were JSON objects."""
    iterator = iter(ids)
    done = 0

    async def worker() -> None:
        nonlocal done
        for item in iterator:  # one shared iterator: asyncio is single-threaded, so no id is taken twice
            if type(await fetch(item)) is dict:
                done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def timed(fetch: Fetch, ids: range, concurrency: int) -> dict[str, Any]:
    """Wall-clock throughput, plus the client's CPU time per request (less sensitive to a busy machine)."""
    cpu = time.process_time()
    started = time.perf_counter()
    done = await run_pool(fetch, ids, concurrency)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    if done != len(ids):
        raise AssertionError(f"only {done} of {len(ids)} requests returned a JSON object")
    return {"n": len(ids), "seconds": elapsed, "rps": len(ids) / elapsed, "cpu_us": 1e6 * cpu / len(ids)}


async def verify(fetch: Fetch, ids: Iterable[int]) -> None:
    for item in ids:
        got = await fetch(item)
        if got != expected_item(item):
            raise AssertionError(f"item {item}: decoded payload differs from what the server sent")


#: The modes that fetch ``/json50k`` whatever the id (every request gets the same ~50 KB page).
JSON50K_MODES = ("raw_json50k", "handler_json50k")


def json50k_url(base: str, item: int) -> str:
    return f"{base}/json50k"


async def verify_json50k(fetch: Fetch) -> None:
    if await fetch(0) != json.loads(json_document("50KB")):
        raise AssertionError("/json50k: decoded payload differs from what the server sent")


def raw_fetcher(session: aiohttp.ClientSession, base: str, url: Callable[[str, int], str] = item_url) -> Fetch:
    async def fetch(item: int) -> Any:
        async with session.get(url(base, item)) as response:
            if response.status != 200:
                raise AssertionError(f"status {response.status}")
            return orjson.loads(await response.read())

    return fetch


def make_handler(**kwargs: Any) -> Any:
    """The RequestHandler configuration every end-to-end bench uses (a realistic one, not a stripped one)."""
    from aiorequestful.request import RequestHandler
    from aiorequestful.response.payload import JSONPayloadHandler
    from aiorequestful.timer import GeometricCountTimer

    return RequestHandler.create(
        payload_handler=JSONPayloadHandler(), retry_timer=GeometricCountTimer(0.2, 3), **kwargs
    )


def handler_fetcher(handler: Any, base: str, url: Callable[[str, int], str] = item_url) -> Fetch:
    async def fetch(item: int) -> Any:
        return await handler.get(url(base, item))

    return fetch


def backend_info() -> dict[str, Any]:
    try:
        import aiorequestful._backend as backend
    except ImportError:  # the original aiorequestful (optional comparison) has no backend chooser
        from importlib.metadata import version

        return {"native": None, "kernels": None, "package": f"aiorequestful {version('aiorequestful')}"}
    return {"native": backend.NATIVE, "kernels": backend.kernels.__name__}


def make_flow_handler() -> Any:
    """``make_handler`` with every flow-control feature on, at limits no bench ever reaches."""
    from aiorequestful.flow import RateLimit, RetryPolicy

    return make_handler(
        rate_limit=RateLimit(rate=1_000_000.0, burst=1_000_000.0),
        retry_policy=RetryPolicy(),
        pause_on_retry_after=True,
        coalesce=True,
    )


def available_modes() -> list[str]:
    try:
        import aiorequestful.flow  # noqa: F401 - only probing for it
    except ImportError:  # the original package has no flow control
        return ["raw", "handler"]
    return ["raw", "handler", "handler_flow"]


async def throughput(
    base: str,
    n: int,
    concurrencies: list[int],
    rounds: int = 1,
    warmup: int = 200,
    start_round: int = 0,
    modes: list[str] | None = None,
) -> dict[str, Any]:
    """Measure every mode at each concurrency; returns every sample with its round.

    The order of the modes rotates with the round number, so no mode always runs first (or right after another).
    """
    modes = modes or available_modes()
    samples: list[dict[str, Any]] = []
    next_id = 0

    def ids(count: int) -> range:
        nonlocal next_id
        block = range(next_id, next_id + count)
        next_id += count
        return block

    async with contextlib.AsyncExitStack() as stack:
        fetchers: dict[str, Fetch] = {}
        handlers: dict[str, Any] = {}
        for mode in modes:
            url = json50k_url if mode in JSON50K_MODES else item_url
            if mode in ("raw", "raw_json50k"):
                session = await stack.enter_async_context(aiohttp.ClientSession())
                fetchers[mode] = raw_fetcher(session, base, url)
                continue
            factory = {"handler": make_handler, "handler_flow": make_flow_handler, "handler_json50k": make_handler}
            handlers[mode] = await stack.enter_async_context(factory[mode]())
            fetchers[mode] = handler_fetcher(handlers[mode], base, url)
        for mode, fetch in fetchers.items():
            if mode in JSON50K_MODES:
                await verify_json50k(fetch)
            else:
                await verify(fetch, range(0, POOL, max(1, POOL // 25)))
            await run_pool(fetch, ids(warmup), max(concurrencies))  # connections open, caches warm
        for r in range(start_round, start_round + rounds):
            for concurrency in concurrencies:
                shift = r % len(modes)
                for mode in modes[shift:] + modes[:shift]:
                    sample = await timed(fetchers[mode], ids(n), concurrency)
                    samples.append({"mode": mode, "concurrency": concurrency, "round": r, **sample})
        stats = {mode: _stats_dict(getattr(handler, "stats", None)) for mode, handler in handlers.items()}
    return {"backend": backend_info(), "modes": modes, "samples": samples, "handler_stats": stats}


def _stats_dict(stats: Any) -> dict[str, Any]:
    if stats is None:
        return {}
    names = ("calls", "requests", "failures", "retries", "errors", "cache_hits", "cache_misses")
    return {name: getattr(stats, name) for name in names if hasattr(stats, name)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="base URL of a running benches.server (127.0.0.1)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--start-round", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--modes",
        default=None,
        help="comma list of raw,handler,handler_flow,raw_json50k,handler_json50k (default: the first three)",
    )
    args = parser.parse_args(argv)
    if not args.base.startswith("http://127.0.0.1:"):
        parser.error("the benches only ever talk to 127.0.0.1")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    modes = args.modes.split(",") if args.modes else None
    result = asyncio.run(
        throughput(args.base, args.n, concurrencies, args.rounds, args.warmup, args.start_round, modes)
    )
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
