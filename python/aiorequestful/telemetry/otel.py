# SPDX-License-Identifier: MIT
"""OpenTelemetry traces and metrics for :class:`~aiorequestful.request.RequestHandler`.

``pip install 'aiorequestful[otel]'``; nothing of OpenTelemetry is imported until this module is. Attach it to
a handler and every ``request()`` call (``get``, ``post``... included) becomes one span, from the call to its
payload or exception, over all its attempts::

    from aiorequestful.telemetry.otel import OpenTelemetryInstrumentation

    instrumentation = OpenTelemetryInstrumentation(handler, name="catalogue")
    ...
    instrumentation.detach()  # the handler is as it was

The span follows the OpenTelemetry semantic conventions for HTTP client spans: its name is the method, its kind
``CLIENT``, and it has ``http.request.method``, ``url.full`` (user info and secret query values masked by
:func:`aiorequestful.security.redact_url`), ``server.address``, ``server.port``, ``http.response.status_code``
(of the last response), ``http.request.resend_count`` (when the request was sent more than once) and, when the
call failed, ``error.type`` and status ``ERROR``. Our own attributes say what the handler did:

================================== ===================================================================
``aiorequestful.attempts``         attempts (sends, and cache hits) the call made
``aiorequestful.retries``          retry steps after a failed attempt
``aiorequestful.resends``          attempts sent again because a status handler asked (401, 429)
``aiorequestful.wait.<reason>``    seconds waited, per reason (``retry``, ``wait_timer``,
                                   ``status_handler``, ``rate_limit``, ``pause``; only those waited)
``aiorequestful.cache``            ``hit`` (answered from the cache), ``miss`` (a caching session fetched
                                   it) or ``none`` (no caching session)
``aiorequestful.handler``          the ``name`` given to the instrumentation
================================== ===================================================================

A call answered by an identical concurrent call's request (``coalesce=True``) has ``aiorequestful.attempts``
0: the attempts are on the span of the call that made them. The span is current while the call runs, so spans
made inside it (by an aiohttp instrumentation, say) are its children.

Metrics (every point has ``aiorequestful.handler``):

======================================= =============== ==================================================
``http.client.request.duration``        histogram, s    per call, with ``http.request.method``,
                                                        ``server.address``, ``server.port``,
                                                        ``http.response.status_code``, ``error.type``
``aiorequestful.wait.duration``         histogram, s    every wait, with ``aiorequestful.wait.reason``
``aiorequestful.calls``                 counter         ``stats.calls``
``aiorequestful.attempts``              counter         ``stats.requests``
``aiorequestful.responses``             counter         ``stats.responses``, with
                                                        ``aiorequestful.status_class`` (``2xx``...)
``aiorequestful.retries``               counter         ``stats.retries``
``aiorequestful.resends``               counter         ``stats.resends``
``aiorequestful.transport_errors``      counter         ``stats.errors``
``aiorequestful.failed_calls``          counter         ``stats.failures``
``aiorequestful.cancelled_calls``       counter         ``stats.cancelled``
``aiorequestful.coalesced_calls``       counter         ``stats.coalesced``
``aiorequestful.cache.hits``            counter         ``stats.cache_hits``
``aiorequestful.cache.misses``          counter         ``stats.cache_misses``
``aiorequestful.cache.revalidations``   counter         ``stats.cache_revalidations``
``aiorequestful.cache.stale``           counter         ``stats.cache_stale``
``aiorequestful.received_bytes``        counter, By     ``stats.bytes_received``
``aiorequestful.wait.time``             counter, s      ``stats.wait_seconds_by_reason``, with
                                                        ``aiorequestful.wait.reason``
======================================= =============== ==================================================

The counters are observable: they read ``handler.stats`` when the metrics are collected, so they are the
handler's own counters (nothing is counted twice), as the Prometheus collector's are. Handlers that record to
one meter provider share its instruments, told apart by ``aiorequestful.handler``: give each its own ``name``.
``handler.reset_stats()`` starts them again from zero.

How it attaches: through the handler's hooks (``handler.hooks``): ``around_call`` opens the span around each
call (a call through the handler's middleware too), the callbacks count what the call did; ``detach()`` removes
them.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # an optional extra
    raise ImportError(
        "The OpenTelemetry instrumentation needs opentelemetry-api: pip install 'aiorequestful[otel]'"
    ) from exc

from yarl import URL

from .. import __version__
from .._aiohttp import session_base_url
from .._handler.redaction import scrub_urls
from ..cache.protocol import CachingSession
from ..security import redact_url
from ..stats import WAIT_STATUS, RequestStats

if TYPE_CHECKING:
    from ..request import RequestHandler

__all__ = ("DEFAULT_DURATION_BUCKETS", "OpenTelemetryInstrumentation")

#: The bucket bounds, in seconds, the HTTP semantic conventions advise for ``http.client.request.duration``.
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
)  # fmt: skip

#: (instrument name, RequestStats attribute, unit, description) of the counters read from ``handler.stats``.
_COUNTERS: tuple[tuple[str, str, str, str], ...] = (
    ("aiorequestful.calls", "calls", "{call}", "request() calls made"),
    ("aiorequestful.attempts", "requests", "{attempt}", "Attempts that finished (cache hits included)"),
    ("aiorequestful.retries", "retries", "{retry}", "Retry steps taken after a failed attempt"),
    ("aiorequestful.resends", "resends", "{attempt}", "Attempts sent again because a status handler asked"),
    ("aiorequestful.transport_errors", "errors", "{attempt}", "Attempts that failed in transport"),
    ("aiorequestful.failed_calls", "failures", "{call}", "request() calls that ended in an exception"),
    ("aiorequestful.cancelled_calls", "cancelled", "{call}", "request() calls cancelled before they finished"),
    ("aiorequestful.coalesced_calls", "coalesced", "{call}", "Calls answered by an identical concurrent call"),
    ("aiorequestful.cache.hits", "cache_hits", "{response}", "Responses served from the cache"),
    ("aiorequestful.cache.misses", "cache_misses", "{response}", "Responses a caching session fetched"),
    ("aiorequestful.cache.revalidations", "cache_revalidations", "{response}", "Stored responses a 304 confirmed"),
    ("aiorequestful.cache.stale", "cache_stale", "{response}", "Cache hits that were stale"),
    ("aiorequestful.received_bytes", "bytes_received", "By", "Body bytes received from the network"),
)

HANDLER = "aiorequestful.handler"
WAIT_REASON = "aiorequestful.wait.reason"
STATUS_CLASS = "aiorequestful.status_class"


class _Call:
    """What the hooks saw of one call."""

    __slots__ = ("attempts", "cache", "resends", "retries", "status", "waits")

    def __init__(self) -> None:
        self.attempts = 0
        self.retries = 0
        self.resends = 0
        self.status: int | None = None
        self.cache = "none"
        self.waits: dict[str, float] = {}


#: The call being made in this task, and the instrumentation it belongs to (hooks of another instrumented
#: handler called meanwhile must not count into it).
_current: ContextVar[tuple[OpenTelemetryInstrumentation, _Call] | None] = ContextVar(
    "aiorequestful_otel_call", default=None
)


class _Instruments:
    """The instruments of one meter provider, shared by every instrumentation that records to it (a provider
    takes an instrument name once: a second handler's counters must be points of the same instruments)."""

    def __init__(self, meter_provider: metrics.MeterProvider, bounds: Sequence[float]) -> None:
        self._lock = threading.Lock()  # the observable counters are read on the metric reader's thread
        self._members: dict[str, OpenTelemetryInstrumentation] = {}
        meter = meter_provider.get_meter("aiorequestful", __version__)
        self.duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=bounds,
        )
        self.waits = meter.create_histogram(
            "aiorequestful.wait.duration",
            unit="s",
            description="Seconds waited, per wait, by reason",
            explicit_bucket_boundaries_advisory=bounds,
        )
        for instrument, attribute, unit, description in _COUNTERS:
            meter.create_observable_counter(
                instrument, callbacks=[self._observe(attribute)], unit=unit, description=description
            )
        meter.create_observable_counter(
            "aiorequestful.responses",
            callbacks=[self._observe_responses],
            unit="{response}",
            description="Responses received, by status class",
        )
        meter.create_observable_counter(
            "aiorequestful.wait.time",
            callbacks=[self._observe_waits],
            unit="s",
            description="Seconds spent waiting, by reason",
        )

    def add(self, member: OpenTelemetryInstrumentation) -> None:
        with self._lock:
            if member.name in self._members:
                raise ValueError(f"A handler named {member.name!r} is already instrumented for this meter provider")
            self._members[member.name] = member

    def remove(self, member: OpenTelemetryInstrumentation) -> None:
        with self._lock:
            if self._members.get(member.name) is member:
                del self._members[member.name]

    def _stats(self) -> list[tuple[dict[str, str], RequestStats]]:
        with self._lock:
            members = list(self._members.values())
        return [({HANDLER: member.name}, member.handler.stats) for member in members]

    def _observe(self, attribute: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(getattr(stats, attribute), labels) for labels, stats in self._stats()]

        return observe

    def _observe_responses(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {STATUS_CLASS: status_class, **labels})
            for labels, stats in self._stats()
            for status_class, count in stats.responses.items()
        ]

    def _observe_waits(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(seconds, {WAIT_REASON: reason, **labels})
            for labels, stats in self._stats()
            for reason, seconds in stats.wait_seconds_by_reason.items()
        ]


