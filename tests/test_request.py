# SPDX-License-Identifier: MIT
"""RequestHandler against a real local server, with a test for every 1.0.20 defect it fixes."""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import time

import aiohttp
import pytest

import aiorequestful._handler.attempt as attempt_module
import aiorequestful.request as request_module
from aiorequestful.auth.base import Authoriser
from aiorequestful.exception import RequestError
from aiorequestful.limits import DEFAULT_MAX_BODY_SIZE
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import PayloadHandlerError, ResponseError
from aiorequestful.response.payload import JSONPayloadHandler, StringPayloadHandler
from aiorequestful.response.status import (
    ClientErrorStatusHandler,
    RateLimitStatusHandler,
    StatusHandler,
    UnauthorisedStatusHandler,
)
from aiorequestful.timer import StepCeilingTimer, StepCountTimer

from .servers import STARTED, VALID_TOKENS, event, hits, make_app

SECRET = "s3cr3t-t0ken-value"


class TokenAuthoriser(Authoriser):
    """Hands out the given tokens in turn (the last one repeats) and counts the calls."""

    def __init__(self, *tokens: str, fail: bool = False) -> None:
        super().__init__(service_name="test")
        self.tokens = list(tokens)
        self.calls = 0
        self.fail = fail

    async def authorise(self) -> dict[str, str]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("provider down")
        token = self.tokens[min(self.calls, len(self.tokens)) - 1]
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def app_url(serve):
    app = make_app()
    return app, await serve(app)


def json_handler(**kwargs) -> RequestHandler:
    return RequestHandler.create(payload_handler=JSONPayloadHandler(), **kwargs)


# --------------------------------------------------------------------------------------------------
# construction and attributes
# --------------------------------------------------------------------------------------------------
def test_defaults() -> None:
    handler = RequestHandler(connector=aiohttp.ClientSession)
    assert isinstance(handler.payload_handler, StringPayloadHandler)
    handlers = handler.response_handlers
    assert isinstance(handlers[401], UnauthorisedStatusHandler)
    assert isinstance(handlers[429], RateLimitStatusHandler)
    assert isinstance(handlers[404], ClientErrorStatusHandler)
    assert 500 not in handlers
    assert handler.closed and handler.session is None
    assert handler.retry_timer is None and handler.wait_timer is None
    assert not hasattr(handler, "__dict__")
    assert copy.copy(handler) is handler and copy.deepcopy(handler) is handler
    assert handler.logger.name == "aiorequestful.request"


def test_default_status_handlers_are_per_handler_instances() -> None:
    """No module-level singletons shared between handlers."""
    first, second = RequestHandler(connector=aiohttp.ClientSession), RequestHandler(connector=aiohttp.ClientSession)
    assert first.response_handlers[429] is not second.response_handlers[429]
    assert first.response_handlers[401] is not second.response_handlers[401]


def test_first_listed_handler_wins_and_setter_replaces() -> None:
    client_error = ClientErrorStatusHandler()
    handlers = [client_error, RateLimitStatusHandler()]
    handler = RequestHandler(connector=aiohttp.ClientSession, response_handlers=handlers)
    assert handler.response_handlers[429] is client_error
    assert handler.response_handlers[401] is client_error

    rate_limit = RateLimitStatusHandler()
    handler.response_handlers = [rate_limit]
    # Assignment replaces the mapping instead of merging into it.
    assert handler.response_handlers == {429: rate_limit}
    handler.response_handlers = []
    assert handler.response_handlers == {}


def test_retry_timer_is_a_fresh_copy() -> None:
    timer = StepCountTimer(initial=0, count=3, step=1)
    timer.increase()
    handler = RequestHandler(connector=aiohttp.ClientSession, retry_timer=timer)
    copied = handler.retry_timer
    assert copied is not timer and float(copied) == 0 and copied.counter == 0
    assert float(timer) == 1  # the configured timer is untouched


# --------------------------------------------------------------------------------------------------
# context, authorisation, closing
# --------------------------------------------------------------------------------------------------
async def test_closed_errors_and_close_without_session(app_url) -> None:
    _, url = app_url
    handler = json_handler()
    with pytest.raises(RequestError, match=r"^Could not send a request as the session is closed\."):
        await handler.get(url / "json" / "1")
    with pytest.raises(RequestError, match=r"^Session is closed\. Enter this object's context"):
        await handler.authorise()
    await handler.close()  # a no-op, not AttributeError
    await handler.close()


