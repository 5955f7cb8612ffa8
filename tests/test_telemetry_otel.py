# SPDX-License-Identifier: MIT
"""The OpenTelemetry instrumentation against the real opentelemetry-sdk (in-memory span exporter and metric
reader): one span per call whose attributes, summed, equal the handler's stats, and metric points equal to
them, after a crawl with retries, a 429 wait and cache hits; no secret in any attribute."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import ClientConnectorError, web
from yarl import URL

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aiorequestful.cache.backend.base import ResponseRepositorySettings
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import ResponseError
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.telemetry.otel import OpenTelemetryInstrumentation
from aiorequestful.timer import StepCountTimer

SECRETS = ("s3cr3t-header", "s3cr3t-pass", "s3cr3t-query")


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
            return web.Response(status=500)
        if name == "limited" and hits[name] == 1:
            return web.Response(status=429, headers={"Retry-After": "0"})
        if name == "gone":
            return web.Response(status=404)
        return web.json_response({"id": name})

    app = web.Application()
    app.router.add_get("/items/{id}", item)
    return app


class Telemetry:
    """A tracer provider with an in-memory exporter and a meter provider with an in-memory reader."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)

    def instrument(self, handler: RequestHandler[Any, Any], **kwargs: Any) -> OpenTelemetryInstrumentation:
        return OpenTelemetryInstrumentation(
            handler, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **kwargs
        )

    def finished(self) -> list[ReadableSpan]:
        return sorted(self.spans.get_finished_spans(), key=lambda span: span.start_time or 0)

    def points(self) -> dict[str, list[Any]]:
        """Metric name -> its data points, from one collection."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    made = Telemetry()
    yield made
    made.close()


def all_text(span: ReadableSpan) -> str:
    """Every attribute and event of ``span``, as one text to search for secrets."""
    parts = [json.dumps(dict(span.attributes or {}), default=str)]
    parts += [json.dumps({"name": e.name, **dict(e.attributes or {})}, default=str) for e in span.events]
    return " ".join(parts)


async def test_spans_and_metric_points_equal_the_handler_stats(serve, tmp_path, telemetry) -> None:
    base = await serve(make_app())
    cache = SQLiteCache.connect_with_path(tmp_path / "c", repository_getter=lambda c, u: c.get("items"))
    cache.create_repository(Items(name="items"))
    handler = RequestHandler.create(
        cache=cache, payload_handler=JSONPayloadHandler(), retry_timer=StepCountTimer(0, 3, 0)
    )
    instrumentation = telemetry.instrument(handler, name="crawl")
    secret_url = base.with_user("user").with_password("s3cr3t-pass") / "items" / "s"
    async with handler:
        for name in ("flaky", "limited", "a", "a", "b", "b"):  # the second a and b are cache hits
            await handler.get(base / "items" / name)
        await handler.get(secret_url, params={"token": "s3cr3t-query"})
        await handler.get(base / "items" / "h", headers={"Authorization": "Bearer s3cr3t-header"})
        with pytest.raises(ResponseError) as failed:
            await handler.get(base / "items" / "gone")
    stats = handler.stats
    stats.check()
    assert (stats.retries, stats.resends, stats.cache_hits, stats.failures) == (1, 1, 2, 1)  # the crawl did that

    spans = telemetry.finished()
    assert len(spans) == stats.calls == 9  # one span per call, however many attempts it made
    flaky, limited, a1, a2, b1, b2, secret, header, gone = spans
    for span in spans:
        assert span.name == "GET" and span.kind is SpanKind.CLIENT
        attributes = span.attributes or {}
        assert attributes["http.request.method"] == "GET"
        assert attributes["server.address"] == "127.0.0.1" and attributes["server.port"] == base.port
        assert attributes["aiorequestful.handler"] == "crawl"
        assert not any(secret in all_text(span) for secret in SECRETS), all_text(span)

    # summed over the spans, the handler's counters
    def total(key: str) -> float:
        return sum((span.attributes or {}).get(key, 0) for span in spans)

    assert total("aiorequestful.attempts") == stats.requests == 11
    assert total("aiorequestful.retries") == stats.retries
    assert total("aiorequestful.resends") == stats.resends
    assert total("http.request.resend_count") == stats.retries + stats.resends
    for reason, seconds in stats.wait_seconds_by_reason.items():
        assert total(f"aiorequestful.wait.{reason}") == pytest.approx(seconds)
    assert set(stats.wait_seconds_by_reason) == {"retry", "status_handler"}
    outcomes = Counter((span.attributes or {})["aiorequestful.cache"] for span in spans)
    assert outcomes == {"hit": stats.cache_hits, "miss": stats.calls - stats.cache_hits}

    # each span: what its call did
    assert flaky.attributes is not None and limited.attributes is not None
    assert flaky.attributes["aiorequestful.attempts"] == 2 and flaky.attributes["aiorequestful.retries"] == 1
    assert flaky.attributes["http.request.resend_count"] == 1
    assert flaky.attributes["http.response.status_code"] == 200 and "aiorequestful.wait.retry" in flaky.attributes
    assert limited.attributes["aiorequestful.resends"] == 1 and limited.attributes["aiorequestful.retries"] == 0
    assert "aiorequestful.wait.status_handler" in limited.attributes
    for span in (a1, b1):
        assert (span.attributes or {})["aiorequestful.cache"] == "miss"
    for span in (a2, b2):
        assert (span.attributes or {})["aiorequestful.cache"] == "hit"
        assert "http.request.resend_count" not in (span.attributes or {})
    assert a1.attributes is not None and a1.attributes["url.full"] == str(base / "items" / "a")
    assert secret.attributes is not None
    assert secret.attributes["url.full"] == f"http://<redacted>@127.0.0.1:{base.port}/items/s?token=<redacted>"
    assert header.attributes is not None and header.attributes["http.response.status_code"] == 200
    for span in spans[:-1]:
        assert span.status.status_code is StatusCode.UNSET and "error.type" not in (span.attributes or {})
    assert gone.attributes is not None and gone.attributes["http.response.status_code"] == 404
    error_type = f"{type(failed.value).__module__}.{type(failed.value).__qualname__}"
    assert gone.attributes["error.type"] == error_type
    assert gone.status.status_code is StatusCode.ERROR
    assert [event.name for event in gone.events] == ["exception"]

    # the metric points: the handler's own counters
    points = telemetry.points()

    def value(name: str, **attributes: Any) -> Any:
        wanted = {"aiorequestful.handler": "crawl", **attributes}
        found = [p for p in points[name] if dict(p.attributes) == wanted]
        assert len(found) == 1, (name, attributes, points.get(name))
        return found[0]

    assert value("aiorequestful.calls").value == stats.calls
    assert value("aiorequestful.attempts").value == stats.requests
    assert value("aiorequestful.retries").value == stats.retries
    assert value("aiorequestful.resends").value == stats.resends
    assert value("aiorequestful.transport_errors").value == stats.errors
    assert value("aiorequestful.failed_calls").value == stats.failures
    assert value("aiorequestful.cancelled_calls").value == stats.cancelled
    assert value("aiorequestful.coalesced_calls").value == stats.coalesced
    assert value("aiorequestful.cache.hits").value == stats.cache_hits
    assert value("aiorequestful.cache.misses").value == stats.cache_misses
    assert value("aiorequestful.received_bytes").value == stats.bytes_received > 0
    assert {dict(p.attributes)["aiorequestful.status_class"]: p.value for p in points["aiorequestful.responses"]} == (
        dict(stats.responses)
    )
    for reason, seconds in stats.wait_seconds_by_reason.items():
        assert value("aiorequestful.wait.time", **{"aiorequestful.wait.reason": reason}).value == pytest.approx(seconds)
        waits = value("aiorequestful.wait.duration", **{"aiorequestful.wait.reason": reason})
        assert waits.count == 1 and waits.sum == pytest.approx(seconds)

    # the duration histogram: one point per call, by method, server, status and error
    durations = points["http.client.request.duration"]
    assert sum(p.count for p in durations) == stats.calls
    common = {"http.request.method": "GET", "server.address": "127.0.0.1", "server.port": base.port}
    ok = value("http.client.request.duration", **common, **{"http.response.status_code": 200})
    assert ok.count == stats.calls - stats.failures
    bad = value(
        "http.client.request.duration", **common, **{"http.response.status_code": 404, "error.type": error_type}
    )
    assert bad.count == 1
    instrumentation.detach()


async def test_a_transport_failure_is_an_error_span_without_the_secrets(telemetry) -> None:
    with socket.socket() as probe:  # a port of 127.0.0.1 that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = RequestHandler.create()
    telemetry.instrument(handler)
    url = URL(f"http://user:s3cr3t-pass@127.0.0.1:{port}/x?token=s3cr3t-query")
    async with handler:
        with pytest.raises(ClientConnectorError):
            await handler.get(url)
    (span,) = telemetry.finished()
    attributes = span.attributes or {}
    assert attributes["error.type"] == "aiohttp.client_exceptions.ClientConnectorError"
    assert span.status.status_code is StatusCode.ERROR
    assert attributes["aiorequestful.attempts"] == 1 and attributes["aiorequestful.cache"] == "none"
    assert "http.response.status_code" not in attributes
    assert attributes["url.full"] == f"http://<redacted>@127.0.0.1:{port}/x?token=<redacted>"
    assert not any(secret in all_text(span) for secret in SECRETS)
    assert handler.stats.errors == 1


async def test_detach_gives_the_handler_back(serve, telemetry) -> None:
    base = await serve(make_app())
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler())
    instrumentation = telemetry.instrument(handler)
    assert isinstance(handler, RequestHandler) and type(handler).__name__ == "RequestHandler"
    with pytest.raises(ValueError, match="already instrumented"):
        telemetry.instrument(handler)
    async with handler:
        await handler.get(base / "items" / "x")
        instrumentation.detach()
        await handler.get(base / "items" / "y")
    assert type(handler) is RequestHandler
    hooks = handler.hooks
    assert hooks.around_call == hooks.on_request == hooks.on_response == hooks.on_retry == hooks.on_wait == []
    assert len(telemetry.finished()) == 1  # the call made after detach() has no span
    assert "aiorequestful.calls" not in telemetry.points()  # and the counters report nothing
    instrumentation.detach()  # twice is fine
    telemetry.instrument(handler).detach()  # and it can be instrumented again


async def test_handlers_sharing_a_meter_provider_are_told_apart(serve, telemetry) -> None:
    base = await serve(make_app())
    one = RequestHandler.create(payload_handler=JSONPayloadHandler())
    two = RequestHandler.create(payload_handler=JSONPayloadHandler())
    first = telemetry.instrument(one, name="one")
    telemetry.instrument(two, name="two")
    with pytest.raises(ValueError, match="already instrumented"):
        telemetry.instrument(RequestHandler.create(), name="two")  # its points would be mixed with two's
    async with one, two:
        await one.get(base / "items" / "x")
        for _ in range(3):
            await two.get(base / "items" / "y")
    calls = {dict(p.attributes)["aiorequestful.handler"]: p.value for p in telemetry.points()["aiorequestful.calls"]}
    assert calls == {"one": one.stats.calls, "two": two.stats.calls} == {"one": 1, "two": 3}
    first.detach()
    calls = {dict(p.attributes)["aiorequestful.handler"]: p.value for p in telemetry.points()["aiorequestful.calls"]}
    assert calls == {"two": 3}


async def test_a_relative_url_gets_the_base_urls_server(serve, telemetry) -> None:
    base = await serve(make_app())
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler(), base_url=str(base))
    telemetry.instrument(handler)
    async with handler:
        await handler.get("/items/r", params={"page": "2"})
    (span,) = telemetry.finished()
    attributes = span.attributes or {}
    assert attributes["url.full"] == str((base / "items" / "r").with_query(page="2"))
    assert attributes["server.port"] == base.port


async def test_spans_made_during_a_call_are_its_children(serve, telemetry) -> None:
    base = await serve(make_app())
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler())
    telemetry.instrument(handler)
    tracer = telemetry.tracer_provider.get_tracer("test")

    def on_request(method: str, url: URL) -> None:
        with tracer.start_as_current_span("inside"):
            pass

    handler.hooks.on_request.append(on_request)
    async with handler:
        await handler.get(base / "items" / "c")
    inside, call = sorted(telemetry.finished(), key=lambda span: span.name != "inside")
    assert inside.name == "inside" and call.name == "GET"
    assert inside.parent is not None and call.context is not None
    assert inside.parent.span_id == call.context.span_id


async def test_coalesced_calls_have_spans_whose_attempts_add_up(serve, telemetry) -> None:
    base = await serve(make_app())
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler(), coalesce=True)
    telemetry.instrument(handler)
    async with handler:
        results = await asyncio.gather(*(handler.get(base / "items" / "shared") for _ in range(3)))
    assert results == [{"id": "shared"}] * 3
    stats = handler.stats
    assert (stats.calls, stats.coalesced, stats.requests) == (3, 2, 1)
    spans = telemetry.finished()
    assert len(spans) == 3
    assert sorted((span.attributes or {})["aiorequestful.attempts"] for span in spans) == [0, 0, 1]
    assert all(span.status.status_code is StatusCode.UNSET for span in spans)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"name": ""}, "name"), ({"duration_buckets": []}, "buckets"), ({"duration_buckets": [2, 1]}, "buckets")],
)
def test_bad_arguments_are_refused(telemetry, kwargs: dict[str, Any], message: str) -> None:
    handler = RequestHandler.create()
    with pytest.raises(ValueError, match=message):
        telemetry.instrument(handler, **kwargs)
    assert type(handler) is RequestHandler and handler.hooks.on_request == []
    with pytest.raises(TypeError, match="RequestHandler"):
        OpenTelemetryInstrumentation(object())  # type: ignore[arg-type]


def test_the_package_works_without_opentelemetry_and_says_which_extra_to_install() -> None:
    """With opentelemetry made unimportable (as when the extra is not installed), the package and its log fields
    import and work; only asking for the instrumentation fails, naming the extra."""
    code = """
import importlib.abc, sys

class NoOpenTelemetry(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoOpenTelemetry())
import aiorequestful, aiorequestful.request, aiorequestful.telemetry, aiorequestful.cache.session
import aiorequestful.telemetry.logfields
assert not any(m.startswith("opentelemetry") for m in sys.modules), sorted(sys.modules)
aiorequestful.request.RequestHandler.create()
try:
    import aiorequestful.telemetry.otel
except ImportError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "The OpenTelemetry instrumentation needs opentelemetry-api: pip install 'aiorequestful[otel]'"


async def test_calls_through_the_handlers_middleware_are_traced(serve, telemetry) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    if not hasattr(aiohttp, "ClientMiddlewareType"):
        pytest.skip("aiohttp client middlewares need aiohttp 3.12")
    base = await serve(make_app())
    handler = RequestHandler.create(payload_handler=JSONPayloadHandler())
    telemetry.instrument(handler)
    async with handler, aiohttp.ClientSession(middlewares=[handler.middleware()]) as session:
        async with session.get(base / "items" / "m") as response:
            assert response.status == 200
    (span,) = telemetry.finished()
    assert span.name == "GET" and span.attributes["http.response.status_code"] == 200
    assert span.attributes["url.full"] == str(base / "items" / "m")
