# SPDX-License-Identifier: MIT
"""Pure-Python twin of the Rust module ``aiorequestful._native``.

Every name here exists in ``_native`` with the same signature, defaults, results, exception types and
messages. The parity and differential tests in ``tests/test_parity.py`` hold the two
together; change one and you must change the other (``rust/bindings`` and ``rust/kernels``).

The kernels work over plain data only:

* ``timer_plan``   - a timer's schedule and its sum as the running Python's ``sum()`` gives it; it always terminates.
* ``DispatchTable`` - status code -> index of the first handler that claims it.
* ``cache_key``    - a stable SHA-256 digest of a request's identifying parts (used by the cache).
* ``json_loads``   - ``json.loads`` with stdlib's results and errors.
* ``bucket_take``  - one token-bucket reservation (flow control).

Numbers in ``timer_plan`` follow the native kernel's range: ints are 64-bit and floats are IEEE doubles.
Anything outside that range (an int overflow, a float power that overflows, a complex or undefined power)
raises ``ArithmeticError(TIMER_RANGE_ERROR)``; the public timer layer then recomputes with unbounded Python
arithmetic. A float ``+``/``*`` that overflows to infinity is not an error (Python gives the same infinity).
Both backends decline the same inputs so that the differential tests can compare them exactly.

Subclasses of ``int``/``float``/``str``/``bytes`` (``IntEnum`` status codes, say) are read by value, the way the
Rust side reads them, so an override of ``__add__``/``__str__``/``upper`` never changes a result.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

_orjson_loads: Callable[[str | bytes | bytearray], Any] | None
_OrjsonError: type[Exception]
try:
    # A declared dependency, but the twin must also work where it is missing (it then decodes with the stdlib).
    from orjson import JSONDecodeError as _OrjsonError
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - exercised by tests that hide orjson
    _orjson_loads = None
    _OrjsonError = ValueError

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

#: Bumped whenever a name, signature or behaviour of the kernel surface changes.
#: must match KERNEL_API in rust/bindings/lib.rs
KERNEL_API = 2

#: The longest schedule a timer may have; longer ones are refused rather than looping forever.
#: must match MAX_TIMER_STEPS in rust/kernels/src/timer.rs (and the constant in rust/bindings/lib.rs)
MAX_TIMER_STEPS = 1_000_000

#: must match TIMER_KINDS and TimerKind::from_name in rust/kernels/src/timer.rs
TIMER_KINDS = ("step", "geometric", "power")

#: must match TIMER_RANGE_ERROR in rust/kernels/src/error.rs
TIMER_RANGE_ERROR = "timer arithmetic is outside the kernel's range"

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1


# --------------------------------------------------------------------------------------------------
# timer arithmetic
# --------------------------------------------------------------------------------------------------
def _check_int(value: int) -> int:
    if value < _I64_MIN or value > _I64_MAX:
        raise ArithmeticError(TIMER_RANGE_ERROR)
    return value


def _plain_int(value: int) -> int:
    # The value of an int (subclass), ignoring overrides, as the Rust side reads it (PyLong_AsLongLong).
    return int.__int__(value)


def _as_number(value: Any, name: str) -> int | float:
    # bool is an int subclass; a timer never means True/False, so reject it with the other non-numbers.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be an int or a float, not {type(value).__name__}")
    if isinstance(value, int):
        return _check_int(_plain_int(value))
    return float.__float__(value)


def _add(a: int | float, b: int | float) -> int | float:
    if isinstance(a, int) and isinstance(b, int):
        return _check_int(a + b)
    return float(a) + float(b)


def _mul(a: int | float, b: int | float) -> int | float:
    if isinstance(a, int) and isinstance(b, int):
        return _check_int(a * b)
    return float(a) * float(b)


def _pow(a: int | float, b: int | float) -> int | float:
    if isinstance(a, int) and isinstance(b, int):
        if b >= 0:
            # Refuse exponents that cannot fit the native u32 exponent before Python builds a huge int.
            if b > 0xFFFFFFFF and a not in (-1, 0, 1):
                raise ArithmeticError(TIMER_RANGE_ERROR)
            if abs(a) > 1 and b > 64:
                raise ArithmeticError(TIMER_RANGE_ERROR)
            return _check_int(a**b)
        if a == 0:
            raise ArithmeticError(TIMER_RANGE_ERROR)
        # Python computes int ** negative int in floating point.
    fa, fb = float(a), float(b)
    if fa < 0 and math.isfinite(fb) and not fb.is_integer():
        raise ArithmeticError(TIMER_RANGE_ERROR)  # Python would return a complex number
    if fa == 0.0 and fb < 0:
        raise ArithmeticError(TIMER_RANGE_ERROR)  # Python raises ZeroDivisionError
    try:
        result = fa**fb
    except OverflowError:
        raise ArithmeticError(TIMER_RANGE_ERROR) from None
    if isinstance(result, complex):  # pragma: no cover - excluded above; kept as a guard
        raise ArithmeticError(TIMER_RANGE_ERROR)
    return result


_OPS = {"step": _add, "geometric": _mul, "power": _pow}


def _sub(a: int | float, b: int | float) -> int | float:
    if isinstance(a, int) and isinstance(b, int):
        return _check_int(a - b)
    return float(a) - float(b)


def _python_sum(values: list[int | float]) -> int | float:
    """``sum(values)`` as the running interpreter computes it, within the kernel's range.

    The builtin does the work, so the result is bit for bit that of ``sum()`` on this Python (plain float
    additions before 3.12, Neumaier-compensated from 3.12). The native kernel keeps the leading ints in a
    64-bit int until the first float; a partial sum outside that range is declined here too.
    """
    partial = 0
    for value in values:
        if not isinstance(value, int):
            break
        partial = _check_int(partial + value)
    return sum(values)


def timer_plan(
    kind: str,
    start: int | float,
    param: int | float,
    /,
    steps: int | None = None,
    final: int | float | None = None,
) -> tuple[int | float, int | float, int | float, int]:
    """A timer's schedule from ``start``, summed as the running Python's ``sum()`` would.

    ``kind`` names the operation: ``"step"`` (x + param), ``"geometric"`` (x * param) or ``"power"``
    (x ** param). Give exactly one of:

    * ``steps``: a count schedule (count timers) of ``steps + 1`` values. For ``"step"`` the
      i-th value is ``start + param * i``; the other kinds apply the operation to the previous value;
    * ``final``: apply ``x = min(final, op(x))`` while ``x < final`` (ceiling timers), stopping early
      when a step does not increase the value (a schedule that can never reach ``final`` would otherwise loop forever).

    These are the reference implementation's formulas. Returns ``(last, total, total_after_start, n)``: the
    last value, ``sum(values)`` exactly as the builtin computes it on this interpreter, ``total - start``,
    and ``n`` the number of steps taken. Ints stay ints while every operand is an int, as in Python. Raises
    ``ValueError`` for a bad ``kind``, both or neither of ``steps``/``final``, negative ``steps`` or a schedule
    longer than ``MAX_TIMER_STEPS``; ``TypeError`` for non-numbers; ``ArithmeticError(TIMER_RANGE_ERROR)``
    outside the kernel's range.
    """
    op = _OPS.get(kind) if isinstance(kind, str) else None
    if op is None:
        raise ValueError(f"Unknown timer kind: {kind!r}")
    if (steps is None) == (final is None):
        raise ValueError("Give exactly one of steps or final")
    first = _as_number(start, "start")
    factor = _as_number(param, "param")

    value = first
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise TypeError(f"steps must be an int, not {type(steps).__name__}")
        steps = _plain_int(steps)
        if steps < 0:
            raise ValueError("steps must not be negative")
        if steps > MAX_TIMER_STEPS:
            raise ValueError(f"Timer schedule exceeds {MAX_TIMER_STEPS} steps")
        if kind == "step":
            values = [_add(first, _mul(factor, i)) for i in range(steps + 1)]
        else:
            values = [value]
            for _ in range(steps):
                value = op(value, factor)
                values.append(value)
        total = _python_sum(values)
        return values[-1], total, _sub(total, first), steps

    ceiling = _as_number(final, "final")
    values = [value]
    n = 0
    while value < ceiling:
        stepped = op(value, factor)
        # Python's min(final, x) keeps `final` unless x is strictly smaller (so a NaN step yields final).
        nxt = stepped if stepped < ceiling else ceiling
        if not nxt > value:  # no progress: the sequence can never reach `final`, stop instead of looping forever
            break
        if n >= MAX_TIMER_STEPS:
            raise ValueError(f"Timer schedule exceeds {MAX_TIMER_STEPS} steps")
        value = nxt
        values.append(value)
        n += 1
    total = _python_sum(values)
    return value, total, _sub(total, first), n


# --------------------------------------------------------------------------------------------------
# status dispatch
# --------------------------------------------------------------------------------------------------
def _check_int_status(code: Any) -> int:
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"Status codes must be int, not {type(code).__name__}")
    # An IntEnum such as http.HTTPStatus is stored (and shown by mapping()/repr) as its plain value.
    return _plain_int(code)


def _check_status(code: Any) -> int:
    code = _check_int_status(code)
    if not 100 <= code <= 999:
        raise ValueError(f"Invalid status code: {code}")
    return code


class DispatchTable:
    """Map each status code to the index of the first handler that lists it.

    Built once per handler set; ``lookup`` is the per-response call (the first handler listed
    for a code wins; a new handler set replaces the table rather than merging into it).
    """

    __slots__ = ("_table",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The native class is final (a frozen pyclass); the twin refuses subclasses the same way.
        raise TypeError(f"type '{__name__}.DispatchTable' is not an acceptable base type")

    def __init__(self, handler_codes: Sequence[Sequence[int]], /) -> None:
        table: dict[int, int] = {}
        for index, codes in enumerate(handler_codes):
            for code in codes:
                table.setdefault(_check_status(code), index)
        self._table = table

    def lookup(self, status: int, /) -> int | None:
        """The handler index for ``status``, or None when no handler claims it (any int may be asked about).

        Raises ``TypeError`` for a non-int (a bool included), as the constructor does.
        """
        return self._table.get(_check_int_status(status))

    def mapping(self) -> dict[int, int]:
        """A new dict of status code -> handler index, in ascending code order."""
        return dict(sorted(self._table.items()))

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"DispatchTable({self.mapping()!r})"

    def __reduce__(self) -> tuple[type[DispatchTable], tuple[list[list[int]]]]:
        """Pickle/copy support: the code lists, by handler index, that rebuild the same table."""
        groups: list[list[int]] = [[] for _ in range(max(self._table.values(), default=-1) + 1)]
        for code, index in sorted(self._table.items()):
            groups[index].append(code)
        return (DispatchTable, (groups,))


# --------------------------------------------------------------------------------------------------
# cache keys
# --------------------------------------------------------------------------------------------------
def _text(value: str) -> bytes:
    # surrogatepass: a lone surrogate still hashes deterministically instead of raising.
    return str.encode(value, "utf-8", "surrogatepass")


def _field(out: bytearray, tag: bytes, payload: bytes) -> None:
    out += tag
    out += struct.pack("<Q", len(payload))
    out += payload


def cache_key(
    method: str,
    url: str,
    query: Sequence[tuple[str, str]] = (),
    parts: Sequence[str | bytes | int | None] = (),
    /,
) -> str:
    """A stable hex SHA-256 digest identifying a request.

    ``method`` is upper-cased; ``url`` is the normalised URL *without* its query; ``query`` pairs are sorted
    (by key, then value, by code point) so parameter order never changes the key; ``parts`` are extra key
    parts (e.g. a digest of the credentials, so different users never share an entry), kept in order.
    Each field is written as a tag, a little-endian u64 length and its bytes, so no two different inputs
    serialise alike.
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be str, not {type(method).__name__}")
    if not isinstance(url, str):
        raise TypeError(f"url must be str, not {type(url).__name__}")
    out = bytearray()
    _field(out, b"m", _text(str.upper(method)))
    _field(out, b"u", _text(url))
    pairs = []
    for pair in query:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError("query items must be (str, str) tuples")
        key, val = pair
        if not isinstance(key, str) or not isinstance(val, str):
            raise TypeError("query items must be (str, str) tuples")
        pairs.append((_text(key), _text(val)))
    # Sorting UTF-8 bytes orders by code point, which is what the Rust side does with its byte slices.
    for key_b, val_b in sorted(pairs):
        _field(out, b"k", key_b)
        _field(out, b"v", val_b)
    for part in parts:
        if part is None:
            _field(out, b"n", b"")
        elif isinstance(part, bool):
            _field(out, b"t" if part else b"f", b"")
        elif isinstance(part, int):
            _field(out, b"i", int.__repr__(part).encode("ascii"))
        elif isinstance(part, str):
            _field(out, b"s", _text(part))
        elif isinstance(part, (bytes, bytearray)):
            _field(out, b"b", memoryview(part).tobytes())
        else:
            raise TypeError(f"Unsupported cache key part type: {type(part).__name__}")
    return hashlib.sha256(out).hexdigest()


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------
# orjson reads an int literal too wide for 64 bits as a float; the stdlib gives the int. Such a literal has at least
# 19 digits and, being a value, follows one of "[,: \t\n\r-" (or starts the text). This table maps digits to "0",
# those bytes to "x" and everything else to ".", so one substring search finds every candidate (a 19-digit run
# inside a string after a space is a false alarm, which only costs the stdlib decode).
_WIDE_INT_TABLE = bytes(
    ord("0") if chr(b).isdigit() and b < 128 else ord("x") if chr(b) in "[,: \t\n\r-" else ord(".") for b in range(256)
)
_WIDE_INT = b"0" * 19
_WIDE_INT_VALUE = b"x" + _WIDE_INT


