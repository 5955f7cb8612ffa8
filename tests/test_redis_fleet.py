# SPDX-License-Identifier: MIT
"""Crawler fleets: 4 worker processes sharing one real redis-server.

The workers (``redis_worker_crawl.py``, ``redis_worker_auth.py``) are separate Python processes crawling local
aiohttp.web servers run by the test; the servers timestamp every arrival, and the assertions are made on what the
servers saw. All four tests are inherently long (seconds of crawling at a fixed rate) and marked ``slow``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from .flow_servers import PoliteHost, Quota, max_in_window, rate
from .oauth_provider import OAuthProvider
from .redis_support import (  # noqa: F401 - fixtures
    RedisServer,
    dedicated_redis_fixture,
    redis_namespace_fixture,
    redis_url_fixture,
    sync_client,
)

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
WORKERS = 4
ARRIVALS = web.AppKey("arrivals", list)
TRIP = web.AppKey("trip", int)  # the arrival number answered 429 (0: none)


# ----------------------------------------------------------------------------------------------------------------
# the crawled host
# ----------------------------------------------------------------------------------------------------------------
async def _page(request: web.Request) -> web.Response:
    app = request.app
    arrivals = app[ARRIVALS]
    arrival = {
        "at": time.monotonic(),
        "key": request.match_info["key"],
        "worker": request.headers.get("X-Worker"),
        "status": 200,
    }
    arrivals.append(arrival)
    if len(arrivals) == app[TRIP]:
        arrival["status"] = 429
        return web.Response(status=429, text="slow down", headers={"Retry-After": "2"})
    return web.json_response({"key": arrival["key"]})


def make_app(trip: int = 0) -> web.Application:
    app = web.Application()
    app[ARRIVALS] = []
    app[TRIP] = trip
    app.router.add_get("/page/{key}", _page)
    return app


# ----------------------------------------------------------------------------------------------------------------
# worker processes
# ----------------------------------------------------------------------------------------------------------------
class Worker:
    def __init__(self, script: str, config: dict[str, Any]) -> None:
        self.script = script
        self.config = config
        self.process: asyncio.subprocess.Process | None = None
        self.stderr: list[str] = []
        self._stderr_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / self.script),
            json.dumps(self.config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ),
        )
        self._stderr_task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            self.stderr.append(line.decode(errors="replace").rstrip())

    async def line(self, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not raw:
            await self.process.wait()
            raise AssertionError(f"worker exited ({self.process.returncode}):\n" + "\n".join(self.stderr[-40:]))
        return raw.decode().rstrip("\n")

    async def send(self, text: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()

    async def result(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            line = await self.line(max(0.1, deadline - time.monotonic()))
            if line.startswith("result "):
                break
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), 10)
        if self._stderr_task is not None:
            await self._stderr_task
        result: dict[str, Any] = json.loads(line.removeprefix("result "))
        assert code == 0, f"worker {self.config['worker']} exited {code}: {result.get('errors')}\n" + "\n".join(
            self.stderr[-40:]
        )
        return result

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._stderr_task is not None:
            await asyncio.gather(self._stderr_task, return_exceptions=True)


async def run_fleet(
    script: str, configs: list[dict[str, Any]], *, during: Any = None, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Start the workers, wait until all are ready, say go to all at once, run ``during()`` meanwhile."""
    workers = [Worker(script, config) for config in configs]
    try:
        for worker in workers:
            await worker.start()
        for worker in workers:
            assert await worker.line(30) == "ready"
        for worker in workers:
            await worker.send("go")
        if during is not None:
            await during()
        return [await worker.result(timeout) for worker in workers]
    finally:
        for worker in workers:
            await worker.stop()


def crawl_configs(redis_url: str, namespace: str, base: URL, per_worker: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "redis_url": redis_url,
            "namespace": namespace,
            "worker": index,
            "urls": [str(base / "page" / f"w{index}-{i}") for i in range(per_worker)],
            **extra,
        }
        for index in range(WORKERS)
    ]


def shared_records(result: dict[str, Any], level: str) -> list[str]:
    return [message for lvl, name, message in result["records"] if lvl == level and name.endswith("shared.connection")]


