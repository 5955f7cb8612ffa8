# SPDX-License-Identifier: MIT
"""Timers built with values that make no sense as waits say so where they are built (a warning: 1.0.20 accepted
them and they keep their arithmetic), and RequestHandler refuses them outright."""

from __future__ import annotations

import math
import warnings

import pytest

from aiorequestful.timer import (
    GeometricCeilingTimer,
    GeometricCountTimer,
    PowerCeilingTimer,
    PowerCountTimer,
    StepCeilingTimer,
    StepCountTimer,
    TimerScheduleWarning,
    unusable_as_wait,
)

BAD = [
    (lambda: StepCountTimer(initial=-1, step=-1), "initial=-1 is negative or NaN"),
    (lambda: StepCountTimer(initial=math.nan), "initial=nan is negative or NaN"),
    (lambda: StepCountTimer(initial=5, count=6, step=-1), "step=-1 takes the wait below 0 s within count=6"),
    (lambda: GeometricCountTimer(factor=0), "factor=0 makes every wait after the first 0 s"),
    (lambda: GeometricCeilingTimer(1, 10, -2), "factor=-2"),
    (lambda: PowerCountTimer(2, 3, 0), "exponent=0 does not give a growing wait"),
    (lambda: PowerCeilingTimer(2, 10, -1), "exponent=-1"),
    (lambda: StepCeilingTimer(initial=5, final=1), "final=1 is below initial=5: it is raised to initial"),
]

GOOD = [
    lambda: StepCountTimer(0.5, 4, 0.5),
    lambda: StepCountTimer(5, 3, -1),  # shrinking waits that stay >= 0
    lambda: GeometricCountTimer(0.1, 5, 2),
    lambda: GeometricCeilingTimer(0.1, 2),
    lambda: PowerCountTimer(2, 3),
    lambda: StepCeilingTimer(1, 9.5, 2),
    lambda: StepCeilingTimer(1, 5, 0),  # no progress: a constant timer, handled by stopping
    lambda: StepCountTimer(),
]


@pytest.mark.parametrize(("build", "message"), BAD)
def test_unusable_schedules_warn_where_they_are_built(build, message: str) -> None:
    with pytest.warns(TimerScheduleWarning, match=message) as record:
        timer = build()
    assert record[0].filename == __file__  # points at the caller's line, not at timer.py
    assert message in (unusable_as_wait(timer) or "")


@pytest.mark.parametrize("build", GOOD)
def test_usable_schedules_are_quiet(build) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimerScheduleWarning)
        timer = build()
    assert unusable_as_wait(timer) is None


def test_a_warned_timer_keeps_its_1_0_20_arithmetic() -> None:
    with pytest.warns(TimerScheduleWarning):
        timer = StepCeilingTimer(initial=5, final=1)
    assert (timer.final, timer.final_given, timer.total, timer.count) == (5, 1, 5, 0)
    assert not timer.can_increase
