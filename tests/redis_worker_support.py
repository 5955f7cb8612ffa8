# SPDX-License-Identifier: MIT
"""What the fleet tests' worker scripts share (imported by them as a sibling module; never collected by pytest):
capturing the ``aiorequestful`` log records a worker reports, and the script entry point."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any


class Records(logging.Handler):
    """The records of the ``aiorequestful`` loggers at ``level`` or above: (level, logger, message), and when."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[tuple[str, str, str]] = []
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelname, record.name, record.getMessage()))
        self.times.append(record.created)


def capture_logs(worker: Any, level: int, stderr_level: int = logging.NOTSET) -> Records:
    """Collect the package's records at ``level`` or above, and show every record at ``stderr_level`` or above
    on stderr prefixed with the worker's number (the test prints a failed worker's stderr)."""
    records = Records(level)
    package_logger = logging.getLogger("aiorequestful")
    package_logger.addHandler(records)
    if package_logger.getEffectiveLevel() > level:
        package_logger.setLevel(level)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter(f"worker {worker} %(levelname)s %(name)s: %(message)s"))
    stderr.setLevel(stderr_level)
    logging.getLogger().addHandler(stderr)
    return records


def run(main: Callable[[dict[str, Any]], Coroutine[Any, Any, int]]) -> None:
    """Run ``main`` with the JSON config of the command line; exit with its code, or 3 when something escaped."""
    try:
        sys.exit(asyncio.run(main(json.loads(sys.argv[1]))))
    except Exception:
        traceback.print_exc()
        sys.exit(3)
