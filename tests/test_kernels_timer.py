# SPDX-License-Identifier: MIT
"""``timer_plan``: schedules, Python number semantics, termination of schedules that never reach
final, and every error (both backends)."""

from __future__ import annotations

import enum
import math
from decimal import Decimal
from fractions import Fraction
from types import ModuleType
from typing import Any

import pytest

RANGE = "timer arithmetic is outside the kernel's range"


def raises_exactly(exc_type: type[BaseException], message: str, fn: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    assert info.type is exc_type, f"{info.type.__name__} is not {exc_type.__name__}"
    assert str(info.value) == message


def typed(value: Any) -> Any:
    """A value with its type, so that 17 and 17.0 (and 0.0 and -0.0) compare different."""
    if isinstance(value, tuple):
        return tuple(typed(v) for v in value)
    if isinstance(value, float):
        if math.isnan(value):
            return (float, "nan")  # the sign of a NaN carries no meaning
        return (float, value, math.copysign(1.0, value))
    return (type(value), value)


def check(actual: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    assert typed(actual) == typed(expected), f"{actual!r} != {expected!r}"


# ------------------------------------------------------------------------------------ the documented timer examples
def test_step_count_timer_example(kernels: ModuleType) -> None:
    # StepCountTimer(2, 5, 3): final 17, total 57.
    check(kernels.timer_plan("step", 2, 3, steps=5), (17, 57, 55, 5))
    # After two increases (value 8, three remaining): total_remaining from float(8) is 42.0.
    check(kernels.timer_plan("step", 8.0, 3, steps=3), (17.0, 50.0, 42.0, 3))


def test_geometric_and_power_count_examples(kernels: ModuleType) -> None:
    check(kernels.timer_plan("geometric", 1, 2, steps=3), (8, 15, 14, 3))
    check(kernels.timer_plan("power", 2, 2, steps=3), (256, 278, 276, 3))


def test_step_ceiling_example(kernels: ModuleType) -> None:
    # StepCeilingTimer(1, 9.5, 2): 1,3,5,7,9,9.5 -> count 5, total 34.5 (the int sum turns float at the end).
    check(kernels.timer_plan("step", 1, 2, final=9.5), (9.5, 34.5, 33.5, 5))


def test_float_accumulation_is_observable(kernels: ModuleType) -> None:
    last, _total, after, n = kernels.timer_plan("step", 0, 0.1, final=1)
    assert n == 11
    assert last == 1 and type(last) is int  # the last step is min(final, x) == final itself
    expected = 0.0
    x = 0.0
    for _ in range(10):
        x += 0.1
        expected += x
    assert after == expected + 1


def test_geometric_and_power_ceiling_examples(kernels: ModuleType) -> None:
    check(kernels.timer_plan("geometric", 2, 2, final=10), (10, 24, 22, 3))
    check(kernels.timer_plan("power", 2, 2, final=60), (60, 82, 80, 3))


def test_typical_backoff_from_api_md(kernels: ModuleType) -> None:
    # GeometricCeilingTimer(initial=0.1, final=2): 0.1 -> 0.2 -> ... -> 2 (cap).
    last, _total, _after, n = kernels.timer_plan("geometric", 0.1, 2, final=2)
    assert (last, type(last), n) == (2, int, 5)


# ---------------------------------------------------------------------------------------------- shapes of results
def test_zero_steps(kernels: ModuleType) -> None:
    # The third item is total - start: an int 0 for ints, a float 0.0 once a float is involved.
    check(kernels.timer_plan("step", 1.5, 1, steps=0), (1.5, 1.5, 0.0, 0))
    check(kernels.timer_plan("power", 7, 3, 0), (7, 7, 0, 0))  # steps may be positional


def test_ints_stay_ints_and_mixing_promotes(kernels: ModuleType) -> None:
    check(kernels.timer_plan("step", 1, 1, steps=2), (3, 6, 5, 2))
    check(kernels.timer_plan("step", 1, 1.0, steps=2), (3.0, 6.0, 5.0, 2))
    check(kernels.timer_plan("geometric", 1.0, 3, steps=2), (9.0, 13.0, 12.0, 2))
    check(kernels.timer_plan("power", 2, -1, steps=1), (0.5, 2.5, 0.5, 1))  # int ** -int is a float


def test_negative_zero_and_nan_survive(kernels: ModuleType) -> None:
    # sum() starts from the int 0, so sum([-0.0, -0.0]) is +0.0 (as in Python); the value keeps its sign.
    check(kernels.timer_plan("geometric", -0.0, 5, steps=1), (-0.0, 0.0, 0.0, 1))
    check(kernels.timer_plan("step", math.nan, 1, steps=1), (math.nan, math.nan, math.nan, 1))
    # inf * 0 is nan, so every step term (start + step * i) is nan; not an error.
    check(kernels.timer_plan("step", math.inf, -math.inf, steps=1), (math.nan, math.nan, math.nan, 1))
    # A float sum overflowing to inf is not an error, and the compensation does not turn it into nan.
    check(kernels.timer_plan("step", 1e308, 1e308, steps=1), (math.inf, math.inf, math.inf, 1))


def test_exact_int_float_comparison_at_the_ceiling(kernels: ModuleType) -> None:
    # 2**53 + 1 is not representable: float(2**53 + 1) == 2**53, but Python compares exactly.
    big = 2**53
    check(kernels.timer_plan("step", big, 1, final=float(big)), (big, big, 0, 0))
    check(kernels.timer_plan("step", big - 1, 2, final=float(big)), (float(big), float(2 * big - 1), float(big), 1))


def test_nan_step_yields_final(kernels: ModuleType) -> None:
    # Python's min(final, nan) keeps final, which is progress, so the schedule ends at final.
    check(kernels.timer_plan("step", 1, math.nan, final=5), (5, 6, 5, 1))


# ------------------------------------------------------------------------------------------------------- non-progress
@pytest.mark.parametrize(
    ("kind", "start", "param", "final"),
    [
        ("step", 1, 0, 10),
        ("step", 1, -1, 10),
        ("step", 1.0, -0.5, 10),
        ("step", 1e17, 1.0, 1e18),  # x + 1 == x
        ("geometric", 0, 2, 10),
        ("geometric", 3, 1, 10),
        ("geometric", 3.0, 0.5, 10),
        ("geometric", -1, 2, 10),
        ("power", 1, 2, 60),
        ("power", 0.5, 2, 60),
        ("power", 0, 3, 60),
        ("power", 2, 0, 60),
        ("power", math.nan, 2, 60),
    ],
)
def test_schedules_that_never_reach_final_stop(
    kernels: ModuleType, kind: str, start: float, param: float, final: float
) -> None:
    zero = start - start if isinstance(start, float) else 0  # total - start
    check(kernels.timer_plan(kind, start, param, final=final), (start, start, zero, 0))


def test_start_at_or_above_final_takes_no_step(kernels: ModuleType) -> None:
    check(kernels.timer_plan("step", 10, 1, final=10), (10, 10, 0, 0))
    check(kernels.timer_plan("step", 11, 1, final=10.5), (11, 11, 0, 0))
    check(kernels.timer_plan("step", 1, 1, final=math.nan), (1, 1, 0, 0))


def test_max_timer_steps(kernels: ModuleType) -> None:
    limit = kernels.MAX_TIMER_STEPS
    assert limit == 1_000_000
    message = f"Timer schedule exceeds {limit} steps"
    raises_exactly(ValueError, message, kernels.timer_plan, "step", 0, 1, steps=limit + 1)
    raises_exactly(ValueError, message, kernels.timer_plan, "step", 0, 1, steps=10**30)
    raises_exactly(ValueError, message, kernels.timer_plan, "step", 0, 1, final=math.inf)
    # Exactly the limit is fine.
    check(
        kernels.timer_plan("step", 0, 1, final=limit),
        (limit, limit * (limit + 1) // 2, limit * (limit + 1) // 2, limit),
    )


# ---------------------------------------------------------------------------------------------- range errors
@pytest.mark.parametrize(
    ("kind", "start", "param", "limit"),
    [
        ("step", 2**63 - 1, 1, {"steps": 1}),
        ("step", 2**63 - 2, 0, {"steps": 1}),  # each value fits; the total does not
        ("geometric", 2**62, 2, {"steps": 1}),
        ("power", 2, 64, {"steps": 1}),
        ("power", 3, 2**40, {"steps": 1}),
        ("power", 0, -1, {"steps": 1}),  # ZeroDivisionError in Python
        ("power", 0.0, -1.0, {"steps": 1}),
        ("power", -0.0, -2, {"steps": 1}),
        ("power", -8.0, 1 / 3, {"steps": 1}),  # complex in Python
        ("power", -2, 0.5, {"steps": 1}),
        ("power", 10.0, 400, {"steps": 1}),  # OverflowError in Python
        ("power", -10, 401.0, {"steps": 1}),
        ("power", 10, 10, {"final": 1e300}),  # 10**10 then 10**100 overflows i64
        ("step", 2**63, 1, {"steps": 0}),  # the operands themselves
        ("step", 1, -(2**63) - 1, {"steps": 0}),
        ("step", 1, 1, {"final": 2**64}),
    ],
)
def test_outside_the_kernel_range(
    kernels: ModuleType, kind: str, start: Any, param: Any, limit: dict[str, Any]
) -> None:
    raises_exactly(ArithmeticError, RANGE, kernels.timer_plan, kind, start, param, **limit)
    assert kernels.TIMER_RANGE_ERROR == RANGE


@pytest.mark.parametrize(
    ("start", "param", "expected"),
    [
        (0, 0, 1),
        (1, 2**62, 1),
        (-1, 2**62 + 1, -1),
        (-1, 2**62, 1),
        (0, 2**62, 0),
        (-2, 61, -(2**61)),
        (2, 62, 2**62),
        (0.5, 1074, 5e-324),  # underflow is fine
        (0.5, 2000, 0.0),
        (-1.0, math.inf, 1.0),
        (2.0, -math.inf, 0.0),
        (math.inf, 3, math.inf),
        (-math.inf, 3, -math.inf),
        (-math.inf, -3, -0.0),
        (math.nan, 0, 1.0),
        (1.0, math.nan, 1.0),
        (-8.0, 3, -512.0),
    ],
)
def test_power_edges_match_python(kernels: ModuleType, start: Any, param: Any, expected: Any) -> None:
    assert typed(start**param) == typed(expected)  # the expectation is Python's own answer
    last = kernels.timer_plan("power", start, param, steps=1)[0]
    assert typed(last) == typed(expected)


# ---------------------------------------------------------------------------------------------- argument errors
@pytest.mark.parametrize(
    ("kind", "shown"), [("linear", "'linear'"), ("Step", "'Step'"), (None, "None"), (b"step", "b'step'")]
)
def test_unknown_kind(kernels: ModuleType, kind: Any, shown: str) -> None:
    raises_exactly(ValueError, f"Unknown timer kind: {shown}", kernels.timer_plan, kind, 1, 1, steps=1)


def test_unknown_kind_is_checked_first(kernels: ModuleType) -> None:
    raises_exactly(ValueError, "Unknown timer kind: 'x'", kernels.timer_plan, "x", "bad", "bad")


def test_exactly_one_limit(kernels: ModuleType) -> None:
    message = "Give exactly one of steps or final"
    raises_exactly(ValueError, message, kernels.timer_plan, "step", 1, 1)
    raises_exactly(ValueError, message, kernels.timer_plan, "step", 1, 1, steps=None, final=None)
    raises_exactly(ValueError, message, kernels.timer_plan, "step", 1, 1, steps=1, final=2)
    raises_exactly(ValueError, message, kernels.timer_plan, "step", "bad", 1, 1, 2)  # before operand checks


class Status(enum.IntEnum):
    TEN = 10


class MyFloat(float):
    pass


@pytest.mark.parametrize("bad", [True, False, "1", None, 1j, Decimal(1), Fraction(1, 2), [1]])
def test_operands_must_be_int_or_float(kernels: ModuleType, bad: Any) -> None:
    name = type(bad).__name__
    raises_exactly(
        TypeError, f"start must be an int or a float, not {name}", kernels.timer_plan, "step", bad, 1, steps=1
    )
    raises_exactly(
        TypeError, f"param must be an int or a float, not {name}", kernels.timer_plan, "step", 1, bad, steps=1
    )
    if bad is not None:  # final=None means "not given"
        raises_exactly(
            TypeError, f"final must be an int or a float, not {name}", kernels.timer_plan, "step", 1, 1, final=bad
        )


def test_start_is_checked_before_param(kernels: ModuleType) -> None:
    raises_exactly(TypeError, "start must be an int or a float, not str", kernels.timer_plan, "step", "a", "b", steps=1)
    raises_exactly(ArithmeticError, RANGE, kernels.timer_plan, "step", 2**64, "b", steps=1)


def test_subclasses_are_read_by_value(kernels: ModuleType) -> None:
    check(kernels.timer_plan("step", Status.TEN, Status.TEN, steps=Status.TEN), (110, 660, 650, 10))
    check(kernels.timer_plan("step", MyFloat(1.5), 1, final=MyFloat(3.0)), (3.0, 7.0, 5.5, 2))
    result = kernels.timer_plan("step", Status.TEN, 0, steps=0)
    assert type(result[0]) is int


@pytest.mark.parametrize("bad", [1.0, True, "3", Decimal(3)])
def test_steps_must_be_an_int(kernels: ModuleType, bad: Any) -> None:
    raises_exactly(TypeError, f"steps must be an int, not {type(bad).__name__}", kernels.timer_plan, "step", 1, 1, bad)


@pytest.mark.parametrize("steps", [-1, -(2**63), -(10**30)])
def test_steps_must_not_be_negative(kernels: ModuleType, steps: int) -> None:
    raises_exactly(ValueError, "steps must not be negative", kernels.timer_plan, "step", 1, 1, steps=steps)


def test_operands_are_checked_before_steps(kernels: ModuleType) -> None:
    raises_exactly(TypeError, "param must be an int or a float, not str", kernels.timer_plan, "step", 1, "x", steps=-1)


def test_signature(kernels: ModuleType) -> None:
    with pytest.raises(TypeError):
        kernels.timer_plan(kind="step", start=1, param=1, steps=1)  # positional-only
    with pytest.raises(TypeError):
        kernels.timer_plan("step", 1, 1, stepz=1)
    check(kernels.timer_plan("step", 1, 1, None, 3), (3, 6, 5, 2))


def test_constants(kernels: ModuleType) -> None:
    assert kernels.TIMER_KINDS == ("step", "geometric", "power")
    assert type(kernels.TIMER_KINDS) is tuple
    for kind in kernels.TIMER_KINDS:
        assert kernels.timer_plan(kind, 2, 2, steps=1)[3] == 1