async def test_authorise_returns_applied_headers(app_url) -> None:
    """authorise() returns the headers it applied."""
    app, url = app_url
    app[VALID_TOKENS].add("good")
    auth = TokenAuthoriser("good")
    async with RequestHandler.create(authoriser=auth, payload_handler=JSONPayloadHandler()) as handler:
        assert auth.calls == 1
        assert handler.session.headers["Authorization"] == "Bearer good"
        assert await handler.authorise() == {"Authorization": "Bearer good"}
        assert await handler.get(url / "protected" / "a") == {"ok": True}
    async with json_handler() as handler:
        assert await handler.authorise() == {}


async def test_failed_authorisation_closes_the_new_session() -> None:
    """__aenter__ must not leak the session when authorise() raises."""
    sessions: list[aiohttp.ClientSession] = []

    def connector() -> aiohttp.ClientSession:
        sessions.append(aiohttp.ClientSession())
        return sessions[-1]

    handler = RequestHandler(connector=connector, authoriser=TokenAuthoriser("x", fail=True))
    with pytest.raises(RuntimeError, match="provider down"):
        async with handler:
            pytest.fail("the context body must not run")
    assert handler.closed
    assert len(sessions) == 1 and sessions[0].closed


async def test_session_kwargs_are_forwarded(app_url) -> None:
    _app, url = app_url
    async with json_handler(headers={"X-Default": "session"}) as handler:
        body = await handler.get(url / "echo")
    assert body["headers"]["X-Default"] == "session"


# --------------------------------------------------------------------------------------------------
# the verbs
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["get", "post", "put", "delete", "options", "patch"])
async def test_verbs_send_their_method(app_url, verb: str) -> None:
    _, url = app_url
    async with json_handler() as handler:
        body = await getattr(handler, verb)(url / "echo", method="IGNORED")
    assert body["method"] == verb.upper()


async def test_head_and_request_method_parsing(app_url) -> None:
    app, url = app_url
    async with RequestHandler.create() as handler:
        assert await handler.head(url / "echo") == ""
        assert await handler.request(method="Get", url=url / "text") == "plain text"
        with pytest.raises(KeyError):
            await handler.request(url=url / "text")
        with pytest.raises(ValueError, match="FETCH"):
            await handler.request(method="fetch", url=url / "text")
    assert hits(app, "echo") == 1


async def test_unknown_kwargs_are_dropped_and_options_forwarded(app_url) -> None:
    _, url = app_url
    async with json_handler() as handler:
        body = await handler.post(
            url / "echo", params={"b": "2", "a": "1"}, json={"x": 1}, not_an_aiohttp_option=True, log_message="hi"
        )
    assert body["query"] == [["a", "1"], ["b", "2"]]
    assert body["body"] == '{"x": 1}'


# --------------------------------------------------------------------------------------------------
# retries
# --------------------------------------------------------------------------------------------------
async def test_server_errors_are_retried_until_success(app_url) -> None:
    app, url = app_url
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=3, step=0.01)) as handler:
        assert await handler.get(url / "flaky" / "a", params={"fail": "2"}) == {"ok": True, "hits": 3}
    assert hits(app, "flaky", "a") == 3


async def test_retries_exhausted_raise_response_error(app_url) -> None:
    app, url = app_url
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=2, step=0.01)) as handler:
        with pytest.raises(ResponseError) as info:
            await handler.get(url / "flaky" / "b", params={"fail": "10"})
    assert hits(app, "flaky", "b") == 3  # count=2 -> 2 retries, 3 attempts
    assert info.value.response is not None and info.value.response.status == 503
    ctype = "text/plain; charset=utf-8"
    assert str(info.value) == f"Status code: 503 | GET {url}/flaky/b?fail=10 | Content-Type: {ctype} | failure 3"
    error = info.value
    assert (error.method, error.url, error.status, error.content_type) == ("GET", f"{url}/flaky/b?fail=10", 503, ctype)
    assert info.value.body == "failure 3"


