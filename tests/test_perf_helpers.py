# SPDX-License-Identifier: MIT
"""Private fast paths added for the request loop's per-request cost: each must equal the slow path it replaces."""

from __future__ import annotations

import copy
from http import HTTPMethod
from typing import Any

import pytest

from aiorequestful._handler.arguments import _MAX_METHODS, _METHODS
from aiorequestful._handler.arguments import http_method as _http_method
from aiorequestful.timer import (
    GeometricCeilingTimer,
    GeometricCountTimer,
    PowerCeilingTimer,
    PowerCountTimer,
    StepCeilingTimer,
    StepCountTimer,
    Timer,
)

TIMERS = [
    StepCountTimer(0.5, 4, 0.5),
    GeometricCountTimer(1, 5, 3),
    PowerCountTimer(2, 3, 3),
    StepCeilingTimer(1, 10, 2),
    GeometricCeilingTimer(0.1, 2, 2),
    PowerCeilingTimer(2, 100, 2),
    StepCountTimer(1, None, 1),
]


def _state(timer: Timer) -> tuple[Any, ...]:
    return (
        type(timer),
        timer.value,
        timer.counter,
        timer.initial,
        timer.final,
        timer.count,
        timer.total,
        timer.total_remaining,
        timer.can_increase,
    )


@pytest.mark.parametrize("timer", TIMERS, ids=repr)
def test_fresh_equals_deepcopy(timer: Timer) -> None:
    timer.total_remaining  # noqa: B018 - fill the lazily computed sums, so the copy sees them
    timer.increase()
    fresh, deep = timer._fresh(), copy.deepcopy(timer)
    assert fresh is not timer
    assert _state(fresh) == _state(deep)
    assert fresh.counter == 0 and timer.counter == 1  # reset copy; the original is untouched
    for _ in range(20):  # bounded: an unbounded timer increases for ever
        assert fresh.increase() == deep.increase()
        assert _state(fresh) == _state(deep)


class _Custom(GeometricCountTimer):
    """A subclass with its own deep-copy rule: ``_fresh`` must honour it, not bypass it."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Timer:
        return GeometricCountTimer(9, 1)


class _WithDict(StepCountTimer):
    """A subclass without ``__slots__`` keeping extra state in its ``__dict__``."""


def test_fresh_defers_to_a_custom_deepcopy() -> None:
    assert _Custom(1, 2)._fresh().value == 9


def test_fresh_copies_instance_dict_state_deeply() -> None:
    timer = _WithDict(1, 3)
    timer.tags = ["a"]  # type: ignore[attr-defined]
    fresh = timer._fresh()
    assert fresh.tags == ["a"] and fresh.tags is not timer.tags  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["get", "GET", "Get", "post", "pAtCh", "head", HTTPMethod.DELETE])
def test_http_method_matches_the_enum(value: Any) -> None:
    assert _http_method(value) is HTTPMethod(value.upper())
    assert _http_method(value) is HTTPMethod(value.upper())  # cached the second time round


@pytest.mark.parametrize("value", ["nope", "", "get "])
def test_http_method_rejects_what_the_enum_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        HTTPMethod(value.upper())
    with pytest.raises(ValueError):
        _http_method(value)
    assert value not in _METHODS


def test_http_method_cache_is_bounded() -> None:
    for i in range(2 * _MAX_METHODS):
        spelling = "".join(c.upper() if (i >> n) & 1 else c for n, c in enumerate("options"))
        assert _http_method(spelling) is HTTPMethod.OPTIONS
    assert len(_METHODS) <= _MAX_METHODS
