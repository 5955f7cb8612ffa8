# SPDX-License-Identifier: MIT
"""``AIOREQUESTFUL_TWIN_KERNELS``: the measurement-only swap of single kernels to the twin (``make bench``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import aiorequestful._backend as backend

#: Every module that calls kernels, with the kernel it calls: each must see the swapped namespace.
_CONSUMERS = (
    "aiorequestful.request",
    "aiorequestful.timer",
    "aiorequestful.flow.limiter",
    "aiorequestful.flow.coalesce",
    "aiorequestful.cache._entry",
    "aiorequestful.response.payload",
)

_PROBE = f"""
import importlib, json
import aiorequestful._backend as b
import aiorequestful._native_py as twin
consumers = {list(_CONSUMERS)!r}
same = all(importlib.import_module(name).kernels is b.kernels for name in consumers)
print(json.dumps({{
    "native": b.NATIVE,
    "twin_kernels": sorted(b.TWIN_KERNELS),
    "from_twin": sorted(n for n in b.SWAPPABLE if getattr(b.kernels, n) is getattr(twin, n)),
    "consumers_share_it": same,
    "reason": b.INFO.reason,
    "loads": b.kernels.json_loads(b'{{"a": [1, 2.5, null]}}'),
}}))
"""


def _probe(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOREQUESTFUL_")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=False)


@pytest.mark.native
def test_named_kernels_come_from_the_twin_and_every_caller_sees_them() -> None:
    if not backend.NATIVE:
        pytest.skip("the native module is not in use")
    result = _probe({"AIOREQUESTFUL_TWIN_KERNELS": " json_loads, cache_key ", "AIOREQUESTFUL_REQUIRE_EXTENSIONS": "1"})
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["native"] is True
    assert got["twin_kernels"] == ["cache_key", "json_loads"]
    assert got["from_twin"] == ["cache_key", "json_loads"]  # the other three stay native
    assert got["consumers_share_it"] is True
    assert "measurement only: cache_key, json_loads" in got["reason"]
    assert got["loads"] == {"a": [1, 2.5, None]}


@pytest.mark.native
def test_without_the_variable_every_kernel_is_native() -> None:
    if not backend.NATIVE:
        pytest.skip("the native module is not in use")
    result = _probe({"AIOREQUESTFUL_REQUIRE_EXTENSIONS": "1"})
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["twin_kernels"] == [] and got["from_twin"] == [] and "measurement only" not in got["reason"]


def test_every_kernel_name_can_be_swapped() -> None:
    result = _probe({"AIOREQUESTFUL_TWIN_KERNELS": ",".join(sorted(backend.SWAPPABLE))})
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["from_twin"] == sorted(backend.SWAPPABLE)


def test_an_unknown_name_fails_the_import() -> None:
    result = _probe({"AIOREQUESTFUL_TWIN_KERNELS": "json_loads,jsn"})
    assert result.returncode != 0
    assert "AIOREQUESTFUL_TWIN_KERNELS names no kernel: jsn" in result.stderr


def test_it_changes_nothing_when_the_twin_is_in_use() -> None:
    result = _probe({"AIOREQUESTFUL_TWIN_KERNELS": "json_loads", "AIOREQUESTFUL_NO_EXTENSIONS": "1"})
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["native"] is False and got["twin_kernels"] == ["json_loads"]
    assert "measurement only" not in got["reason"]