async def test_no_retry_timer_means_no_retry(app_url) -> None:
    app, url = app_url
    async with json_handler() as handler:
        with pytest.raises(ResponseError, match="Status code: 503"):
            await handler.get(url / "flaky" / "c", params={"fail": "1"})
    assert hits(app, "flaky", "c") == 1


async def test_retry_sleeps_the_timer_values(app_url) -> None:
    """StepCountTimer(0.1, 2, 0.1) sleeps 0.1 then 0.2 s before the 2nd and 3rd attempts."""
    _, url = app_url
    async with json_handler(retry_timer=StepCountTimer(initial=0.1, count=2, step=0.1)) as handler:
        start = time.perf_counter()
        await handler.get(url / "flaky" / "d", params={"fail": "2"})
        assert time.perf_counter() - start >= 0.29


async def test_unbounded_retry_timer_does_not_crash(app_url, caplog) -> None:
    """An unbounded timer formats its retry warning without crashing on None totals."""
    app, url = app_url
    caplog.set_level(logging.WARNING, logger="aiorequestful.request")
    async with json_handler(retry_timer=StepCountTimer(initial=0.01, count=None, step=0)) as handler:
        assert (await handler.get(url / "flaky" / "e", params={"fail": "3"}))["ok"]
    assert hits(app, "flaky", "e") == 4
    assert any("no retry limit" in r.getMessage() for r in caplog.records)


async def test_retry_warning_once_per_request_and_exact_delay(app_url, caplog) -> None:
    """The warning flag is per request chain; the delay is logged with its fraction."""
    _, url = app_url
    caplog.set_level(logging.DEBUG, logger="aiorequestful.request")
    async with json_handler(retry_timer=StepCountTimer(initial=0.05, count=3, step=0.05)) as handler:
        with pytest.raises(ResponseError):
            await handler.get(url / "flaky" / "f", params={"fail": "10"})
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        # Which request, what went wrong, and the waits really ahead: 0.05 + 0.10 + 0.15 s (the timer's final
        # 0.20 is never slept). No colour escapes: that is a formatter's job.
        message = warnings[0].getMessage()
        assert message == (
            f"GET {url / 'flaky' / 'f'} failed (status 503 Service Unavailable): "
            "will retry 3 more times, waiting 0.30 s in all"
        ), message
        assert "\x1b" not in message
        assert any("retrying in 0.05 seconds" in r.getMessage() for r in caplog.records)
        # A later request chain warns again (the old flag stayed set after a failure).
        await handler.get(url / "flaky" / "g", params={"fail": "1"})
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
        # Concurrent chains each warn once.
        await asyncio.gather(*(handler.get(url / "flaky" / f"h{i}", params={"fail": "1"}) for i in range(3)))
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 5


async def test_connection_reset_is_retried(app_url) -> None:
    _app, url = app_url
    # aiohttp itself re-sends an idempotent request once after a disconnect, so reset more often than that.
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=5, step=0.01)) as handler:
        result = await handler.get(url / "reset" / "a", params={"n": "3"})
    assert result == {"ok": True, "hits": 4}
    assert handler.stats.errors >= 1 and handler.stats.retries >= 1
    async with json_handler() as handler:
        with pytest.raises(aiohttp.ClientError):  # the original transport exception, not a wrapper
            await handler.get(url / "reset" / "b", params={"n": "100"})


async def test_timeouts_are_retried(app_url) -> None:
    _app, url = app_url
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=2, step=0), timeout=timeout) as handler:
        assert (await handler.get(url / "slow" / "a", params={"n": "1", "delay": "3"}))["hits"] == 2
    async with json_handler(timeout=timeout) as handler:
        with pytest.raises(asyncio.TimeoutError):
            await handler.get(url / "slow" / "b", params={"n": "1", "delay": "3"})


async def test_failure_while_reading_the_body_is_retried(app_url) -> None:
    """A ClientPayloadError in the payload handler is a retryable failure, never a RuntimeError."""
    _app, url = app_url
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=2, step=0)) as handler:
        assert (await handler.get(url / "truncated" / "a", params={"n": "1"}))["hits"] == 2
    async with json_handler() as handler:
        with pytest.raises(aiohttp.ClientPayloadError):
            await handler.get(url / "truncated" / "b", params={"n": "1"})


