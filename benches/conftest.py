# SPDX-License-Identifier: MIT
"""Bench fixtures: the shared ``kernels`` fixture (rust and py side by side) and the backend options.

``pytest`` collects ``tests/`` and ``benches/`` together (pyproject ``testpaths``) and then both conftests are
"initial" conftests, so both would register ``--native``/``--require-native``; the second registration is skipped.
``pytest benches`` alone loads only this conftest, which then registers them itself.
"""

from __future__ import annotations

import pytest
from tests.backends import add_backend_options, deselect_native, kernels  # noqa: F401 - fixture re-export


def pytest_addoption(parser: pytest.Parser) -> None:
    add_backend_options(parser)  # registers once in a combined run
    parser.addoption(
        "--bench-reverse",
        action="store_true",
        default=False,
        help="run the collected benches in reverse order (benches.run alternates passes to cancel drift)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Idempotent: in a combined run tests/conftest.py has already dropped the native items.
    deselect_native(config, items)
    if config.getoption("--bench-reverse"):
        # The session-scoped ``kernels`` fixture groups every rust bench before every py bench; on a noisy machine
        # a second pass in the opposite order keeps slow drift from favouring one backend.
        items.reverse()
