# SPDX-License-Identifier: MIT
"""The one backend choice: native by default, the twin on request, never a silent fallback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import aiorequestful._backend as backend
import aiorequestful._native_py as twin


def _run(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOREQUESTFUL_")}
    env.update(env_extra)
    code = "import aiorequestful._backend as b; print(b.kernels.__name__)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)


@pytest.mark.native
def test_native_loaded() -> None:
    if backend.DISABLED:
        pytest.skip("AIOREQUESTFUL_NO_EXTENSIONS is set")
    assert backend.NATIVE
    assert backend.kernels.KERNEL_API == twin.KERNEL_API


@pytest.mark.native
def test_native_preferred_by_default() -> None:
    result = _run({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "aiorequestful._native"


def test_no_extensions_selects_twin() -> None:
    result = _run({"AIOREQUESTFUL_NO_EXTENSIONS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "aiorequestful._native_py"


def test_zero_means_not_disabled() -> None:
    result = _run({"AIOREQUESTFUL_NO_EXTENSIONS": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in {"aiorequestful._native", "aiorequestful._native_py"}
    if backend.NATIVE:
        assert result.stdout.strip() == "aiorequestful._native"


def test_conflicting_flags_fail_loudly() -> None:
    result = _run({"AIOREQUESTFUL_NO_EXTENSIONS": "1", "AIOREQUESTFUL_REQUIRE_EXTENSIONS": "1"})
    assert result.returncode != 0
    assert "both set" in result.stderr


def test_public_layer_uses_the_chosen_backend() -> None:
    expected = "aiorequestful._native" if backend.NATIVE else "aiorequestful._native_py"
    assert backend.kernels.__name__ == expected
