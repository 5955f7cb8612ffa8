# SPDX-License-Identifier: MIT
"""A crawler worker run as a separate process by the fleet tests (never collected by pytest).

python redis_worker_crawl.py '<json config>'

Config: ``redis_url``, ``namespace``, ``worker`` (its number), ``urls`` (its share of the crawl), ``rate``
(requests per second for the whole fleet, per host), ``concurrency`` (tasks), ``duration`` (seconds after "go"
to stop taking new URLs; none: crawl them all), ``cache`` (use a RedisCache), ``retry_min``/``retry_max``.

Protocol: prints ``ready`` once its handler is entered, waits for a ``go`` line on stdin, crawls, then prints
``result <json>``: what it fetched, its handler's stats, its limiter/pause counters and every log record of
the ``aiorequestful`` loggers at INFO or above (level, logger, message; their times apart). Exits 0 unless
something escaped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

from yarl import URL

from aiorequestful.cache.backend.base import ResponseRepositorySettings
from aiorequestful.cache.backend.redis import RedisCache
from aiorequestful.flow import RateLimit
from aiorequestful.flow.redis import RedisHostPauses, RedisHostRateLimiter
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.shared import RedisConnection
from aiorequestful.timer import StepCountTimer
from redis_worker_support import capture_logs, run


class PageSettings(ResponseRepositorySettings):
    @property
    def fields(self) -> tuple[str, ...]:
        return ("id",)

    def get_key(self, method: str, url: Any, **_: Any) -> tuple[str | None]:
        return (URL(url).path.rsplit("/", 1)[-1] if str(method).upper() == "GET" else None,)

    @staticmethod
    def get_name(payload: Any) -> str | None:
        return None


async def main(config: dict[str, Any]) -> int:
    records = capture_logs(config["worker"], logging.INFO)

    connection = RedisConnection(
        config["redis_url"],
        namespace=config["namespace"],
        retry_min=config.get("retry_min", 0.1),
        retry_max=config.get("retry_max", 1.0),
    )
    limiter = RedisHostRateLimiter(connection, RateLimit(config["rate"]))
    pauses = RedisHostPauses(connection)
    cache = None
    if config.get("cache"):
        cache = RedisCache.connect(connection, cache_name="fleet", repository_getter=lambda c, url: c["pages"])
        cache.create_repository(PageSettings(name="pages", payload_handler=JSONPayloadHandler()))
    handler = RequestHandler.create(
        cache=cache,
        payload_handler=JSONPayloadHandler(),
        retry_timer=StepCountTimer(initial=0.2, count=10, step=0.2),
        rate_limit=limiter,
        pause_on_retry_after=pauses,
        headers={"X-Worker": str(config["worker"])},
    )
    urls: list[str] = list(config["urls"])
    fetched: list[str] = []
    errors: list[str] = []
    async with handler:
        # Listening to the other workers' pauses before saying "ready": a 429 one of them sees from now on
        # reaches this worker too (the subscription is confirmed by Redis, not assumed after a sleep).
        await asyncio.wait_for(pauses.ready(), 30)
        print("ready", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        if line.strip() != "go":
            return 2
        started = time.time()
        duration = config.get("duration")
        deadline = None if duration is None else time.monotonic() + float(duration)

        async def crawl() -> None:
            while urls and (deadline is None or time.monotonic() < deadline):
                url = urls.pop(0)
                try:
                    payload = await handler.get(url)
                except Exception as exc:  # reported, never hidden
                    errors.append(f"{url}: {type(exc).__name__}: {exc}")
                    continue
                fetched.append(payload["key"])

        await asyncio.gather(*(crawl() for _ in range(config.get("concurrency", 4))))
        finished = time.time()
    stats = handler.stats
    result = {
        "worker": config["worker"],
        "fetched": fetched,
        "errors": errors,
        "started": started,
        "finished": finished,
        "calls": stats.calls,
        "failures": stats.failures,
        "waits": dict(stats.wait_seconds_by_reason),
        "cache_hits": stats.cache_hits,
        "shared_reservations": limiter.shared_reservations,
        "local_reservations": limiter.local_reservations,
        "pauses_received": pauses.received,
        "outages": connection.outages,
        "available": connection.available,
        "records": records.records,
        "record_times": records.times,
    }
    print("result " + json.dumps(result), flush=True)
    return 0 if not errors else 1


if __name__ == "__main__":
    run(main)
