# SPDX-License-Identifier: MIT
"""The Rust kernels and their Python twin agree: the same surface and the same results.

* same surface: ``__all__``, ``KERNEL_API``, constants, signatures (positional-only, defaults), and the stub;
* hypothesis differential tests comparing **result or (exception type, message)**, types included (int vs float,
  the sign of ``-0.0``, NaN), for every kernel; for ``json_loads`` the stdlib ``json.loads`` is a third referee.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import json
import math
import pathlib
import sys
from collections.abc import Callable
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiorequestful._native_py as twin

pytestmark = pytest.mark.native

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STUB = pathlib.Path(twin.__file__).with_name("_native.pyi")


@pytest.fixture(scope="module")
def native(request: pytest.FixtureRequest) -> ModuleType:
    try:
        return importlib.import_module("aiorequestful._native")
    except ImportError:
        if request.config.getoption("--require-native"):
            raise
        pytest.skip("aiorequestful._native is not built")


# --------------------------------------------------------------------------------------------------------------------
# comparison helpers
# --------------------------------------------------------------------------------------------------------------------
def canonical(value: Any) -> list[Any]:
    """Flat tokens equal only for identical results: container kinds, int vs float, float sign, NaN, key order."""
    tokens: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            tokens.append(("float", "nan" if math.isnan(item) else item, math.copysign(1.0, item)))
        elif isinstance(item, dict):
            tokens.append(("dict", len(item)))
            for key, element in reversed(list(item.items())):
                stack.append(element)
                stack.append(key)
        elif isinstance(item, (list, tuple)):
            tokens.append((type(item).__name__, len(item)))
            stack.extend(reversed(item))
        else:
            tokens.append((type(item).__name__, item))
    return tokens


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # the exception is the result being compared
        return ("raised", type(exc), str(exc))
    return ("returned", canonical(result))


def agree(native_fn: Callable[..., Any], twin_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    ours = outcome(native_fn, *args, **kwargs)
    theirs = outcome(twin_fn, *args, **kwargs)
    assert ours == theirs, f"args={args!r} kwargs={kwargs!r}"
    return ours


# --------------------------------------------------------------------------------------------------------------------
# surface
# --------------------------------------------------------------------------------------------------------------------
def test_same_all_and_kernel_api(native: ModuleType) -> None:
    assert native.__all__ == twin.__all__
    assert type(native.__all__) is tuple
    assert native.KERNEL_API == twin.KERNEL_API == 2
    for name in native.__all__:
        assert hasattr(native, name), name
        assert hasattr(twin, name), name


def test_same_constants(native: ModuleType) -> None:
    for name in ("MAX_TIMER_STEPS", "TIMER_KINDS", "TIMER_RANGE_ERROR"):
        value = getattr(native, name)
        assert type(value) is type(getattr(twin, name)), name
        assert value == getattr(twin, name), name


def test_native_version_is_the_package_version(native: ModuleType) -> None:
    assert native.__version__ == importlib.metadata.version("aiorequestful")
    assert not hasattr(twin, "__version__")


def _parameters(obj: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(obj).parameters.values()]


@pytest.mark.parametrize("name", ["timer_plan", "cache_key", "json_loads", "bucket_take", "DispatchTable"])
def test_same_signatures(native: ModuleType, name: str) -> None:
    assert _parameters(getattr(native, name)) == _parameters(getattr(twin, name))


@pytest.mark.parametrize("method", ["lookup", "mapping", "__len__", "__repr__", "__reduce__"])
def test_same_dispatch_table_methods(native: ModuleType, method: str) -> None:
    # `self` is positional-only on a native method and ordinary on a Python one; compare what callers pass.
    ours = _parameters(getattr(native.DispatchTable, method))
    theirs = _parameters(getattr(twin.DispatchTable, method))
    assert ours[0][0] == theirs[0][0] == "self"
    assert ours[1:] == theirs[1:]


def test_native_objects_are_documented_and_placed(native: ModuleType) -> None:
    for name in ("timer_plan", "cache_key", "json_loads", "bucket_take", "DispatchTable"):
        obj = getattr(native, name)
        assert obj.__doc__, name
        assert obj.__module__ == "aiorequestful._native", name
    assert native.DispatchTable.__qualname__ == "DispatchTable"


def test_stub_declares_the_same_names() -> None:
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    declared: set[str] = set()
    stub_all: tuple[str, ...] = ()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            declared.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared.add(node.target.id)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            stub_all = ast.literal_eval(node.value)
    assert stub_all == twin.__all__
    assert set(twin.__all__) <= declared


def test_dispatch_table_is_frozen(native: ModuleType) -> None:
    table = native.DispatchTable([[200]])
    with pytest.raises(AttributeError):
        table.anything = 1


def test_backend_picks_native_unless_disabled(native: ModuleType) -> None:
    import aiorequestful._backend as backend

    if backend.DISABLED:
        pytest.skip("AIOREQUESTFUL_NO_EXTENSIONS is set")
    assert backend.kernels is native


# --------------------------------------------------------------------------------------------------------------------
# timer_plan
# --------------------------------------------------------------------------------------------------------------------
JUNK = st.sampled_from([None, "1", True, False, 1j, Decimal("1.5"), b"1", [1]])
EDGE_NUMBERS = st.sampled_from(
    [0, 1, -1, 2, 3, 10, 0.0, -0.0, 0.5, -0.5, 1.0, 2.0, 0.1, 2**31, 2**62, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1,
     2**53 + 1, float(2**53), 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan, 10**30]
)  # fmt: skip
NUMBERS = st.one_of(
    st.integers(-10, 10),
    st.integers(-(2**65), 2**65),
    st.floats(-10, 10),
    st.floats(allow_nan=True, allow_infinity=True),
    EDGE_NUMBERS,
)
KINDS = st.one_of(st.sampled_from(twin.TIMER_KINDS), st.sampled_from(["Step", "linear", "", None, b"step", 1]))
STEPS = st.one_of(st.integers(-3, 40), st.sampled_from([10**30, -(10**30), 2**63, 1.0, True, "3", None]))


@st.composite
def limits(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(["steps", "final", "final", "both", "neither", "positional"]))
    if mode == "steps":
        return {"steps": draw(STEPS)}
    if mode == "final":
        return {"final": draw(st.one_of(NUMBERS, JUNK))}
    if mode == "both":
        return {"steps": draw(STEPS), "final": draw(NUMBERS)}
    if mode == "positional":
        return {"args": (draw(st.one_of(st.none(), st.integers(0, 5))), draw(st.one_of(st.none(), NUMBERS)))}
    return {}


def _plan_is_cheap(result: tuple[Any, ...]) -> bool:
    """The twin iterates in Python: only compare schedules short enough to run it quickly."""
    if result[0] == "returned":
        return bool(result[1][-1][1] <= 20_000)
    return "exceeds" not in str(result[2])


@SETTINGS
@given(
    kind=KINDS,
    start=st.one_of(NUMBERS, NUMBERS, NUMBERS, JUNK),
    param=st.one_of(NUMBERS, NUMBERS, NUMBERS, JUNK),
    limit=limits(),
)
def test_timer_plan_parity(native: ModuleType, kind: Any, start: Any, param: Any, limit: dict[str, Any]) -> None:
    args = (kind, start, param, *limit.pop("args", ()))
    ours = outcome(native.timer_plan, *args, **limit)
    if _plan_is_cheap(ours):
        assert ours == outcome(twin.timer_plan, *args, **limit), f"args={args!r} limit={limit!r}"


@SETTINGS
@given(
    kind=st.sampled_from(twin.TIMER_KINDS),
    start=st.one_of(st.integers(-5, 50), st.floats(-5, 50)),
    param=st.one_of(st.integers(-3, 5), st.floats(-3, 5)),
    final=st.one_of(st.integers(-5, 1000), st.floats(-5, 1000)),
)
def test_ceiling_schedules_parity(native: ModuleType, kind: str, start: Any, param: Any, final: Any) -> None:
    # Small, realistic ceiling timers, where int/float mixing and min(final, x) matter most.
    ours = outcome(native.timer_plan, kind, start, param, final=final)
    if _plan_is_cheap(ours):
        assert ours == outcome(twin.timer_plan, kind, start, param, final=final)


def test_timer_plan_long_schedules_parity(native: ModuleType) -> None:
    # The twin's slow paths, once each: the exact limit and one step past it.
    limit = twin.MAX_TIMER_STEPS
    agree(native.timer_plan, twin.timer_plan, "step", 0, 1, final=limit)
    agree(native.timer_plan, twin.timer_plan, "step", 0, 1, final=limit + 0.5)
    agree(native.timer_plan, twin.timer_plan, "step", 0.0, 1e-6, final=0.5)


# --------------------------------------------------------------------------------------------------------------------
# DispatchTable
# --------------------------------------------------------------------------------------------------------------------
CODES = st.one_of(
    st.integers(95, 1005),
    st.integers(95, 1005),
    st.integers(-(2**70), 2**70),
    st.sampled_from([True, "200", 200.0, None]),
)
STATUSES = st.one_of(st.integers(90, 1010), st.integers(-(2**70), 2**70), st.sampled_from([True, "200", 200.0, None]))


@SETTINGS
@given(groups=st.lists(st.lists(CODES, max_size=6), max_size=6), statuses=st.lists(STATUSES, max_size=8))
def test_dispatch_table_parity(native: ModuleType, groups: list[list[Any]], statuses: list[Any]) -> None:
    built = agree(lambda g: repr(native.DispatchTable(g)), lambda g: repr(twin.DispatchTable(g)), groups)
    if built[0] == "raised":
        return
    ours, theirs = native.DispatchTable(groups), twin.DispatchTable(groups)
    assert repr(ours) == repr(theirs)
    assert len(ours) == len(theirs)
    assert canonical(ours.mapping()) == canonical(theirs.mapping())
    assert canonical(ours.__reduce__()[1]) == canonical(theirs.__reduce__()[1])
    for status in statuses:
        agree(ours.lookup, theirs.lookup, status)


# --------------------------------------------------------------------------------------------------------------------
# cache_key
# --------------------------------------------------------------------------------------------------------------------
ANY_CHAR = st.one_of(
    st.characters(exclude_categories=()), st.characters(categories=["Cs"]), st.characters(max_codepoint=127)
)
TEXT = st.text(ANY_CHAR, max_size=12)
SPECIAL_CASE = st.sampled_from(
    ["\u00df", "\ufb01", "\u0149", "\u01f0", "\u1e9e", "\u0587", "\u1fb3", "i\u0307", "get", "Post"]
)
PARTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**60), 10**60),
    TEXT,
    st.binary(max_size=12),
    st.binary(max_size=12).map(bytearray),
    st.sampled_from([1.5, memoryview(b"x"), ("a",)]),
)
QUERY_ITEMS = st.one_of(
    st.tuples(TEXT, TEXT),
    st.tuples(TEXT, TEXT),
    st.tuples(TEXT, TEXT),
    st.sampled_from([["a", "b"], ("a",), ("a", 1), "ab", None, ("a", "b", "c")]),
)


@SETTINGS
@given(
    method=st.one_of(TEXT, SPECIAL_CASE, st.lists(SPECIAL_CASE).map("".join), st.sampled_from([b"GET", None])),
    url=st.one_of(TEXT, TEXT, st.sampled_from([b"u", None])),
    query=st.one_of(st.lists(QUERY_ITEMS, max_size=5), st.just(None)),
    parts=st.one_of(st.lists(PARTS, max_size=5), st.just(None)),
    omit=st.integers(0, 2),
)
def test_cache_key_parity(native: ModuleType, method: Any, url: Any, query: Any, parts: Any, omit: int) -> None:
    args = (method, url, query, parts)[: 4 - omit]
    agree(native.cache_key, twin.cache_key, *args)


@SETTINGS
@given(pairs=st.lists(st.tuples(TEXT, TEXT), max_size=6), data=st.data())
def test_cache_key_ignores_query_order(native: ModuleType, pairs: list[tuple[str, str]], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(pairs))
    assert (
        native.cache_key("GET", "u", pairs)
        == native.cache_key("GET", "u", shuffled)
        == twin.cache_key("GET", "u", pairs)
    )


# --------------------------------------------------------------------------------------------------------------------
# bucket_take
# --------------------------------------------------------------------------------------------------------------------
BUCKET_VALUES = st.one_of(
    st.floats(-1e6, 1e6),
    st.floats(0, 100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-1000, 1000),
    st.sampled_from([10**400, -(10**400), 2**1023, True, None, "1", 5e-324, 1e308, 0.999, 1, 0]),
)


@SETTINGS
@given(args=st.tuples(*[BUCKET_VALUES] * 5))
def test_bucket_take_parity(native: ModuleType, args: tuple[Any, ...]) -> None:
    agree(native.bucket_take, twin.bucket_take, *args)


@SETTINGS
@given(
    tokens=st.floats(-50, 10),
    updated=st.floats(0, 1e9),
    gaps=st.lists(st.floats(-1, 5), min_size=1, max_size=8),
    rate=st.floats(1e-3, 1e3),
    burst=st.floats(1, 100),
)
def test_bucket_sequences_parity(
    native: ModuleType, tokens: float, updated: float, gaps: list[float], rate: float, burst: float
) -> None:
    ours = theirs = (tokens, updated)
    now = updated
    for gap in gaps:
        now += gap
        a = native.bucket_take(*ours, now, rate, burst)
        b = twin.bucket_take(*theirs, now, rate, burst)
        assert canonical(a) == canonical(b)
        ours, theirs = a[1:], b[1:]


# --------------------------------------------------------------------------------------------------------------------
# json_loads, with the stdlib as third referee
# --------------------------------------------------------------------------------------------------------------------
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e-300, 1e-300),
    TEXT,
    st.text(max_size=30),
)


def _json_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(children, max_size=6), st.dictionaries(TEXT, children, max_size=6))


JSON_VALUES = st.recursive(JSON_SCALARS, _json_containers, max_leaves=25)


def json_agree(native: ModuleType, data: Any) -> tuple[Any, ...]:
    ours = outcome(native.json_loads, data)
    assert ours == outcome(json.loads, data), repr(data)[:300]
    assert ours == outcome(twin.json_loads, data)
    return ours


@st.composite
def encoded_documents(draw: st.DrawFn) -> Any:
    value = draw(JSON_VALUES)
    text = json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([None, (",", ":"), (", ", ": "), (" ,\t", "\r\n:\n")])),
        indent=draw(st.sampled_from([None, 0, 2, "\t"])),
        sort_keys=draw(st.booleans()),
    )
    text = draw(st.sampled_from(["", " ", "\n", "\t\r\n "])) + text + draw(st.sampled_from(["", " ", "\r\n"]))
    form = draw(st.sampled_from(["str", "utf-8", "bytearray", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"]))
    if form == "str":
        return text
    encoded = text.encode("utf-8" if form == "bytearray" else form, "surrogatepass")
    return bytearray(encoded) if form == "bytearray" else encoded


@SETTINGS
@given(data=encoded_documents())
def test_json_documents_parity(native: ModuleType, data: Any) -> None:
    json_agree(native, data)


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    data = bytearray(json.dumps(draw(JSON_VALUES), ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass"))
    interesting = b'"\\{}[],:-+.eE0123456789 \t\n\r\x00\x0b\x0c\x1f\x7f\x80\xc3\xa9\xed\xa0\xef\xbb\xbfntfaNIu'
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        at = draw(st.integers(0, len(data)))
        byte = draw(st.sampled_from(interesting))
        if action == "insert":
            data[at:at] = bytes([byte])
        elif action == "delete" and at < len(data):
            del data[at]
        elif action == "replace" and at < len(data):
            data[at] = byte
        elif action == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


@SETTINGS
@given(data=mutated_documents(), as_text=st.booleans())
def test_json_mutated_documents_parity(native: ModuleType, data: bytes, as_text: bool) -> None:
    if as_text:
        json_agree(native, data.decode("utf-8", "surrogateescape"))
    else:
        json_agree(native, data)


NUMBER_TEXT = st.from_regex(r"\A-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,3})?\Z")


@SETTINGS
@given(number=NUMBER_TEXT, wrap=st.sampled_from(["{}", "[{}]", '{{"n": {}}}', " {} "]))
def test_json_number_spellings_parity(native: ModuleType, number: str, wrap: str) -> None:
    # Correct rounding of long mantissas and large exponents, int vs float, -0 vs -0.0.
    json_agree(native, wrap.format(number))


@SETTINGS
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_json_float_round_trip_parity(native: ModuleType, value: float) -> None:
    assert canonical(native.json_loads(repr(value))) == canonical(value)


@SETTINGS
@given(data=st.one_of(st.binary(max_size=40), st.text(ANY_CHAR, max_size=40)))
def test_json_garbage_parity(native: ModuleType, data: Any) -> None:
    json_agree(native, data)


@pytest.mark.parametrize(
    "data",
    [
        '"\x01"', "1" * 4300, "1" * 4301, "1e400", "-0", "-0.0", "NaN", "-Infinity", "-NaN", "Infinity1",
        '{"a": 1, "a": 2}', r'"\ud800"', "[" * 5000 + "]" * 5000, b"\xef\xbb\xbf[1]", "\ufeff[1]",
        "[1]".encode("utf-16"), "[1]".encode("utf-32"), b'"\xed\xa0\x80"', b'"\xff"', '"\ud800"', memoryview(b"1"),
        bytearray(b"[1]"), "\x0c1", "1\u00a0", 17, None,
    ],
)  # fmt: skip
def test_json_edge_cases_parity(native: ModuleType, data: Any) -> None:
    json_agree(native, data)


def test_json_int_digit_limit_parity(native: ModuleType) -> None:
    previous = sys.get_int_max_str_digits()
    try:
        for limit in (0, 640, 4300):
            sys.set_int_max_str_digits(limit)
            for digits in (640, 641, 4300, 4301, 6000):
                json_agree(native, "[" + "7" * digits + "]")
    finally:
        sys.set_int_max_str_digits(previous)
