# SPDX-License-Identifier: MIT
"""A crawler fleet sharing one Redis: N worker processes, one per-host rate limit for all of them.

    export AIOREQUESTFUL_REDIS_URL="$(bash scripts/redis.sh start)"
    .venv/bin/python scripts/fleet_demo.py --workers 4 --rate 20 --seconds 10
    .venv/bin/python scripts/fleet_demo.py --workers 4 --rate 20 --seconds 10 --local   # for comparison
    bash scripts/redis.sh stop

The parent starts a local API on 127.0.0.1 that timestamps every request, then N worker processes. Each worker
crawls its own share of the API through a RequestHandler with a RedisHostRateLimiter (the token bucket lives in
Redis), RedisHostPauses (a Retry-After seen by one pauses all) and a RedisCache, as a real fleet would. After the
run the parent prints what the server measured: the combined request rate over the window, the busiest second,
and each worker's share. With ``--local`` every worker uses a plain per-process HostRateLimiter instead, which is
what a fleet gets without shared state: N times the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from typing import Any

from aiohttp import web
from yarl import URL

ARRIVALS = web.AppKey("arrivals", list)


# ----------------------------------------------------------------------------------------------------------------
# worker
# ----------------------------------------------------------------------------------------------------------------
async def worker(config: dict[str, Any]) -> None:
    from aiorequestful.cache.backend.base import ResponseRepositorySettings
    from aiorequestful.cache.backend.redis import RedisCache
    from aiorequestful.flow import HostRateLimiter, RateLimit
    from aiorequestful.flow.redis import RedisHostPauses, RedisHostRateLimiter
    from aiorequestful.request import RequestHandler
    from aiorequestful.response.payload import JSONPayloadHandler
    from aiorequestful.shared import RedisConnection
    from aiorequestful.timer import StepCountTimer

    class Pages(ResponseRepositorySettings):
        @property
        def fields(self) -> tuple[str, ...]:
            return ("id",)

        def get_key(self, method: str, url: Any, **_: Any) -> tuple[str | None]:
            return (URL(url).path.rsplit("/", 1)[-1] if str(method).upper() == "GET" else None,)

        @staticmethod
        def get_name(payload: Any) -> str | None:
            return None

    redis = RedisConnection(config["redis_url"], namespace=config["namespace"])
    limit = RateLimit(config["rate"])
    if config["local"]:
        limiter: HostRateLimiter = HostRateLimiter(limit)
        pauses: Any = True
        cache = None
    else:
        limiter = RedisHostRateLimiter(redis, limit)
        pauses = RedisHostPauses(redis)
        cache = RedisCache.connect(redis, cache_name="demo", repository_getter=lambda c, url: c["pages"])
        cache.create_repository(Pages(name="pages", payload_handler=JSONPayloadHandler()))
    handler = RequestHandler.create(
        cache=cache,
        payload_handler=JSONPayloadHandler(),
        retry_timer=StepCountTimer(initial=0.5, count=5, step=0.5),
        rate_limit=limiter,
        pause_on_retry_after=pauses,
        headers={"X-Worker": str(config["worker"])},
    )
    base = URL(config["base"])
    pending = [base / "page" / f"w{config['worker']}-{i}" for i in range(config["pages"])]
    done = 0
    async with redis, handler:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        deadline = time.monotonic() + config["seconds"] + 1.0

        async def crawl() -> None:
            nonlocal done
            while pending and time.monotonic() < deadline:
                await handler.get(pending.pop(0))
                done += 1

        await asyncio.gather(*(crawl() for _ in range(config["concurrency"])))
    print(json.dumps({"worker": config["worker"], "done": done, "outages": redis.outages}), flush=True)


# ----------------------------------------------------------------------------------------------------------------
# parent: the API server and the fleet
# ----------------------------------------------------------------------------------------------------------------
async def page(request: web.Request) -> web.Response:
    request.app[ARRIVALS].append((time.monotonic(), request.headers.get("X-Worker", "?")))
    return web.json_response({"key": request.match_info["key"]})


async def parent(args: argparse.Namespace) -> int:
    app = web.Application()
    app[ARRIVALS] = []
    app.router.add_get("/page/{key}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    namespace = f"fleet-demo-{os.getpid()}"
    pages = int(args.rate * (args.seconds + 2) * (args.workers if args.local else 1) / args.workers) + 10
    processes = []
    try:
        for index in range(args.workers):
            config = {
                "worker": index,
                "redis_url": args.redis_url,
                "namespace": namespace,
                "rate": args.rate,
                "seconds": args.seconds,
                "pages": pages,
                "concurrency": args.concurrency,
                "local": args.local,
                "base": base,
            }
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--worker-config",
                    json.dumps(config),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            if line.strip() != b"ready":
                print(f"a worker failed to start: {line!r}", file=sys.stderr)
                return 1
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        reports = []
        for process in processes:
            assert process.stdout is not None
            reports.append(json.loads(await asyncio.wait_for(process.stdout.readline(), args.seconds + 60)))
            await process.wait()
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await runner.cleanup()
        if not args.local:
            await _forget(args.redis_url, namespace)

    times = sorted(at for at, _ in app[ARRIVALS])
    start = times[0]
    window = [t for t in times if t < start + args.seconds]
    busiest = _max_in_window(times, 1.0)
    shares = Counter(worker for at, worker in app[ARRIVALS] if at < start + args.seconds)
    mode = "per-process HostRateLimiter (no Redis)" if args.local else "RedisHostRateLimiter shared through Redis"
    print(f"fleet: {args.workers} worker processes x {args.concurrency} tasks, limit {args.rate:g} req/s per host")
    print(f"mode: {mode}")
    print(f"requests answered by the server: {len(times)} in all, {len(window)} in the first {args.seconds:g} s")
    print(f"combined rate over {args.seconds:g} s: {len(window) / args.seconds:.2f} req/s")
    print(f"busiest 1 s window: {busiest} requests")
    print("per worker: " + ", ".join(f"w{w}={n}" for w, n in sorted(shares.items())))
    if not args.local:
        print(f"Redis outages seen by the workers: {sum(r['outages'] for r in reports)}")
    return 0


async def _forget(url: str, namespace: str) -> None:
    from aiorequestful.shared import RedisConnection

    redis = RedisConnection(url, namespace=namespace)

    async def drop(client: Any) -> None:
        names = [name async for name in client.scan_iter(match=f"{namespace}:*", count=500)]
        if names:
            await client.delete(*names)

    await redis.call(drop, None)
    await redis.aclose()


def _max_in_window(times: list[float], window: float) -> int:
    best, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get("AIOREQUESTFUL_REDIS_URL"), help="redis://host:port/db")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="tasks per worker")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second for the whole fleet")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--local", action="store_true", help="per-process limits only (what a fleet gets without)")
    parser.add_argument("--worker-config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_config:
        asyncio.run(worker(json.loads(args.worker_config)))
        return 0
    if not args.redis_url:
        parser.error("give --redis-url or set AIOREQUESTFUL_REDIS_URL (e.g. from: bash scripts/redis.sh start)")
    return asyncio.run(parent(args))


if __name__ == "__main__":
    sys.exit(main())
