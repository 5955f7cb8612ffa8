# SPDX-License-Identifier: MIT
"""Every log record a handler emits during a call carries the request as attributes (method, redacted URL,
host, attempt, status), for JSON formatters; the messages are unchanged and no field holds a secret."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from aiorequestful.cache.backend.base import ResponseRepositorySettings
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.telemetry.logfields import (
    FIELD_ATTEMPT,
    FIELD_HOST,
    FIELD_METHOD,
    FIELD_STATUS,
    FIELD_URL,
    LOG_FIELDS,
    RequestContextFilter,
    log_fields,
)
from aiorequestful.timer import StepCountTimer

# The waits (a 1 s host pause) run on looptime's fast-forwarded loop clock: no real time, no timing luck.
pytestmark = pytest.mark.looptime

SECRETS = ("s3cr3t-header", "s3cr3t-pass", "s3cr3t-query")
#: The loggers a handler's records come from: its own (shared by its retry step and flow-control gate), the
#: status handlers' and the caching session's.
HANDLER_LOGGERS = ("aiorequestful.request", "aiorequestful.response.status", "aiorequestful.cache.session")


class Items(ResponseRepositorySettings):
    @property
    def fields(self) -> tuple[str, ...]:
        return ("id",)

    def get_key(self, method: str, url: Any, **_: Any) -> tuple[str | None]:
        return (URL(url).name,) if method.upper() == "GET" else (None,)

    @staticmethod
    def get_name(payload: Any) -> str | None:
        return None


def make_app() -> web.Application:
    hits: Counter[str] = Counter()

    async def item(request: web.Request) -> web.Response:
        name = request.match_info["id"]
        hits[name] += 1
        if name == "flaky" and hits[name] == 1:
            return web.Response(status=500, text="try again")
        if name == "limited" and hits[name] == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.json_response({"id": name})

    app = web.Application()
    app.router.add_get("/items/{id}", item)
    app.router.add_get("/other/{id}", item)
    return app


class Capture(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger("aiorequestful")
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in LOG_FIELDS}


def pick_repository(cache: Any, url: Any) -> Any:
    return cache.get("items") if "/items/" in URL(url).path else None


async def test_every_record_of_a_crawl_carries_the_request(serve, tmp_path, capture) -> None:
    base = await serve(make_app())
    cache = SQLiteCache.connect_with_path(tmp_path / "c", repository_getter=pick_repository)
    cache.create_repository(Items(name="items"))
    handler = RequestHandler.create(
        cache=cache,
        payload_handler=JSONPayloadHandler(),
        retry_timer=StepCountTimer(0, 3, 1),  # a retry budget that can wait out the 1 s pause
        pause_on_retry_after=True,
    )
    secret_url = base.with_user("user").with_password("s3cr3t-pass") / "items" / "s"
    async with handler:
        # first, one that no repository covers: the cache warns (once, and only before any URL was covered)
        await handler.get(base / "other" / "x")
        for name in ("flaky", "limited", "a", "a"):  # a 500 retried, a 429 paused and resent, a miss, a hit
            await handler.get(base / "items" / name)
        await handler.get(secret_url, params={"token": "s3cr3t-query"})
        await handler.get(base / "items" / "h", headers={"Authorization": "Bearer s3cr3t-header"})
    stats = handler.stats
    assert (stats.retries, stats.resends, stats.cache_hits) == (1, 1, 1)

    records = [r for r in capture.records if r.name in HANDLER_LOGGERS]
    messages = [r.getMessage() for r in records]
    # the crawl logged what it should: retry warnings and lines, the pause, the status handler's, the cache's
    assert any(m.startswith("GET ") and "failed (status 500 Internal Server Error)" in m for m in messages)
    assert any("Request failed: retrying in 0.00 seconds..." in m for m in messages)
    assert any(m.startswith("Pausing http://127.0.0.1") for m in messages)
    assert any(m.startswith("Rate limit exceeded. Retrying again at ") for m in messages)
    # (with flow control on, the cache is asked before the gate: a hit is logged as such)
    assert any("answered from the cache before the gate" in m for m in messages)
    assert any("HTTP REQUEST" in m for m in messages)
    assert any(m.startswith("No repository of cache") for m in messages)
    assert {r.name for r in records} == set(HANDLER_LOGGERS)

    for record in records:
        found = fields(record)
        assert found[FIELD_METHOD] == "GET", (record.getMessage(), found)
        assert found[FIELD_HOST] == "127.0.0.1", (record.getMessage(), found)
        assert isinstance(found[FIELD_ATTEMPT], int) and found[FIELD_ATTEMPT] >= 1, (record.getMessage(), found)
        assert str(found[FIELD_URL]).startswith("http://"), found
        assert URL(found[FIELD_URL]).port == base.port
        text = json.dumps(found) + record.getMessage()
        assert not any(secret in text for secret in SECRETS), text

    def about(fragment: str) -> list[dict[str, Any]]:
        return [fields(r) for r in records if fragment in r.getMessage()]

    (warned,) = about("failed (status 500")
    assert warned[FIELD_URL] == str(base / "items" / "flaky")
    assert (warned[FIELD_ATTEMPT], warned[FIELD_STATUS]) == (1, 500)
    (paused,) = about("Pausing http://127.0.0.1")
    assert (paused[FIELD_ATTEMPT], paused[FIELD_STATUS]) == (1, 429)
    (limited,) = about("Rate limit exceeded. Retrying again at ")  # the status handler's own record
    assert limited[FIELD_URL] == str(base / "items" / "limited")
    assert (limited[FIELD_ATTEMPT], limited[FIELD_STATUS]) == (1, 429)
    # the request lines: before the response the status is not known; the resend is attempt 2
    flaky_lines = [f for f in about("/items/flaky") if f[FIELD_URL] == str(base / "items" / "flaky")]
    assert [f[FIELD_ATTEMPT] for f in flaky_lines if f[FIELD_STATUS] is None][:1] == [1]
    assert max(f[FIELD_ATTEMPT] for f in flaky_lines) == 2
    (hit,) = about("answered from the cache")
    assert hit[FIELD_URL] == str(base / "items" / "a") and hit[FIELD_ATTEMPT] == 1
    secret_records = about("/items/s")
    assert secret_records
    # the call's URL (user info masked), or the URL the cache keyed (aiohttp moved the user info to the
    # Authorization header; the query is the params', its token masked)
    assert {found[FIELD_URL] for found in secret_records} == {
        f"http://<redacted>@127.0.0.1:{base.port}/items/s",
        f"http://127.0.0.1:{base.port}/items/s?token=<redacted>",
    }


async def test_a_record_outside_a_call_has_the_fields_set_to_none(serve, capture) -> None:
    base = await serve(make_app())
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler())
    async with handler:
        await handler.get(base / "items" / "before")
    # logged in the same task after the call: the call's fields are gone with it
    logging.getLogger("aiorequestful.request").warning("not about a request")
    (record,) = [r for r in capture.records if r.getMessage() == "not about a request"]
    assert fields(record) == dict.fromkeys(LOG_FIELDS)
    # so a format string that names them never fails
    assert logging.Formatter("%(http_method)s %(http_url)s %(message)s").format(record) == (
        "None None not about a request"
    )


async def test_a_logger_of_your_own_gets_the_fields_from_the_filter(serve, capture) -> None:
    base = await serve(make_app())
    mine = logging.getLogger("aiorequestful.test.mine")
    mine.addFilter(RequestContextFilter())
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler())
    handler.hooks.on_response.append(lambda method, url, status, cached: mine.info("hook saw %s", status))
    async with handler:
        await handler.get(base.with_user("u").with_password("s3cr3t-pass") / "items" / "m")
    (record,) = [r for r in capture.records if r.name == mine.name]
    assert fields(record) == {
        FIELD_METHOD: "GET",
        FIELD_URL: f"http://<redacted>@127.0.0.1:{base.port}/items/m",
        FIELD_HOST: "127.0.0.1",
        FIELD_ATTEMPT: 1,
        FIELD_STATUS: 200,
    }


async def test_a_handler_logger_of_your_own_gets_the_fields_without_a_filter(serve, capture) -> None:
    """The handler's own log calls pass the fields as ``extra``: they reach a logger that has no filter."""
    base = await serve(make_app())
    mine = logging.getLogger("aiorequestful.test.unfiltered")
    assert mine.filters == []
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler(), retry_timer=StepCountTimer(0, 3, 0))
    handler.logger = mine  # the request lines go to it
    async with handler:
        await handler.get(base / "items" / "flaky", headers={"Authorization": "Bearer s3cr3t-header"})
    records = [r for r in capture.records if r.name == mine.name]
    # the request lines (before each send: no status yet) and the failed response's line
    assert any("Status code: 500" in r.getMessage() for r in records)
    assert {(r.http_attempt, r.http_status) for r in records} == {(1, None), (1, 500), (2, None)}
    for record in records:
        assert (record.http_method, record.http_host) == ("GET", "127.0.0.1")
        assert record.http_url == str(base / "items" / "flaky")
        assert not any(secret in json.dumps(fields(record)) + record.getMessage() for secret in SECRETS)


def test_log_fields_outside_a_call_redact_what_they_are_given() -> None:
    assert log_fields("post", "http://a:s3cr3t-pass@example.org/x?token=s3cr3t-query", 201) == {
        FIELD_METHOD: "POST",
        FIELD_URL: "http://<redacted>@example.org/x?token=<redacted>",
        FIELD_HOST: "example.org",
        FIELD_ATTEMPT: None,
        FIELD_STATUS: 201,
    }
