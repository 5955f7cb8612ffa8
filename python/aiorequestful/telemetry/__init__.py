# SPDX-License-Identifier: MIT
"""Telemetry exporters for the metrics that ``RequestHandler.stats`` and ``RequestHandler.hooks`` already keep.

Each exporter is an optional extra and lives in its own module; importing this package imports none of them.

* :mod:`aiorequestful.telemetry.prometheus` (``pip install aiorequestful[prometheus]``): a Prometheus collector
  that exposes a handler's counters and histograms of its waits.
"""
