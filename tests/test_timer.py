# SPDX-License-Identifier: MIT
"""aiorequestful.timer on the default backend and on both kernels: sync waits sleep, schedules
terminate, whole-float counts work."""

from __future__ import annotations

import asyncio
import copy
import itertools
import math
import operator
import sys
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from types import ModuleType
from typing import Any, SupportsFloat, SupportsInt

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import aiorequestful.timer as timer_module
from aiorequestful import _native_py
from aiorequestful._backend import kernels as default_kernels
from aiorequestful.timer import (
    CeilingTimer,
    CountTimer,
    GeometricCeilingTimer,
    GeometricCountTimer,
    PowerCeilingTimer,
    PowerCountTimer,
    StepCeilingTimer,
    StepCountTimer,
    Timer,
)

COUNT_CLASSES = {"step": StepCountTimer, "geometric": GeometricCountTimer, "power": PowerCountTimer}
CEILING_CLASSES = {"step": StepCeilingTimer, "geometric": GeometricCeilingTimer, "power": PowerCeilingTimer}
OPS: dict[str, Callable[[Any, Any], Any]] = {"step": operator.add, "geometric": operator.mul, "power": operator.pow}
ALL_CLASSES = [*COUNT_CLASSES.values(), *CEILING_CLASSES.values()]
MAX_STEPS = default_kernels.MAX_TIMER_STEPS


