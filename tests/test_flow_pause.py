# SPDX-License-Identifier: MIT
"""Host-wide Retry-After pauses: every task to a host waits, budgets fail fast, values are capped.

Pauses are asserted from the servers' own arrival timestamps, on looptime's fast-forwarded loop clock (the one
the pauses and the servers' timestamps use), so a loaded machine cannot make them late.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from aiorequestful.flow import HostPauses, RateLimit, host_key
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import ResponseError
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.response.status import ClientErrorStatusHandler, RateLimitStatusHandler, UnauthorisedStatusHandler
from aiorequestful.timer import StepCountTimer

from .flow_servers import answered, arrivals, http_date, now, start_hosts

# Every test here runs on looptime's fast-forwarded loop clock unless it says otherwise: waits take no real
# time and rates, orders and pauses come out exact, however loaded the machine is.
pytestmark = pytest.mark.looptime

HOST = ("http", "a.test", 80)


def handler(**kwargs) -> RequestHandler:
    kwargs.setdefault("payload_handler", JSONPayloadHandler())
    kwargs.setdefault("pause_on_retry_after", True)
    return RequestHandler.create(**kwargs)


# --------------------------------------------------------------------------------------------------
# HostPauses
# --------------------------------------------------------------------------------------------------
async def test_pauses_extend_never_shorten_and_expire() -> None:
    pauses = HostPauses()
    assert pauses.get(HOST) is None and pauses.remaining(HOST) == 0.0
    first = pauses.pause(HOST, 0.3, 429)
    assert first is not None
    assert pauses.remaining(HOST) == pytest.approx(0.3, abs=0.05)
    # A shorter pause asks for less, and the longer one stays in force.
    assert pauses.pause(HOST, 0.1, 503) < first
    assert pauses.get(HOST).status == 429
    assert pauses.pause(HOST, 0.5, 503) > first
    assert pauses.get(HOST).status == 503 and len(pauses) == 1
    assert pauses.pause(("http", "b.test", 80), 0.0) is None  # zero: no pause
    assert pauses.pause(HOST, -4) is None and pauses.pause(HOST, float("nan")) is None
    pauses.resume(HOST)
    assert pauses.get(HOST) is None
    pauses.pause(HOST, 0.05)
    await asyncio.sleep(0.1)
    assert pauses.get(HOST) is None and len(pauses) == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        ("  2  ", 2.0),
        ("1.5", 1.5),
        ("-5", None),  # negative: no wait, no pause
        ("0", None),
        ("Sun, 06 Nov 1994 08:49:37 GMT", None),  # past date
        ("soon", None),
        ("", None),
        ("Fri, 31 Feb 2025 25:61:00 GMT", None),
        ("60", 60.0),  # at the cap: recorded
        ("61", None),  # over the cap: not believed, not recorded
        ("1" + "0" * 400, None),  # absurd: not recorded
        ("99999999999999999999999", None),
    ],
)
def test_pause_for_parses_leniently_and_refuses_over_the_cap(value: str, expected: float | None) -> None:
    pauses = HostPauses(max_pause=60)
    until = pauses.pause_for(HOST, 429, {"Retry-After": value})
    if expected is None:
        assert until is None and pauses.get(HOST) is None
    else:
        assert pauses.get(HOST).seconds == pytest.approx(expected)


def test_pause_for_http_date_and_cap() -> None:
    pauses = HostPauses()
    pauses.pause_for(HOST, 503, {"Retry-After": http_date(5)})
    assert 4.0 <= pauses.remaining(HOST) <= 7.0
    pauses = HostPauses()
    assert pauses.pause_for(HOST, 429, {"Retry-After": "100"}, cap=2) is None  # over the handler's cap
    assert pauses.get(HOST) is None
    assert pauses.pause_for(HOST, 429, {"Retry-After": "2"}, cap=2) is not None
    assert pauses.get(HOST).seconds == 2.0
    assert pauses.pause_for(HOST, 429, {}) is None
    # Over the cap never shortens nor replaces a pause in force either.
    assert pauses.pause(HOST, 10**9, 503) is None and pauses.get(HOST).status == 429


def test_pauses_validation() -> None:
    with pytest.raises(ValueError, match="max_pause"):
        HostPauses(max_pause=-1)
    with pytest.raises(TypeError, match="max_pause"):
        HostPauses(max_pause="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pause_on_retry_after"):
        RequestHandler.create(pause_on_retry_after="yes")


# --------------------------------------------------------------------------------------------------
# one host, many tasks
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["1", "date:1"])
async def test_429_pauses_every_task_to_the_host(serve, form: str) -> None:
    """One task's 429 + Retry-After stops the others too; the second host carries on meanwhile."""
    (app_a, url_a), (app_b, url_b) = await start_hosts(serve, 2)
    retry = StepCountTimer(initial=0, count=3, step=1)  # a budget of 6 s
    async with handler(retry_timer=retry) as h:
        first = asyncio.create_task(h.get(url_a / "item" / "first", params={"script": f"429:{form}"}))
        while not arrivals(app_a):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the 429 is in; the host is paused
        others = [h.get(url_a / "item" / f"o{i}") for i in range(10)]
        elsewhere = [h.get(url_b / "item" / f"b{i}") for i in range(5)]
        results = await asyncio.gather(first, *others, *elsewhere)
    assert len(results) == 16
    storm = arrivals(app_a, "429")[0].at
    later = sorted(a.at for a in arrivals(app_a) if a.at > storm)
    assert len(later) == 11  # the retry and the ten others, all after the pause
    # An HTTP-date is rounded up to the next second, so its pause is 1-2 s.
    assert later[0] - storm >= 0.9
    assert all(a.at - storm < 0.5 for a in arrivals(app_b))  # the other host was not paused
    stats = h.stats
    stats.check()
    assert stats.wait_seconds_by_reason["pause"] >= 0.8 * 10  # ten tasks waited the pause
    assert stats.resends == 1 and stats.retries == 0