# ----------------------------------------------------------------------------------------------------------------
# the fleet tests
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.realtime  # rates and pauses measured on the real clock, across processes
async def test_four_processes_together_keep_to_the_rate(serve: Any, redis_url: str, redis_namespace: str) -> None:
    rate = 20.0
    app = make_app()
    base = await serve(app)
    configs = crawl_configs(redis_url, redis_namespace, base, 80, rate=rate, concurrency=6, duration=11.5)
    results = await run_fleet("redis_worker_crawl.py", configs)

    times = sorted(a["at"] for a in app[ARRIVALS])
    first = times[0]
    in_window = [t for t in times if t < first + 10.0]
    measured = len(in_window) / 10.0
    print(f"combined rate over 10 s: {measured:.2f} req/s (limit {rate:g}); {len(times)} requests in all")
    # A full bucket of one token, then one every 1/rate: 201 in 10 s at the exact rate. Within ±10%.
    assert abs(measured - rate) <= 0.1 * rate, f"{measured:.2f} req/s for a limit of {rate}"
    by_worker = Counter(a["worker"] for a in app[ARRIVALS] if a["at"] < first + 10.0)
    assert sorted(by_worker) == [str(i) for i in range(WORKERS)]
    assert min(by_worker.values()) >= 0.15 * len(in_window), f"the workers did not share the rate: {by_worker}"
    for result in results:
        assert result["errors"] == [] and result["local_reservations"] == 0
        assert result["shared_reservations"] >= len(result["fetched"])
        assert shared_records(result, "WARNING") == []


@pytest.mark.realtime  # rates and pauses measured on the real clock, across processes
async def test_a_429_seen_by_one_worker_pauses_all(serve: Any, redis_url: str, redis_namespace: str) -> None:
    app = make_app(trip=40)  # the 40th request of the fleet gets 429 with Retry-After: 2
    base = await serve(app)
    configs = crawl_configs(redis_url, redis_namespace, base, 25, rate=20.0, concurrency=4)
    results = await run_fleet("redis_worker_crawl.py", configs)

    arrivals = app[ARRIVALS]
    limited = [a for a in arrivals if a["status"] == 429]
    assert len(limited) == 1
    t429, tripped = limited[0]["at"], limited[0]["worker"]
    # Requests already on the wire when the 429 went out may still arrive; then nothing until the pause ends.
    during = [a for a in arrivals if t429 + 0.25 < a["at"] < t429 + 1.85]
    assert during == [], f"{len(during)} requests from workers {sorted({a['worker'] for a in during})} in the pause"
    after = [a["at"] for a in arrivals if a["at"] > t429 + 0.25]
    assert after and 1.85 <= after[0] - t429 <= 3.5
    # Every worker waited for the pause, and the three that did not see the 429 learnt of it from Redis.
    for result in results:
        assert result["waits"].get("pause", 0.0) >= 1.0, result["waits"]
        if str(result["worker"]) != tripped:
            assert result["pauses_received"] >= 1
    # Nothing lost: every page answered 200 exactly once (the 429'd one too, when resent).
    answered = Counter(a["key"] for a in arrivals if a["status"] == 200)
    assert len(answered) == WORKERS * 25 and set(answered.values()) == {1}
    assert sorted(k for r in results for k in r["fetched"]) == sorted(answered)


async def test_100_tasks_over_4_processes_that_find_an_expired_token_cause_one_token_request(
    serve: Any, redis_url: str, redis_namespace: str
) -> None:
    provider = OAuthProvider(expires_in=2.0, token_delay=0.3)
    provider.add_client("app", "app-secret-value")
    base = await serve(provider.app())
    configs = [
        {
            "redis_url": redis_url,
            "namespace": redis_namespace,
            "worker": index,
            "token_url": str(base / "token"),
            "api_url": str(base / "api" / "me"),
            "tasks": 25,
        }
        for index in range(WORKERS)
    ]

    async def expire() -> None:
        # Every worker holds the first token by now (it said "ready"): let it expire before they go.
        assert provider.token_request_count == 1
        granted = min(g.expires_at for g in provider.access_tokens.values()) - 2.0
        await asyncio.sleep(max(0.0, granted + 2.2 - time.time()))

    workers = [Worker("redis_worker_auth.py", config) for config in configs]
    try:
        for worker in workers:
            await worker.start()
        for worker in workers:
            assert await worker.line(30) == "ready"
        await expire()
        for worker in workers:
            await worker.send("go")
        results = [await worker.result(60) for worker in workers]
    finally:
        for worker in workers:
            await worker.stop()

    assert provider.token_request_count == 2  # the first token, then one renewal for all 100 tasks
    firsts = {r["first"] for r in results}
    renewed = {digest for r in results for digest in r["seen"]}
    assert len(firsts) == 1 and len(renewed) == 1 and firsts != renewed
    assert all(r["errors"] == [] and r["status"] == 200 for r in results)


