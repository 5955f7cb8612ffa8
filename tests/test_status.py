# SPDX-License-Identifier: MIT
"""aiorequestful.response.status with real responses from 127.0.0.1: 429 waits, per-instance state,
retry budgets, logging."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse, web
from yarl import URL

from aiorequestful.response.exception import ResponseError, StatusHandlerError
from aiorequestful.response.status import (
    ClientErrorStatusHandler,
    RateLimitStatusHandler,
    StatusHandler,
    UnauthorisedStatusHandler,
)
from aiorequestful.timer import GeometricCeilingTimer, StepCeilingTimer, StepCountTimer

LOGGER = "aiorequestful.response.status"
VALID_TOKEN = "Bearer fresh"


async def status_route(request: web.Request) -> web.Response:
    """``/status/{code}``: that status with a text body; ``?retry_after=`` sets a raw Retry-After header."""
    code = int(request.match_info["code"])
    headers = {}
    if "retry_after" in request.query:
        headers["Retry-After"] = request.query["retry_after"]
    if "retry_after_lower" in request.query:
        headers["retry-after"] = request.query["retry_after_lower"]
    return web.Response(status=code, text=f"failure body {code}", headers=headers, reason=request.query.get("reason"))


async def binary_error(_: web.Request) -> web.Response:
    return web.Response(status=400, body=b"bad \xff\xfe request", content_type="text/plain", charset="utf-8")


async def protected(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") == VALID_TOKEN:
        return web.json_response({"ok": True})
    return web.Response(status=401, text="unauthorised")


@pytest.fixture
async def base_url(serve: Callable[..., Awaitable[URL]]) -> URL:
    app = web.Application()
    app.router.add_get("/status/{code}", status_route)
    app.router.add_get("/binary-error", binary_error)
    app.router.add_get("/protected", protected)
    return await serve(app)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@asynccontextmanager
async def get(session: aiohttp.ClientSession, base_url: URL, path: str, **query: str) -> AsyncIterator[ClientResponse]:
    url = base_url.with_path(path).with_query(query) if query else base_url.with_path(path)
    async with session.get(url) as response:
        yield response


def http_date(moment: float) -> str:
    return format_datetime(datetime.fromtimestamp(moment, UTC), usegmt=True)


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER and record.levelno == level]


class StandInAuthoriser:
    """A minimal authoriser: awaitable for headers, with the ``invalidate(rejected=...)`` hook."""

    def __init__(self, token: str = "stale") -> None:
        self.token = token
        self.authorised = 0
        self.invalidated: list[str | None] = []

    async def authorise(self) -> dict[str, str]:
        self.authorised += 1
        return {"Authorization": f"Bearer {self.token}"}

    def __await__(self) -> Generator[Any, None, dict[str, str]]:
        return self.authorise().__await__()

    async def invalidate(self, rejected: str | None = None) -> None:
        self.invalidated.append(rejected)
        if rejected == f"Bearer {self.token}":  # single-flight: only renew the token the server refused
            self.token = "fresh"


class NoInvalidateAuthoriser:
    def __init__(self) -> None:
        self.authorised = 0

    def __await__(self) -> Generator[Any, None, dict[str, str]]:
        async def authorise() -> dict[str, str]:
            self.authorised += 1
            return {"Authorization": VALID_TOKEN}

        return authorise().__await__()


# --------------------------------------------------------------------------------------------------
# StatusHandler
# --------------------------------------------------------------------------------------------------
def test_status_handler_is_abstract() -> None:
    with pytest.raises(TypeError):
        StatusHandler()  # type: ignore[abstract]


@pytest.mark.parametrize("cls", [ClientErrorStatusHandler, UnauthorisedStatusHandler, RateLimitStatusHandler])
def test_handlers_expose_the_module_logger_and_have_no_dict(cls: type[StatusHandler]) -> None:
    handler = cls()
    assert handler.logger is logging.getLogger(LOGGER)
    assert not hasattr(handler, "__dict__")


def test_status_codes() -> None:
    expected = [status.value for status in HTTPStatus if 400 <= status.value < 500]
    assert ClientErrorStatusHandler().status_codes == expected
    assert len(expected) >= 29 and 418 in expected and 429 in expected and 451 in expected
    assert UnauthorisedStatusHandler().status_codes == [401]
    assert RateLimitStatusHandler().status_codes == [429]


def test_status_codes_cannot_be_altered_through_the_returned_list() -> None:
    first, second = ClientErrorStatusHandler(), ClientErrorStatusHandler()
    codes = first.status_codes
    codes.clear()
    assert 404 in first.status_codes and 404 in second.status_codes
    rate = RateLimitStatusHandler()
    rate.status_codes.append(500)
    assert rate.status_codes == [429]


async def test_match(session: aiohttp.ClientSession, base_url: URL) -> None:
    async with get(session, base_url, "/status/404") as response:
        assert ClientErrorStatusHandler().match(response) is True
        assert UnauthorisedStatusHandler().match(response) is False
        assert UnauthorisedStatusHandler().match(response, fail_on_error=False) is False
        with pytest.raises(StatusHandlerError) as info:
            UnauthorisedStatusHandler().match(response, fail_on_error=True)
        assert str(info.value) == "Response status does not match this handler | Response=404 | Valid=401"


async def test_match_message_lists_every_code(session: aiohttp.ClientSession, base_url: URL) -> None:
    class Several(StatusHandler):
        status_codes = property(lambda self: [500, 502, 503])

        async def handle(self, response: ClientResponse, *_: Any, **__: Any) -> bool:
            return False

    async with get(session, base_url, "/status/404") as response:
        with pytest.raises(StatusHandlerError, match=r"\| Response=404 \| Valid=500,502,503$"):
            Several().match(response, fail_on_error=True)


async def test_call_is_handle(session: aiohttp.ClientSession, base_url: URL) -> None:
    async with get(session, base_url, "/status/401") as response:
        awaitable = UnauthorisedStatusHandler()(response, authoriser=None, session=None)
        assert hasattr(awaitable, "__await__")
        assert await awaitable is False


async def test_log_line(session: aiohttp.ClientSession, base_url: URL, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with get(session, base_url, "/status/404") as response:
        ClientErrorStatusHandler()._log(response, "look")
    status = HTTPStatus(404)
    assert messages(caplog, logging.DEBUG) == [f"Status: 404 (Not Found) - {status.description} | look"]


@pytest.mark.parametrize(("code", "reason"), [(499, "Client Closed Request"), (520, None), (299, "Odd")])
async def test_log_handles_non_standard_codes(
    session: aiohttp.ClientSession, base_url: URL, caplog: pytest.LogCaptureFixture, code: int, reason: str | None
) -> None:
    # HTTPStatus(499) raises ValueError; the reference's _log crashed custom handlers for such codes.
    class Custom(StatusHandler):
        __slots__ = ()

        @property
        def status_codes(self) -> list[int]:
            return [299, 499, 520]

        async def handle(self, response: ClientResponse, *_: Any, **__: Any) -> bool:
            self._log(response, "custom")
            return True

    caplog.set_level(logging.DEBUG, logger=LOGGER)
    query = {"reason": reason} if reason else {}
    async with get(session, base_url, f"/status/{code}", **query) as response:
        assert await Custom()(response) is True
    (line,) = messages(caplog, logging.DEBUG)
    assert line.startswith(f"Status: {code} (")
    assert line.endswith("- Non-standard status code | custom")
    if reason:
        assert f"({reason})" in line


async def test_log_builds_nothing_when_debug_is_off(
    session: aiohttp.ClientSession, base_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with get(session, base_url, "/status/404") as response:
        ClientErrorStatusHandler()._log(response, "quiet")
    assert messages(caplog, logging.DEBUG) == []


# --------------------------------------------------------------------------------------------------
# ClientErrorStatusHandler
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [400, 403, 404, 401, 418, 429, 451])
async def test_client_error_raises_with_the_response(session: aiohttp.ClientSession, base_url: URL, code: int) -> None:
    async with get(session, base_url, f"/status/{code}") as response:
        with pytest.raises(ResponseError) as info:
            await ClientErrorStatusHandler().handle(response=response)
        assert info.value.response is response
        assert info.value.body == f"failure body {code}"
        where = f"GET {base_url}/status/{code} | Content-Type: text/plain; charset=utf-8"
        assert info.value.message == f"{where} | failure body {code}"
        assert str(info.value) == f"Status code: {code} | {where} | failure body {code}"
        assert (info.value.status, info.value.method, info.value.content_type) == (
            code,
            "GET",
            "text/plain; charset=utf-8",
        )


async def test_client_error_with_undecodable_body(session: aiohttp.ClientSession, base_url: URL) -> None:
    async with get(session, base_url, "/binary-error") as response:
        with pytest.raises(ResponseError) as info:
            await ClientErrorStatusHandler()(response)
    assert info.value.body == "bad  request"
    assert info.value.message.endswith("/binary-error | Content-Type: text/plain; charset=utf-8 | bad  request")


async def test_client_error_refuses_other_statuses(session: aiohttp.ClientSession, base_url: URL) -> None:
    async with get(session, base_url, "/status/500") as response:
        with pytest.raises(StatusHandlerError, match="Response=500"):
            await ClientErrorStatusHandler().handle(response)


# --------------------------------------------------------------------------------------------------
# UnauthorisedStatusHandler
# --------------------------------------------------------------------------------------------------
async def test_unauthorised_without_authoriser_or_session(session: aiohttp.ClientSession, base_url: URL) -> None:
    handler = UnauthorisedStatusHandler()
    async with get(session, base_url, "/protected") as response:
        assert await handler.handle(response) is False
        assert await handler.handle(response, authoriser=StandInAuthoriser(), session=None) is False
        assert await handler.handle(response, authoriser=None, session=session) is False


async def test_unauthorised_refuses_other_statuses(session: aiohttp.ClientSession, base_url: URL) -> None:
    async with get(session, base_url, "/status/403") as response:
        with pytest.raises(StatusHandlerError, match="Valid=401"):
            await UnauthorisedStatusHandler().handle(response, authoriser=StandInAuthoriser(), session=session)


async def test_unauthorised_invalidates_then_reauthorises(base_url: URL, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    authoriser = StandInAuthoriser("stale")
    handler = UnauthorisedStatusHandler()
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer stale"}) as client:
        async with client.get(base_url / "protected") as response:
            assert response.status == 401
            handled = await handler(
                response=response,
                authoriser=authoriser,
                session=client,
                payload_handler=None,
                wait_timer=None,
                retry_timer=None,
            )
        assert handled is True
        # The hook learnt which credentials were refused, and the renewed ones are now the session's.
        assert authoriser.invalidated == ["Bearer stale"]
        assert authoriser.authorised == 1
        assert client.headers["Authorization"] == VALID_TOKEN
        async with client.get(base_url / "protected") as response:
            assert response.status == 200
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "stale" not in text and "fresh" not in text  # credentials never reach the log


async def test_unauthorised_reports_the_header_the_request_carried(base_url: URL) -> None:
    authoriser = StandInAuthoriser("stale")
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer stale"}) as client:
        async with client.get(base_url / "protected", headers={"Authorization": "Bearer per-request"}) as response:
            assert await UnauthorisedStatusHandler().handle(response, authoriser=authoriser, session=client)
    # Only the refused value is passed; it was not the authoriser's current token, so it keeps it (single flight).
    assert authoriser.invalidated == ["Bearer per-request"]
    assert authoriser.token == "stale"


async def test_unauthorised_without_credentials_sent(base_url: URL) -> None:
    authoriser = StandInAuthoriser("stale")
    async with aiohttp.ClientSession() as client:
        async with client.get(base_url / "protected") as response:
            assert await UnauthorisedStatusHandler().handle(response, authoriser=authoriser, session=client)
        assert authoriser.invalidated == [None]
        assert client.headers["Authorization"] == "Bearer stale"


async def test_unauthorised_with_authoriser_lacking_the_hook(base_url: URL) -> None:
    authoriser = NoInvalidateAuthoriser()
    async with aiohttp.ClientSession() as client:
        async with client.get(base_url / "protected") as response:
            assert await UnauthorisedStatusHandler().handle(response, authoriser=authoriser, session=client)
        assert authoriser.authorised == 1
        async with client.get(base_url / "protected") as response:
            assert response.status == 200


# --------------------------------------------------------------------------------------------------
# RateLimitStatusHandler
# --------------------------------------------------------------------------------------------------
def test_max_retry_after() -> None:
    assert RateLimitStatusHandler().max_retry_after == 3600.0
    assert RateLimitStatusHandler(max_retry_after=10).max_retry_after == 10.0
    assert RateLimitStatusHandler(max_retry_after=math.inf).max_retry_after == math.inf
    for bad in (-1, math.nan):
        with pytest.raises(ValueError, match="max_retry_after"):
            RateLimitStatusHandler(max_retry_after=bad)
    for wrong in ("10", None, True):
        with pytest.raises(TypeError, match="max_retry_after"):
            RateLimitStatusHandler(max_retry_after=wrong)  # type: ignore[arg-type]


async def test_rate_limit_refuses_other_statuses(session: aiohttp.ClientSession, base_url: URL) -> None:
    async with get(session, base_url, "/status/503", retry_after="1") as response:
        with pytest.raises(StatusHandlerError, match="Valid=429"):
            await RateLimitStatusHandler().handle(response, retry_timer=StepCountTimer(0, 3))


async def test_rate_limit_without_retry_after_grows_the_wait_timer(
    session: aiohttp.ClientSession, base_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    wait_timer = StepCeilingTimer(0, 0.2, 0.1)
    retry_timer = StepCountTimer(0, 3, 0.1)
    handler = RateLimitStatusHandler()
    for _ in range(3):
        async with get(session, base_url, "/status/429") as response:
            assert await handler.handle(response, wait_timer=wait_timer, retry_timer=retry_timer) is False
    assert float(wait_timer) == 0.2
    assert retry_timer.counter == 0  # not handled: the request handler's own retry step applies
    debug = messages(caplog, logging.DEBUG)
    assert "Increasing wait time between requests to 0.10s" in debug
    assert "Increasing wait time between requests to 0.20s" in debug
    assert "Cannot increase wait time. Already at maximum of 0.20s" in debug


@pytest.mark.parametrize("value", ["soon", "1e3", "Mon, 99 Foo 2025", "5 seconds"])
async def test_rate_limit_with_garbage_retry_after_warns_and_declines(
    session: aiohttp.ClientSession, base_url: URL, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    retry_timer = StepCountTimer(0, 3)
    async with get(session, base_url, "/status/429", retry_after=value) as response:
        assert await RateLimitStatusHandler().handle(response, retry_timer=retry_timer) is False
    assert retry_timer.counter == 0
    (warning,) = messages(caplog, logging.WARNING)
    assert "Retry-After" in warning and value in warning


async def test_rate_limit_without_retry_timer_declines(session: aiohttp.ClientSession, base_url: URL) -> None:
    async with get(session, base_url, "/status/429", retry_after="0") as response:
        assert await RateLimitStatusHandler().handle(response) is False
        assert await RateLimitStatusHandler().handle(response, wait_timer=StepCountTimer(0, 1)) is False


async def test_rate_limit_sleeps_and_consumes_a_retry_step(
    session: aiohttp.ClientSession, base_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    retry_timer = StepCountTimer(0, 3, 1)
    async with get(session, base_url, "/status/429", retry_after="0.3") as response:
        started = time.perf_counter()
        handled = await RateLimitStatusHandler().handle(response, retry_timer=retry_timer)
        elapsed = time.perf_counter() - started
    assert handled is True
    assert elapsed >= 0.29
    assert retry_timer.counter == 1 and retry_timer.value == 1  # one step of the budget is gone
    (warning,) = messages(caplog, logging.WARNING)
    assert warning.startswith("Rate limit exceeded. Retrying again at ")


async def test_repeated_429s_exhaust_the_retry_budget(session: aiohttp.ClientSession, base_url: URL) -> None:
    # The reference handled a 429 with Retry-After: 0 forever (thousands of requests per second).
    handler = RateLimitStatusHandler()
    retry_timer = StepCountTimer(0, 3, 0)
    handled = 0
    with pytest.raises(ResponseError) as info:
        for _ in range(10):
            async with get(session, base_url, "/status/429", retry_after="0") as response:
                assert await handler(response=response, retry_timer=retry_timer, wait_timer=None)
                handled += 1
    assert handled == 3
    assert info.value.response is not None and info.value.response.status == 429
    assert "no retries remain" in str(info.value)
    assert str(info.value).startswith("Status code: 429 | Rate limit exceeded")


async def test_wait_is_compared_with_the_remaining_budget(session: aiohttp.ClientSession, base_url: URL) -> None:
    retry_timer = StepCountTimer(0, 3, 1)  # total 6; after two steps total_remaining is 3.0
    retry_timer.increase()
    retry_timer.increase()
    assert (retry_timer.total, retry_timer.total_remaining) == (6, 3.0)
    async with get(session, base_url, "/status/429", retry_after="5") as response:
        started = time.perf_counter()
        with pytest.raises(ResponseError) as info:
            await RateLimitStatusHandler().handle(response, retry_timer=retry_timer)
        assert time.perf_counter() - started < 4  # refused at once, not after sleeping 5 s
    message = str(info.value)
    assert message.startswith(
        "Status code: 429 | Rate limit exceeded and wait time is greater than remaining timeout of 3.00 seconds. "
        "Retry again at "
    )
    assert info.value.response is response  # the error carries the response
    assert retry_timer.counter == 2


async def test_http_date_retry_after(session: aiohttp.ClientSession, base_url: URL) -> None:
    # int("Fri, 14 Mar ...") raised ValueError in the reference. A date an hour ahead exceeds a 3 s budget.
    far = http_date(time.time() + 3600)
    async with get(session, base_url, "/status/429", retry_after=far) as response:
        with pytest.raises(ResponseError, match=r"remaining timeout of 3\.00 seconds"):
            await RateLimitStatusHandler().handle(response, retry_timer=StepCountTimer(0, 2, 1))
    expected = datetime.strptime(far, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC).astimezone()
    async with get(session, base_url, "/status/429", retry_after=far) as response:
        with pytest.raises(ResponseError) as info:
            await RateLimitStatusHandler().handle(response, retry_timer=StepCountTimer(0, 2, 1))
    assert str(info.value).endswith(f"Retry again at {expected:%Y-%m-%d %H:%M:%S}")


async def test_near_http_date_is_waited_for(session: aiohttp.ClientSession, base_url: URL) -> None:
    target = math.ceil(time.time()) + 1
    retry_timer = StepCountTimer(0, 2, 5)
    async with get(session, base_url, "/status/429", retry_after=http_date(target)) as response:
        assert await RateLimitStatusHandler().handle(response, retry_timer=retry_timer) is True
    assert time.time() >= target - 0.05
    assert retry_timer.counter == 1


@pytest.mark.parametrize("value", ["-5", "Sun, 06 Nov 1994 08:49:37 GMT", "0"])
async def test_negative_or_past_retry_after_does_not_wait(
    session: aiohttp.ClientSession, base_url: URL, value: str
) -> None:
    retry_timer = StepCountTimer(0, 2, 1)
    async with get(session, base_url, "/status/429", retry_after_lower=value) as response:
        started = time.perf_counter()
        assert await RateLimitStatusHandler().handle(response, retry_timer=retry_timer) is True
        assert time.perf_counter() - started < 5
    assert retry_timer.counter == 1


async def test_unbounded_retry_timer_is_tolerated(session: aiohttp.ClientSession, base_url: URL) -> None:
    # The reference compared int > None and raised TypeError.
    retry_timer = GeometricCeilingTimer(0.1, None, 2)
    async with get(session, base_url, "/status/429", retry_after="0.1") as response:
        assert await RateLimitStatusHandler().handle(response, retry_timer=retry_timer) is True
    assert retry_timer.counter == 1 and retry_timer.total_remaining is None


async def test_max_retry_after_caps_the_wait(session: aiohttp.ClientSession, base_url: URL) -> None:
    handler = RateLimitStatusHandler(max_retry_after=1)
    async with get(session, base_url, "/status/429", retry_after="5") as response:
        with pytest.raises(ResponseError) as info:
            await handler.handle(response, retry_timer=StepCountTimer(0, None, 1))
    assert "wait time of 5.00 seconds is greater than the maximum of 1.00 seconds" in str(info.value)
    assert info.value.response is not None and info.value.response.status == 429


async def test_default_cap_refuses_absurd_waits(session: aiohttp.ClientSession, base_url: URL) -> None:
    async with get(session, base_url, "/status/429", retry_after="86400") as response:
        with pytest.raises(ResponseError, match=r"greater than the maximum of 3600\.00 seconds"):
            await RateLimitStatusHandler().handle(response, retry_timer=StepCountTimer(0, None, 1))


async def test_huge_retry_after_neither_hangs_nor_overflows(session: aiohttp.ClientSession, base_url: URL) -> None:
    huge = "9" * 5000
    handler = RateLimitStatusHandler(max_retry_after=math.inf)
    async with get(session, base_url, "/status/429", retry_after=huge) as response:
        started = time.perf_counter()
        with pytest.raises(ResponseError) as info:
            await handler.handle(response, retry_timer=StepCountTimer(0, None, 1))
        assert time.perf_counter() - started < 5
    assert "wait time of inf seconds" in str(info.value)
    assert "Retry again at a time too far ahead to display" in str(info.value)
    async with get(session, base_url, "/status/429", retry_after=huge) as response:
        with pytest.raises(ResponseError, match=r"remaining timeout of 6\.00 seconds"):
            await handler.handle(response, retry_timer=StepCountTimer(0, 3, 1))


async def test_concurrent_429s_for_the_same_wait_warn_once(
    session: aiohttp.ClientSession, base_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    handler = RateLimitStatusHandler()
    target = http_date(math.ceil(time.time()) + 1)

    async def one() -> bool:
        async with get(session, base_url, "/status/429", retry_after=target) as response:
            return await handler.handle(response, retry_timer=StepCountTimer(0, 3, 5))

    assert await asyncio.gather(one(), one(), one()) == [True, True, True]
    assert len(messages(caplog, logging.WARNING)) == 1  # the reference warned on every 429

    # A different wait is news: it is logged again.
    later = http_date(math.ceil(time.time()) + 1)
    async with get(session, base_url, "/status/429", retry_after=later) as response:
        assert await handler.handle(response, retry_timer=StepCountTimer(0, 3, 5))
    assert len(messages(caplog, logging.WARNING)) == 2


async def test_handlers_do_not_share_warning_state(
    session: aiohttp.ClientSession, base_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    past = "Sun, 06 Nov 1994 08:49:37 GMT"  # wait 0: the retry time is "now"
    first, second = RateLimitStatusHandler(), RateLimitStatusHandler()
    async with get(session, base_url, "/status/429", retry_after=past) as response:
        await first.handle(response, retry_timer=StepCountTimer(0, 3))
        await second.handle(response, retry_timer=StepCountTimer(0, 3))
    assert len(messages(caplog, logging.WARNING)) == 2


async def test_rate_limit_sleep_yields_to_the_event_loop(session: aiohttp.ClientSession, base_url: URL) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    async with get(session, base_url, "/status/429", retry_after="0.2") as response:
        assert await RateLimitStatusHandler().handle(response, retry_timer=StepCountTimer(0, 1))
    task.cancel()
    assert ticks >= 3


async def test_retry_timer_with_too_long_a_schedule_falls_back_to_the_cap(
    session: aiohttp.ClientSession, base_url: URL
) -> None:
    retry_timer = StepCountTimer(0, 2_000_000, 0)  # total_remaining raises: the schedule is too long to sum
    async with get(session, base_url, "/status/429", retry_after="0") as response:
        assert await RateLimitStatusHandler().handle(response, retry_timer=retry_timer) is True
    assert retry_timer.counter == 1


async def test_a_wait_already_announced_is_not_announced_again(
    session: aiohttp.ClientSession, base_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    # The reference reset its "logged" flag after each sleep, so a 429 naming the same retry time right after
    # the first wait ended warned again. Here the retry time identifies the wait.
    handler = RateLimitStatusHandler()
    target = http_date(math.ceil(time.time()) + 1)
    for _ in range(2):
        async with get(session, base_url, "/status/429", retry_after=target) as response:
            assert await handler.handle(response, retry_timer=StepCountTimer(0, 3, 5))
    assert len(messages(caplog, logging.WARNING)) == 1
