# SPDX-License-Identifier: MIT
"""``bucket_take``: one token-bucket reservation, its queueing arithmetic and every error (both backends)."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import pytest


def raises_exactly(exc_type: type[BaseException], message: str, fn: Any, *args: Any) -> None:
    with pytest.raises(exc_type) as info:
        fn(*args)
    assert info.type is exc_type, f"{info.type.__name__} is not {exc_type.__name__}"
    assert str(info.value) == message


def test_full_bucket_serves_at_once(kernels: ModuleType) -> None:
    assert kernels.bucket_take(5.0, 0.0, 10.0, 1.0, 5.0) == (0.0, 4.0, 10.0)


def test_burst_then_queue_in_call_order(kernels: ModuleType) -> None:
    # rate 2/s, burst 3: three callers go at once, then each waits half a second more than the one before.
    state = (3.0, 100.0)
    waits = []
    for _ in range(6):
        wait, tokens, updated = kernels.bucket_take(*state, 100.0, 2.0, 3.0)
        waits.append(wait)
        state = (tokens, updated)
    assert waits == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]
    assert state == (-3.0, 100.0)
    # A second later two tokens came back: the next caller waits behind one remaining queued token.
    wait, tokens, updated = kernels.bucket_take(*state, 101.0, 2.0, 3.0)
    assert (wait, tokens, updated) == (1.0, -2.0, 101.0)


def test_refill_is_capped_at_burst(kernels: ModuleType) -> None:
    assert kernels.bucket_take(0.0, 0.0, 1000.0, 3.0, 4.0) == (0.0, 3.0, 1000.0)
    # Even when the refill arithmetic overflows to infinity.
    assert kernels.bucket_take(0.0, -1e308, 1e308, 1e308, 2.0) == (0.0, 1.0, 1e308)


def test_a_clock_going_backwards_refills_nothing(kernels: ModuleType) -> None:
    assert kernels.bucket_take(2.0, 50.0, 40.0, 10.0, 5.0) == (0.0, 1.0, 50.0)
    assert kernels.bucket_take(2.0, 50.0, 50.0, 10.0, 5.0) == (0.0, 1.0, 50.0)


def test_ints_are_accepted_and_results_are_floats(kernels: ModuleType) -> None:
    result = kernels.bucket_take(0, 0, 1, 1, 1)
    assert result == (0.0, 0.0, 1.0)
    assert all(type(x) is float for x in result)
    result = kernels.bucket_take(0, 5, 5, 4, 1)
    assert result == (0.25, -1.0, 5.0)
    assert all(type(x) is float for x in result)


def test_fractional_rate_and_burst(kernels: ModuleType) -> None:
    wait, tokens, updated = kernels.bucket_take(0.0, 0.0, 0.0, 0.5, 1.5)
    assert (wait, tokens, updated) == (2.0, -1.0, 0.0)
    wait, tokens, _ = kernels.bucket_take(0.25, 0.0, 0.5, 0.5, 1.5)
    assert tokens == pytest.approx(-0.5)
    assert wait == pytest.approx(1.0)


@pytest.mark.parametrize("index", range(5))
@pytest.mark.parametrize("bad", ["1", None, True, 1j, [1.0]])
def test_arguments_must_be_numbers(kernels: ModuleType, index: int, bad: Any) -> None:
    args: list[Any] = [0.0, 0.0, 0.0, 1.0, 1.0]
    args[index] = bad
    name = ("tokens", "updated", "now", "rate", "burst")[index]
    raises_exactly(TypeError, f"{name} must be a number, not {type(bad).__name__}", kernels.bucket_take, *args)


@pytest.mark.parametrize("index", range(5))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_arguments_must_be_finite(kernels: ModuleType, index: int, bad: float) -> None:
    args: list[Any] = [0.0, 0.0, 0.0, 1.0, 1.0]
    args[index] = bad
    name = ("tokens", "updated", "now", "rate", "burst")[index]
    raises_exactly(ValueError, f"{name} must be finite", kernels.bucket_take, *args)


def test_an_int_too_large_for_a_float(kernels: ModuleType) -> None:
    raises_exactly(OverflowError, "int too large to convert to float", kernels.bucket_take, 10**400, 0, 0, 1, 1)


def test_checks_run_argument_by_argument(kernels: ModuleType) -> None:
    # A non-finite first argument is reported before a wrongly typed later one.
    raises_exactly(ValueError, "tokens must be finite", kernels.bucket_take, math.nan, "x", 0, 1, 1)
    raises_exactly(TypeError, "updated must be a number, not str", kernels.bucket_take, 0, "x", math.nan, 1, 1)
    raises_exactly(ValueError, "burst must be finite", kernels.bucket_take, 0, 0, 0, 0, math.inf)


@pytest.mark.parametrize("rate", [0, 0.0, -0.0, -1, -1e-300])
def test_rate_must_be_positive(kernels: ModuleType, rate: float) -> None:
    raises_exactly(ValueError, "rate must be positive", kernels.bucket_take, 0, 0, 0, rate, 0)


@pytest.mark.parametrize("burst", [0, 0.999, -5, 0.0])
def test_burst_must_be_at_least_one(kernels: ModuleType, burst: float) -> None:
    raises_exactly(ValueError, "burst must be at least 1", kernels.bucket_take, 0, 0, 0, 1, burst)


def test_tiny_rate_gives_a_huge_but_valid_wait(kernels: ModuleType) -> None:
    wait, tokens, _ = kernels.bucket_take(0.0, 0.0, 0.0, 5e-324, 1.0)
    assert tokens == -1.0
    assert wait == math.inf  # -(-1.0) / 5e-324 overflows, as Python's float division does


def test_signature(kernels: ModuleType) -> None:
    with pytest.raises(TypeError):
        kernels.bucket_take(0, 0, 0, 1, burst=1)
    with pytest.raises(TypeError):
        kernels.bucket_take(0, 0, 0, 1)
