# SPDX-License-Identifier: MIT
"""A Prometheus collector for :class:`~aiorequestful.request.RequestHandler` metrics.

``PrometheusCollector`` reads ``handler.stats`` when Prometheus scrapes (nothing is counted twice: the handler's
own counters are the source), and keeps a histogram of every wait from the handler's ``on_wait`` hook. One
collector can serve several handlers, told apart by the ``handler`` label::

    from prometheus_client import REGISTRY, start_http_server
    from aiorequestful.telemetry.prometheus import PrometheusCollector

    collector = PrometheusCollector()
    collector.add(handler, name="catalogue")
    REGISTRY.register(collector)

Metric names (``namespace`` defaults to ``aiorequestful``; every metric has the label ``handler``):

=========================================== ================================================================
``<ns>_calls_total``                        ``request()`` calls made
``<ns>_attempts_total``                     attempts that finished (``stats.requests``), cache hits included
``<ns>_responses_total{status_class}``      responses by status class (``2xx``, ``4xx``...)
``<ns>_retries_total``                      retry steps taken after a failed attempt
``<ns>_resends_total``                      attempts sent again because a status handler asked (401, 429)
``<ns>_transport_errors_total``             attempts that failed in transport (``stats.errors``)
``<ns>_failed_calls_total``                 ``request()`` calls that raised
``<ns>_cancelled_calls_total``              ``request()`` calls cancelled before they finished
``<ns>_coalesced_calls_total``              calls answered by an identical concurrent call's request
``<ns>_cache_hits_total``                   responses served from the cache
``<ns>_cache_misses_total``                 responses a caching session fetched from the network
``<ns>_cache_revalidations_total``          stored responses a ``304`` confirmed (HTTP caching policy)
``<ns>_cache_stale_total``                  cache hits that were stale (stale-while-revalidate, stale-if-error)
``<ns>_received_bytes_total``               body bytes received from the network
``<ns>_wait_seconds{reason}`` (histogram)   every wait, by reason: ``retry``, ``wait_timer``,
                                            ``status_handler``, ``rate_limit``, ``pause``
=========================================== ================================================================

``handler.reset_stats()`` starts the counters again from zero, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

try:
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # an optional extra
    raise ImportError(
        "The Prometheus exporter needs prometheus-client: pip install 'aiorequestful[prometheus]'"
    ) from exc

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ..request import RequestHandler

__all__ = ("DEFAULT_WAIT_BUCKETS", "PrometheusCollector")

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

#: Histogram bounds for waits, in seconds: from a token-bucket slot to an hour-long Retry-After.
DEFAULT_WAIT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)

#: (metric suffix, RequestStats attribute, help text)
_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("calls", "calls", "request() calls made"),
    ("attempts", "requests", "Attempts that finished with a response or a transport error (cache hits included)"),
    ("retries", "retries", "Retry steps taken after a failed attempt"),
    ("resends", "resends", "Attempts sent again because a status handler asked (e.g. 401, 429)"),
    ("transport_errors", "errors", "Attempts that failed in transport (connection errors, resets, time-outs)"),
    ("failed_calls", "failures", "request() calls that ended in an exception"),
    ("cancelled_calls", "cancelled", "request() calls cancelled before they finished"),
    ("coalesced_calls", "coalesced", "request() calls answered by an identical concurrent call's request"),
    ("cache_hits", "cache_hits", "Responses served from the cache"),
    ("cache_misses", "cache_misses", "Responses a caching session fetched from the network"),
    ("cache_revalidations", "cache_revalidations", "Stored responses the origin confirmed with 304 Not Modified"),
    ("cache_stale", "cache_stale", "Cache hits that were stale (while revalidating, or on an origin error)"),
    ("received_bytes", "bytes_received", "Body bytes received from the network (cache hits excluded)"),
)


class _WaitHistogram:
    """Bucket counts and sums of one handler's waits, per reason; fed by the handler's ``on_wait`` hook."""

    __slots__ = ("_bounds", "_lock", "_reasons")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = tuple(bounds)
        self._lock = threading.Lock()  # a scrape may run on the exporter's HTTP thread
        self._reasons: dict[str, tuple[list[int], list[float]]] = {}

    def observe(self, reason: str, seconds: float, url: Any = None) -> None:
        with self._lock:
            counts, total = self._reasons.setdefault(reason, ([0] * (len(self._bounds) + 1), [0.0]))
            counts[bisect.bisect_left(self._bounds, seconds)] += 1
            total[0] += seconds

    def samples(self) -> Iterator[tuple[str, list[tuple[str, float]], float]]:
        """Per reason: the cumulative buckets (``le`` as text, ``+Inf`` last) and the sum."""
        with self._lock:
            snapshot = {reason: (list(counts), total[0]) for reason, (counts, total) in self._reasons.items()}
        for reason, (counts, total) in sorted(snapshot.items()):
            running = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*self._bounds, float("inf")), counts, strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
            yield reason, buckets, total


class PrometheusCollector(Collector):
    """Exposes the metrics of the handlers :meth:`add`-ed to it; register it with a ``CollectorRegistry``.

    :param namespace: the prefix of every metric name.
    :param wait_buckets: the upper bounds, in seconds, of the wait histogram's buckets.
    """

    def __init__(self, namespace: str = "aiorequestful", wait_buckets: Sequence[float] = DEFAULT_WAIT_BUCKETS) -> None:
        if not isinstance(namespace, str) or not _NAME.fullmatch(namespace):
            raise ValueError(
                f"namespace must be a Prometheus metric name prefix ([a-zA-Z_][a-zA-Z0-9_]*): {namespace!r}"
            )
        bounds = sorted(float(b) for b in wait_buckets)
        if not bounds or bounds[0] < 0 or len(set(bounds)) != len(bounds):
            raise ValueError(f"wait_buckets must be distinct non-negative numbers, got {list(wait_buckets)!r}")
        self.namespace = namespace
        self._bounds = tuple(b for b in bounds if b != float("inf"))
        self._handlers: dict[str, tuple[RequestHandler[Any, Any], _WaitHistogram]] = {}
        self._lock = threading.Lock()

    def add(self, handler: RequestHandler[Any, Any], name: str = "default") -> None:
        """Export ``handler``'s metrics under ``handler="<name>"`` and start recording its waits."""
        with self._lock:
            if name in self._handlers:
                raise ValueError(f"A handler named {name!r} is already exported by this collector")
            histogram = _WaitHistogram(self._bounds)
            self._handlers[name] = (handler, histogram)
        handler.hooks.on_wait.append(histogram.observe)

    def remove(self, name: str) -> None:
        """Stop exporting the handler added as ``name`` (and stop recording its waits)."""
        with self._lock:
            handler, histogram = self._handlers.pop(name)
        hooks = handler.hooks.on_wait
        if histogram.observe in hooks:
            hooks.remove(histogram.observe)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            handlers = list(self._handlers.items())
        stats = [(name, handler.stats, histogram) for name, (handler, histogram) in handlers]
        ns = self.namespace
        for suffix, attribute, text in _COUNTERS:
            family = CounterMetricFamily(f"{ns}_{suffix}", text, labels=["handler"])
            for name, snapshot, _ in stats:
                family.add_metric([name], getattr(snapshot, attribute))
            yield family
        responses = CounterMetricFamily(
            f"{ns}_responses", "Responses received, by status class", labels=["handler", "status_class"]
        )
        for name, snapshot, _ in stats:
            for status_class, count in snapshot.responses.items():
                responses.add_metric([name, status_class], count)
        yield responses
        waits = HistogramMetricFamily(f"{ns}_wait_seconds", "Seconds waited, by reason", labels=["handler", "reason"])
        for name, _, histogram in stats:
            for reason, buckets, total in histogram.samples():
                waits.add_metric([name, reason], buckets, total)
        yield waits