def _may_hold_wide_int(raw: bytes | bytearray) -> bool:
    marked = raw.translate(_WIDE_INT_TABLE)
    return _WIDE_INT_VALUE in marked or marked.startswith(_WIDE_INT)


def json_loads(data: str | bytes | bytearray, /) -> Any:
    """Decode JSON exactly as ``json.loads`` does: same values, same ``JSONDecodeError``/``TypeError``.

    orjson decodes first when it is installed: it is strict JSON, so whatever it accepts the stdlib accepts with the
    same value, except ints beyond 64 bits, which it turns into floats; a text that may hold one goes to the stdlib
    directly. What orjson refuses and the stdlib takes (``NaN``/``Infinity``, ``1e400``, lone surrogates, UTF-16/32
    bytes, str subclasses, nesting past 1,024 levels) and every error go to ``json.loads``, which returns or raises
    as it always does. Only ``str``/``bytes``/``bytearray`` reach orjson: it would also read a ``memoryview``,
    where the stdlib raises ``TypeError``.

    One difference is left on CPython 3.11, whose decoder shares the Python recursion limit: a document nested
    between about 1,000 levels (the default limit, less the caller's stack) and orjson's 1,024 decodes here where
    ``json.loads`` raises ``RecursionError``. Finding a document's depth first would cost more than decoding it.
    """
    if _orjson_loads is None:
        return json.loads(data)
    if isinstance(data, str):
        try:
            raw: bytes | bytearray = data.encode()
        except UnicodeEncodeError:  # lone surrogates: orjson refuses them, the stdlib decodes them
            return json.loads(data)
    elif isinstance(data, (bytes, bytearray)):
        raw = data
    else:
        return json.loads(data)  # the stdlib's TypeError
    if not _may_hold_wide_int(raw):
        try:
            return _orjson_loads(data)
        except _OrjsonError:
            pass
    return json.loads(data)


# --------------------------------------------------------------------------------------------------
# token bucket
# --------------------------------------------------------------------------------------------------
def bucket_take(tokens: float, updated: float, now: float, rate: float, burst: float, /) -> tuple[float, float, float]:
    """Reserve one token from a bucket; returns ``(wait, tokens, updated)``.

    The bucket refills at ``rate`` tokens per second up to ``burst``. A caller that finds less than one
    token still takes one (the count goes negative) and is told how long to wait for it, so concurrent
    callers are served in the order they called, each at its exact slot. A clock that goes backwards
    refills nothing.
    """
    for name, value in (("tokens", tokens), ("updated", updated), ("now", now), ("rate", rate), ("burst", burst)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, not {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite")
    if rate <= 0:
        raise ValueError("rate must be positive")
    if burst < 1:
        raise ValueError("burst must be at least 1")
    tokens = float(tokens)
    elapsed = float(now) - float(updated)
    if elapsed > 0:
        tokens = min(float(burst), tokens + elapsed * float(rate))
        updated = float(now)
    else:
        updated = float(updated)
    tokens -= 1.0
    wait = 0.0 if tokens >= 0.0 else -tokens / float(rate)
    return wait, tokens, updated
