# SPDX-License-Identifier: MIT
"""Timers: a number of seconds that grows by a formula, used to space out retries and requests.

A timer holds its current ``value``, the ``initial`` value and a ``counter`` of applied increases. Count timers
stop after ``count`` increases; ceiling timers stop when the value reaches ``final``. Awaiting a timer sleeps
for its current value without changing it.

The schedule sums (``final``/``total``/``total_remaining``/``count``) come from the ``timer_plan`` kernel, which
computes the values with the reference's formulas and sums them exactly as the running Python's ``sum()``
does (plain float additions before 3.12, compensated from 3.12). The kernel works in 64-bit ints and IEEE
doubles; when it declines an input (``ArithmeticError``: big ints, overflow, complex results; ``TypeError``:
numbers other than int/float such as ``Fraction``), the same values are summed here with the builtin and
Python's own unbounded arithmetic, so results never depend on the backend.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import math
import numbers
import operator
import time
import warnings
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, ClassVar, SupportsFloat, SupportsInt

from ._backend import kernels
from .types import Number

__all__ = (
    "CeilingTimer",
    "CountTimer",
    "GeometricCeilingTimer",
    "GeometricCountTimer",
    "PowerCeilingTimer",
    "PowerCountTimer",
    "StepCeilingTimer",
    "StepCountTimer",
    "Timer",
    "TimerScheduleWarning",
    "unusable_as_wait",
)

#: Python's ints are unbounded, but a timer value of more than this many bits (about 10**19728 seconds) cannot
#: mean anything, and computing one can exhaust memory (``PowerCountTimer(2, 1, 2**62).final`` would ask for a
#: 2**62-bit number). Such a step raises OverflowError instead, as float arithmetic does.
_MAX_INT_BITS = 1 << 16
_TOO_LARGE = "timer value is too large"


def _checked(result: Any) -> Any:
    if type(result) is int and result.bit_length() > _MAX_INT_BITS:
        raise OverflowError(_TOO_LARGE)
    return result


def _add(a: Any, b: Any) -> Any:
    return _checked(a + b)


def _mul(a: Any, b: Any) -> Any:
    return _checked(a * b)


def _pow(a: Any, b: Any) -> Any:
    # Refuse before computing: the result of int ** int has about bit_length(a) * b bits.
    if type(a) is int and type(b) is int and b > 1 and abs(a) > 1 and (abs(a).bit_length() - 1) * b > _MAX_INT_BITS:
        raise OverflowError(_TOO_LARGE)
    return _checked(a**b)


#: The Python operation of each kernel timer kind (must match TIMER_KINDS in _native_py.py).
_OPERATIONS: dict[str, Callable[[Any, Any], Any]] = {"step": _add, "geometric": _mul, "power": _pow}

#: (last value, sum() of all values, that sum minus the start, number of steps) - see kernels.timer_plan.
_Plan = tuple[Any, Any, Any, int]

# Values that copy.deepcopy would return unchanged anyway; skipping the call keeps the per-request deep copy of
# the retry timer cheap.
_ATOMIC_TYPES = frozenset({int, float, bool, str, type(None)})

# "The schedule has ended" marker for next(iterator, default): None could be a legitimate (custom) value.
_END = object()

_SLOT_NAMES: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _check_number(value: Any, name: str) -> Any:
    """Reject what cannot be a number of seconds (bool is an int, but never means a duration)."""
    if type(value) in (int, float):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    return value


def _is_nan(value: Any) -> bool:
    try:
        return value != value or math.isnan(value)
    except (TypeError, ValueError, OverflowError):
        return False


class TimerScheduleWarning(UserWarning):
    """A timer was built with values that make no sense as waits (see :func:`unusable_as_wait`)."""


def _warn_unusable(timer: Timer, problem: str) -> None:
    """Say at construction what a schedule will do as a wait, when that is surely not what was meant.

    A warning, not an error: 1.0.20 accepted these values and computes them the same way here (a negative or
    NaN value waits 0 s), so code that relies on them keeps working, but a mistake shows where it is made rather
    than as a puzzling crawl. ``RequestHandler`` refuses such timers outright.
    """
    warnings.warn(f"{type(timer).__name__}: {problem}", TimerScheduleWarning, stacklevel=4)


def unusable_as_wait(timer: Any) -> str | None:
    """Why ``timer`` cannot serve as a schedule of waits (negative or NaN values, a collapsing factor or
    exponent), or None when it can. Used by the constructors' warnings and by ``RequestHandler``'s checks."""
    if not isinstance(timer, Timer):
        return f"{timer!r} is not a Timer"
    initial: Any = timer.initial
    if _is_nan(initial) or initial < 0:
        return f"initial={initial!r} is negative or NaN; a wait is a number of seconds >= 0"
    if isinstance(timer, StepCountTimer | StepCeilingTimer):
        step = timer.step
        if _is_nan(step):
            return "step is NaN"
        count = timer.count if isinstance(timer, StepCountTimer) else None
        if count is not None and step < 0 and initial + step * count < 0:
            return f"step={step!r} takes the wait below 0 s within count={count!r} steps"
    if isinstance(timer, GeometricCountTimer | GeometricCeilingTimer):
        factor = timer.factor
        if _is_nan(factor) or factor <= 0:
            return f"factor={factor!r} makes every wait after the first 0 s or negative; use a factor > 0 (> 1 grows)"
    if isinstance(timer, PowerCountTimer | PowerCeilingTimer):
        exponent = timer.exponent
        if _is_nan(exponent) or exponent <= 0:
            return f"exponent={exponent!r} does not give a growing wait; use an exponent > 0 (> 1 grows)"
    if isinstance(timer, CeilingTimer):
        final = timer.final_given
        if final is not None and (_is_nan(final) or final < initial):
            return f"final={final!r} is below initial={initial!r}: it is raised to initial, so the wait never grows"
    return None


def _check_schedule(timer: Timer) -> None:
    problem = unusable_as_wait(timer)
    if problem is not None:
        _warn_unusable(timer, problem)


def _normalise_count(count: Any) -> int | None:
    """A whole float such as ``3.0`` means ``3``; anything else that is not a whole number >= 0 is refused."""
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, numbers.Real):
        raise TypeError(f"count must be a whole number or None, not {type(count).__name__}")
    if isinstance(count, numbers.Integral):
        whole = operator.index(count)
    else:
        try:
            integral = float(count).is_integer()
        except (OverflowError, ValueError):
            integral = False
        if not integral:
            raise ValueError(f"count must be a non-negative whole number, not {count!r}")
        whole = int(math.trunc(count))  # noqa: RUF046 - trunc may return any Integral (e.g. numpy)
    if whole < 0:
        raise ValueError(f"count must be a non-negative whole number, not {count!r}")
    return whole


def _sum_values(values: Iterable[Any]) -> _Plan:
    """The plan of a schedule with Python arithmetic, as ``kernels.timer_plan`` computes it.

    The total is the builtin ``sum()`` of the values (what the reference computes, with this interpreter's
    float summation) and the part after the start is ``total - start``, derived as the reference derives it.
    Used when the kernel declines an input and for custom ceiling timers. Longer schedules than the kernel
    allows raise the kernel's own ``ValueError`` so that both paths fail alike.
    """
    limit = kernels.MAX_TIMER_STEPS
    collected: list[Any] = []
    for value in values:
        if len(collected) > limit:
            raise ValueError(f"Timer schedule exceeds {limit} steps")
        collected.append(value)
    if not collected:  # pragma: no cover - every schedule yields its start
        raise ValueError("A timer schedule must yield its starting value")
    total = sum(collected)
    return collected[-1], total, total - collected[0], len(collected) - 1


def _slot_names(cls: type) -> tuple[str, ...]:
    names = _SLOT_NAMES.get(cls)
    if names is None:
        seen: dict[str, None] = {}
        for klass in reversed(cls.__mro__):
            slots = klass.__dict__.get("__slots__", ())
            for name in (slots,) if isinstance(slots, str) else slots:
                if name not in ("__dict__", "__weakref__"):
                    seen[name] = None
        names = tuple(seen)
        _SLOT_NAMES[cls] = names
    return names


@functools.total_ordering
class Timer(SupportsInt, SupportsFloat, ABC):
    """A number of seconds that can grow by a formula and be slept for.

    :param initial: the starting value, in seconds.
    """

    __slots__ = ("_counter", "_initial", "_value")

    def __init__(self, initial: Number = 0) -> None:
        self._initial: Number = _check_number(initial, "initial")
        self._value: Number = self._initial
        self._counter: int = 0

    @property
    def initial(self) -> Number:
        """The starting value, as given."""
        return self._initial

    @property
    def value(self) -> Number:
        """The current value in seconds."""
        return self._value

    @property
    @abstractmethod
    def final(self) -> Number | None:
        """The largest value the timer can reach, or None when unbounded."""
        raise NotImplementedError

    @property
    @abstractmethod
    def total(self) -> Number | None:
        """The sum of every value the timer can take from ``initial`` through ``final``, or None when unbounded."""
        raise NotImplementedError

    @property
    @abstractmethod
    def total_remaining(self) -> Number | None:
        """The sum of the values still to come after the current one, or None when unbounded."""
        raise NotImplementedError

    @property
    @abstractmethod
    def count(self) -> int | None:
        """How many increases are possible in total from ``initial``, or None when unbounded."""
        raise NotImplementedError

    @property
    def counter(self) -> int:
        """How many increases were applied since construction or the last reset."""
        return self._counter

    @property
    def count_remaining(self) -> int | None:
        """How many increases are still possible, or None when unbounded."""
        count = self.count
        return None if count is None else count - self._counter

    @property
    @abstractmethod
    def can_increase(self) -> bool:
        """Whether :meth:`increase` would change the timer."""
        raise NotImplementedError

    @abstractmethod
    def increase(self) -> bool:
        """Apply one step when possible; True if the timer changed, False otherwise."""
        raise NotImplementedError

    def reset(self) -> None:
        """Return to the initial value and a zero counter; the schedule parameters are unchanged."""
        self._value = self._initial
        self._counter = 0

    def _sleep_seconds(self) -> float:
        seconds = float(self._value)
        # A negative or NaN value means "no wait" (time.sleep would raise ValueError for both).
        return seconds if seconds > 0 else 0.0

    def wait(self) -> None:
        """Block the current thread for ``value`` seconds (1.0.20's sync wait never slept)."""
        time.sleep(self._sleep_seconds())

    def __call__(self) -> None:
        self.wait()

    def __await__(self) -> Generator[Any, None, None]:
        return asyncio.sleep(self._sleep_seconds()).__await__()

    def __int__(self) -> int:
        return int(self._value)

    def __float__(self) -> float:
        return float(self._value)

    def __round__(self, n: int | None = None) -> Number:
        return round(float(self._value), n)

    # Comparing another Timer works by reflection: ``value == other`` defers to ``other.__eq__(value)``.
    def __eq__(self, other: object) -> bool:
        return self._value == other

    def __lt__(self, other: Any) -> bool:
        return self._value < other

    # Defining __eq__ makes timers unhashable (as in 1.0.20); say so explicitly for readers and type checkers.
    __hash__ = None  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict[int, Any]) -> Timer:
        """A fresh timer of the same class and parameters, at its initial state."""
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for name in _slot_names(cls):
            try:
                value = getattr(self, name)
            except AttributeError:
                continue
            if type(value) not in _ATOMIC_TYPES:
                value = copy.deepcopy(value, memo)
            setattr(new, name, value)
        state = getattr(self, "__dict__", None)
        if state:  # custom subclasses without __slots__
            new.__dict__.update(copy.deepcopy(state, memo))
        new.reset()
        return new

    def _fresh(self) -> Timer:
        """What ``copy.deepcopy(self)`` returns, made without the ``copy`` module's dispatch and memo when the
        timer is a plain slotted one (the request loop takes one per request). A subclass with its own
        ``__deepcopy__`` or instance ``__dict__`` state goes through ``copy.deepcopy`` unchanged."""
        cls = type(self)
        if cls.__deepcopy__ is not Timer.__deepcopy__ or getattr(self, "__dict__", None):
            return copy.deepcopy(self)
        new = cls.__new__(cls)
        memo: dict[int, Any] | None = None
        for name in _slot_names(cls):
            try:
                value = getattr(self, name)
            except AttributeError:
                continue
            if type(value) not in _ATOMIC_TYPES:
                if memo is None:
                    memo = {id(self): new}
                value = copy.deepcopy(value, memo)
            setattr(new, name, value)
        new.reset()
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}(value={self._value!r}, initial={self._initial!r}, counter={self._counter})"