async def test_503_retry_after_pauses_and_retries_after_the_larger_wait(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    # Retry delay 0 s, pause 1 s (within the 3 s budget): the retry waits for the pause.
    async with handler(retry_timer=StepCountTimer(initial=0, count=2, step=1)) as h:
        assert (await h.get(url / "item" / "x", params={"script": "503:1"}))["hits"] == 2
        times = [a.at for a in arrivals(app)]
        assert times[1] - times[0] >= 0.9
    # Retry delay 1.2 s, pause 0.3 s: the retry delay wins.
    async with handler(retry_timer=StepCountTimer(initial=1.2, count=2, step=0.1)) as h:
        start = now()
        assert (await h.get(url / "item" / "y", params={"script": "503:0.3"}))["hits"] == 2
        assert 1.1 <= now() - start < 3.0
        assert "pause" not in h.stats.wait_seconds_by_reason


async def test_pause_longer_than_budget_fails_fast_for_everyone(serve) -> None:
    """The task that saw the 429 and every task that meets the pause fail at once, naming the status."""
    ((app, url),) = await start_hosts(serve, 1)
    retry = StepCountTimer(initial=0.1, count=2, step=0.1)  # 0.5 s of budget, Retry-After asks for 30 s
    async with handler(retry_timer=retry) as h:
        start = now()
        with pytest.raises(ResponseError) as seen:
            await h.get(url / "item" / "storm", params={"script": "429:30"})
        others = await asyncio.gather(*(h.get(url / "item" / f"o{i}") for i in range(5)), return_exceptions=True)
        elapsed = now() - start
        assert h.host_pauses.remaining(host_key(url)) > 25
    assert elapsed < 5
    assert seen.value.response is not None and seen.value.response.status == 429
    assert str(seen.value).startswith("Status code: 429 | Rate limit exceeded and wait time is greater than")
    for error in others:
        assert isinstance(error, ResponseError)
        assert "after a 429 response with Retry-After" in str(error)
        assert "longer than the remaining retry budget of 0.50 seconds" in str(error)
    assert len(arrivals(app)) == 1  # nobody else went to the paused host
    assert h.stats.failures == 6


async def test_503_pause_longer_than_budget_fails_fast_with_the_response(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler(retry_timer=StepCountTimer(initial=0.1, count=3, step=0)) as h:
        start = now()
        with pytest.raises(ResponseError) as info:
            await h.get(url / "item" / "s", params={"script": f"503:date:{20}"})
        assert now() - start < 3
    assert info.value.response is not None and info.value.response.status == 503
    assert "greater than the remaining retry budget of 0.30 seconds" in str(info.value)
    assert str(info.value).startswith("Status code: 503 | Retry-After wait of ")
    assert len(arrivals(app)) == 1


async def test_no_retry_timer_means_no_budget_to_wait(serve) -> None:
    """Without a retry timer a request neither waits out a 429 (as in 1.0.20) nor a host pause: it fails fast."""
    ((app, url),) = await start_hosts(serve, 1)
    async with handler() as h:
        with pytest.raises(ResponseError, match="Status code: 429"):
            await h.get(url / "item" / "a", params={"script": "429:2"})
        with pytest.raises(ResponseError, match=r"paused for .* after a 429 response"):
            await h.get(url / "item" / "b")
    assert len(arrivals(app)) == 1


async def test_unbounded_budget_waits_any_pause(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler(retry_timer=StepCountTimer(initial=0, count=None, step=0)) as h:
        results = await asyncio.gather(
            h.get(url / "item" / "a", params={"script": "503:0.6,503:0.6"}),
            *(h.get(url / "item" / f"o{i}") for i in range(3)),
        )
    assert results[0]["hits"] == 3
    times = sorted(a.at for a in arrivals(app))
    assert times[-1] - times[0] >= 1.1  # two pauses of 0.6 s


@pytest.mark.parametrize(("max_retry_after", "value"), [(None, "99999"), (1, "2"), (1, "99999999999")])
async def test_retry_after_over_the_cap_pauses_nobody_else(serve, max_retry_after, value: str) -> None:
    """A Retry-After over the 429 handler's max_retry_after (one hour by default) is refused by the handler,
    and is not recorded as a pause of the cap either: the next request to the host is sent at once."""
    ((app, url),) = await start_hosts(serve, 1)
    limit = {} if max_retry_after is None else {"max_retry_after": max_retry_after}
    handlers = [UnauthorisedStatusHandler(), RateLimitStatusHandler(**limit), ClientErrorStatusHandler()]
    retry = StepCountTimer(initial=0, count=None, step=0)
    async with handler(retry_timer=retry, response_handlers=handlers) as h:
        cap = 3600.0 if max_retry_after is None else float(max_retry_after)
        with pytest.raises(ResponseError, match=rf"greater than the maximum of {cap:.2f} seconds"):
            await h.get(url / "item" / "a", params={"script": f"429:{value}"})
        assert h.host_pauses.get(host_key(url)) is None and len(h.host_pauses) == 0
        start = now()
        assert (await h.get(url / "item" / "b"))["hits"] == 1
        assert now() - start < 0.01  # sent at once: no pause, however long
    assert [a.outcome for a in arrivals(app)] == ["429", "ok"]
    assert "pause" not in h.stats.wait_seconds_by_reason


async def test_503_retry_after_over_the_cap_is_not_a_pause(serve) -> None:
    """A 503 asking for more than the cap goes to the ordinary retry step; the other tasks are not held up."""
    ((app, url),) = await start_hosts(serve, 1)
    async with handler(retry_timer=StepCountTimer(initial=0.5, count=2, step=0)) as h:
        start = now()
        results = await asyncio.gather(
            h.get(url / "item" / "a", params={"script": "503:99999"}),
            *(h.get(url / "item" / f"o{i}") for i in range(3)),
        )
        assert results[0]["hits"] == 2
        assert now() - start == pytest.approx(0.5, abs=0.01)  # the retry delay, not an hour
        assert h.host_pauses.get(host_key(url)) is None
    assert sorted(a.at - start for a in arrivals(app))[-1] == pytest.approx(0.5, abs=0.01)


@pytest.mark.timeout(20)
async def test_a_pause_ending_between_clock_ticks_does_not_spin(serve) -> None:
    """The loop runs a timer up to its clock's resolution early. Waiting out a pause must then not sleep again
    for the remaining sliver, and again (a busy loop; on this test's clock, which only moves when the loop is
    idle, it never ended)."""
    ((app, url),) = await start_hosts(serve, 1)
    pauses = HostPauses()
    async with handler(retry_timer=StepCountTimer(initial=0, count=2, step=1), pause_on_retry_after=pauses) as h:
        start = now()
        pauses.pause(host_key(url), 0.25 + 5e-10, 429)  # ends a fraction of a clock tick after a tick
        assert (await h.get(url / "item" / "x"))["hits"] == 1
    assert arrivals(app)[0].at - start == pytest.approx(0.25, abs=1e-6)
    assert h.stats.wait_seconds_by_reason["pause"] == pytest.approx(0.25, abs=1e-6)


# (The server's script is comma-separated, so the past date is in asctime form.)
@pytest.mark.parametrize("value", ["soon", "-5", "Sun Nov  6 08:49:37 1994", "\t 0 \t", "1.2.3", "\x01"])
async def test_garbage_negative_and_past_retry_after_do_not_pause(serve, caplog, value: str) -> None:
    """Unusable values fall back to the ordinary retry step; nobody else is held up."""
    ((_app, url),) = await start_hosts(serve, 1)
    caplog.set_level(logging.WARNING)
    async with handler(retry_timer=StepCountTimer(initial=0, count=2, step=0)) as h:
        start = now()
        results = await asyncio.gather(
            h.get(url / "item" / "g", params={"script": f"raw429:{value}"}),
            *(h.get(url / "item" / f"o{i}") for i in range(5)),
        )
        assert now() - start < 2
        assert h.host_pauses.get(host_key(url)) is None
    assert results[0]["hits"] == 2
    assert h.stats.responses["4xx"] == 1 and h.stats.errors == 0  # the 429 was read, then retried
    assert "pause" not in h.stats.wait_seconds_by_reason


async def test_raw_retry_after_with_odd_whitespace_pauses(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler(retry_timer=StepCountTimer(initial=0, count=2, step=1)) as h:
        task = asyncio.create_task(h.get(url / "item" / "g", params={"script": "raw429:\t 1 \t"}))
        await asyncio.sleep(0.3)
        assert h.host_pauses.get(host_key(url)) is not None
        await h.get(url / "item" / "o")
        await task
    times = sorted(a.at for a in arrivals(app))
    assert times[1] - times[0] >= 0.9


async def test_pauses_off_by_default(serve) -> None:
    """1.0.20's behaviour: only the task that saw the 429 waits."""
    ((_app, url),) = await start_hosts(serve, 1)
    async with RequestHandler.create(
        payload_handler=JSONPayloadHandler(), retry_timer=StepCountTimer(initial=0, count=2, step=1)
    ) as h:
        assert h.host_pauses is None
        first = asyncio.create_task(h.get(url / "item" / "a", params={"script": "429:1"}))
        await asyncio.sleep(0.2)
        start = now()
        await asyncio.gather(*(h.get(url / "item" / f"o{i}") for i in range(5)))
        assert now() - start < 0.5
        await first


async def test_pause_then_rate_limit_no_burst(serve) -> None:
    """After a pause the waiting tasks take new rate-limit slots: no burst beyond the bucket."""
    ((app, url),) = await start_hosts(serve, 1)
    retry = StepCountTimer(initial=0, count=3, step=1)
    async with handler(retry_timer=retry, rate_limit=RateLimit(10)) as h:
        results = await asyncio.gather(
            h.get(url / "item" / "first", params={"script": "429:1"}),
            *(h.get(url / "item" / f"o{i}") for i in range(20)),
        )
    assert len(results) == 21 and set(answered(app).values()) == {1}
    storm = arrivals(app, "429")[0].at
    after = sorted(a.at for a in arrivals(app) if a.at > storm + 0.5)
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert min(gaps) >= 0.05  # 0.1 s slots, with slack for a late wake-up
    assert after[0] - storm >= 0.9


async def test_shared_pauses_between_handlers(serve) -> None:
    ((_app, url),) = await start_hosts(serve, 1)
    pauses = HostPauses()
    retry = StepCountTimer(initial=0, count=3, step=1)
    async with (
        handler(retry_timer=retry, pause_on_retry_after=pauses) as one,
        handler(retry_timer=retry, pause_on_retry_after=pauses) as two,
    ):
        assert one.host_pauses is pauses is two.host_pauses
        first = asyncio.create_task(one.get(url / "item" / "a", params={"script": "429:1"}))
        await asyncio.sleep(0.2)
        start = now()
        await two.get(url / "item" / "b")
        assert now() - start >= 0.6
        await first
