# SPDX-License-Identifier: MIT
"""Stub for the Rust module ``aiorequestful._native`` (rust/bindings).

Same names, signatures, results and errors as the pure-Python twin ``aiorequestful._native_py``; the parity
tests in ``tests/test_parity.py`` and ``mypy.stubtest`` keep the three in step.
"""

from collections.abc import Iterable
from typing import Any, Final, final

__all__ = (
    "KERNEL_API",
    "MAX_TIMER_STEPS",
    "TIMER_KINDS",
    "TIMER_RANGE_ERROR",
    "DispatchTable",
    "bucket_take",
    "cache_key",
    "json_loads",
    "timer_plan",
)

__version__: Final[str]

#: Bumped whenever a name, signature or behaviour of the kernel surface changes (checked by ``_backend``).
KERNEL_API: Final[int]
#: The longest schedule ``timer_plan`` computes; longer ones raise ``ValueError`` rather than looping forever.
MAX_TIMER_STEPS: Final[int]
#: The ``kind`` names ``timer_plan`` accepts: ``("step", "geometric", "power")``.
TIMER_KINDS: Final[tuple[str, ...]]
#: The message of the ``ArithmeticError`` raised when timer arithmetic leaves the kernel's range.
TIMER_RANGE_ERROR: Final[str]

def timer_plan(
    kind: str,
    start: int | float,
    param: int | float,
    /,
    steps: int | None = None,
    final: int | float | None = None,
) -> tuple[int | float, int | float, int | float, int]:
    """A timer's schedule from ``start`` (``"step"``: x + param, ``"geometric"``: x * param, ``"power"``:
    x ** param); give exactly one of ``steps`` (a count schedule of ``steps + 1`` values, the i-th ``"step"``
    value being ``start + param * i``) or ``final`` (apply ``x = min(final, op(x))`` while ``x < final``,
    stopping when a step makes no progress).

    Returns ``(last, total, total - start, n)`` with ``total`` exactly what the running Python's ``sum()``
    gives for the values; ints stay ints while every operand is an int. Values are seconds. Raises
    ``ValueError`` (bad kind, both/neither limit, negative steps, more than ``MAX_TIMER_STEPS`` steps),
    ``TypeError`` (non-numbers), ``ArithmeticError(TIMER_RANGE_ERROR)`` (outside 64-bit ints/doubles).
    """

@final
class DispatchTable:
    """Status code -> index of the first handler that lists it (built once per handler set)."""

    def __new__(cls, handler_codes: Iterable[Iterable[int]], /) -> DispatchTable:
        """Raises ``TypeError`` for a non-int code and ``ValueError`` for one outside 100..999."""

    def lookup(self, status: int, /) -> int | None:
        """The handler index for ``status``, or None; ``TypeError`` for a non-int."""

    def mapping(self) -> dict[int, int]:
        """A new dict of status code -> handler index, in ascending code order."""

    def __len__(self) -> int: ...
    def __reduce__(self) -> tuple[type[DispatchTable], tuple[list[list[int]]]]: ...

def cache_key(
    method: str,
    url: str,
    query: Iterable[tuple[str, str]] = (),
    parts: Iterable[str | bytes | bytearray | int | bool | None] = (),
    /,
) -> str:
    """A stable lowercase hex SHA-256 digest of a request: upper-cased ``method``, ``url`` without its query,
    ``query`` pairs sorted by code point, then ``parts`` in order. Raises ``TypeError`` for other types.
    """

def json_loads(data: str | bytes | bytearray, /) -> Any:
    """``json.loads(data)``: same values and the stdlib's ``JSONDecodeError``/``TypeError``/``UnicodeDecodeError``."""

def bucket_take(tokens: float, updated: float, now: float, rate: float, burst: float, /) -> tuple[float, float, float]:
    """Reserve one token from a bucket refilling at ``rate`` tokens per second up to ``burst``; times are seconds.

    Returns ``(wait, tokens, updated)``. Raises ``TypeError`` for non-numbers and ``ValueError`` for non-finite
    values, ``rate <= 0`` or ``burst < 1``.
    """