# --------------------------------------------------------------------------------------------------
# count timers
# --------------------------------------------------------------------------------------------------
class CountTimer(Timer, ABC):
    """A timer that can increase at most ``count`` times; ``count=None`` means unbounded.

    Subclasses implement :meth:`increase` and the ``final``/``total``/``total_remaining`` properties.

    :param initial: the starting value, in seconds.
    :param count: the number of increases allowed; a whole float such as ``3.0`` is accepted.
    """

    __slots__ = ("_count",)

    def __init__(self, initial: Number = 1, count: Number | None = None) -> None:
        super().__init__(initial=initial)
        self._count: int | None = _normalise_count(count)

    @property
    def count(self) -> int | None:
        return self._count

    @property
    def can_increase(self) -> bool:
        return self._count is None or self._counter < self._count


class _OperationCountTimer(CountTimer, ABC):
    """A count timer whose step is one of the kernel's operations; the sums come from ``timer_plan``."""

    __slots__ = ("_last", "_plan", "_remaining")

    _kind: ClassVar[str]

    def __init__(self, initial: Number, count: Number | None) -> None:
        super().__init__(initial=initial, count=count)
        self._plan: tuple[Any, Any] | None = None
        self._last: tuple[Any] | None = None
        self._remaining: tuple[int, float] | None = None

    @property
    @abstractmethod
    def _parameter(self) -> Number:
        raise NotImplementedError

    def _run(self, start: Any, steps: int) -> _Plan:
        parameter = self._parameter
        try:
            return kernels.timer_plan(self._kind, start, parameter, steps=steps)
        except (ArithmeticError, TypeError):
            # Outside the kernel's i64/f64 range or not an int/float: same iteration, Python arithmetic.
            return _sum_values(self._values(start, steps))

    def _values(self, start: Any, steps: int) -> Iterator[Any]:
        parameter = self._parameter
        if self._kind == "step":
            # The reference's terms: start + step * i (not repeated addition, which rounds differently).
            for i in range(steps + 1):
                yield _add(start, _mul(parameter, i))
            return
        op = _OPERATIONS[self._kind]
        value = start
        yield value
        for _ in range(steps):
            value = op(value, parameter)
            yield value

    def _planned(self) -> tuple[Any, Any]:
        # final and total depend only on the constructor arguments: compute them once (deep copies share them).
        plan = self._plan
        if plan is None:
            assert self._count is not None
            last, total, _, _ = self._run(self._initial, self._count)
            plan = self._plan = (last, total)
        return plan

    @property
    def final(self) -> Number | None:
        if self._count is None:
            return None
        # The reference's closed forms: initial + step * count, initial * factor ** count and
        # initial ** (exponent ** count). In floating point these may differ in the last digit from the value
        # that count increases reach, exactly as in the reference.
        last = self._last
        if last is None:
            parameter, count = self._parameter, self._count
            if self._kind == "step":
                value = _add(self._initial, _mul(parameter, count))
            elif self._kind == "geometric":
                value = _mul(self._initial, _pow(parameter, count))
            else:
                value = _pow(self._initial, _pow(parameter, count))
            last = self._last = (value,)
        return last[0]

    @property
    def total(self) -> Number | None:
        return None if self._count is None else self._planned()[1]

    @property
    def total_remaining(self) -> float | None:
        if self._count is None:
            return None
        cached = self._remaining
        # The value is a function of the counter, so the counter identifies the current value.
        if cached is not None and cached[0] == self._counter:
            return cached[1]
        steps = self._count - self._counter
        # sum(values from the current one) - current, exactly as the reference derives it.
        remaining = self._run(float(self._value), steps)[2]
        self._remaining = (self._counter, remaining)
        return remaining

    def increase(self) -> bool:
        if not self.can_increase:
            return False
        self._value = _OPERATIONS[self._kind](self._value, self._parameter)
        self._counter += 1
        return True