#: The instruments of each meter provider (it is dropped with the provider).
_INSTRUMENTS: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_INSTRUMENTS_LOCK = threading.Lock()


def _instruments_for(meter_provider: metrics.MeterProvider, bounds: Sequence[float]) -> _Instruments:
    with _INSTRUMENTS_LOCK:
        instruments = _INSTRUMENTS.get(meter_provider)
        if instruments is None:
            instruments = _INSTRUMENTS[meter_provider] = _Instruments(meter_provider, bounds)
        return instruments


def _error_type(exc: BaseException) -> str:
    """The exception's class, fully qualified unless it is a built-in (as the conventions ask)."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class OpenTelemetryInstrumentation:
    """Traces every ``request()`` call of ``handler`` as a span and records its metrics (see the module docs).

    Attached on construction; :meth:`detach` undoes it.

    :param handler: the handler to instrument (one instrumentation per handler).
    :param name: the value of the ``aiorequestful.handler`` attribute, to tell handlers apart.
    :param tracer_provider: where spans go; the global one (``opentelemetry.trace``) when None.
    :param meter_provider: where metrics go; the global one (``opentelemetry.metrics``) when None.
    :param duration_buckets: the bucket bounds (seconds) advised for the duration histograms.
    """

    def __init__(
        self,
        handler: RequestHandler[Any, Any],
        *,
        name: str = "default",
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        duration_buckets: Sequence[float] = DEFAULT_DURATION_BUCKETS,
    ) -> None:
        from ..request import RequestHandler

        if not isinstance(handler, RequestHandler):
            raise TypeError(f"handler must be a RequestHandler, not {type(handler).__name__}")
        if any(
            isinstance(getattr(hook, "__self__", None), OpenTelemetryInstrumentation)
            for hook in handler.hooks.around_call
        ):
            raise ValueError("This handler is already instrumented; detach() that instrumentation first")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, not {name!r}")
        bounds = [float(b) for b in duration_buckets]
        if not bounds or bounds != sorted(set(bounds)) or bounds[0] < 0:
            raise ValueError(f"duration_buckets must be increasing non-negative numbers: {list(duration_buckets)!r}")
        self.handler = handler
        self.name = name
        self._attached = True
        self._handler_attribute = {HANDLER: name}
        self._caching: tuple[object, bool] = (None, False)

        tracer_provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        meter_provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        self._tracer = tracer_provider.get_tracer("aiorequestful", __version__)
        # The first instrumentation of a meter provider makes its instruments (with its bucket bounds).
        self._instruments = _instruments_for(meter_provider, bounds)
        self._instruments.add(self)
        self._duration = self._instruments.duration
        self._waits = self._instruments.waits

        hooks = handler.hooks
        hooks.around_call.insert(0, self._traced)  # outermost: the span covers every other wrapper too
        hooks.on_request.append(self._on_request)
        hooks.on_response.append(self._on_response)
        hooks.on_retry.append(self._on_retry)
        hooks.on_wait.append(self._on_wait)

    # ------------------------------------------------------------------------------------------------------------
    # attaching
    # ------------------------------------------------------------------------------------------------------------
    def detach(self) -> None:
        """Stop tracing the handler; the counters then report nothing."""
        if not self._attached:
            return
        self._attached = False
        self._instruments.remove(self)
        hooks = self.handler.hooks
        for hook_list, hook in (
            (hooks.around_call, self._traced),
            (hooks.on_request, self._on_request),
            (hooks.on_response, self._on_response),
            (hooks.on_retry, self._on_retry),
            (hooks.on_wait, self._on_wait),
        ):
            if hook in hook_list:
                hook_list.remove(hook)

    # ------------------------------------------------------------------------------------------------------------
    # the span of a call
    # ------------------------------------------------------------------------------------------------------------
    def _request_attributes(self, method: str, url: Any, params: Any) -> dict[str, Any]:
        attributes: dict[str, Any] = {"http.request.method": method, **self._handler_attribute}
        try:
            target = URL(url)
            if not target.absolute:
                base = session_base_url(self.handler.session)
                if base is not None:
                    target = base.join(target)
            if params:
                target = target.extend_query(params)
        except (TypeError, ValueError):
            return attributes  # the call itself will fail, naming the bad URL
        attributes["url.full"] = redact_url(target)
        if target.host is not None:
            attributes["server.address"] = target.host
            if target.port is not None:
                attributes["server.port"] = target.port
        return attributes

    async def _traced(self, proceed: Callable[[], Any], method: str, url: Any, params: Any) -> Any:
        """The handler's ``around_call`` hook: the call runs inside its span."""
        attributes = self._request_attributes(method, url, params)
        span = self._tracer.start_span(method, kind=SpanKind.CLIENT, attributes=attributes)
        call = _Call()
        own = _current.set((self, call))
        active = otel_context.attach(trace.set_span_in_context(span))
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await proceed()
        except BaseException as exc:
            error = exc
            raise
        finally:
            elapsed = time.perf_counter() - started
            otel_context.detach(active)
            _current.reset(own)
            self._finish(span, call, attributes, error, elapsed)

    def _finish(
        self, span: trace.Span, call: _Call, attributes: dict[str, Any], error: BaseException | None, elapsed: float
    ) -> None:
        measured = {
            key: attributes[key]
            for key in ("http.request.method", "server.address", "server.port", HANDLER)
            if key in attributes
        }
        if call.status is not None:
            span.set_attribute("http.response.status_code", call.status)
            measured["http.response.status_code"] = call.status
        if call.attempts > 1:
            span.set_attribute("http.request.resend_count", call.attempts - 1)
        span.set_attribute("aiorequestful.attempts", call.attempts)
        span.set_attribute("aiorequestful.retries", call.retries)
        span.set_attribute("aiorequestful.resends", call.resends)
        span.set_attribute("aiorequestful.cache", call.cache)
        for reason, seconds in sorted(call.waits.items()):
            span.set_attribute(f"aiorequestful.wait.{reason}", seconds)
        if error is not None:
            error_type = _error_type(error)
            span.set_attribute("error.type", error_type)
            measured["error.type"] = error_type
            # Not span.record_exception: an exception's text may quote a URL with its secrets (aiohttp's do).
            span.add_event("exception", {"exception.type": error_type, "exception.message": scrub_urls(str(error))})
            span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()
        self._duration.record(elapsed, measured)

    # ------------------------------------------------------------------------------------------------------------
    # hooks: what the call did
    # ------------------------------------------------------------------------------------------------------------
    def _call(self) -> _Call | None:
        current = _current.get()
        return current[1] if current is not None and current[0] is self else None

    def _on_request(self, method: str, url: URL) -> None:
        call = self._call()
        if call is not None:
            call.attempts += 1

    def _caching_session(self) -> bool:
        session = self.handler.session
        known, caching = self._caching
        if known is not session:  # judged once per session: a protocol check is slow
            caching = isinstance(session, CachingSession)
            self._caching = (session, caching)
        return caching

    def _on_response(self, method: str, url: URL, status: int, from_cache: bool) -> None:
        call = self._call()
        if call is not None:
            call.status = status
            call.cache = "hit" if from_cache else ("miss" if self._caching_session() else "none")

    def _on_retry(self, method: str, url: URL, delay: float, cause: Any) -> None:
        call = self._call()
        if call is not None:
            call.retries += 1

    def _on_wait(self, reason: str, seconds: float, url: URL | None) -> None:
        self._waits.record(seconds, {WAIT_REASON: reason, **self._handler_attribute})
        call = self._call()
        if call is not None:
            call.waits[reason] = call.waits.get(reason, 0.0) + seconds
            if reason == WAIT_STATUS:
                call.resends += 1  # a status handler waited and asked to send again