@pytest.fixture
def timer_kernels(kernels: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Run the test with the timer module bound to one kernel backend (rust or the Python twin)."""
    if getattr(kernels, "KERNEL_API", None) != _native_py.KERNEL_API:
        pytest.skip(f"{kernels.__name__} is stale (KERNEL_API {getattr(kernels, 'KERNEL_API', None)})")
    monkeypatch.setattr(timer_module, "kernels", kernels)
    return kernels


# --------------------------------------------------------------------------------------------------
# independent reference: the spec's definitions, written out naively
# --------------------------------------------------------------------------------------------------
def left_sum(values: list[Any]) -> Any:
    """What the reference totals are: the builtin sum() of the values (compensated for floats from 3.12)."""
    return sum(values)


def count_values(kind: str, start: Any, param: Any, steps: int) -> list[Any]:
    if kind == "step":
        return [start + param * i for i in range(steps + 1)]
    values = [start]
    for _ in range(steps):
        values.append(OPS[kind](values[-1], param))
    return values


class TooLong(Exception):
    """The reference schedule is longer than a property test should walk."""


def ceiling_values(kind: str, start: Any, param: Any, final: Any, limit: int | None = None) -> list[Any]:
    values = [start]
    while values[-1] < final:
        nxt = min(final, OPS[kind](values[-1], param))
        if not nxt > values[-1]:
            break
        values.append(nxt)
        if limit is not None and len(values) > limit:
            raise TooLong
    return values


def outcome(func: Callable[[], Any]) -> Any:
    """The result, or the exception type, so that both sides can be compared (NaN-aware)."""
    try:
        value = func()
    except Exception as exc:
        return ("raised", type(exc))
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return (type(value), value)


# --------------------------------------------------------------------------------------------------
# the documented timer examples, verified
# --------------------------------------------------------------------------------------------------
def test_step_count_example() -> None:
    timer = StepCountTimer(2, 5, 3)
    assert (timer.initial, timer.count, timer.step) == (2, 5, 3)
    assert timer.final == 17
    assert timer.total == 57
    assert timer.increase() and timer.increase()
    assert timer.value == 8 and int(timer) == 8
    assert timer.counter == 2
    assert timer.count_remaining == 3
    assert timer.total_remaining == 42.0
    assert isinstance(timer.total_remaining, float)


def test_geometric_count_example() -> None:
    timer = GeometricCountTimer(1, 3)
    assert (timer.final, timer.total, timer.factor) == (8, 15, 2)


def test_power_count_example() -> None:
    timer = PowerCountTimer(2, 3)
    assert (timer.final, timer.total, timer.exponent) == (256, 278, 2)
    values = [timer.value]
    while timer.increase():
        values.append(timer.value)
    assert values == [2, 4, 16, 256]
    assert timer.total_remaining == 0.0


def test_ceiling_examples() -> None:
    step = StepCeilingTimer(1, 9.5, 2)
    assert (step.count, step.total, step.final, step.step) == (5, 34.5, 9.5, 2)
    values = [step.value]
    while step.increase():
        values.append(step.value)
    assert values == [1, 3, 5, 7, 9, 9.5]
    assert step.counter == 5 and step.count_remaining == 0 and not step.can_increase

    geometric = GeometricCeilingTimer(2, 10)
    assert (geometric.count, geometric.total, geometric.factor) == (3, 24, 2)

    power = PowerCeilingTimer(2, 60)
    values = [power.value]
    while power.increase():
        values.append(power.value)
    assert values == [2, 4, 16, 60]
    assert power.exponent == 2


def test_ceiling_float_accumulation_is_observable() -> None:
    assert StepCeilingTimer(0, 1, 0.1).count == 11


def test_typical_usage_section_4_4() -> None:
    retry = StepCountTimer(initial=0.5, count=4, step=0.5)
    sleeps = []
    while retry.can_increase:
        sleeps.append(float(retry))
        retry.increase()
    assert sleeps == [0.5, 1.0, 1.5, 2.0]

    backoff = GeometricCeilingTimer(initial=0.1, final=2)
    assert backoff.increase() is True
    assert float(backoff) == 0.2
    fresh = copy.deepcopy(backoff)
    assert float(fresh) == 0.1 and fresh.counter == 0
    assert float(backoff) == 0.2 and backoff.counter == 1


def test_defaults() -> None:
    assert (StepCountTimer().initial, StepCountTimer().count, StepCountTimer().step) == (0, None, 1)
    assert (GeometricCountTimer().initial, GeometricCountTimer().factor) == (1, 2)
    assert (PowerCountTimer().initial, PowerCountTimer().exponent) == (1, 2)
    assert (StepCeilingTimer().initial, StepCeilingTimer().final, StepCeilingTimer().step) == (1, None, 1)
    assert (GeometricCeilingTimer().initial, GeometricCeilingTimer().factor) == (1, 2)
    assert (PowerCeilingTimer().initial, PowerCeilingTimer().exponent) == (1, 2)


# --------------------------------------------------------------------------------------------------
# count timers
# --------------------------------------------------------------------------------------------------
def test_count_timer_stops_after_count() -> None:
    timer = StepCountTimer(0, 3, 0.25)
    results = [timer.increase() for _ in range(5)]
    assert results == [True, True, True, False, False]
    assert timer.value == 0.75 and timer.counter == 3 and timer.count_remaining == 0
    assert not timer.can_increase


def test_count_zero_never_increases() -> None:
    timer = GeometricCountTimer(1.5, 0)
    assert not timer.can_increase and not timer.increase()
    assert (timer.final, timer.total, timer.total_remaining, timer.count_remaining) == (1.5, 1.5, 0.0, 0)


def test_total_remaining_follows_the_value() -> None:
    timer = GeometricCountTimer(1, 4, 3)  # 1, 3, 9, 27, 81
    expected = [3 + 9 + 27 + 81, 9 + 27 + 81, 27 + 81, 81, 0]
    seen = [timer.total_remaining]
    while timer.increase():
        seen.append(timer.total_remaining)
    assert seen == [float(x) for x in expected]


def test_unbounded_count_timer() -> None:
    timer = StepCountTimer(1, None, 2)
    assert (timer.final, timer.total, timer.total_remaining, timer.count, timer.count_remaining) == (None,) * 5
    for _ in range(1000):
        assert timer.increase()
    assert timer.value == 2001 and timer.counter == 1000 and timer.can_increase


@pytest.mark.parametrize("count", [3.0, 3, Fraction(6, 2)])
def test_whole_float_count_works_like_an_int(count: Any) -> None:
    timer = StepCountTimer(0, count, 1)
    assert timer.count == 3 and type(timer.count) is int
    assert timer.can_increase  # 1.0.20 said False for 3.0
    assert [timer.increase() for _ in range(4)] == [True, True, True, False]
    assert timer.count_remaining == 0
    assert (timer.final, timer.total) == (3, 6)


@pytest.mark.parametrize("count", [3.5, -1, -1.0, math.inf, math.nan, Fraction(1, 2)])
def test_rejects_non_whole_or_negative_count(count: Any) -> None:
    with pytest.raises(ValueError, match="count must be a non-negative whole number"):
        StepCountTimer(0, count)


@pytest.mark.parametrize("count", ["3", True, [3], 3j])
def test_count_must_be_a_number(count: Any) -> None:
    with pytest.raises(TypeError, match="count must be a whole number or None"):
        PowerCountTimer(2, count)


@pytest.mark.parametrize("cls", ALL_CLASSES)
@pytest.mark.parametrize("initial", ["1", None, True, [1], 1j])
def test_initial_must_be_a_number(cls: type[Timer], initial: Any) -> None:
    with pytest.raises(TypeError, match="initial must be a number"):
        cls(initial)


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (StepCountTimer, "step"),
        (GeometricCountTimer, "factor"),
        (PowerCountTimer, "exponent"),
        (StepCeilingTimer, "step"),
        (GeometricCeilingTimer, "factor"),
        (PowerCeilingTimer, "exponent"),
    ],
)
def test_parameter_must_be_a_number(cls: type[Timer], name: str) -> None:
    with pytest.raises(TypeError, match=f"{name} must be a number"):
        cls(1, None, "2")  # type: ignore[call-arg]


def test_final_must_be_a_number() -> None:
    with pytest.raises(TypeError, match="final must be a number"):
        StepCeilingTimer(1, "9")


# --------------------------------------------------------------------------------------------------
# ceiling timers
# --------------------------------------------------------------------------------------------------
def test_final_below_initial_is_raised_to_initial() -> None:
    timer = GeometricCeilingTimer(5, 2)
    assert timer.final == 5
    assert (timer.count, timer.total, timer.total_remaining) == (0, 5, 0.0)
    assert not timer.can_increase and not timer.increase()


def test_ceiling_total_remaining_follows_the_value() -> None:
    timer = StepCeilingTimer(1, 9.5, 2)
    expected = [33.5, 30.5, 25.5, 18.5, 9.5, 0.0]
    seen = [timer.total_remaining]
    while timer.increase():
        seen.append(timer.total_remaining)
    assert seen == expected


def test_unbounded_ceiling_timer() -> None:
    timer = GeometricCeilingTimer(0.5, None, 3)
    assert (timer.final, timer.total, timer.total_remaining, timer.count, timer.count_remaining) == (None,) * 5
    assert timer.can_increase
    for _ in range(10):
        assert timer.increase()
    assert timer.value == 0.5 * 3**10


def test_unbounded_ceiling_timer_with_constant_step_still_counts() -> None:
    # No final means nothing to reach: a constant interval retried forever is a legitimate timer.
    timer = StepCeilingTimer(2, None, 0)
    assert timer.increase() and timer.increase()
    assert (timer.value, timer.counter) == (2, 2)


@pytest.mark.parametrize(
    ("timer", "reached"),
    [
        (StepCeilingTimer(1, 5, 0), 1),
        (StepCeilingTimer(1, 5, -1), 1),
        (GeometricCeilingTimer(0, 5, 2), 0),
        (GeometricCeilingTimer(1, 5, 1), 1),
        (GeometricCeilingTimer(1, 5, 0.5), 1),
        (GeometricCeilingTimer(-1, 5, 2), -1),
        (PowerCeilingTimer(1, 5, 2), 1),
        (PowerCeilingTimer(0.5, 5, 2), 0.5),
        (PowerCeilingTimer(0, 5, 3), 0),
        (PowerCeilingTimer(2, 5, 1), 2),
        (PowerCeilingTimer(2, 5, 0.5), 2),
        (StepCeilingTimer(1.0, 5.0, -0.0), 1.0),
    ],
    ids=repr,
)
def test_ceiling_timer_that_cannot_reach_final_terminates(timer: CeilingTimer, reached: Any) -> None:
    # The reference looped forever on count/total and kept returning True from increase().
    assert timer.count == 0
    assert timer.total == reached
    assert timer.total_remaining == 0.0
    assert timer.count_remaining == 0
    assert timer.can_increase is False
    assert timer.increase() is False
    assert (timer.value, timer.counter) == (reached, 0)


def test_progress_that_stalls_part_way_terminates() -> None:
    # 1 -> 2 (rounded) then a step that no longer moves the float: the schedule ends where it stalls.
    timer = StepCeilingTimer(2.0**53, 2.0**53 + 10, 1.0)
    assert timer.count == 0 and not timer.can_increase and not timer.increase()


def test_nan_step_lands_on_final() -> None:
    # min(final, nan) keeps `final`, so a NaN step jumps to the ceiling and stops there.
    timer = StepCeilingTimer(1.0, 5.0, math.nan)
    assert (timer.count, timer.total) == (1, 6.0)
    assert timer.increase() and timer.value == 5.0
    assert not timer.increase()


def test_nan_final_never_increases() -> None:
    timer = StepCeilingTimer(1.0, math.nan, 1.0)
    assert timer.count == 0 and not timer.can_increase and not timer.increase()


def test_nan_initial() -> None:
    timer = StepCeilingTimer(math.nan, 5.0, 1.0)
    assert timer.count == 0 and not timer.can_increase


# --------------------------------------------------------------------------------------------------
# beyond the kernel's range: Python's unbounded arithmetic
# --------------------------------------------------------------------------------------------------
def test_big_int_count_timers(timer_kernels: ModuleType) -> None:
    timer = GeometricCountTimer(3, 100)
    assert timer.final == 3 * 2**100
    assert timer.total == 3 * (2**101 - 1)

    power = PowerCountTimer(2, 8)
    assert power.final == 2**256
    assert power.total == sum(2 ** (2**i) for i in range(9))

    step = StepCountTimer(2**70, 3, 2**70)
    assert (step.final, step.total) == (2**72, 10 * 2**70)


def test_big_int_ceiling_timers(timer_kernels: ModuleType) -> None:
    timer = GeometricCeilingTimer(1, 10**30, 3)
    values = ceiling_values("geometric", 1, 3, 10**30)
    assert timer.count == len(values) - 1 == 63
    assert timer.total == sum(values)
    assert timer.total_remaining == left_sum(ceiling_values("geometric", 1.0, 3, 10**30)) - 1.0

    power = PowerCeilingTimer(2, 10**100)
    assert power.count == 9  # 2, 4, 16, 256, 65536, 2**32, 2**64, 2**128, 2**256, then capped at 10**100
    assert power.total == 2 + 4 + 16 + 256 + 65536 + 2**32 + 2**64 + 2**128 + 2**256 + 10**100


def test_float_overflow_to_infinity(timer_kernels: ModuleType) -> None:
    timer = GeometricCountTimer(1e308, 2, 10.0)
    assert timer.final == math.inf and timer.total == math.inf


def test_python_errors_surface_for_impossible_arithmetic(timer_kernels: ModuleType) -> None:
    with pytest.raises(OverflowError):
        _ = PowerCountTimer(10.0, 3, 200).final
    with pytest.raises(ZeroDivisionError):
        _ = PowerCountTimer(0, 1, -1).final
    complex_final = PowerCountTimer(-8.0, 1, 0.5).final
    assert isinstance(complex_final, complex)


def test_fraction_values_use_python_arithmetic(timer_kernels: ModuleType) -> None:
    timer = StepCountTimer(Fraction(1, 3), 3, Fraction(1, 3))
    assert timer.final == Fraction(4, 3)
    assert timer.total == Fraction(10, 3)
    ceiling = StepCeilingTimer(Fraction(1, 3), Fraction(3, 2), Fraction(1, 3))
    assert ceiling.count == 4 and ceiling.total == Fraction(1 + 2 + 3 + 4, 3) + Fraction(3, 2)


def test_schedule_longer_than_the_kernel_allows(timer_kernels: ModuleType) -> None:
    long_count = StepCountTimer(0, MAX_STEPS + 1, 1)
    with pytest.raises(ValueError, match=f"exceeds {MAX_STEPS} steps"):
        _ = long_count.total
    with pytest.raises(ValueError, match=f"exceeds {MAX_STEPS} steps"):
        _ = long_count.total_remaining
    assert long_count.increase() and long_count.count_remaining == MAX_STEPS  # increasing still works

    long_ceiling = StepCeilingTimer(0, MAX_STEPS + 5, 1)
    with pytest.raises(ValueError, match=f"exceeds {MAX_STEPS} steps"):
        _ = long_ceiling.count


def test_long_big_int_ceiling_schedule_is_refused_by_the_python_path(timer_kernels: ModuleType) -> None:
    # Starts beyond i64, so only the Python iteration runs; it must stop at the same limit with the same error.
    timer = StepCeilingTimer(2**64, 2**64 + MAX_STEPS + 5, 1)
    with pytest.raises(ValueError, match=f"exceeds {MAX_STEPS} steps"):
        _ = timer.total


def test_plan_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    class CountingKernels:
        MAX_TIMER_STEPS = MAX_STEPS

        @staticmethod
        def timer_plan(*args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            return default_kernels.timer_plan(*args, **kwargs)

    monkeypatch.setattr(timer_module, "kernels", CountingKernels)
    timer = StepCountTimer(0, 10, 1)
    for _ in range(5):
        assert (timer.final, timer.total) == (10, 55)
    assert len(calls) == 1
    clone = copy.deepcopy(timer)  # the per-request deep copy shares the plan
    assert (clone.final, clone.total) == (10, 55)
    assert len(calls) == 1

    ceiling = GeometricCeilingTimer(1, 100)
    for _ in range(3):
        assert (ceiling.count, ceiling.total) == (7, 1 + 2 + 4 + 8 + 16 + 32 + 64 + 100)
    assert len(calls) == 2
    for _ in range(3):
        assert ceiling.total_remaining == 226.0
    assert len(calls) == 3


# --------------------------------------------------------------------------------------------------
# both kernels against the independent reference
# --------------------------------------------------------------------------------------------------
_numbers = st.one_of(
    st.integers(min_value=-50, max_value=50),
    st.floats(min_value=-50, max_value=50, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(sorted(OPS)),
    initial=_numbers,
    param=_numbers,
    count=st.integers(min_value=0, max_value=8),
    advance=st.integers(min_value=0, max_value=8),
)
def test_count_timers_match_reference(
    timer_kernels: ModuleType, kind: str, initial: Any, param: Any, count: int, advance: int
) -> None:
    # Repeated integer powers grow as initial ** (param ** count) digits: keep them small enough to compute.
    assume(kind != "power" or abs(param) <= 3 or not isinstance(initial, int) or not isinstance(param, int))
    assume(kind != "power" or count <= 5)
    timer = COUNT_CLASSES[kind](initial, count, param)
    assert outcome(lambda: timer.final) == outcome(lambda: reference_final(kind, initial, param, count))
    assert outcome(lambda: timer.total) == outcome(lambda: left_sum(count_values(kind, initial, param, count)))
    for _ in range(advance):
        try:
            timer.increase()
        except Exception:
            return  # Python itself cannot take that step (overflow, zero division): nothing more to compare
    steps = count - timer.counter

    def reference_remaining() -> Any:
        start = float(timer.value)
        return left_sum(count_values(kind, start, param, steps)) - start

    assert outcome(lambda: timer.total_remaining) == outcome(reference_remaining)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(sorted(OPS)),
    initial=_numbers,
    param=_numbers,
    span=st.floats(min_value=-5, max_value=500, allow_nan=False),
    advance=st.integers(min_value=0, max_value=6),
)
def test_ceiling_timers_match_reference(
    timer_kernels: ModuleType, kind: str, initial: Any, param: Any, span: float, advance: int
) -> None:
    final = initial + span
    timer = CEILING_CLASSES[kind](initial, final, param)
    final = timer.final
    assert final == max(initial + span, initial)
    # Tiny steps (5e-324) or factors a hair above 1 make schedules of up to MAX_TIMER_STEPS values; those are
    # covered by test_schedule_longer_than_the_kernel_allows, not walked here.
    try:
        ceiling_values(kind, initial, param, final, limit=5_000)
    except TooLong:
        assume(False)
    except Exception:
        pass

    def reference() -> list[Any]:
        return ceiling_values(kind, initial, param, final)

    assert outcome(lambda: timer.count) == outcome(lambda: len(reference()) - 1)
    assert outcome(lambda: timer.total) == outcome(lambda: left_sum(reference()))
    try:
        values = reference()
    except Exception:
        return
    # increase() walks exactly the reference sequence, then refuses (also when the schedule stops short of final).
    walked = [timer.value]
    for _ in range(len(values) + 2):
        if not timer.increase():
            break
        walked.append(timer.value)
    assert walked == values
    assert timer.can_increase is False
    timer.reset()
    for _ in range(min(advance, len(values) - 1)):
        assert timer.increase()
    start = float(timer.value)
    assert outcome(lambda: timer.total_remaining) == outcome(
        lambda: left_sum(ceiling_values(kind, start, param, final)) - start
    )


# --------------------------------------------------------------------------------------------------
# bit for bit against the reference implementation's own arithmetic
# --------------------------------------------------------------------------------------------------
# The formulas below are transcribed from the reference (1.0.20): step terms are initial + step * i, geometric
# and power terms are accumulated (itertools.accumulate), ceiling timers yield min(final, op(last)), every
# total is the builtin sum() and total_remaining is sum(values from float(value)) - float(value).
def reference_count(kind: str, initial: Any, param: Any, count: int, value: Any, remaining: int) -> tuple[Any, Any]:
    op = OPS[kind]
    if kind == "step":
        total = sum(initial + param * i for i in range(count + 1))
        left = sum(float(value) + param * i for i in range(remaining + 1)) - float(value)
    else:
        total = sum(itertools.accumulate(range(1, count + 1), lambda s, _: op(s, param), initial=initial))
        left = sum(itertools.accumulate(range(remaining), lambda s, _: op(s, param), initial=float(value)))
        left -= float(value)
    return total, left


def reference_final(kind: str, initial: Any, param: Any, count: int) -> Any:
    if kind == "step":
        return initial + (param * count)
    if kind == "geometric":
        return initial * param**count
    return initial**param**count


def reference_ceiling(kind: str, initial: Any, param: Any, final: Any, value: Any) -> tuple[Any, Any, int]:
    op = OPS[kind]

    def all_values(x: Any) -> Iterator[Any]:
        yield x
        while x < final:
            x = min(final, op(x, param))
            yield x

    return sum(all_values(initial)), sum(all_values(float(value))) - float(value), len(list(all_values(initial))) - 1


_GRID_STARTS = (0.1, 0.3, 0.7, 1, 1.5, 2.2)
_GRID_PARAMS = {"step": (0.1, 0.2, 0.3, 1, 2.5), "geometric": (1.1, 1.5, 2, 3.3), "power": (1.1, 1.3, 2)}


def _grid_count_cases() -> Iterator[tuple[str, Any, Any, int, int]]:
    for kind, params in _GRID_PARAMS.items():
        for initial in _GRID_STARTS:
            for param in params:
                for count in (0, 1, 3, 5, 10):
                    if kind == "power" and count > 5:
                        continue
                    yield kind, initial, param, count, min(count, 2)


def _grid_ceiling_cases() -> Iterator[tuple[str, Any, Any, Any, int]]:
    for kind, params in _GRID_PARAMS.items():
        for initial in _GRID_STARTS:
            if kind == "power" and initial <= 1:
                continue  # never reaches final: the reference loops forever there (covered by the termination tests)
            for param in params:
                for final in (3, 9.5, 60.7):
                    yield kind, initial, param, final, 2


def test_grid_is_a_few_hundred_schedules() -> None:
    assert len(list(_grid_count_cases())) + len(list(_grid_ceiling_cases())) >= 300


@pytest.mark.parametrize(("kind", "initial", "param", "count", "advance"), list(_grid_count_cases()))
def test_count_totals_are_the_references_bit_for_bit(
    timer_kernels: ModuleType, kind: str, initial: Any, param: Any, count: int, advance: int
) -> None:
    timer = COUNT_CLASSES[kind](initial, count, param)
    assert outcome(lambda: timer.final) == outcome(lambda: reference_final(kind, initial, param, count))
    fresh_total, fresh_left = reference_count(kind, initial, param, count, initial, count)
    assert outcome(lambda: timer.total) == outcome(lambda: fresh_total)
    assert outcome(lambda: timer.total_remaining) == outcome(lambda: fresh_left)
    for _ in range(advance):
        assert timer.increase()
    _, left = reference_count(kind, initial, param, count, timer.value, count - timer.counter)
    assert outcome(lambda: timer.total_remaining) == outcome(lambda: left)


@pytest.mark.parametrize(("kind", "initial", "param", "final", "advance"), list(_grid_ceiling_cases()))
def test_ceiling_totals_are_the_references_bit_for_bit(
    timer_kernels: ModuleType, kind: str, initial: Any, param: Any, final: Any, advance: int
) -> None:
    timer = CEILING_CLASSES[kind](initial, final, param)
    total, left, count = reference_ceiling(kind, initial, param, final, initial)
    assert (outcome(lambda: timer.total), outcome(lambda: timer.count)) == (outcome(lambda: total), (int, count))
    assert outcome(lambda: timer.total_remaining) == outcome(lambda: left)
    for _ in range(advance):
        timer.increase()
    _, left, _ = reference_ceiling(kind, initial, param, final, timer.value)
    assert outcome(lambda: timer.total_remaining) == outcome(lambda: left)


def test_examples_whose_last_digits_depend_on_the_formulas() -> None:
    # 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2, minus 0.1: not the sum of the last five alone (6.2).
    geometric = GeometricCountTimer(0.1, 5, 2)
    assert geometric.total_remaining == 6.200000000000001
    assert geometric.total_remaining == geometric.total - float(geometric)
    # Terms 0.1 + 0.1 * i (not repeated addition), summed by this interpreter's sum().
    expected = 6.6000000000000005 if sys.version_info >= (3, 12) else 6.600000000000001
    assert StepCountTimer(0.1, 10, 0.1).total == expected
    # final is the closed form, which can differ in the last digit from the value count increases reach.
    geometric = GeometricCountTimer(0.1, 3, 1.1)
    assert geometric.final == 0.1 * 1.1**3 == 0.13310000000000005
    while geometric.increase():
        pass
    assert geometric.value == 0.1 * 1.1 * 1.1 * 1.1 == 0.13310000000000002
    assert StepCountTimer(0.1, 10, 0.1).final == 1.1
    # A fresh timer's remaining total is its total less its value.
    for timer in (StepCountTimer(0.1, 5, 0.1), GeometricCountTimer(0.1, 5, 1.1), StepCeilingTimer(0.1, 0.5, 0.1)):
        assert timer.total_remaining == timer.total - float(timer)


# --------------------------------------------------------------------------------------------------
# the Timer protocol
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_no_instance_dict_and_protocols(cls: type[Timer]) -> None:
    timer = cls()
    assert not hasattr(timer, "__dict__")
    with pytest.raises(AttributeError):
        timer.anything = 1  # type: ignore[attr-defined]
    assert isinstance(timer, SupportsInt) and isinstance(timer, SupportsFloat)
    assert isinstance(timer, Timer)


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_unhashable_and_always_true(cls: type[Timer]) -> None:
    timer = cls(0)
    with pytest.raises(TypeError, match="unhashable"):
        hash(timer)
    assert bool(timer) is True


def test_numeric_conversions_and_round() -> None:
    timer = StepCountTimer(2.675, 3, 1)
    assert int(timer) == 2 and float(timer) == 2.675
    assert round(timer) == 3 and isinstance(round(timer), int)
    assert round(timer, 2) == round(2.675, 2)
    assert round(StepCountTimer(7)) == 7


def test_comparisons_with_numbers_and_timers() -> None:
    small, large = StepCountTimer(1), GeometricCeilingTimer(3)
    assert small == 1 and small == 1.0 and small != 2
    assert small < 2 and small <= 1 and small > 0 and small >= 1
    assert small < large and large > small and small <= large and large >= small
    assert small != large and StepCountTimer(3) == large
    assert 1 == small and 0 < small  # reflected
    assert small != "1"
    with pytest.raises(TypeError):
        _ = small < "2"


def test_reset_keeps_parameters() -> None:
    timer = GeometricCeilingTimer(0.5, 4, 3)
    timer.increase()
    timer.increase()
    assert timer.value == 4
    timer.reset()
    assert (timer.value, timer.counter, timer.final, timer.factor, timer.count) == (0.5, 0, 4, 3, 2)
    assert timer.total_remaining == 5.5


def test_repr_names_the_class() -> None:
    assert repr(StepCountTimer(1)).startswith("StepCountTimer(value=1")


# --------------------------------------------------------------------------------------------------
# sleeping
# --------------------------------------------------------------------------------------------------
async def test_await_sleeps_for_the_value_without_changing_state() -> None:
    timer = StepCountTimer(0.2, 3, 0.1)
    started = time.perf_counter()
    await timer
    assert time.perf_counter() - started >= 0.19
    assert (timer.value, timer.counter) == (0.2, 0)


async def test_await_yields_to_the_event_loop() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    await StepCountTimer(0.2)
    task.cancel()
    assert ticks >= 3  # a blocking sleep would have starved the ticker


async def test_await_negative_or_nan_value_does_not_wait() -> None:
    started = time.perf_counter()
    await StepCountTimer(-5)
    await StepCountTimer(math.nan)
    assert time.perf_counter() - started < 5


def test_d1_wait_blocks_for_the_value() -> None:
    # The reference created an un-awaited coroutine (no delay, a RuntimeWarning - an error under this config).
    timer = StepCeilingTimer(0.2, 1, 0.2)
    started = time.perf_counter()
    timer.wait()
    assert time.perf_counter() - started >= 0.19
    started = time.perf_counter()
    timer()
    assert time.perf_counter() - started >= 0.19
    assert (timer.value, timer.counter) == (0.2, 0)


def test_d1_wait_blocks_only_the_calling_thread() -> None:
    done = threading.Event()

    def worker() -> None:
        StepCountTimer(0.2).wait()
        done.set()

    thread = threading.Thread(target=worker)
    started = time.perf_counter()
    thread.start()
    assert not done.is_set()
    thread.join(10)
    assert done.is_set() and time.perf_counter() - started >= 0.19


def test_wait_with_negative_value_returns() -> None:
    StepCountTimer(-1).wait()
    StepCountTimer(math.nan)()


# --------------------------------------------------------------------------------------------------
# copying
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "timer",
    [
        StepCountTimer(0.5, 4, 0.5),
        GeometricCountTimer(1, 5, 3),
        PowerCountTimer(2, 3, 3),
        StepCeilingTimer(1, 10, 2),
        GeometricCeilingTimer(0.1, 2, 2),
        PowerCeilingTimer(2, 100, 2),
        StepCountTimer(1, None, 1),
    ],
    ids=repr,
)
def test_deepcopy_is_a_fresh_timer_with_the_same_parameters(timer: Timer) -> None:
    timer.increase()
    timer.increase()
    clone = copy.deepcopy(timer)
    assert type(clone) is type(timer)
    assert clone is not timer
    assert (clone.value, clone.counter, clone.initial) == (timer.initial, 0, timer.initial)
    assert (clone.final, clone.count, clone.total) == (timer.final, timer.count, timer.total)
    for name in ("step", "factor", "exponent"):
        assert getattr(clone, name, None) == getattr(timer, name, None)
    assert timer.counter == 2  # the original is untouched
    clone.increase()
    assert timer.counter == 2 and clone.counter == 1


def test_shallow_copy_keeps_the_state() -> None:
    timer = GeometricCountTimer(1, 5)
    timer.increase()
    clone = copy.copy(timer)
    assert (clone.value, clone.counter) == (2, 1)


def test_deepcopy_inside_a_container_respects_memo() -> None:
    timer = StepCountTimer(1, 3)
    timer.increase()
    pair = copy.deepcopy([timer, timer])
    assert pair[0] is pair[1] and pair[0].value == 1


# --------------------------------------------------------------------------------------------------
# custom timers
# --------------------------------------------------------------------------------------------------
def test_timer_is_abstract() -> None:
    with pytest.raises(TypeError):
        Timer()  # type: ignore[abstract]
    with pytest.raises(TypeError):
        CountTimer()  # type: ignore[abstract]
    with pytest.raises(TypeError):
        CeilingTimer()  # type: ignore[abstract]


class LinearCountTimer(CountTimer):
    """Adds 10 per step: a user's count timer implementing the four members a custom timer needs."""

    __slots__ = ()

    @property
    def final(self) -> Any:
        return None if self.count is None else self.initial + 10 * self.count

    @property
    def total(self) -> Any:
        return None if self.count is None else sum(self.initial + 10 * i for i in range(self.count + 1))

    @property
    def total_remaining(self) -> Any:
        r = self.count_remaining
        return None if r is None else sum(float(self.value) + 10 * i for i in range(1, r + 1))

    def increase(self) -> bool:
        if not self.can_increase:
            return False
        self._value += 10
        self._counter += 1
        return True


def test_custom_count_timer() -> None:
    timer = LinearCountTimer(1, 2.0)
    assert (timer.final, timer.total, timer.count) == (21, 33, 2)
    assert timer.increase() and timer.value == 11 and timer.total_remaining == 21.0
    clone = copy.deepcopy(timer)
    assert type(clone) is LinearCountTimer and clone.value == 1


def test_custom_count_timer_missing_a_member_is_abstract() -> None:
    class Incomplete(CountTimer):
        def increase(self) -> bool:
            return False

    with pytest.raises(TypeError):
        Incomplete()  # type: ignore[abstract]


class FibonacciCeilingTimer(CeilingTimer):
    """A user's ceiling timer that only implements the private generator."""

    __slots__ = ("_previous",)

    def __init__(self, initial: Any = 1, final: Any = None) -> None:
        super().__init__(initial, final)
        self._previous = 0

    def _all_values_iter(self, value: Any) -> Iterator[Any]:
        previous, current = 0, value
        yield current
        while self.final is None or current < self.final:
            previous, current = current, previous + current
            if self.final is not None:
                current = min(self.final, current)
            yield current


def test_custom_ceiling_timer_from_the_generator() -> None:
    timer = FibonacciCeilingTimer(1, 10)  # 1, 1, 2, 3, 5, 8, 10 -> the repeated 1 makes no progress
    assert timer.count == 6
    assert timer.total == 30
    timer = FibonacciCeilingTimer(2, 10)  # 2, 2 -> no progress at all
    assert not timer.can_increase and not timer.increase()


class DoublingCeilingTimer(CeilingTimer):
    __slots__ = ()

    def _all_values_iter(self, value: Any) -> Iterator[Any]:
        yield value
        while self.final is None or value < self.final:
            value = value * 2 if self.final is None else min(self.final, value * 2)
            yield value


def test_custom_ceiling_timer_derives_everything() -> None:
    timer = DoublingCeilingTimer(1, 10)
    assert (timer.count, timer.total, timer.total_remaining) == (4, 1 + 2 + 4 + 8 + 10, 24.0)
    walked = [timer.value]
    while timer.increase():
        walked.append(timer.value)
    assert walked == [1, 2, 4, 8, 10] and not timer.can_increase and timer.count_remaining == 0
    unbounded = DoublingCeilingTimer(1)
    assert unbounded.can_increase and unbounded.increase() and unbounded.value == 2
    assert unbounded.total is None


def test_custom_ceiling_timer_with_endless_generator_is_refused() -> None:
    class Stuck(CeilingTimer):
        __slots__ = ()

        def _all_values_iter(self, value: Any) -> Iterator[Any]:
            while True:
                yield value

    with pytest.raises(ValueError, match=f"exceeds {MAX_STEPS} steps"):
        _ = Stuck(1, 5).count
    assert Stuck(1, 5).increase() is False  # no progress towards final


def test_custom_ceiling_timer_with_dict_deep_copies() -> None:
    class WithDict(DoublingCeilingTimer):  # no __slots__: instances get a __dict__
        pass

    timer = WithDict(1, 10)
    timer.label = ["a"]  # type: ignore[attr-defined]
    timer.increase()
    clone = copy.deepcopy(timer)
    assert clone.label == ["a"] and clone.label is not timer.label  # type: ignore[attr-defined]
    assert clone.value == 1


class ConstantTimer(Timer):
    """Timer implemented directly: all six abstract members."""

    __slots__ = ()

    final = property(lambda self: self.initial)
    total = property(lambda self: self.initial)
    total_remaining = property(lambda self: 0)
    count = property(lambda self: 0)
    can_increase = property(lambda self: False)

    def increase(self) -> bool:
        return False


def test_custom_timer_implementing_all_six() -> None:
    timer = ConstantTimer(0.05)
    assert (timer.final, timer.total, timer.count, timer.count_remaining) == (0.05, 0.05, 0, 0)
    assert timer.increase() is False
    started = time.perf_counter()
    timer.wait()
    assert time.perf_counter() - started >= 0.04
    assert copy.deepcopy(timer) == 0.05


def test_custom_timer_missing_members_is_abstract() -> None:
    class Partial(Timer):
        def increase(self) -> bool:
            return False

    with pytest.raises(TypeError):
        Partial()  # type: ignore[abstract]


def test_astronomical_int_values_raise_overflow_instead_of_exhausting_memory(timer_kernels: ModuleType) -> None:
    # 2 ** (2 ** 62) would need 2**62 bits; Python would try to allocate it (and be killed by the OOM killer).
    with pytest.raises(OverflowError, match="timer value is too large"):
        _ = PowerCountTimer(2, 1, 2**62).final
    with pytest.raises(OverflowError, match="timer value is too large"):
        _ = GeometricCountTimer(1, 1_000_000, 2).total
    timer = PowerCountTimer(2, None, 2**62)
    with pytest.raises(OverflowError, match="timer value is too large"):
        timer.increase()
    assert (timer.value, timer.counter) == (2, 0)  # a refused step changes nothing
    assert PowerCountTimer(3, 9).final == 3 ** (2**9)  # large but meaningful values are still exact