class StepCountTimer(_OperationCountTimer):
    """Adds ``step`` on each increase: ``initial, initial + step, ...`` for ``count`` increases.

    :param initial: the starting value, in seconds.
    :param count: the number of increases allowed, or None for unbounded.
    :param step: the amount added on each increase.
    """

    __slots__ = ("_step",)
    _kind = "step"

    def __init__(self, initial: Number = 0, count: Number | None = None, step: Number = 1) -> None:
        super().__init__(initial=initial, count=count)
        self._step: Number = _check_number(step, "step")
        _check_schedule(self)

    @property
    def step(self) -> Number:
        """The amount added on each increase."""
        return self._step

    @property
    def _parameter(self) -> Number:
        return self._step


class GeometricCountTimer(_OperationCountTimer):
    """Multiplies by ``factor`` on each increase, for ``count`` increases.

    :param initial: the starting value, in seconds.
    :param count: the number of increases allowed, or None for unbounded.
    :param factor: the multiplier applied on each increase.
    """

    __slots__ = ("_factor",)
    _kind = "geometric"

    def __init__(self, initial: Number = 1, count: Number | None = None, factor: Number = 2) -> None:
        super().__init__(initial=initial, count=count)
        self._factor: Number = _check_number(factor, "factor")
        _check_schedule(self)

    @property
    def factor(self) -> Number:
        """The multiplier applied on each increase."""
        return self._factor

    @property
    def _parameter(self) -> Number:
        return self._factor


