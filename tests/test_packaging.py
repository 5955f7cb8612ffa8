# SPDX-License-Identifier: MIT
"""What a user sees first: the version, which backend is active and why, and the short import paths."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import pytest

import aiorequestful
from aiorequestful import _backend


def test_version_matches_the_installed_metadata() -> None:
    assert aiorequestful.__version__ == importlib.metadata.version("aiorequestful")


def test_backend_info_names_the_active_kernels_and_why() -> None:
    info = aiorequestful.backend_info()
    assert info.name == ("native" if _backend.NATIVE else "pure")
    assert info.reason
    if os.environ.get("AIOREQUESTFUL_NO_EXTENSIONS"):
        assert info == ("pure", "disabled by AIOREQUESTFUL_NO_EXTENSIONS")
    if os.environ.get("AIOREQUESTFUL_REQUIRE_EXTENSIONS"):
        assert info.name == "native"


def test_backend_info_reports_a_missing_extension() -> None:
    # A fresh interpreter in which the extension cannot import: the pure twin, with the import error as reason.
    code = (
        "import sys; sys.modules['aiorequestful._native'] = None\n"
        "import aiorequestful; info = aiorequestful.backend_info(); print(info.name); print(info.reason)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOREQUESTFUL_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    name, reason = out.splitlines()
    assert name == "pure"
    # sys.modules[...] = None makes the import fail although the file is there: reported as such.
    assert reason.startswith("the Rust extension is installed but could not be imported") or reason.startswith(
        "the Rust extension is not installed"
    )


def test_importing_the_package_does_not_load_aiohttp() -> None:
    code = "import sys, aiorequestful; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("short", "full"),
    [
        ("aiorequestful:RequestHandler", "aiorequestful.request:RequestHandler"),
        ("aiorequestful.cache:SQLiteCache", "aiorequestful.cache.backend.sqlite:SQLiteCache"),
        ("aiorequestful.cache:CachedSession", "aiorequestful.cache.session:CachedSession"),
        (
            "aiorequestful.cache:ResponseRepositorySettings",
            "aiorequestful.cache.backend.base:ResponseRepositorySettings",
        ),
        ("aiorequestful.response:JSONPayloadHandler", "aiorequestful.response.payload:JSONPayloadHandler"),
        ("aiorequestful.response:RateLimitStatusHandler", "aiorequestful.response.status:RateLimitStatusHandler"),
        ("aiorequestful.response:ResponseError", "aiorequestful.response.exception:ResponseError"),
    ],
)
def test_short_import_paths_give_the_same_objects(short: str, full: str) -> None:
    def load(path: str) -> object:
        module, name = path.split(":")
        return getattr(importlib.import_module(module), name)

    assert load(short) is load(full)


def test_every_short_export_resolves() -> None:
    for package in ("aiorequestful.cache", "aiorequestful.response"):
        module = importlib.import_module(package)
        for name in module.__all__:
            assert getattr(module, name) is not None
            assert name in dir(module)


def test_unknown_names_still_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = aiorequestful.cache.Nope  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = aiorequestful.Nope  # type: ignore[attr-defined]