async def test_redis_killed_and_restarted_mid_crawl(serve: Any, dedicated_redis: RedisServer) -> None:
    app = make_app()
    base = await serve(app)
    namespace = "fleet-restart"
    configs = crawl_configs(
        dedicated_redis.url, namespace, base, 60, rate=20.0, concurrency=6, cache=True, retry_min=0.1, retry_max=0.5
    )
    killed_at: list[float] = []
    outage_times: list[float] = []  # wall clock, as the workers' log records

    async def outage() -> None:
        await asyncio.sleep(2.0)
        dedicated_redis.kill()
        killed_at.append(time.monotonic())
        outage_times.append(time.time())
        await asyncio.sleep(1.0)
        dedicated_redis.start()  # same port, empty (no persistence)
        killed_at.append(time.monotonic())
        outage_times.append(time.time())

    results = await run_fleet("redis_worker_crawl.py", configs, during=outage, timeout=90)

    answered = Counter(a["key"] for a in app[ARRIVALS] if a["status"] == 200)
    assert len(app[ARRIVALS]) == WORKERS * 60 and len(answered) == WORKERS * 60 and set(answered.values()) == {1}
    assert sorted(k for r in results for k in r["fetched"]) == sorted(answered)
    assert killed_at[0] < max(a["at"] for a in app[ARRIVALS]) and any(a["at"] > killed_at[1] for a in app[ARRIVALS])
    for result in results:
        assert result["errors"] == [] and result["failures"] == 0
        warnings = shared_records(result, "WARNING")
        assert len(warnings) == 1 and "unavailable" in warnings[0], (outage_times, result["record_times"], result)
        infos = shared_records(result, "INFO")
        assert len(infos) == 1 and "available again" in infos[0], result["records"]
        assert result["outages"] == 1 and result["available"]
        assert result["local_reservations"] > 0 and result["shared_reservations"] > 0
        loud = [r for r in result["records"] if r[0] in ("WARNING", "ERROR", "CRITICAL")]
        assert loud == [["WARNING", "aiorequestful.shared.connection", warnings[0]]]  # nothing else complained
    # Shared mode resumed: the restarted (empty) server holds what the workers wrote after it came back.
    raw = sync_client(dedicated_redis.url)
    try:
        keys = [key.decode() for key in raw.scan_iter(match=f"{namespace}:*")]
    finally:
        raw.close()
    assert any(":cache:" in key for key in keys), keys
    # While Redis was down each worker kept its own limit, so the combined rate rose, then fell back.
    during = [a["at"] for a in app[ARRIVALS] if killed_at[0] + 0.3 < a["at"] < killed_at[1]]
    after = [a["at"] for a in app[ARRIVALS] if a["at"] > killed_at[1] + 1.0]
    if len(after) > 20:
        assert (len(after) - 1) / (after[-1] - after[0]) <= 20.0 * 1.3
    assert len(during) > 0