class PowerCountTimer(_OperationCountTimer):
    """Raises the value to ``exponent`` on each increase, for ``count`` increases.

    :param initial: the starting value, in seconds.
    :param count: the number of increases allowed, or None for unbounded.
    :param exponent: the power applied on each increase.
    """

    __slots__ = ("_exponent",)
    _kind = "power"

    def __init__(self, initial: Number = 1, count: Number | None = None, exponent: Number = 2) -> None:
        super().__init__(initial=initial, count=count)
        self._exponent: Number = _check_number(exponent, "exponent")
        _check_schedule(self)

    @property
    def exponent(self) -> Number:
        """The power applied on each increase."""
        return self._exponent

    @property
    def _parameter(self) -> Number:
        return self._exponent


# --------------------------------------------------------------------------------------------------
# ceiling timers
# --------------------------------------------------------------------------------------------------
class CeilingTimer(Timer, ABC):
    """A timer that grows until its value reaches ``final``; ``final=None`` means unbounded.

    Subclasses implement the generator ``_all_values_iter(value)``: yield ``value``, then each following value
    up to and including ``final``. Everything else (``total``, ``count``, ``increase``...) derives from it.
    A schedule that stops before ``final`` (no progress) simply ends: the timer then cannot increase.

    :param initial: the starting value, in seconds.
    :param final: the ceiling; a value below ``initial`` is raised to ``initial``.
    """

    __slots__ = ("_final", "_final_given", "_plan", "_remaining")

    def __init__(self, initial: Number = 1, final: Number | None = None) -> None:
        super().__init__(initial=initial)
        if final is not None:
            final = _check_number(final, "final")
        self._final_given: Number | None = final
        if final is not None and final < self._initial:
            final = self._initial
        self._final: Number | None = final
        self._plan: tuple[Any, int] | None = None
        self._remaining: tuple[int, Any] | None = None

    @abstractmethod
    def _all_values_iter(self, value: Number) -> Iterator[Number]:
        """Yield ``value`` and then every value the timer would take after it, ending at ``final``."""
        raise NotImplementedError

    def _schedule(self, start: Any) -> _Plan:
        """The plan of the values from ``start`` to ``final`` (only called when ``final`` is set)."""
        return _sum_values(self._all_values_iter(start))

    def _planned(self) -> tuple[Any, int]:
        # total and count depend only on the constructor arguments: compute them once (deep copies share them).
        plan = self._plan
        if plan is None:
            _, total, _, n = self._schedule(self._initial)
            plan = self._plan = (total, n)
        return plan

    @property
    def final_given(self) -> Number | None:
        """``final`` as it was given to the constructor (``final`` itself is raised to ``initial`` when below it)."""
        return self._final_given

    @property
    def final(self) -> Number | None:
        return self._final

    @property
    def total(self) -> Number | None:
        return None if self._final is None else self._planned()[0]

    @property
    def count(self) -> int | None:
        return None if self._final is None else self._planned()[1]

    @property
    def total_remaining(self) -> Number | None:
        if self._final is None:
            return None
        cached = self._remaining
        if cached is not None and cached[0] == self._counter:
            return cached[1]
        start = float(self._value)
        _, total, _, _ = self._schedule(start)
        remaining = total - start
        self._remaining = (self._counter, remaining)
        return remaining

    def _next_value(self) -> tuple[bool, Any]:
        """(True, next value) when the timer can increase, else (False, None)."""
        values = self._all_values_iter(self._value)
        next(values, None)
        nxt: Any = next(values, _END)
        if nxt is _END:
            return False, None
        if self._final is not None and not nxt > self._value:
            return False, None  # a step that makes no progress would repeat forever
        return True, nxt

    @property
    def can_increase(self) -> bool:
        if self._final is None:
            return True
        if not self._value < self._final:
            return False
        return self._next_value()[0]

    def increase(self) -> bool:
        if self._final is not None and not self._value < self._final:
            return False
        ok, nxt = self._next_value()
        if not ok:
            return False
        self._value = nxt
        self._counter += 1
        return True