async def test_non_utf8_error_body(app_url, caplog) -> None:
    """A non-UTF-8 error body gives ResponseError (and a log line), not UnicodeDecodeError."""
    _, url = app_url
    caplog.set_level(logging.DEBUG, logger="aiorequestful.request")
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=1, step=0)) as handler:
        with pytest.raises(ResponseError, match="Status code: 500"):
            await handler.get(url / "binary")
    assert any("Status code: 500" in r.getMessage() for r in caplog.records)


async def test_invalid_json_payload(app_url) -> None:
    _, url = app_url
    async with json_handler() as handler:
        with pytest.raises(PayloadHandlerError):
            await handler.get(url / "badjson")


async def test_client_errors_raise_at_once(app_url) -> None:
    app, url = app_url
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=3, step=0)) as handler:
        with pytest.raises(ResponseError) as info:
            await handler.get(url / "status" / "404")
    assert hits(app, "status") == 1
    assert (
        str(info.value)
        == f"Status code: 404 | GET {url}/status/404 | Content-Type: text/plain; charset=utf-8 | status 404"
    )


async def test_unhandled_error_status_without_handlers_is_retried(app_url) -> None:
    app, url = app_url
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=2, step=0), response_handlers=[]) as handler:
        with pytest.raises(ResponseError, match="Status code: 404"):
            await handler.get(url / "status" / "404")
    assert hits(app, "status") == 3


# --------------------------------------------------------------------------------------------------
# 401 and 429
# --------------------------------------------------------------------------------------------------
async def test_reauthorisation_on_401_then_success(app_url) -> None:
    app, url = app_url
    app[VALID_TOKENS].add("fresh")
    auth = TokenAuthoriser("stale", "fresh")
    async with RequestHandler.create(authoriser=auth, payload_handler=JSONPayloadHandler()) as handler:
        assert await handler.get(url / "protected" / "a") == {"ok": True}
    assert auth.calls == 2
    assert hits(app, "protected", "a") == 2


async def test_reauthorisation_is_bounded(app_url) -> None:
    """A server that always answers 401 gets a bounded number of requests, not thousands: one
    re-authorisation, then the 401 is an unhandled failure that spends the retry budget."""
    app, url = app_url
    auth = TokenAuthoriser("bad")
    retry = StepCountTimer(initial=0, count=3, step=0)
    async with RequestHandler.create(authoriser=auth, retry_timer=retry) as handler:
        with pytest.raises(ResponseError, match="Status code: 401"):
            await asyncio.wait_for(handler.get(url / "protected" / "b"), timeout=10)
        assert hits(app, "protected", "b") == 5  # 1 + 1 re-authorised + 3 retries
        assert auth.calls == 2
        # The bound is per request() call: the next call may re-authorise once again.
        with pytest.raises(ResponseError):
            await handler.get(url / "protected" / "c")
        assert hits(app, "protected", "c") == 5
        assert auth.calls == 3


async def test_401_without_authoriser_is_not_retried_forever(app_url) -> None:
    app, url = app_url
    async with RequestHandler.create(retry_timer=StepCountTimer(initial=0, count=2, step=0)) as handler:
        with pytest.raises(ResponseError, match="Status code: 401"):
            await handler.get(url / "protected" / "d")
    assert hits(app, "protected", "d") == 3  # no authoriser: an unhandled failure, retried twice


async def test_429_with_retry_after_consumes_retry_budget(app_url) -> None:
    """Retry-After: 0 forever used to loop ~6,200 times in 2 s; now every 429 costs a retry step."""
    app, url = app_url
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=2, step=0)) as handler:
        with pytest.raises(ResponseError, match="Status code: 429"):
            await asyncio.wait_for(handler.get(url / "ratelimit" / "a", params={"n": "1000", "retry_after": "0"}), 10)
    assert hits(app, "ratelimit", "a") == 3
    async with json_handler() as handler:
        with pytest.raises(ResponseError, match="Status code: 429"):
            await asyncio.wait_for(handler.get(url / "ratelimit" / "b", params={"n": "1000", "retry_after": "0"}), 10)
    assert hits(app, "ratelimit", "b") == 1


