# SPDX-License-Identifier: MIT
"""The attempt part of RequestHandler tested alone (a real session against a real 127.0.0.1 server), and the
handler's logger and hooks reaching every part when they are replaced."""

from __future__ import annotations

import logging
from http import HTTPMethod
from typing import Any

import aiohttp
import pytest

from aiorequestful._handler.attempt import CLOSED_MESSAGE, Attempts
from aiorequestful.exception import RequestError
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import PayloadHandlerError, ResponseTooLargeError
from aiorequestful.response.payload import JSONPayloadHandler, StringPayloadHandler
from aiorequestful.stats import RequestHooks, StatsRecorder
from aiorequestful.timer import StepCountTimer

from .servers import hits, make_app

LOGGER = logging.getLogger("tests.handler_attempts")


@pytest.fixture
async def app_url(serve: Any) -> Any:
    app = make_app()
    return app, await serve(app)


def attempts(max_body_size: int | None = 1 << 20) -> tuple[Attempts, StatsRecorder, list[Any]]:
    stats = StatsRecorder()
    hooks = RequestHooks()
    seen: list[Any] = []
    hooks.on_request.append(lambda method, url: seen.append(("request", method, url.path)))
    hooks.on_response.append(lambda method, url, status, cached: seen.append(("response", status, cached)))
    return Attempts(stats, hooks, LOGGER, lambda **_: None, max_body_size), stats, seen


async def test_an_attempt_is_sent_counted_decoded_and_released(app_url: Any) -> None:
    app, url = app_url
    part, stats, seen = attempts()
    async with aiohttp.ClientSession() as session:
        part.open(session)
        response = await part.send(HTTPMethod.GET, url / "json" / "a", None, {"params": {"x": "1"}})
        assert isinstance(response, aiohttp.ClientResponse) and response.status == 200
        done, payload = await part.decode(response, JSONPayloadHandler(), HTTPMethod.GET, part.max_body_size)
        assert done and payload["id"] == "a"
        part.release(response)
        assert response.closed or response.connection is None
    assert (stats.requests, dict(stats.responses), stats.bytes_received > 0) == (1, {"2xx": 1}, True)
    assert seen == [("request", "GET", "/json/a"), ("response", 200, False)]
    assert hits(app, "json", "a") == 1


async def test_a_transport_failure_is_returned_and_a_closed_session_raises(app_url: Any) -> None:
    _, url = app_url
    part, stats, _ = attempts()
    async with aiohttp.ClientSession() as session:
        part.open(session)
        failure = await part.send(HTTPMethod.GET, url / "reset" / "r", None, {"params": {"n": "5"}})
        assert isinstance(failure, aiohttp.ClientError)
        assert (stats.requests, stats.errors) == (1, 1)
    part.open(None)
    with pytest.raises(RequestError, match=CLOSED_MESSAGE):
        await part.send(HTTPMethod.GET, url / "json" / "b", None, {})


async def test_decode_returns_failures_to_retry_and_raises_the_rest(app_url: Any) -> None:
    _, url = app_url
    part, _, _ = attempts(max_body_size=100)
    async with aiohttp.ClientSession() as session:
        part.open(session)
        bad = await part.send(HTTPMethod.GET, url / "badjson", None, {})
        assert not isinstance(bad, BaseException)
        with pytest.raises(PayloadHandlerError, match=r"not valid JSON: .* \| GET .*/badjson \| Status code: 200"):
            await part.decode(bad, JSONPayloadHandler(), HTTPMethod.GET, part.max_body_size)
        part.release(bad)
        part.catch = (*part.catch, PayloadHandlerError)  # a retry policy that lists payload errors
        bad = await part.send(HTTPMethod.GET, url / "badjson", None, {})
        assert not isinstance(bad, BaseException)
        done, failure = await part.decode(bad, JSONPayloadHandler(), HTTPMethod.GET, part.max_body_size)
        assert not done and isinstance(failure, PayloadHandlerError)
        part.release(bad)
        big = await part.send(HTTPMethod.GET, url / "big" / "b", None, {})
        assert not isinstance(big, BaseException)
        with pytest.raises(ResponseTooLargeError):
            await part.decode(big, StringPayloadHandler(), HTTPMethod.GET, part.max_body_size)
        part.release(big)


async def test_without_a_caching_session_a_lookup_is_a_miss(app_url: Any) -> None:
    _, url = app_url
    part, stats, seen = attempts()
    async with aiohttp.ClientSession() as session:
        part.open(session)
        assert await part.lookup(HTTPMethod.GET, url / "json" / "c", {}, "before sending") is None
    assert (stats.requests, seen) == (0, [])


async def test_a_replaced_logger_and_hooks_reach_the_retry_step_and_the_attempts(app_url: Any, caplog: Any) -> None:
    _, url = app_url
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler(), retry_timer=StepCountTimer(0, 2, 0))
    mine = logging.getLogger("tests.handler_attempts.mine")
    handler.logger = mine
    assert handler._flow_gate.logger is mine  # the gate's pause lines too
    hooks = RequestHooks()
    retries: list[Any] = []
    responses: list[int] = []
    hooks.on_retry.append(lambda method, url, delay, cause: retries.append(delay))
    hooks.on_response.append(lambda method, url, status, cached: responses.append(status))
    handler.hooks = hooks
    with caplog.at_level(logging.DEBUG, logger=mine.name):
        async with handler:
            assert await handler.get(url / "flaky" / "f", params={"fail": "1"}) is not None
    assert handler.logger is mine and handler.hooks is hooks
    assert retries == [0.0] and responses == [503, 200]
    records = [r for r in caplog.records if r.name == mine.name]
    assert any(r.levelno == logging.WARNING for r in records)  # the retry step's WARNING, on the new logger
    assert any("GET" in r.getMessage() for r in records if r.levelno == logging.DEBUG)  # the attempts' lines
    with pytest.raises(TypeError, match="hooks must be a RequestHooks"):
        handler.hooks = []  # type: ignore[assignment]
