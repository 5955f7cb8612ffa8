# SPDX-License-Identifier: MIT
"""JSON decoding of API-like documents: native ``json_loads`` vs its twin vs orjson vs stdlib ``json`` (issue 7 §2).

Inputs are UTF-8 ``bytes``, as a response body arrives. ``extra_info["correct"]`` records whether each decoder's
result equals ``json.loads`` (orjson ``bench/data.py`` habit); our two decoders must be correct, the alternatives
are only recorded. The twin *is* ``json.loads`` behind one call, so its column shows the pure backend's real cost.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from tests.backends import NATIVE_MARK

from benches._data import JSON_SIZES, json_document

#: Decoder name -> (is ours, how to get it). Ours must agree with the stdlib; the others are only recorded.
DECODERS = ["rust", "py", "orjson", "stdlib"]


@pytest.fixture(
    scope="session", params=[pytest.param("rust", marks=NATIVE_MARK), "py", "orjson", "stdlib"], ids=DECODERS
)
def decoder(request: pytest.FixtureRequest) -> tuple[str, Callable[[bytes], Any]]:
    name = request.param
    if name == "orjson":
        return name, orjson.loads
    if name == "stdlib":
        return name, json.loads
    if name == "py":
        return name, importlib.import_module("aiorequestful._native_py").json_loads
    try:
        return name, importlib.import_module("aiorequestful._native").json_loads
    except ImportError:
        if request.config.getoption("--require-native"):
            raise
        pytest.skip("aiorequestful._native is not built")


@pytest.mark.parametrize("size", list(JSON_SIZES))
def test_json_decode(benchmark: Any, decoder: tuple[str, Callable[[bytes], Any]], size: str) -> None:
    name, loads = decoder
    document = json_document(size)
    benchmark.group = f"json_loads:{size}"
    benchmark.extra_info.update({"kernel": "json_loads", "case": size, "backend": name, "bytes": len(document)})
    result = benchmark(loads, document)
    correct = result == json.loads(document)
    benchmark.extra_info["correct"] = correct
    if name in ("rust", "py"):
        assert correct
    # Sanity of the input itself: an API page (or record) of the promised size.
    assert 0.9 * JSON_SIZES[size] <= len(document) <= 1.1 * JSON_SIZES[size]
    assert isinstance(result, dict) and ("items" in result or "id" in result)