class _OperationCeilingTimer(CeilingTimer, ABC):
    """A ceiling timer whose step is one of the kernel's operations; the sums come from ``timer_plan``."""

    __slots__ = ()

    _kind: ClassVar[str]

    @property
    @abstractmethod
    def _parameter(self) -> Number:
        raise NotImplementedError

    def _all_values_iter(self, value: Number) -> Iterator[Number]:
        op = _OPERATIONS[self._kind]
        parameter = self._parameter
        final = self._final
        yield value
        if final is None:
            while True:
                value = op(value, parameter)
                yield value
        while value < final:
            # min() keeps `final` unless the step is strictly smaller, so a NaN step lands on `final`.
            nxt = min(final, op(value, parameter))
            if not nxt > value:  # no progress, the schedule can never reach `final`
                return
            value = nxt
            yield value

    def _schedule(self, start: Any) -> _Plan:
        try:
            return kernels.timer_plan(self._kind, start, self._parameter, final=self._final)
        except (ArithmeticError, TypeError):
            # Outside the kernel's i64/f64 range or not an int/float: same iteration, Python arithmetic.
            return _sum_values(self._all_values_iter(start))

    def _next_value(self) -> tuple[bool, Any]:
        # The generic version builds a generator; this is the same rule inline, since it runs on every retry.
        value = self._value
        stepped = _OPERATIONS[self._kind](value, self._parameter)
        final = self._final
        if final is None:
            return True, stepped
        nxt = min(final, stepped)
        if not nxt > value:
            return False, None
        return True, nxt


