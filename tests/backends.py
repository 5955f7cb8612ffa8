# SPDX-License-Identifier: MIT
"""The ``kernels`` fixture and the native/pure selection options, shared by tests/ and benches/."""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

import pytest

NATIVE_MARK = pytest.mark.native


def add_backend_options(parser: pytest.Parser) -> None:
    """Register the options once, whichever of tests/ and benches/ loads its conftest first."""
    try:
        _add_backend_options(parser)
    except ValueError:  # "option names already added": the other conftest registered them
        pass


def _add_backend_options(parser: pytest.Parser) -> None:
    parser.addoption(
        "--native",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the tests marked 'native' (Rust kernels); --no-native deselects them",
    )
    parser.addoption(
        "--require-native",
        action="store_true",
        default=False,
        help="fail instead of skipping when aiorequestful._native cannot be imported",
    )


def deselect_native(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--native"):
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("native") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", params=[pytest.param("rust", marks=NATIVE_MARK), "py"])
def kernels(request: pytest.FixtureRequest) -> ModuleType:
    """The kernel module under test: the Rust build or its Python twin."""
    if request.param == "py":
        return importlib.import_module("aiorequestful._native_py")
    try:
        native = importlib.import_module("aiorequestful._native")
        twin = importlib.import_module("aiorequestful._native_py")
        if getattr(native, "KERNEL_API", None) != twin.KERNEL_API:
            # A stale .so must fail (or skip) here, not as AttributeErrors inside the tests.
            raise ImportError(f"aiorequestful._native is stale (KERNEL_API {getattr(native, 'KERNEL_API', None)})")
    except ImportError:
        if request.config.getoption("--require-native"):
            raise
        pytest.skip("aiorequestful._native is not built or is stale")
    return native
