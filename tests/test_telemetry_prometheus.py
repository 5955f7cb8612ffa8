# SPDX-License-Identifier: MIT
"""The Prometheus collector against the real prometheus-client registry: every sample equals the handler's stats
after a crawl with retries, a 429 wait and cache hits."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, generate_latest

from aiorequestful.cache.backend.base import ResponseRepositorySettings
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.telemetry.prometheus import PrometheusCollector
from aiorequestful.timer import StepCountTimer


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
            return web.Response(status=503)
        if name == "limited" and hits[name] == 1:
            return web.Response(status=429, headers={"Retry-After": "0"})
        return web.json_response({"id": name})

    app = web.Application()
    app.router.add_get("/items/{id}", item)
    return app


async def test_samples_equal_the_handler_stats(serve, tmp_path) -> None:
    base = await serve(make_app())
    cache = SQLiteCache.connect_with_path(tmp_path / "c", repository_getter=lambda c, u: c.get("items"))
    cache.create_repository(Items(name="items"))
    handler = RequestHandler.create(
        cache=cache, payload_handler=JSONPayloadHandler(), retry_timer=StepCountTimer(0, 3, 0)
    )
    registry = CollectorRegistry()
    collector = PrometheusCollector()
    collector.add(handler, name="crawl")
    registry.register(collector)
    async with handler:
        for name in ("flaky", "limited", "a", "a", "b", "b"):  # the second a and b are cache hits
            await handler.get(base / "items" / name)
    stats = handler.stats
    assert stats.retries == 1 and stats.resends == 1 and stats.cache_hits == 2  # the crawl did what it should

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"handler": "crawl", **labels})

    assert sample("aiorequestful_calls_total") == stats.calls == 6
    assert sample("aiorequestful_attempts_total") == stats.requests
    assert sample("aiorequestful_retries_total") == stats.retries
    assert sample("aiorequestful_resends_total") == stats.resends
    assert sample("aiorequestful_transport_errors_total") == stats.errors
    assert sample("aiorequestful_failed_calls_total") == stats.failures
    assert sample("aiorequestful_cancelled_calls_total") == stats.cancelled
    assert sample("aiorequestful_coalesced_calls_total") == stats.coalesced
    assert sample("aiorequestful_cache_hits_total") == stats.cache_hits
    assert sample("aiorequestful_cache_misses_total") == stats.cache_misses
    assert sample("aiorequestful_received_bytes_total") == stats.bytes_received > 0
    for status_class, count in stats.responses.items():
        assert sample("aiorequestful_responses_total", status_class=status_class) == count
    assert set(stats.responses) == {"2xx", "4xx", "5xx"}
    for reason, seconds in stats.wait_seconds_by_reason.items():
        assert sample("aiorequestful_wait_seconds_sum", reason=reason) == pytest.approx(seconds)
    assert sample("aiorequestful_wait_seconds_count", reason="retry") == 1
    assert sample("aiorequestful_wait_seconds_count", reason="status_handler") == 1
    assert sample("aiorequestful_wait_seconds_bucket", reason="retry", le="+Inf") == 1
    text = generate_latest(registry).decode()
    assert 'aiorequestful_calls_total{handler="crawl"} 6.0' in text
    assert "# TYPE aiorequestful_wait_seconds histogram" in text


async def test_two_handlers_are_told_apart_and_removal_stops_export(serve) -> None:
    base = await serve(make_app())
    one = RequestHandler.create(payload_handler=JSONPayloadHandler())
    two = RequestHandler.create(payload_handler=JSONPayloadHandler())
    registry = CollectorRegistry()
    collector = PrometheusCollector(namespace="crawler")
    collector.add(one, name="one")
    collector.add(two, name="two")
    registry.register(collector)
    async with one, two:
        await one.get(base / "items" / "x")
        for _ in range(3):
            await two.get(base / "items" / "y")
    assert registry.get_sample_value("crawler_calls_total", {"handler": "one"}) == 1
    assert registry.get_sample_value("crawler_calls_total", {"handler": "two"}) == 3
    collector.remove("one")
    assert registry.get_sample_value("crawler_calls_total", {"handler": "one"}) is None
    assert one.hooks.on_wait == []
    with pytest.raises(ValueError, match="already exported"):
        collector.add(two, name="two")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"namespace": "9lives"}, "namespace"), ({"namespace": "a-b"}, "namespace"), ({"wait_buckets": []}, "buckets")],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrometheusCollector(**kwargs)


def test_reset_stats_is_a_counter_reset() -> None:
    handler = RequestHandler.create()
    registry = CollectorRegistry()
    collector = PrometheusCollector()
    collector.add(handler)
    registry.register(collector)
    handler.reset_stats()
    assert registry.get_sample_value("aiorequestful_calls_total", {"handler": "default"}) == 0