@pytest.mark.realtime  # rates and caps measured by the servers on the real clock, across processes
async def test_four_processes_crawl_four_self_limiting_hosts_politely(
    serve: Any, redis_url: str, redis_namespace: str
) -> None:
    """The politeness acceptance crawl, as a fleet: 4 worker processes share one Redis (adaptive throttle, paces
    and concurrency caps all in it) and crawl 4 hosts that each refuse (429, ``Retry-After: 1``) beyond
    ``limit`` requests in any second or ``cap`` in flight, and whose robots.txt disallows ``/private/``."""
    limit, cap, per_host = 30, 3, 300  # pages per host; one in 30 more is disallowed
    hosts = [
        PoliteHost(
            quota=Quota(rate=limit, per=1.0, in_flight=cap, retry_after="1"),
            latency=0.02,
            robots="User-agent: *\nDisallow: /private/\n",
        )
        for _ in range(4)
    ]
    bases = [await serve(host.app()) for host in hosts]
    # every host's pages, the disallowed ones among them; each worker has a quarter of each host's, interleaved
    shares = [
        [
            str(bases[h] / ("private" if i % 30 == 29 else "p") / f"{h}-{i}")
            for i in range(index, per_host + per_host // 29, WORKERS)
            for h in range(4)
        ]
        for index in range(WORKERS)
    ]
    urls = [url for share in shares for url in share]
    configs = [
        {
            "redis_url": redis_url,
            "namespace": redis_namespace,
            "worker": index,
            "urls": shares[index],
            "tasks": 24,
            "max_in_flight": cap,
            # a brisk throttle, as in the single-process acceptance crawl
            "adaptive": {"initial_rate": 15, "increase": 15, "decrease": 0.7},
            "user_agent": "fleetbot",
        }
        for index in range(WORKERS)
    ]
    started = time.monotonic()
    results = await run_fleet("redis_worker_polite.py", configs, timeout=60)
    print(
        f"fleet crawl: {time.monotonic() - started:.1f} s; worker CPU seconds {[round(r['cpu'], 1) for r in results]}; "
        f"throttles: {[r['throttle'] for r in results]}"
    )

    for index, host in enumerate(hosts):
        t0 = min(host.arrivals)
        per_second = Counter(int(at - t0) for at in host.accepted)
        refused_per_second = Counter(int(at - t0) for at in host.refused)
        print(
            f"host {index} ({bases[index].port}): accepted per second "
            f"{[per_second[i] for i in range(max(per_second) + 1)]}, refused {dict(refused_per_second)}"
        )
    pages = sum(1 for url in urls if "/p/" in url)
    assert sum(r["fetched"] for r in results) == pages
    assert sum(len(r["disallowed"]) for r in results) == len(urls) - pages
    for result in results:
        assert result["errors"] == [] and result["failures"] == len(result["disallowed"])  # refused by robots.txt
        assert result["local_observations"] == 0 and result["shared_observations"] > 0
        assert result["local_reservations"] == 0 and result["local_slots"] == 0
        # no WARNING but the 429 handler's (Redis was there throughout)
        assert [r for r in result["records"] if r[1] != "aiorequestful.response.status"] == []
    for index, host in enumerate(hosts):
        accepted = sorted(host.accepted)
        refused = sorted(host.refused)
        # robots.txt disallowed /private/: not one request reached it, from any worker
        assert not [path for path in host.paths if path.startswith("/private/")]
        assert len(accepted) == per_host
        # the fleet's concurrency cap held, as the server counted (so it never refused for that reason)
        assert host.most_in_flight <= cap
        # what the server accepted kept to its limit (the rest it refused) ...
        assert max_in_window(accepted, 1.0 - 1e-3) <= limit
        # ... 429s only early (the fleet's slow start overshoots), then none
        assert refused, f"host {index}: the fleet never reached the server's limit"
        assert refused[-1] < accepted[len(accepted) // 2], f"host {index}: refusals late in the crawl"
        # once settled, the fleet together ran just under the server's limit: the ceiling is 95 % of what the fleet
        # was answered well at over the second before the refusal (measured again as the answers still on their
        # way then come in); it settled at 92 to 95 % in quiet trials, but each request holds one of the 3 slots
        # across several process hops, so on a loaded 2-core machine scheduling delays lower it: 85 % is the bound
        # that holds there
        settled = [at for at in accepted if at > refused[-1] + 1.5]
        measured = rate(settled)
        print(
            f"host {index}: {len(refused)} refused, settled at {measured:.1f} req/s of {limit} (whole crawl "
            f"{rate(accepted):.1f}), at most {host.most_in_flight} in flight"
        )
        assert len(settled) >= per_host // 2
        assert 0.85 * limit <= measured <= limit