@pytest.mark.parametrize("form", ["1", " 1 ", "date"])
async def test_429_retry_after_seconds_and_http_date(app_url, form: str) -> None:
    """Retry-After as delay-seconds and as an HTTP-date."""
    _app, url = app_url
    key = f"s{form.strip()}"
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=3, step=1)) as handler:
        start = time.perf_counter()
        result = await handler.get(url / "ratelimit" / key, params={"n": "1", "retry_after": form, "delay": "1"})
        elapsed = time.perf_counter() - start
    assert result == {"ok": True, "hits": 2}
    # An HTTP-date has one-second resolution, so it may ask for anything from 0 to 1 s.
    assert elapsed >= (0.9 if form != "date" else 0.0)


async def test_429_wait_longer_than_remaining_budget_fails_fast(app_url) -> None:
    """A Retry-After wait is compared with the *remaining* budget, and the error carries the response."""
    _app, url = app_url
    async with json_handler(retry_timer=StepCountTimer(initial=0.1, count=2, step=0.1)) as handler:
        start = time.perf_counter()
        with pytest.raises(ResponseError) as info:
            await handler.get(url / "ratelimit" / "c", params={"n": "5", "retry_after": "30"})
        assert time.perf_counter() - start < 10
    assert info.value.response is not None and info.value.response.status == 429
    assert "Status code: 429" in str(info.value)


async def test_429_without_retry_after_uses_the_retry_timer_and_grows_wait_timer(app_url) -> None:
    _app, url = app_url
    wait = StepCeilingTimer(initial=0, final=0.05, step=0.01)
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=2, step=0), wait_timer=wait) as handler:
        assert (await handler.get(url / "ratelimit" / "d", params={"n": "2"}))["hits"] == 3
    assert float(wait) == pytest.approx(0.02)


async def test_wait_timer_after_every_attempt(app_url) -> None:
    _, url = app_url
    wait = StepCeilingTimer(initial=0.1, final=0.1, step=0)
    async with json_handler(wait_timer=wait, retry_timer=StepCountTimer(initial=0, count=2, step=0)) as handler:
        start = time.perf_counter()
        await handler.get(url / "flaky" / "w", params={"fail": "1"})
        assert time.perf_counter() - start >= 0.19  # two attempts, each followed by 0.1 s


async def test_custom_handler_that_always_retries_is_bounded(app_url) -> None:
    app, url = app_url

    class Always(StatusHandler):
        @property
        def status_codes(self) -> list[int]:
            return [503]

        async def handle(self, response, *_, **__) -> bool:
            return True

    async with json_handler(response_handlers=[Always()]) as handler:
        with pytest.raises(ResponseError, match="Status code: 503"):
            await asyncio.wait_for(handler.get(url / "flaky" / "x", params={"fail": "100000"}), 20)
    assert hits(app, "flaky", "x") == request_module._MAX_HANDLED_PER_REQUEST + 1  # then unhandled, no retries


async def test_handle_response_without_handler(app_url) -> None:
    _, url = app_url
    async with json_handler(response_handlers=[]) as handler, handler.session.get(url / "status" / "418") as response:
        assert await handler._handle_response(response) is False


# --------------------------------------------------------------------------------------------------
# headers, logging and secrets
# --------------------------------------------------------------------------------------------------
async def test_headers_not_mutated_and_request_values_win(app_url) -> None:
    """The caller's dict is untouched, per-request values beat session defaults, list headers work."""
    app, url = app_url
    app[VALID_TOKENS].add("good")
    auth = TokenAuthoriser("good")
    headers = {"X-Default": "request"}
    async with RequestHandler.create(
        authoriser=auth, payload_handler=JSONPayloadHandler(), headers={"X-Default": "session"}
    ) as handler:
        body = await handler.get(url / "echo", headers=headers)
        assert body["headers"]["X-Default"] == "request"
        assert body["headers"]["Authorization"] == "Bearer good"
        assert headers == {"X-Default": "request"}
        body = await handler.get(url / "echo", headers=[("X-List", "1")])
        assert body["headers"]["X-List"] == "1"


