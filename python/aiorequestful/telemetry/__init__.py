# SPDX-License-Identifier: MIT
"""Telemetry exporters for the metrics that ``RequestHandler.stats`` and ``RequestHandler.hooks`` already keep,
and the structured fields of the handler's log records.

Each exporter is an optional extra and lives in its own module; importing this package imports none of them.

* :mod:`aiorequestful.telemetry.prometheus` (``pip install aiorequestful[prometheus]``): a Prometheus collector
  that exposes a handler's counters and histograms of its waits.
* :mod:`aiorequestful.telemetry.otel` (``pip install aiorequestful[otel]``): OpenTelemetry spans (one per
  ``request()`` call, following the HTTP client semantic conventions) and metrics.
* :mod:`aiorequestful.telemetry.logfields` (no extra): the request fields (``http_method``, ``http_url``,
  ``http_host``, ``http_attempt``, ``http_status``) every log record of a call carries, for JSON formatters.
"""
