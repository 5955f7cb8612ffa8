# SPDX-License-Identifier: MIT
"""The parts RequestHandler is made of, each tested alone: the flow gate, the retry step, the request log line
and the argument checks."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from aiorequestful._handler.arguments import check_max_body_size, check_timer, what
from aiorequestful._handler.chain import Chain
from aiorequestful._handler.gate import FlowGate
from aiorequestful._handler.redaction import format_request_line, scrub_urls
from aiorequestful._handler.retry import RetryStep, waits_ahead
from aiorequestful.exception import RequestError
from aiorequestful.flow import HostPauses, host_key
from aiorequestful.response.exception import ResponseError
from aiorequestful.stats import WAIT_RETRY, RequestHooks, StatsRecorder
from aiorequestful.timer import StepCountTimer

LOGGER = logging.getLogger("tests.handler_parts")
HOST = host_key(URL("http://127.0.0.1:9/"))


def test_format_request_line_masks_every_secret() -> None:
    line = format_request_line(
        "GET",
        "http://user:pw@127.0.0.1/a?token=T&page=2",
        "hello",
        {
            "params": {"api_key": "K", "q": "x"},
            "headers": {"Authorization": "Bearer B", "Accept": "json"},
            "auth": ("u", "p"),
            "proxy": "http://px:ppw@127.0.0.1:3128",
            "data": "secret form body",
        },
    )
    for secret in ("pw", "=T", "K", "Bearer B", "ppw", "secret form"):
        assert secret not in line, secret
    assert "page: 2" in line and "q: x" in line and "Accept" in line and line.endswith("hello")


def test_scrub_urls_masks_urls_inside_text() -> None:
    assert "pw" not in scrub_urls("Cannot connect to http://u:pw@h/x?sig=S (refused)")


def test_argument_checks() -> None:
    assert check_max_body_size(None) is None and check_max_body_size(10) == 10
    with pytest.raises(ValueError, match=">= 0"):
        check_max_body_size(-1)
    with pytest.raises(TypeError, match="not the class StepCountTimer"):
        check_timer(StepCountTimer, "retry_timer")
    assert what(3) == "int 3" and what(object()) == "object"


async def test_retry_step_sleeps_counts_and_calls_hooks() -> None:
    stats, hooks = StatsRecorder(), RequestHooks()
    seen: list[tuple] = []
    hooks.on_retry.append(lambda *args: seen.append(("retry", *args)))
    hooks.on_wait.append(lambda *args: seen.append(("wait", *args)))
    step = RetryStep(LOGGER, stats, hooks, lambda **_: None)
    timer = StepCountTimer(initial=0, count=2, step=0)
    await step(None, "GET", "http://127.0.0.1/x", timer, Chain())
    assert (timer.counter, stats.retries, stats.wait_seconds[WAIT_RETRY]) == (1, 1, 0.0)
    assert [kind for kind, *_ in seen] == ["retry", "wait"]


async def test_retry_step_gives_up_with_the_right_error() -> None:
    step = RetryStep(LOGGER, StatsRecorder(), RequestHooks(), lambda **_: None)
    spent = StepCountTimer(initial=0, count=0)
    error = aiohttp.ClientConnectionError("refused")
    with pytest.raises(aiohttp.ClientConnectionError):
        await step(error, "GET", "http://127.0.0.1/x", spent, Chain())
    with pytest.raises(RequestError, match="Max retries exceeded"):
        await step(None, "GET", "http://127.0.0.1/x", None, Chain())


def test_retry_warning_once_per_chain(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER.name)
    step = RetryStep(LOGGER, StatsRecorder(), RequestHooks(), lambda **_: None)
    chain, timer = Chain(), StepCountTimer(initial=0.5, count=2, step=0.5)  # sleeps 0.5 and 1.0
    step.announce("get", "http://127.0.0.1/x", timer, chain, aiohttp.ServerDisconnectedError())
    step.announce("get", "http://127.0.0.1/x", timer, chain)
    (record,) = caplog.records
    assert record.getMessage() == (
        "GET http://127.0.0.1/x failed (ServerDisconnectedError): will retry 2 more times, waiting 1.50 s in all"
    )
    assert waits_ahead(timer) == 1.5


async def test_gate_records_and_judges_pauses() -> None:
    waits: list[tuple] = []
    pauses = HostPauses()
    gate = FlowGate(None, pauses, lambda *args: waits.append(args), LOGGER)
    assert gate.active
    headers = CIMultiDictProxy(CIMultiDict({"Retry-After": "120"}))
    assert gate.record_pause(HOST, 429, headers, cap=60.0) is None  # beyond the cap: not believed
    until = gate.record_pause(HOST, 429, headers, cap=None)
    assert until is not None and pauses.get(HOST) is not None
    with pytest.raises(ResponseError, match=r"is paused for 1[12][0-9]\.[0-9]{2} more seconds after a 429 response"):
        await gate.wait(HOST, "http://127.0.0.1:9/x", StepCountTimer(0, 1, 0), Chain())
    assert waits == []
    assert not FlowGate(None, None, lambda *args: None, LOGGER).active