async def test_no_secret_in_debug_logs(app_url, caplog) -> None:
    """Neither the Authorization header nor secret-looking parameters reach the logs."""
    _app, url = app_url
    caplog.set_level(logging.DEBUG)
    auth = TokenAuthoriser(SECRET)
    async with RequestHandler.create(
        authoriser=auth, payload_handler=JSONPayloadHandler(), retry_timer=StepCountTimer(0, 1, 0)
    ) as handler:
        await handler.get(url / "echo", headers={"Authorization": f"Bearer {SECRET}"}, params={"token": SECRET})
        await handler.post(url / "echo", json={"client_secret": SECRET, "nested": {"password": SECRET}})
        with pytest.raises(ResponseError):
            await handler.get((url / "protected" / "z").with_query(access_token=SECRET))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "echo" in text  # the requests were logged ...
    assert SECRET not in text  # ... without the secret


async def test_log_message_list_not_mutated(app_url, caplog) -> None:
    """Logging a request does not mutate the caller's list of log messages."""
    _, url = app_url
    caplog.set_level(logging.DEBUG, logger="aiorequestful.request")
    messages = ["first"]
    async with json_handler(retry_timer=StepCountTimer(0, 2, 0)) as handler:
        await handler.get(url / "flaky" / "l", params={"fail": "2"}, log_message=messages)
    assert messages == ["first"]


async def test_log_handles_any_body_and_params(app_url, caplog) -> None:
    """List JSON bodies and None/list parameter values do not break logging or requests."""
    _, url = app_url
    caplog.set_level(logging.DEBUG, logger="aiorequestful.request")
    handler = json_handler()
    handler.log("GET", url, json=[1, 2, 3], params={"a": None, "b": [1, 2]}, message=["m"])
    handler.log("GET", url, json="scalar", params=[("a", "1")])
    async with handler:
        body = await handler.post(url / "echo", json=[1, 2, 3], params=[("a", "1"), ("a", "2")])
    assert body["body"] == "[1, 2, 3]"


def test_log_is_lazy() -> None:
    """Nothing is formatted when DEBUG is disabled."""

    class Explosive:
        def __str__(self) -> str:
            raise AssertionError("formatted although the level is disabled")

        __repr__ = __str__

    handler = RequestHandler(connector=aiohttp.ClientSession)
    handler.logger.setLevel(logging.INFO)
    try:
        handler.log("GET", "http://127.0.0.1/x", message=Explosive(), params={"a": Explosive()})
    finally:
        handler.logger.setLevel(logging.NOTSET)


async def test_allowed_kwargs_computed_once_per_session_class(app_url, monkeypatch) -> None:
    """No inspect.signature per attempt."""
    _, url = app_url
    calls = 0
    real = inspect.signature

    def counting(obj, *args, **kwargs):
        nonlocal calls
        calls += 1
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(attempt_module, "_ALLOWED_KWARGS", {})
    monkeypatch.setattr(attempt_module.inspect, "signature", counting)
    async with json_handler(retry_timer=StepCountTimer(0, 3, 0)) as handler:
        for key in "abc":
            await handler.get(url / "flaky" / f"sig{key}", params={"fail": "2"})
    assert calls == 1


async def test_many_concurrent_requests(app_url) -> None:
    _app, url = app_url
    async with json_handler() as handler:
        results = await asyncio.gather(*(handler.get(url / "json" / str(i)) for i in range(200)))
    assert [r["id"] for r in results] == [str(i) for i in range(200)]


# --------------------------------------------------------------------------------------------------
# flow control keywords: opt-in, keyword-only, 1.0.20's behaviour by default
# --------------------------------------------------------------------------------------------------
def test_flow_control_keywords_are_keyword_only_and_off_by_default() -> None:
    api_order = ["connector", "authoriser", "payload_handler", "response_handlers", "wait_timer", "retry_timer"]
    flow = {
        "rate_limit": None,
        "retry_policy": None,
        "pause_on_retry_after": False,
        "coalesce": False,
        "max_body_size": DEFAULT_MAX_BODY_SIZE,
        "robots": None,
        "max_in_flight": None,
        "max_wait": None,
        "rate_limit_headers": False,
        "adaptive": False,
    }
    init = inspect.signature(RequestHandler.__init__).parameters
    assert [name for name, p in init.items() if p.kind is p.POSITIONAL_OR_KEYWORD][1:] == api_order
    create = inspect.signature(RequestHandler.create).parameters
    assert [name for name, p in create.items() if p.kind is p.POSITIONAL_OR_KEYWORD] == [
        "authoriser",
        "cache",
        *api_order[2:],
    ]
    for params in (init, create):
        assert {name: p.default for name, p in params.items() if p.kind is p.KEYWORD_ONLY} == flow
    handler = RequestHandler(connector=aiohttp.ClientSession)
    assert handler.rate_limiter is None and handler.host_pauses is None
    assert handler.retry_policy is None and handler.coalesce is False


