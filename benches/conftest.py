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
    try:
        add_backend_options(parser)
    except ValueError:  # already added by tests/conftest.py in a combined run
        pass


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Idempotent: in a combined run tests/conftest.py has already dropped the native items.
    deselect_native(config, items)
