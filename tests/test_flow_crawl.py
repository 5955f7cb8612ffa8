# SPDX-License-Identifier: MIT
"""Flow control end to end: crawls over several local hosts that misbehave, with stats and hooks.

Every URL must be answered exactly once by its server (nothing lost, nothing duplicated), rates are measured
from the servers' timestamps, and the handler's stats must add up and agree with what the servers saw.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from collections import Counter

import aiohttp
import pytest

from aiorequestful.flow import RateLimit, RetryPolicy
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.stats import WAIT_PAUSE, WAIT_RATE_LIMIT, WAIT_RETRY, WAIT_STATUS
from aiorequestful.timer import StepCountTimer

from .flow_servers import STORM, Storm, answered, arrivals, max_in_window, start_hosts

# Every test here runs on looptime's fast-forwarded loop clock unless it says otherwise: waits take no real
# time and rates, orders and pauses come out exact, however loaded the machine is.
pytestmark = pytest.mark.looptime


async def crawl(handler: RequestHandler, urls: list, workers: int) -> list:
    """Fetch ``urls`` with ``workers`` concurrent tasks; results in URL order."""
    results: list = [None] * len(urls)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(urls)):
        queue.put_nowait(index)

    async def worker() -> None:
        while True:
            try:
                index = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            url, params = urls[index]
            results[index] = await handler.get(url, params=params)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return results


# --------------------------------------------------------------------------------------------------
# hooks and overhead
# --------------------------------------------------------------------------------------------------
async def test_hooks_report_every_event(serve) -> None:
    ((_app, url),) = await start_hosts(serve, 1)
    events: Counter[str] = Counter()
    waits: Counter[str] = Counter()
    async with RequestHandler.create(
        payload_handler=JSONPayloadHandler(),
        retry_timer=StepCountTimer(initial=0.05, count=3, step=0.5),
        rate_limit=RateLimit(50),
        pause_on_retry_after=True,
        coalesce=True,
    ) as h:
        h.hooks.on_request.append(lambda method, u: events.update(["request"]))
        h.hooks.on_response.append(lambda method, u, status, cached: events.update([f"response {status}"]))
        h.hooks.on_retry.append(lambda method, u, delay, cause: events.update([f"retry {cause}"]))
        h.hooks.on_wait.append(lambda reason, seconds, u: waits.update([reason]))
        h.hooks.on_wait.append(lambda *_: 1 / 0)  # a broken hook is logged and ignored
        await asyncio.gather(
            h.get(url / "item" / "a", params={"script": "429:0.5"}),
            h.get(url / "item" / "b", params={"script": "503"}),
            *(h.get(url / "item" / f"c{i}") for i in range(5)),
            *(h.get(url / "item" / "same") for _ in range(3)),
        )
    stats = h.stats
    stats.check()
    assert events["request"] == stats.requests == 10  # 8 distinct requests, 1 retry, 1 resend
    assert events["response 200"] == 8 and events["response 429"] == 1 and events["response 503"] == 1
    assert events["retry 503"] == stats.retries == 1
    assert waits[WAIT_RATE_LIMIT] >= 5 and waits[WAIT_PAUSE] >= 1 and waits[WAIT_STATUS] == 1 and waits[WAIT_RETRY] == 1
    assert stats.requests == stats.calls - stats.coalesced + stats.retries + stats.resends
    assert stats.coalesced == 2 and stats.resends == 1


async def test_no_tasks_created_with_flow_control_off(serve) -> None:
    """With every feature off, the request loop creates no task of its own (coalescing does, when on)."""
    ((_app, url),) = await start_hosts(serve, 1)
    loop = asyncio.get_running_loop()
    created: list[str] = []
    default_factory = loop.get_task_factory()

    def factory(loop, coro, **kwargs):
        module = coro.cr_frame.f_globals.get("__name__", "") if getattr(coro, "cr_frame", None) else ""
        created.append(f"{module}:{getattr(coro, '__qualname__', '')}")
        if default_factory is None:
            return asyncio.Task(coro, loop=loop, **kwargs)
        return default_factory(loop, coro, **kwargs)

    loop.set_task_factory(factory)
    try:
        async with RequestHandler.create(payload_handler=JSONPayloadHandler()) as h:
            assert h.rate_limiter is None and h.host_pauses is None and not h.coalesce and h.retry_policy is None
            for i in range(5):
                await h.get(url / "item" / f"n{i}")
        assert created  # the servers' own tasks were seen ...
        assert [name for name in created if name.startswith("aiorequestful")] == []  # ... and none of ours
        async with RequestHandler.create(payload_handler=JSONPayloadHandler(), coalesce=True) as h:
            await h.get(url / "item" / "c")
        ours = [name for name in created if name.startswith("aiorequestful")]
        assert ours == ["aiorequestful.request:RequestHandler._request_loop"]
    finally:
        loop.set_task_factory(default_factory)


# --------------------------------------------------------------------------------------------------
# a short crawl through every kind of misbehaviour
# --------------------------------------------------------------------------------------------------
MISBEHAVIOUR = [
    "429:0.3",  # Retry-After in seconds
    "429:date:0",  # Retry-After as an HTTP-date (rounded up: 1-2 s)
    "503:0.2",  # 503 with Retry-After: pause + retry step
    "503,500",  # plain 5xx
    "reset,reset,reset",  # dropped connections (aiohttp resends the first one itself)
    "stall:1.5",  # past the 0.5 s time-out: the late answer reaches nobody
    "raw429:soon",  # a garbage Retry-After: the ordinary retry step
    "raw429:\t 0.2 \t",  # odd whitespace around a valid value
]


async def test_chaos_crawl_every_url_answered_once(serve) -> None:
    hosts = await start_hosts(serve, 3)
    urls: list = []
    for index in range(90):
        app, base = hosts[index % 3]
        script = MISBEHAVIOUR[index // 3 % len(MISBEHAVIOUR)] if index % 2 == 0 else ""
        urls.append((base / "item" / f"k{index}", {"script": script} if script else None))
    # Duplicates: coalesced when they meet the original in flight, otherwise fetched (and answered) once more.
    duplicates = urls[:12]
    urls += duplicates

    async with RequestHandler.create(
        payload_handler=JSONPayloadHandler(),
        retry_timer=StepCountTimer(initial=0.05, count=8, step=0.1),
        retry_policy=RetryPolicy(jitter=0.05),
        rate_limit=RateLimit(40, burst=4),
        pause_on_retry_after=True,
        coalesce=True,
        timeout=aiohttp.ClientTimeout(total=0.5),
    ) as h:
        results = await asyncio.wait_for(crawl(h, urls, workers=40), timeout=60)

    for (url, _), result in zip(urls, results, strict=True):
        assert result["key"] == url.name
    stats = h.stats
    sent: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for app, _ in hosts:
        counts.update(answered(app))
        sent.update(a.outcome for a in arrivals(app))
    assert set(counts) == {f"k{i}" for i in range(90)}  # nothing lost ...
    twice = {key for key, n in counts.items() if n > 1}
    assert twice <= {url.name for url, _ in duplicates} and max(counts.values()) <= 2  # ... nothing duplicated
    assert sum(counts.values()) == len(urls) - stats.coalesced  # each call answered once, or shared
    assert sent["abandoned"] >= 1 and sent["reset"] >= 1

    stats.check()
    assert stats.calls == len(urls) and stats.failures == 0
    # Whatever was not coalesced was fetched again, and answered from the server again: 2xx = answers.
    assert stats.responses["2xx"] == len(urls) - stats.coalesced
    assert stats.responses.get("4xx", 0) == sent["429"]
    assert stats.responses.get("5xx", 0) == sent["503"] + sent["500"]
    assert stats.requests == stats.calls - stats.coalesced + stats.retries + stats.resends
    assert stats.errors >= sent["abandoned"]
    assert {WAIT_RATE_LIMIT, WAIT_PAUSE, WAIT_RETRY, WAIT_STATUS} <= set(stats.wait_seconds_by_reason)


# --------------------------------------------------------------------------------------------------
# on the real clock
# --------------------------------------------------------------------------------------------------
@pytest.mark.realtime
@pytest.mark.looptime(False)
async def test_real_crawl_keeps_a_real_rate(serve) -> None:
    """The same limiter on the real clock: two hosts at 20 and 10 req/s for about 2 s, measured by the servers.

    The other tests here prove the arithmetic exactly on a fast-forwarded clock; this one proves that real
    timers deliver it. The tolerances hold on a loaded machine: a late wake-up delays one request, but slots are
    reserved on the bucket's continuous clock, so lateness does not accumulate and the rate never goes over.
    """
    (app_a, url_a), (app_b, url_b) = await start_hosts(serve, 2)
    limits = {f"{url_a.host}:{url_a.port}": RateLimit(20), f"{url_b.host}:{url_b.port}": RateLimit(10)}
    async with RequestHandler.create(payload_handler=JSONPayloadHandler(), rate_limit=limits) as h:
        urls = [(url_a / "item" / f"a{i}", None) for i in range(41)] + [
            (url_b / "item" / f"b{i}", None) for i in range(21)
        ]
        results = await crawl(h, urls, workers=30)
    assert [r["key"] for r in results] == [url.name for url, _ in urls]
    for app, limit in ((app_a, 20), (app_b, 10)):
        times = sorted(a.at for a in arrivals(app))
        assert set(answered(app).values()) == {1}
        span = times[-1] - times[0]
        # 40 intervals of 1/20 s (20 of 1/10 s) is 2 s, not much more. A little less is possible: the first
        # request also opens the connection, so it can arrive late while the later ones keep their slots.
        assert 2.0 - 0.1 <= span <= 2.0 + 0.6, span
        # Never faster than the limit: one token and a late wake-up at most in any half second.
        assert max_in_window(times, 0.5) <= 0.5 * limit + 2


# --------------------------------------------------------------------------------------------------
# the acceptance crawl
# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_crawl_2000_urls_4_hosts_5_per_second_with_429_storms(serve) -> None:
    """2,000 URLs over 4 hosts at 5 req/s/host with 429 storms (both Retry-After forms): every URL answered
    once, rates within tolerance, stats adding up. About 105 s by definition (500 URLs per host at 5/s)."""
    hosts = await start_hosts(serve, 4, storm=Storm(every=150, duration=1.0))
    urls = [(hosts[i % 4][1] / "item" / f"u{i}", None) for i in range(2000)]

    async with RequestHandler.create(
        payload_handler=JSONPayloadHandler(),
        retry_timer=StepCountTimer(initial=0.5, count=10, step=0.5),
        retry_policy=RetryPolicy(jitter=0.1),
        rate_limit=RateLimit(5),
        pause_on_retry_after=True,
    ) as h:
        results = await crawl(h, urls, workers=200)

    assert [r["key"] for r in results] == [f"u{i}" for i in range(2000)]
    storms = 0
    for app, _ in hosts:
        counts = answered(app)
        assert len(counts) == 500 and set(counts.values()) == {1}
        storm: Storm = app[STORM]
        assert storm.storms >= 3 and storm.sent >= storm.storms  # every storm was met by at least one request
        storms += storm.sent
        times = sorted(a.at for a in arrivals(app))
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # The typical spacing is the configured 0.2 s (±5%); pauses only make some gaps longer.
        assert statistics.median(gaps) == pytest.approx(0.2, rel=0.05)
        # Never faster than the limit: at most 10 in any 2 s, plus one token and scheduling slack.
        assert max_in_window(times, 2.0) <= 12
        # Overall no faster than 5/s, and not much slower than the pauses explain.
        assert len(times) / (times[-1] - times[0]) <= 5.0 * 1.05
        paused = sum(end - start for start, end in storm.windows)
        assert (len(times) - 1) / (times[-1] - times[0] - 2 * paused - storm.storms) >= 5.0 * 0.9

    stats = h.stats
    stats.check()
    assert stats.calls == 2000 and stats.failures == 0 and stats.errors == 0
    assert stats.responses["2xx"] == 2000
    assert stats.responses["4xx"] == storms == stats.resends
    assert stats.requests == 2000 + stats.retries + stats.resends
    assert stats.wait_seconds_by_reason[WAIT_RATE_LIMIT] > 0 and stats.wait_seconds_by_reason[WAIT_PAUSE] > 0
