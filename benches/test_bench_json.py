# SPDX-License-Identifier: MIT
"""JSON decoding of API-like documents: native ``json_loads`` vs its twin vs orjson vs stdlib ``json``.

Inputs are UTF-8 ``bytes``, as a response body arrives. ``extra_info["correct"]`` records whether each decoder's
result equals ``json.loads`` (orjson ``bench/data.py`` habit); our two decoders must be correct, the alternatives
are only recorded. The twin is orjson with ``json.loads`` answering whatever orjson refuses or would read
differently, so its column shows the pure backend's real cost.
"""

from __future__ import annotations

import gc
import importlib
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from tests.backends import NATIVE_MARK

from benches._data import JSON_SIZES, json_document

#: Rounds for the 2 MB document (each after a gc.collect(); see the test).
LARGE_ROUNDS = 25

#: The decoders compared; ours ("rust", "py") must agree with the stdlib, the others are only recorded.
DECODERS = ("rust", "py", "orjson", "stdlib")

# One parametrisation with the size outermost, so the four decoders of a document run back to back (and, in the
# reversed pass of benches.run, in the opposite order): on a noisy machine their ratio is then taken over seconds,
# not over the minutes a session-scoped decoder fixture would put between them.
CASES = [
    pytest.param(size, name, id=f"{name}-{size}", marks=[NATIVE_MARK] if name == "rust" else [])
    for size in JSON_SIZES
    for name in DECODERS
]


def _collect() -> None:
    # A setup that returns something is taken by pytest-benchmark as the call's arguments; gc.collect returns a count.
    gc.collect()


def _settled(loads: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``loads`` followed by the young-generation collection its allocations are due.

    The native decoder pauses the GC while it parses, so the collection its containers trigger runs at the first
    allocation after the call - outside a one-call round. Collecting the young objects inside the round charges
    every decoder for the objects it made: for the others, which collected as they went, only a few hundred are
    left.
    """

    def run(document: bytes) -> Any:
        result = loads(document)
        gc.collect(0)
        return result

    return run


def load_decoder(name: str, config: pytest.Config) -> Callable[[bytes], Any]:
    if name == "orjson":
        return orjson.loads
    if name == "stdlib":
        return json.loads
    if name == "py":
        return importlib.import_module("aiorequestful._native_py").json_loads
    try:
        return importlib.import_module("aiorequestful._native").json_loads
    except ImportError:
        if config.getoption("--require-native"):
            raise
        pytest.skip("aiorequestful._native is not built")


@pytest.mark.parametrize(("size", "name"), CASES)
def test_json_decode(benchmark: Any, request: pytest.FixtureRequest, size: str, name: str) -> None:
    loads = load_decoder(name, request.config)
    document = json_document(size)
    benchmark.group = f"json_loads:{size}"
    benchmark.extra_info.update({"kernel": "json_loads", "case": size, "backend": name, "bytes": len(document)})
    if len(document) > 1_000_000:
        # Decoding 2 MB allocates ~10^5 containers, so whether a full (gen 2) collection lands inside a round
        # decides its time and the median swings run to run. Starting every round from a fresh collection keeps
        # the GC on (as in real use) but makes its share the same for every decoder and every round.
        result = benchmark.pedantic(
            _settled(loads), args=(document,), setup=_collect, rounds=LARGE_ROUNDS, iterations=1
        )
    else:
        result = benchmark(loads, document)
    correct = result == json.loads(document)
    benchmark.extra_info["correct"] = correct
    if name in ("rust", "py"):
        assert correct
    # Sanity of the input itself: an API page (or record) of the promised size.
    assert 0.9 * JSON_SIZES[size] <= len(document) <= 1.1 * JSON_SIZES[size]
    assert isinstance(result, dict) and ("items" in result or "id" in result)