async def test_stats_add_up_after_retries_resends_and_errors(app_url) -> None:
    _app, url = app_url
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=3, step=0.01)) as handler:
        await handler.get(url / "flaky" / "st", params={"fail": "2"})
        await handler.get(url / "ratelimit" / "st", params={"n": "1", "retry_after": "0"})
        await handler.get(url / "reset" / "st", params={"n": "3"})
        with pytest.raises(ResponseError):
            await handler.get(url / "status" / "404")
    stats = handler.stats
    stats.check()
    assert stats.calls == 4 and stats.failures == 1 and stats.successes == 3
    assert stats.resends == 1 and stats.retries >= 3 and stats.errors >= 1
    assert stats.requests == sum(stats.responses.values()) + stats.errors
    assert stats.requests == stats.calls + stats.retries + stats.resends


async def test_cancelled_call_is_counted(app_url) -> None:
    _app, url = app_url
    async with json_handler() as handler:
        task = asyncio.create_task(handler.get(url / "hang" / "cx"))
        await asyncio.wait_for(event(_app, STARTED, "hang", "cx").wait(), 30)  # the request is in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    stats = handler.stats
    stats.check()
    assert (stats.calls, stats.cancelled, stats.failures, stats.successes, stats.requests) == (1, 1, 0, 0, 0)


async def test_retry_warning_with_a_schedule_too_long_to_sum(app_url, caplog) -> None:
    """A retry timer longer than the kernel sums must not crash the retry warning."""
    _, url = app_url
    caplog.set_level(logging.WARNING, logger="aiorequestful.request")
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=2_000_000, step=0)) as handler:
        assert (await handler.get(url / "flaky" / "long", params={"fail": "1"}))["ok"]
    assert any("will retry 2000000 more times" in r.getMessage() for r in caplog.records)


async def test_retry_warning_names_a_transport_error_and_masks_secrets(unused_tcp_port: int, caplog) -> None:
    """A refused connection: the warning says which request and which error, with the URL's secrets masked."""
    caplog.set_level(logging.WARNING, logger="aiorequestful.request")
    url = f"http://alice:hunter2@127.0.0.1:{unused_tcp_port}/items?token=T0K3N&page=2"
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=1, step=0)) as handler:
        with pytest.raises(aiohttp.ClientConnectionError):
            await handler.get(url)
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    assert message.startswith(f"GET http://<redacted>@127.0.0.1:{unused_tcp_port}/items?token=<redacted>&page=2 ")
    assert "failed (ClientConnectorError): will retry 1 more times, waiting 0.00 s in all" in message
    assert "hunter2" not in message and "T0K3N" not in message


async def test_semi_private_members_of_1_0_20_keep_their_names(app_url) -> None:
    """_request, _retry, _handle_retry_timer and _clean_requests_kwargs still exist and work."""
    _, url = app_url
    async with json_handler(retry_timer=StepCountTimer(initial=0, count=1, step=0)) as handler:
        async with handler._request("GET", url / "json" / "1") as response:
            assert not isinstance(response, BaseException) and response.status == 200
        kwargs = {"params": {"a": "1"}, "not_an_option": True}
        handler._clean_requests_kwargs(kwargs)
        assert kwargs == {"params": {"a": "1"}}
        timer = StepCountTimer(initial=0, count=1, step=0)
        handler._handle_retry_timer("GET", url, timer)
        await handler._retry(None, "GET", url, timer)  # one retry step: sleeps 0 s and advances
        assert timer.counter == 1
        with pytest.raises(RequestError, match="Max retries exceeded"):
            await handler._retry(None, "GET", url, timer)
