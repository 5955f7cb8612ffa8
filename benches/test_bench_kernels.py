# SPDX-License-Identifier: MIT
"""Each kernel, native vs its pure-Python twin, on the inputs the public layer really passes.

Every bench takes the ``kernels`` fixture, so ``make bench`` shows ``[rust-...]`` and ``[py-...]`` side by side in
one session. Under ``--benchmark-disable`` (plain ``pytest``) each runs once and asserts only correctness: the
result equals an independent plain-Python reference, and therefore the two backends agree. Never timing.
"""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

import pytest

from benches._data import BUCKET_CASES, CACHE_KEY_CASES, DEFAULT_HANDLER_CODES, DISPATCH_CASES, TIMER_CASES


def _tag(benchmark: Any, kernels: ModuleType, kernel: str, case: str) -> None:
    # run.py groups results by these fields rather than by parsing test ids.
    benchmark.group = f"{kernel}:{case}"
    benchmark.extra_info.update(
        {"kernel": kernel, "case": case, "backend": "rust" if kernels.__name__.endswith("._native") else "py"}
    )


def _expected_plan(kind: str, start: Any, param: Any, steps: int | None = None, final: Any = None) -> tuple:
    # The schedule written out the obvious way (1.0.20's formulas), independent of both kernels.
    op = {"step": lambda a, b: a + b, "geometric": lambda a, b: a * b, "power": lambda a, b: a**b}[kind]
    values = [start]
    if steps is not None:
        for _ in range(steps):
            values.append(op(values[-1], param))
    else:
        while values[-1] < final:
            nxt = min(final, op(values[-1], param))
            if not nxt > values[-1]:
                break
            values.append(nxt)
    total = values[0]
    for v in values[1:]:
        total = total + v
    after: Any = 0
    for i, v in enumerate(values[1:]):
        after = v if i == 0 else after + v
    return values[-1], total, after, len(values) - 1


@pytest.mark.parametrize(("case", "args", "kwargs"), TIMER_CASES, ids=[c[0] for c in TIMER_CASES])
def test_timer_plan(benchmark: Any, kernels: ModuleType, case: str, args: tuple, kwargs: dict) -> None:
    _tag(benchmark, kernels, "timer_plan", case)
    result = benchmark(kernels.timer_plan, *args, **kwargs)
    expected = _expected_plan(*args, **kwargs)
    assert result == expected
    assert [type(x) for x in result] == [type(x) for x in expected]  # ints stay ints


@pytest.mark.parametrize(("case", "status"), DISPATCH_CASES, ids=[c[0] for c in DISPATCH_CASES])
def test_dispatch_lookup(benchmark: Any, kernels: ModuleType, case: str, status: int) -> None:
    _tag(benchmark, kernels, "dispatch_lookup", case)
    table = kernels.DispatchTable(DEFAULT_HANDLER_CODES)
    result = benchmark(table.lookup, status)
    expected = next((i for i, codes in enumerate(DEFAULT_HANDLER_CODES) if status in codes), None)
    assert result == expected


def test_dispatch_build(benchmark: Any, kernels: ModuleType) -> None:
    # Once per handler set (a response_handlers assignment), not per response - shown for completeness.
    _tag(benchmark, kernels, "dispatch_build", "default-handlers")
    table = benchmark(kernels.DispatchTable, DEFAULT_HANDLER_CODES)
    assert len(table) == sum(len(codes) for codes in DEFAULT_HANDLER_CODES)
    assert table.lookup(401) == 0 and table.lookup(429) == 1 and table.lookup(418) == 2


@pytest.mark.parametrize(
    ("case", "method", "url", "query", "parts"), CACHE_KEY_CASES, ids=[c[0] for c in CACHE_KEY_CASES]
)
def test_cache_key(
    benchmark: Any, kernels: ModuleType, case: str, method: str, url: str, query: list, parts: list
) -> None:
    _tag(benchmark, kernels, "cache_key", case)
    key = benchmark(kernels.cache_key, method, url, query, parts)
    assert isinstance(key, str) and len(key) == 64 and int(key, 16) >= 0
    # Parameter order never changes the key; the method's case never does either; a different part always does.
    shuffled = list(query)
    random.Random(7).shuffle(shuffled)
    assert kernels.cache_key(method.lower(), url, shuffled, parts) == key
    assert kernels.cache_key(method, url, query, [*parts, "other-user"]) != key
    # The twin is the spec of the native kernel: the digests are identical.
    from aiorequestful import _native_py

    assert _native_py.cache_key(method, url, query, parts) == key


@pytest.mark.parametrize(("case", "args"), BUCKET_CASES, ids=[c[0] for c in BUCKET_CASES])
def test_bucket_take(benchmark: Any, kernels: ModuleType, case: str, args: tuple) -> None:
    _tag(benchmark, kernels, "bucket_take", case)
    result = benchmark(kernels.bucket_take, *args)
    tokens, updated, now, rate, burst = args
    if now > updated:
        tokens, updated = min(burst, tokens + (now - updated) * rate), now
    tokens -= 1.0
    expected = (0.0 if tokens >= 0 else -tokens / rate, tokens, updated)
    assert result == pytest.approx(expected, rel=1e-12, abs=1e-12)
