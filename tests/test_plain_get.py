# SPDX-License-Identifier: MIT
"""The plain GET (``handler.get(url)`` on an open plain session) against the full request path.

Every scenario runs twice on fresh handlers and fresh servers: once through ``get()`` (the plain GET, checked to
be taken) and once through ``request(method="GET", url=...)`` (the full path, checked not to be). What a caller
can see must come out the same both times: the payload or the exception (type, message, attributes), the whole
``stats`` snapshot, what the servers were sent, every hook call and every DEBUG record with its request fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from aiorequestful.auth.base import Authoriser
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.flow import RetryPolicy
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import PayloadHandlerError
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.stats import WAIT_STATUS
from aiorequestful.telemetry.logfields import FIELD_ATTEMPT, FIELD_METHOD, FIELD_STATUS, FIELD_URL
from aiorequestful.timer import GeometricCountTimer, StepCountTimer

from . import flow_servers, servers
from .cache_support import json_settings, pick_items
from .test_structured_logs import Capture

# Retry timers, Retry-After and wait timers run on looptime's fast-forwarded loop clock: no real sleeping.
pytestmark = pytest.mark.looptime

#: How long a test waits for something that happens at once when things work (loop time, so it costs nothing).
GUARD = 30


# --------------------------------------------------------------------------------------------------
# routes the shared servers do not have
# --------------------------------------------------------------------------------------------------
async def _utf16_json(request: web.Request) -> web.Response:
    request.app[servers.HITS].update([("utf16", "")])
    body = '{"name": "Zoë", "n": [1, 2]}'.encode("utf-16")
    return web.Response(body=body, headers={"Content-Type": "application/json; charset=utf-16"})


async def _empty_json(request: web.Request) -> web.Response:
    request.app[servers.HITS].update([("empty", "")])
    return web.Response(body=b"", content_type="application/json")


async def _hold(request: web.Request) -> web.StreamResponse:
    """Answer nothing (``?body=1``: headers and the first byte of a 1000-byte body) until the client goes away,
    then report it in ``DROPPED``."""
    key = request.match_info["key"]
    request.app[servers.HITS].update([("hold", key)])
    if request.query.get("body"):
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"[")
    servers.event(request.app, servers.STARTED, "hold", key).set()
    # aiohttp does not cancel a handler whose client left: look at the connection until it is gone.
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(0.01)
    servers.event(request.app, servers.DROPPED, "hold", key).set()
    raise asyncio.CancelledError  # nothing can be sent any more


#: Known differences between the paths, in what they log (payloads, stats, hooks and requests sent agree).
def make_app() -> web.Application:
    app = servers.make_app()
    app.router.add_get("/utf16", _utf16_json)
    app.router.add_get("/empty", _empty_json)
    # the cache's repository covers /items/: an item, a flaky one, a big one
    app.router.add_get("/items/{key}", servers.json_item)
    app.router.add_get("/flaky/items/{key}", servers.flaky)
    app.router.add_get("/big/items/{key}", servers.big)
    app.router.add_get("/hold/{key}", _hold)
    return app


class TokenAuthoriser(Authoriser):
    """Hands out ``stale`` first and ``fresh`` from then on."""

    def __init__(self) -> None:
        super().__init__(service_name="plain-get")
        self.calls = 0

    async def authorise(self) -> dict[str, str]:
        self.calls += 1
        return {"Authorization": "Bearer stale" if self.calls == 1 else "Bearer fresh"}


# --------------------------------------------------------------------------------------------------
# subclasses: each replaces one step, so get() must take the full path and reach the override
# --------------------------------------------------------------------------------------------------
class OwnRequest(RequestHandler):
    __slots__ = ("requests_seen",)

    async def request(self, **kwargs: Any) -> Any:
        self.requests_seen = getattr(self, "requests_seen", 0) + 1
        return await super().request(**kwargs)


class OwnJSON(JSONPayloadHandler):
    """Not exactly the built-in type, so it is called as a handler (on both paths); counts its calls, so a body
    decoded twice shows."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def deserialize(self, response: Any) -> Any:
        self.calls += 1
        value = await super().deserialize(response)
        return {"own": value}


