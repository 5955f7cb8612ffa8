# SPDX-License-Identifier: MIT
"""A polite crawler worker run as a separate process by the fleet acceptance test (never collected by pytest).

python redis_worker_polite.py '<json config>'

Config: ``redis_url``, ``namespace``, ``worker`` (its number), ``urls`` (its share of the crawl, over several
hosts), ``tasks`` (concurrent tasks), ``max_in_flight`` (the fleet's cap per host), ``adaptive`` (the keyword
arguments of the shared adaptive throttle), ``user_agent`` (for robots.txt).

Every part of the handler's flow control is shared through Redis: the adaptive throttle's state
(``RedisAdaptiveThrottle``), the paces it sets and the holds (``RedisHostRateLimiter``, which has no limits of its
own here) and the concurrency caps (``RedisHostConcurrency``); robots.txt is read by each worker.

Protocol: prints ``ready`` once its handler is entered, waits for a ``go`` line on stdin, crawls, then prints
``result <json>``: how many pages it fetched, the URLs robots.txt disallowed, the errors, its shared parts'
counters and the WARNING-or-louder log records of the ``aiorequestful`` loggers. Exits 0 unless something escaped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

from aiorequestful.flow.redis import RedisAdaptiveThrottle, RedisHostConcurrency, RedisHostRateLimiter
from aiorequestful.flow.robots import RobotsDisallowedError, RobotsTxt
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.shared import RedisConnection
from aiorequestful.timer import StepCountTimer
from redis_worker_support import capture_logs, run


async def main(config: dict[str, Any]) -> int:
    records = capture_logs(config["worker"], logging.WARNING, logging.WARNING)

    connection = RedisConnection(config["redis_url"], namespace=config["namespace"])
    throttle = RedisAdaptiveThrottle(connection, **config["adaptive"])
    caps = RedisHostConcurrency(connection, config["max_in_flight"])
    limiter = RedisHostRateLimiter(connection)
    handler = RequestHandler.create(
        payload_handler=JSONPayloadHandler(),
        retry_timer=StepCountTimer(initial=1, count=20, step=0),
        rate_limit=limiter,
        adaptive=throttle,
        max_in_flight=caps,
        robots=RobotsTxt(config["user_agent"]),
        headers={"X-Worker": str(config["worker"])},
    )
    urls: list[str] = list(config["urls"])
    fetched = 0
    disallowed: list[str] = []
    errors: list[str] = []
    async with connection, handler:
        print("ready", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        if line.strip() != "go":
            return 2
        started = time.time()

        async def crawl() -> None:
            nonlocal fetched
            while urls:
                url = urls.pop(0)
                try:
                    await handler.get(url)
                except RobotsDisallowedError:
                    disallowed.append(url)
                except Exception as exc:  # reported, never hidden
                    errors.append(f"{url}: {type(exc).__name__}: {exc}")
                else:
                    fetched += 1

        await asyncio.gather(*(crawl() for _ in range(config["tasks"])))
        await throttle.synced()
        finished = time.time()
    result = {
        "worker": config["worker"],
        "fetched": fetched,
        "disallowed": disallowed,
        "errors": errors,
        "started": started,
        "finished": finished,
        "cpu": time.process_time(),
        "failures": handler.stats.failures,
        "shared_observations": throttle.shared_observations,
        "local_observations": throttle.local_observations,
        "shared_reservations": limiter.shared_reservations,
        "local_reservations": limiter.local_reservations,
        "shared_leases": caps.shared_leases,
        "local_slots": caps.local_slots,
        "records": records.records,
        # what this worker last learnt of each host: (rate, ceiling)
        "throttle": {
            f"{host}:{port}": [state.rate, state.ceiling] for (_, host, port), state in throttle._hosts.items()
        },
    }
    print("result " + json.dumps(result), flush=True)
    return 0 if not errors else 1


if __name__ == "__main__":
    run(main)