class StepCeilingTimer(_OperationCeilingTimer):
    """Adds ``step`` on each increase until ``final`` is reached.

    :param initial: the starting value, in seconds.
    :param final: the ceiling, or None for unbounded.
    :param step: the amount added on each increase.
    """

    __slots__ = ("_step",)
    _kind = "step"

    def __init__(self, initial: Number = 1, final: Number | None = None, step: Number = 1) -> None:
        super().__init__(initial=initial, final=final)
        self._step: Number = _check_number(step, "step")
        _check_schedule(self)

    @property
    def step(self) -> Number:
        """The amount added on each increase."""
        return self._step

    @property
    def _parameter(self) -> Number:
        return self._step


class GeometricCeilingTimer(_OperationCeilingTimer):
    """Multiplies by ``factor`` on each increase until ``final`` is reached.

    :param initial: the starting value, in seconds.
    :param final: the ceiling, or None for unbounded.
    :param factor: the multiplier applied on each increase.
    """

    __slots__ = ("_factor",)
    _kind = "geometric"

    def __init__(self, initial: Number = 1, final: Number | None = None, factor: Number = 2) -> None:
        super().__init__(initial=initial, final=final)
        self._factor: Number = _check_number(factor, "factor")
        _check_schedule(self)

    @property
    def factor(self) -> Number:
        """The multiplier applied on each increase."""
        return self._factor

    @property
    def _parameter(self) -> Number:
        return self._factor


class PowerCeilingTimer(_OperationCeilingTimer):
    """Raises the value to ``exponent`` on each increase until ``final`` is reached.

    :param initial: the starting value, in seconds.
    :param final: the ceiling, or None for unbounded.
    :param exponent: the power applied on each increase.
    """

    __slots__ = ("_exponent",)
    _kind = "power"

    def __init__(self, initial: Number = 1, final: Number | None = None, exponent: Number = 2) -> None:
        super().__init__(initial=initial, final=final)
        self._exponent: Number = _check_number(exponent, "exponent")
        _check_schedule(self)

    @property
    def exponent(self) -> Number:
        """The power applied on each increase."""
        return self._exponent

    @property
    def _parameter(self) -> Number:
        return self._exponent