class OwnHandleResponse(RequestHandler):
    __slots__ = ("statuses_seen",)

    async def _handle_response(self, response: Any, *args: Any, **kwargs: Any) -> bool:
        self.statuses_seen = [*getattr(self, "statuses_seen", []), response.status]
        return await super()._handle_response(response, *args, **kwargs)


# --------------------------------------------------------------------------------------------------
# what a run shows, made comparable across two runs on two sets of ports
# --------------------------------------------------------------------------------------------------
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_DATE = re.compile(r'"Date": "[^"]*"')
_WALL_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


class Normaliser:
    """Replaces a run's own ports with fixed text, and what is never the same twice: object addresses, the Date
    header, the wall-clock time the 429 handler says it will retry at."""

    def __init__(self, *bases: URL, where: Path | None = None) -> None:
        self.ports = [(str(base.port), f"PORT{index}") for index, base in enumerate(bases)]
        self.where = None if where is None else str(where)

    def text(self, value: Any) -> str:
        text = str(value)
        if self.where is not None:
            text = text.replace(self.where, "<run dir>")
        for port, name in self.ports:
            text = text.replace(f":{port}", f":{name}").replace(f", {port})", f", {name})")
        text = _WALL_TIME.sub("<wall time>", _ADDRESS.sub("0x?", text))
        return _DATE.sub('"Date": "<date>"', text)

    def value(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, BaseException):
            return self.exception(value)
        if isinstance(value, aiohttp.ClientResponse):
            return ("response", value.status, self.text(value.url))
        if isinstance(value, dict):
            return {self.text(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return self.text(value)

    def exception(self, exc: BaseException) -> dict[str, Any]:
        attributes = {name: self.value(v) for name, v in vars(exc).items() if not name.startswith("__")}
        cause = exc.__cause__
        return {
            "type": type(exc).__qualname__,
            "message": self.text(exc),
            "attributes": attributes,
            "cause": None if cause is None else (type(cause).__qualname__, self.text(cause)),
        }


def stats_snapshot(handler: RequestHandler) -> dict[str, Any]:
    stats = handler.stats
    stats.check()
    snapshot = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    snapshot["responses"] = dict(stats.responses)
    by_reason = dict(stats.wait_seconds_by_reason)
    # A status handler's wait is measured on the real clock (perf_counter), so it is never the same twice:
    # that it was waited is compared, not for how long.
    status_wait = by_reason.pop(WAIT_STATUS, None)
    snapshot["wait_seconds"] = round(stats.wait_seconds - (status_wait or 0.0), 6)
    snapshot["wait_seconds_by_reason"] = {k: round(v, 6) for k, v in by_reason.items()}
    snapshot["waited_for_a_status_handler"] = status_wait is not None
    snapshot["successes"] = stats.successes
    return snapshot


@contextlib.contextmanager
def captured_logs() -> Iterator[Capture]:
    capture = Capture()
    root = logging.getLogger("aiorequestful")
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


@dataclass
class Outcome:
    """Everything one run showed (normalised)."""

    results: list[Any] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    server_requests: dict[str, int] = field(default_factory=dict)
    hooks: dict[str, list[Any]] = field(default_factory=dict)
    logs: list[tuple[Any, ...]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def watch_hooks(handler: RequestHandler, normalise: Normaliser) -> dict[str, list[Any]]:
    calls: dict[str, list[Any]] = {"on_request": [], "on_response": [], "on_retry": [], "on_wait": []}
    hooks = handler.hooks
    hooks.on_request.append(lambda method, url: calls["on_request"].append((method, normalise.text(url))))
    hooks.on_response.append(
        lambda method, url, status, cached: calls["on_response"].append((method, normalise.text(url), status, cached))
    )
    hooks.on_retry.append(
        lambda method, url, delay, cause: calls["on_retry"].append(
            (method, normalise.text(url), round(delay, 6), normalise.value(cause))
        )
    )
    hooks.on_wait.append(
        lambda reason, seconds, url: calls["on_wait"].append(
            (reason, None if reason == WAIT_STATUS else round(seconds, 6), normalise.text(url))
        )
    )
    return calls


def log_lines(capture: Capture, normalise: Normaliser) -> list[tuple[Any, ...]]:
    return [
        (
            record.name,
            record.levelname,
            normalise.text(record.getMessage()),
            getattr(record, FIELD_METHOD, None),
            normalise.text(getattr(record, FIELD_URL, None)),
            getattr(record, FIELD_ATTEMPT, None),
            getattr(record, FIELD_STATUS, None),
            None if record.exc_info is None or record.exc_info[0] is None else record.exc_info[0].__qualname__,
        )
        for record in capture.records
    ]


def server_requests(app: web.Application, host: web.Application) -> dict[str, int]:
    counts = {f"{route}/{key}": n for (route, key), n in sorted(app[servers.HITS].items())}
    counts.update({f"item/{key}": n for key, n in sorted(host[flow_servers.HITS].items())})
    return counts


@pytest.fixture
def plain_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs ``RequestHandler._plain_get`` was called with (the plain GET was taken)."""
    seen: list[str] = []
    original = RequestHandler._plain_get

    async def counted(self: RequestHandler, url: Any, kwargs: dict[str, Any]) -> Any:
        seen.append(str(url))
        return await original(self, url, kwargs)

    monkeypatch.setattr(RequestHandler, "_plain_get", counted)
    return seen


# --------------------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    #: ``{app}`` (servers.py's routes and the ones above) or ``{flow}`` (flow_servers' scripted /item/ route).
    url: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    calls: tuple[Call, ...]
    build: Callable[[Path, URL], RequestHandler]
    #: Whether get() takes the plain GET in this scenario.
    plain: bool = True
    enter: bool = True
    setup: Callable[[web.Application], None] | None = None
    #: Counters the get() run must show (the scenario did what its name says).
    expect: dict[str, int] = field(default_factory=dict)
    #: What a subclass's override saw in the get() run (it must have been reached).
    overrides: dict[str, Any] = field(default_factory=dict)


def fresh(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Copies of the options: a handler grows its wait timer, and each run must start from the same one."""
    return copy.deepcopy(kwargs)


def json_handler(**kwargs: Any) -> Callable[[Path, URL], RequestHandler]:
    return lambda *_: RequestHandler.create(payload_handler=JSONPayloadHandler(), **fresh(kwargs))


def retrying(count: int = 3, **kwargs: Any) -> Callable[[Path, URL], RequestHandler]:
    return lambda *_: RequestHandler.create(
        retry_timer=StepCountTimer(initial=0.01, count=count, step=0.01),
        **{"payload_handler": JSONPayloadHandler(), **fresh(kwargs)},
    )


def caching(**kwargs: Any) -> Callable[[Path, URL], RequestHandler]:
    def build(where: Path, _: URL) -> RequestHandler:
        cache = SQLiteCache.connect_with_path(where / "cache", repository_getter=pick_items)
        cache.create_repository(json_settings())
        return RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler(), **fresh(kwargs))

    return build


def based(*_: Any) -> Callable[[Path, URL], RequestHandler]:
    """A handler whose session has the app's base URL (the calls give relative URLs)."""
    return lambda _, base: RequestHandler(
        connector=lambda: aiohttp.ClientSession(base_url=base), payload_handler=JSONPayloadHandler()
    )


def calls(*urls: str, **kwargs: Any) -> tuple[Call, ...]:
    return tuple(Call(url, dict(kwargs)) for url in urls)


def authorised(*_: Any) -> RequestHandler:
    return RequestHandler.create(authoriser=TokenAuthoriser(), payload_handler=JSONPayloadHandler())


def accept_fresh(app: web.Application) -> None:
    app[servers.VALID_TOKENS].add("fresh")


SCENARIOS = [
    Scenario("200 json", calls("{app}/json/a", "{app}/json/b"), json_handler()),
    Scenario("200 empty body", calls("{app}/empty"), json_handler()),
    Scenario("200 invalid json", calls("{app}/badjson"), json_handler()),
    Scenario("200 invalid json, retry timer without policy", calls("{app}/badjson"), retrying()),
    Scenario(
        "200 invalid json, policy retries payload errors",
        calls("{flow}/item/j?script=badjson,badjson", "{flow}/item/k?script=badjson,badjson,badjson,badjson"),
        retrying(retry_policy=RetryPolicy(exceptions=(PayloadHandlerError, aiohttp.ClientConnectionError))),
        expect={"retries": 5, "failures": 1},
    ),
    Scenario(
        "200 invalid json, policy without payload errors",
        calls("{flow}/item/j?script=badjson"),
        retrying(retry_policy=RetryPolicy()),
    ),
    Scenario("200 json in utf-16", calls("{app}/utf16"), json_handler()),
    Scenario("404 client error handler", calls("{app}/status/404"), json_handler()),
    Scenario("404 with a retry timer", calls("{app}/status/404"), retrying()),
    Scenario(
        "500 then 200, geometric retry timer",
        calls("{app}/flaky/f?fail=1&status=500"),
        json_handler(retry_timer=GeometricCountTimer(initial=0.01, count=3, factor=2)),
        expect={"retries": 1, "successes": 1},
    ),
    Scenario("500 until the retries run out", calls("{app}/status/500"), retrying(count=2)),
    Scenario("500 without a retry timer", calls("{app}/status/500"), json_handler()),
    Scenario(
        "503 under a retry policy",
        calls("{flow}/item/p?script=503,503,ok"),
        retrying(retry_policy=RetryPolicy()),
        expect={"retries": 2},
    ),
    Scenario(
        "429 with Retry-After then 200",
        calls("{app}/ratelimit/r?n=1&retry_after=1"),
        json_handler(retry_timer=StepCountTimer(initial=0, count=3, step=1)),
        expect={"resends": 1, "successes": 1},
    ),
    Scenario(
        "429 with Retry-After and a wait timer",
        calls("{flow}/item/w?script=429:1", "{flow}/item/x"),
        json_handler(
            retry_timer=StepCountTimer(initial=0, count=3, step=1), wait_timer=StepCountTimer(initial=0.1, count=3)
        ),
    ),
    Scenario("429 longer than the retry budget", calls("{app}/ratelimit/l?n=5&retry_after=30"), retrying(count=2)),
    Scenario(
        "401 re-authorised then 200",
        calls("{app}/protected/a"),
        authorised,
        setup=accept_fresh,
        expect={"resends": 1, "successes": 1},
    ),
    Scenario("401 for ever", calls("{app}/protected/b"), authorised),
    # aiohttp itself sends a GET once more when the connection drops before any answer: n=1 never reaches the
    # handler, n=2 is one transport error for the handler to retry
    Scenario("connection reset, absorbed by aiohttp", calls("{app}/reset/a?n=1"), json_handler(), expect={"errors": 0}),
    Scenario(
        "connection reset, then 200",
        calls("{app}/reset/c?n=2"),
        retrying(),
        expect={"errors": 1, "retries": 1},
    ),
    Scenario("connection reset, no retry", calls("{app}/reset/d?n=9"), json_handler(), expect={"failures": 1}),
    Scenario(
        "closed mid-body, then 200", calls("{app}/truncated/t?n=1"), retrying(), expect={"retries": 1, "successes": 1}
    ),
    Scenario("closed mid-body until the retries run out", calls("{app}/truncated/u?n=9"), retrying(count=2)),
    Scenario("closed mid-body, no retry", calls("{app}/truncated/v?n=1"), json_handler()),
    Scenario(
        "body over max_body_size, all arrived",
        calls("{app}/big/s?size=1000", "{app}/json/after"),
        retrying(max_body_size=100),
        expect={"retries": 0, "failures": 1},  # not retried
    ),
    Scenario(
        "body over max_body_size, streamed",
        calls("{app}/big/m?size=1048576", "{app}/json/after"),
        retrying(max_body_size=65536),
        expect={"retries": 0, "failures": 1},
    ),
    Scenario("error body over max_body_size", calls("{app}/big/e?size=1000&status=500"), retrying(max_body_size=100)),
    Scenario(
        "default string payload handler",
        calls("{app}/text", "{app}/json/s", "{app}/badjson"),
        lambda *_: RequestHandler.create(),
    ),
    Scenario(
        "wait timer",
        calls("{app}/json/w1", "{app}/json/w2", "{app}/status/500"),
        json_handler(wait_timer=StepCountTimer(initial=0.25, count=2, step=0.25)),
    ),
    Scenario("caching session: misses", calls("{app}/items/1", "{app}/items/2"), caching(), expect={"cache_misses": 2}),
    Scenario(
        "caching session: miss then hit",
        calls("{app}/items/1", "{app}/items/1", "{app}/items/2"),
        caching(),
        expect={"cache_hits": 1},
    ),
    Scenario(
        "caching session: miss then hit, with params and headers",
        calls("{app}/items/3", "{app}/items/3", params={"q": "x"}, headers={"X-Test": "yes"}),
        caching(),
        expect={"cache_hits": 1},
    ),
    Scenario(
        "caching session: a URL no repository covers",
        calls("{app}/json/n", "{app}/json/n"),
        caching(),
    ),
    Scenario(
        "caching session: 500 then 200",
        calls("{app}/flaky/items/cf?fail=1&status=500"),
        caching(retry_timer=StepCountTimer(0, 2, 0)),
    ),
    Scenario("caching session: 404", calls("{app}/flaky/items/cn?fail=1&status=404"), caching()),
    Scenario(
        "caching session: body over max_body_size",
        calls("{app}/big/items/cb?size=1000", "{app}/items/after"),
        caching(max_body_size=100),
    ),
    Scenario(
        "params and headers",
        calls("{app}/echo", "{app}/echo", params={"a": "1"}, headers={"X-Test": "yes"}),
        json_handler(),
    ),
    Scenario("max_body_size keyword", calls("{app}/big/k?size=1000", max_body_size=10), retrying(), plain=False),
    Scenario(
        "max_body_size keyword lifted",
        calls("{app}/big/k?size=1000", max_body_size=None),
        json_handler(max_body_size=10),
        plain=False,
    ),
    Scenario("url given as text", calls("str:{app}/json/t", "str:{app}/status/404"), json_handler()),
    Scenario("relative url on a session with a base url", calls("str:/json/r", "str:/status/500"), based()),
    Scenario(
        "secrets in the url",
        calls(
            "{app}/json/s?token=s3cr3t-query&page=2",
            "{app}/status/500?sig=s3cr3t-sig",
            headers={"Authorization": "Bearer s3cr3t-header"},
        ),
        retrying(count=1),
    ),
    Scenario(
        "server slower than the default read time-out, then 200",
        calls("{app}/slow/z?n=1&delay=200"),
        retrying(),
        expect={"errors": 1, "retries": 1, "successes": 1},
    ),
    Scenario(
        "own time-out keyword",
        calls("{app}/slow/o?n=9&delay=5", timeout=aiohttp.ClientTimeout(total=1)),
        retrying(count=1),
        expect={"errors": 2, "failures": 1},
    ),
    Scenario("redirect loop", calls("{app}/loop/l", max_redirects=2), retrying(), expect={"retries": 0}),
    Scenario(
        "gzip bomb over max_body_size",
        calls("{app}/bomb/b?mib=4", "{app}/json/after"),
        retrying(max_body_size=1024 * 1024),
        expect={"failures": 1},
    ),
    Scenario("error body not utf-8", calls("{app}/binary?status=500", "{app}/binary?status=404"), retrying(count=1)),
    Scenario(
        "a JSONPayloadHandler subclass",
        calls("{app}/json/j", "{app}/utf16", "{app}/badjson"),
        lambda *_: RequestHandler.create(payload_handler=OwnJSON()),
    ),
    Scenario(
        "a JSONPayloadHandler subclass, policy retries payload errors",
        calls("{flow}/item/o?script=badjson,badjson"),
        retrying(payload_handler=OwnJSON(), retry_policy=RetryPolicy(exceptions=(PayloadHandlerError,))),
        expect={"retries": 2, "successes": 1},
    ),
    Scenario("html where json was expected", calls("{app}/html"), json_handler()),
    Scenario(
        "log_message keyword",
        calls("{app}/json/m", "{app}/status/500", log_message=["note"]),
        json_handler(),
        plain=False,
    ),
    Scenario("closed handler", calls("{app}/json/c"), json_handler(), plain=False, enter=False),
    Scenario(
        "subclass overriding request",
        calls("{app}/json/o", "{app}/status/500"),
        lambda *_: OwnRequest.create(),
        plain=False,
        overrides={"requests_seen": 2},
    ),
    Scenario(
        "subclass overriding _handle_response",
        calls("{app}/json/o", "{app}/status/404", "{app}/ratelimit/h?n=1&retry_after=0"),
        lambda *_: OwnHandleResponse.create(retry_timer=StepCountTimer(0, 2, 0)),
        plain=False,
        overrides={"statuses_seen": [404, 429]},
    ),
]


def _url(template: str, base: URL, flow: URL) -> URL | str:
    text = template.format(app=str(base).rstrip("/"), flow=str(flow).rstrip("/"))
    return text.removeprefix("str:") if text.startswith("str:") else URL(text)


async def _call(handler: RequestHandler, plain: bool, url: URL | str, kwargs: dict[str, Any]) -> Any:
    if plain:
        return await handler.get(url, **kwargs)
    return await handler.request(method="GET", url=url, **kwargs)


async def run(serve: Any, where: Path, scenario: Scenario, plain: bool) -> Outcome:
    app, host = make_app(), flow_servers.make_host("h")
    base, flow = await serve(app), await serve(host)
    if scenario.setup is not None:
        scenario.setup(app)
    normalise = Normaliser(base, flow, where=where)
    where.mkdir()
    handler = scenario.build(where, base)
    outcome = Outcome(hooks=watch_hooks(handler, normalise))
    with captured_logs() as capture:
        async with contextlib.AsyncExitStack() as stack:
            if scenario.enter:
                await stack.enter_async_context(handler)
            for call in scenario.calls:
                try:
                    result = await _call(handler, plain, _url(call.url, base, flow), dict(call.kwargs))
                except Exception as exc:
                    outcome.results.append(("raised", normalise.exception(exc)))
                else:
                    outcome.results.append(("returned", normalise.value(result)))
    outcome.logs = log_lines(capture, normalise)
    outcome.stats = stats_snapshot(handler)
    outcome.server_requests = server_requests(app, host)
    for name in ("requests_seen", "sends_seen", "statuses_seen"):
        if hasattr(handler, name):
            outcome.extra[name] = getattr(handler, name)
    if isinstance(handler.payload_handler, OwnJSON):
        outcome.extra["payload_handler_calls"] = handler.payload_handler.calls
    if isinstance(handler.authoriser, TokenAuthoriser):
        outcome.extra["authorisations"] = handler.authoriser.calls
    return outcome


class LogsDiffer(AssertionError):
    """The paths' DEBUG records differ."""


def assert_same(plain: Outcome, full: Outcome) -> None:
    # one part at a time, so a failure names what differs; the log records last, so that a known difference in
    # them cannot hide one anywhere else
    for name in ("results", "stats", "server_requests", "hooks", "extra"):
        assert getattr(plain, name) == getattr(full, name), name
    if plain.logs != full.logs:
        # (pytest rewrites only assert statements: the diff is spelled out here)
        lines = [f"  plain: {line}" for line in plain.logs] + [f"  full:  {line}" for line in full.logs]
        raise LogsDiffer("log records differ:\n" + "\n".join(lines))


def _param(scenario: Any) -> Any:
    if not isinstance(scenario, Scenario):  # a pytest.param already
        return scenario
    return pytest.param(scenario, id=scenario.name)


@pytest.mark.parametrize("scenario", [_param(s) for s in SCENARIOS])
async def test_plain_get_and_full_path_agree(serve, tmp_path, plain_calls, scenario: Scenario) -> None:
    plain = await run(serve, tmp_path / "plain", scenario, plain=True)
    assert len(plain_calls) == (len(scenario.calls) if scenario.plain else 0)
    taken = len(plain_calls)
    for name, value in scenario.expect.items():
        assert plain.stats[name] == value, name
    for name, seen in scenario.overrides.items():
        assert plain.extra[name] == seen, name  # get() reached the subclass's override
    full = await run(serve, tmp_path / "full", scenario, plain=False)
    assert len(plain_calls) == taken  # request(method="GET") never takes the plain GET
    assert bool(plain.server_requests) == scenario.enter  # a closed handler sends nothing
    assert_same(plain, full)


# --------------------------------------------------------------------------------------------------
# cancellation mid-flight
# --------------------------------------------------------------------------------------------------
async def run_cancelled(serve: Any, plain: bool, body: bool) -> Outcome:
    app, host = make_app(), flow_servers.make_host("h")
    base, flow = await serve(app), await serve(host)
    normalise = Normaliser(base, flow)
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler())
    outcome = Outcome(hooks=watch_hooks(handler, normalise))
    answered = asyncio.Event()
    handler.hooks.on_response.append(lambda *_: answered.set())
    url = base / "hold" / "x"
    if body:
        url = url.with_query(body="1")
    with captured_logs() as capture:
        async with handler:
            task = asyncio.create_task(_call(handler, plain, url, {}))
            await asyncio.wait_for(servers.event(app, servers.STARTED, "hold", "x").wait(), GUARD)
            if body:
                await asyncio.wait_for(answered.wait(), GUARD)  # the client is reading the body
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The connection was given up, not kept half-read: the server sees the client go.
            await asyncio.wait_for(servers.event(app, servers.DROPPED, "hold", "x").wait(), GUARD)
            outcome.extra["after_cancel"] = stats_snapshot(handler)
            outcome.results.append(normalise.value(await _call(handler, plain, base / "json" / "next", {})))
    outcome.logs = log_lines(capture, normalise)
    outcome.stats = stats_snapshot(handler)
    outcome.server_requests = server_requests(app, host)
    return outcome


@pytest.mark.parametrize("body", [False, True], ids=["before headers", "mid-body"])
async def test_cancelled_get_agrees(serve, plain_calls, body: bool) -> None:
    plain = await run_cancelled(serve, True, body)
    assert len(plain_calls) == 2
    full = await run_cancelled(serve, False, body)
    assert len(plain_calls) == 2
    assert plain.extra["after_cancel"]["cancelled"] == 1 and plain.extra["after_cancel"]["calls"] == 1
    assert plain.stats["cancelled"] == 1 and plain.stats["successes"] == 1
    assert plain.results == [{"id": "next", "title": "Item next", "tags": ["a", "b"], "price": 1.5}]
    assert_same(plain, full)


# --------------------------------------------------------------------------------------------------
# the switch itself
# --------------------------------------------------------------------------------------------------
def test_only_subclasses_replacing_a_step_lose_the_plain_get() -> None:
    class Harmless(RequestHandler):
        __slots__ = ()

        def describe(self) -> str:
            return "no step replaced"

    assert RequestHandler._plain_class and Harmless._plain_class
    assert not OwnRequest._plain_class and not OwnHandleResponse._plain_class


async def test_plain_get_is_taken_only_when_nothing_else_is_needed(serve) -> None:
    base = await serve(make_app())
    async with RequestHandler.create() as handler:
        assert handler._plain()
        handler.hooks.around_call.append(lambda proceed, *_: proceed())
        assert not handler._plain()
    assert not handler._plain()  # closed
    for options in ({"coalesce": True}, {"rate_limit": 100}, {"max_in_flight": 2}, {"pause_on_retry_after": True}):
        async with RequestHandler.create(**options) as handler:
            assert not handler._plain(), options
            assert await handler.get(base / "text") == "plain text"
