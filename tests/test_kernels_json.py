# SPDX-License-Identifier: MIT
"""``json_loads``: the stdlib's results and errors on every edge where a fast parser could differ (both backends).

The stdlib ``json.loads`` is the referee: each case compares value *and* type (int vs float, ``-0.0``, NaN), or
exception type and message.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def canonical(value: Any) -> list[Any]:
    """A flat token list equal only for identical JSON results: types, float signs, NaN and key order included.

    Iterative, so documents nested hundreds of levels deep compare without recursion.
    """
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
        elif isinstance(item, list):
            tokens.append(("list", len(item)))
            stack.extend(reversed(item))
        else:
            tokens.append((type(item).__name__, item))
    return tokens


def outcome(fn: Any, data: Any) -> tuple[Any, ...]:
    try:
        result = fn(data)
    except Exception as exc:  # the exception is the result being compared
        detail = (exc.pos, exc.lineno, exc.colno) if isinstance(exc, json.JSONDecodeError) else ()
        return ("raised", type(exc), str(exc), detail)
    return ("returned", canonical(result))


def same_as_stdlib(kernels: ModuleType, data: Any) -> tuple[Any, ...]:
    ours = outcome(kernels.json_loads, data)
    assert ours == outcome(json.loads, data), repr(data)[:200]
    return ours


# fmt: off
EDGE_TEXT = [
    # plain values
    "0", "-0", "-0.0", "0.0", "1", "-1", "1.5", "1E5", "1e05", "1e+2", "1E-2", "0e0", "-0e-0", "true", "false", "null",
    '"x"', "[]", "{}", "[1, [2, [3]]]", '{"a": {"b": [null]}}',
    # range of numbers
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "123456789012345678901234567890", "1e400", "-1e400", "1e-400", "1.7976931348623157e308", "1.7976931348623159e308",
    "2.2250738585072011e-308", "4.9e-324", "2.4703282292062328e-324", "2.4703282292062327e-324",
    "0.1000000000000000055511151231257827021181583404541015625", "9007199254740993", "9007199254740993.0",
    "1" * 4300, "-" + "1" * 4300, "1" * 4301, "1" * 4400 + ".5", "0." + "1" * 5000, "1e" + "9" * 30,
    "1" * 4000 + "e5", "1" * 4000 + "e-4000", "1" * 4301 + "e-4301", "0." + "0" * 5000 + "1", "-" + "9" * 4300 + ".0",
    # non-finite spellings: only these three are accepted
    "NaN", "Infinity", "-Infinity", "-NaN", "+Infinity", "nan", "inf", "-inf", "Infinite", "NaNa", "[NaN, Infinity]",
    # malformed numbers
    "01", "-01", "1.", ".5", "-", "+1", "1e", "1e+", "0x10", "1_0", "1.e5", "- 1", "[-]", "00",
    # strings: escapes, surrogates, control characters
    r'"\/"', r'"\b\f\n\r\t"', r'"\u00e9"', r'"\u00E9"', r'"\U00e9"', r'"\x41"', r'"\a"', r'"\u12"', r'"\u12G4"',
    r'"\ud800"', r'"\udc00"', r'"\ud800\u0041"', r'"\ud83d\ude00"', r'"\ude00\ud83d"', r'"\ud800\ud800"', r'"\ud800\"',
    r'{"\ud800": 1}', '"\x00"', '"\x01"', '"a\x1fb"', '"\t"', '"\n"', '"\x7f"', '"\u2028"', '"\U0001f600"', '"é"',
    "'a'", '"unterminated', '"\\', '"\\"',
    # whitespace: only ' \t\n\r'
    " \t\n\r1 \t\n\r", "\x0c1", "\x0b1", "\u00a01", "1\u2028", "1\u3000", "\ufeff[1]", "[1,\x0c2]",
    # structure
    '{"a": 1, "a": 2, "b": 3}', '{"b": 1, "a": 2, "b": 3}', '{"a": 1, "a": {"x": 1}, "a": [2]}',
    "[1,]", '{"a":1,}', "[1 2]", '{"a" 1}', "{1: 2}", "[", "]", "{", '{"a"', "[1]]", "1 2", "", " ", "\n",
    "True", "None", "tru", "nul", "[true false]", "[1,,2]", '{"a":1 "b":2}', '{,"a":1}',
    # nesting: the fast path stops at 200 levels, the stdlib goes deeper
    "[" * 199 + "]" * 199, "[" * 200 + "]" * 200, "[" * 201 + "]" * 201, "[" * 500 + "]" * 500,
    '{"a":' * 250 + "1" + "}" * 250,
]

EDGE_BYTES = [
    b"[1, 2]", b'{"a": "\xc3\xa9"}', b"\xef\xbb\xbf[1]", b"\xef\xbb\xbf\xef\xbb\xbf1", b"\xef\xbb\xbf", b'"\xff"',
    b'"\xed\xa0\x80"', b'"\xc3"', b'"\xf4\x90\x80\x80"', b'"\xc0\xaf"', b"[1]\x00", b"\x00\x00\x00[", b"  1",
    b"1\x00", b"\x001", b"[\x001\x00]\x00", b"\xff\xfe[\x001\x00]\x00", b"\xfe\xff\x00[\x001\x00]",
    "[1, \u00e9]".encode("utf-16"), '["\u00e9"]'.encode("utf-16-le"), '["\u00e9"]'.encode("utf-16-be"),
    '{"k": [1.5]}'.encode("utf-32"), '{"k": [1.5]}'.encode("utf-32-le"), '{"k": [1.5]}'.encode("utf-32-be"),
    b"", b"\x80", b"1\x80",
]
# fmt: on


@pytest.mark.parametrize("data", EDGE_TEXT, ids=range(len(EDGE_TEXT)))
def test_text_edges_match_stdlib(kernels: ModuleType, data: str) -> None:
    same_as_stdlib(kernels, data)


@pytest.mark.parametrize("data", EDGE_TEXT, ids=range(len(EDGE_TEXT)))
def test_utf8_bytes_and_bytearray_edges_match_stdlib(kernels: ModuleType, data: str) -> None:
    encoded = data.encode("utf-8", "surrogatepass")
    same_as_stdlib(kernels, encoded)
    same_as_stdlib(kernels, bytearray(encoded))


@pytest.mark.parametrize("data", EDGE_BYTES, ids=range(len(EDGE_BYTES)))
def test_byte_edges_match_stdlib(kernels: ModuleType, data: bytes) -> None:
    same_as_stdlib(kernels, data)
    same_as_stdlib(kernels, bytearray(data))


def test_str_with_lone_surrogate_characters(kernels: ModuleType) -> None:
    # Not escapes: the str itself holds a lone surrogate (it has no UTF-8 form).
    assert same_as_stdlib(kernels, '"\ud800"') == ("returned", [("str", "\ud800")])
    assert same_as_stdlib(kernels, '{"\udfff": "\ud800x"}')[0] == "returned"
    assert same_as_stdlib(kernels, '["\ud800", 1,]')[0] == "raised"


def test_duplicate_keys_take_the_last_value_in_the_first_position(kernels: ModuleType) -> None:
    result = kernels.json_loads('{"b": 1, "a": 2, "b": 3}')
    assert list(result.items()) == [("b", 3), ("a", 2)]


def test_numbers_keep_their_types(kernels: ModuleType) -> None:
    result = kernels.json_loads("[1, 1.0, -0, -0.0, 1e2, 10000000000000000000000, NaN, -Infinity]")
    assert [type(x) for x in result] == [int, float, int, float, float, int, float, float]
    assert math.copysign(1.0, result[3]) == -1.0
    assert result[2] == 0 and result[5] == 10**22
    assert math.isnan(result[6]) and result[7] == -math.inf


def test_decode_error_details(kernels: ModuleType) -> None:
    text = '{"a": [1, 2,\n  ]}'
    # The running Python's stdlib is the referee: its wording changes between versions (3.13 names the comma).
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as info:
        kernels.json_loads(text)
    assert type(info.value) is json.JSONDecodeError
    assert (info.value.msg, info.value.lineno, info.value.colno, info.value.pos) == (
        expected.value.msg,
        expected.value.lineno,
        expected.value.colno,
        expected.value.pos,
    )
    assert info.value.doc == text


@pytest.mark.parametrize("data", [memoryview(b"1"), 1, 1.5, None, ["1"], object()])
def test_wrong_types_raise_the_stdlib_type_error(kernels: ModuleType, data: Any) -> None:
    ours = same_as_stdlib(kernels, data)
    assert ours[1] is TypeError
    assert ours[2] == f"the JSON object must be str, bytes or bytearray, not {type(data).__name__}"


def test_str_and_bytes_subclasses(kernels: ModuleType) -> None:
    class Text(str):
        pass

    class Data(bytes):
        pass

    assert kernels.json_loads(Text('{"a": [1]}')) == {"a": [1]}
    assert kernels.json_loads(Data(b'{"a": [1]}')) == {"a": [1]}
    same_as_stdlib(kernels, Text("[1,"))


def test_invalid_utf8_raises_unicode_decode_error(kernels: ModuleType) -> None:
    with pytest.raises(UnicodeDecodeError):
        kernels.json_loads(b'["ok", "\xff"]')


@pytest.fixture
def int_digits() -> Iterator[None]:
    previous = sys.get_int_max_str_digits()
    yield
    sys.set_int_max_str_digits(previous)


@pytest.mark.usefixtures("int_digits")
@pytest.mark.parametrize("limit", [0, 640, 1000, 4300, 5000])
def test_int_digit_limit_follows_sys_setting(kernels: ModuleType, limit: int) -> None:
    sys.set_int_max_str_digits(limit)
    for digits in (639, 640, 641, 999, 1000, 1001, 4300, 4301, 5000, 5001):
        same_as_stdlib(kernels, "1" * digits)
        same_as_stdlib(kernels, "[-" + "9" * digits + "]")
        same_as_stdlib(kernels, ('{"k": "' + "1" * digits + '"}').encode())  # digits in a string are no int
        same_as_stdlib(kernels, "1" * digits + ".5")


def test_very_deep_nesting_is_the_stdlib_recursion_error(kernels: ModuleType) -> None:
    data = "[" * 100_000 + "]" * 100_000
    ours = same_as_stdlib(kernels, data)
    assert ours[1] is RecursionError


def test_large_document_round_trips(kernels: ModuleType) -> None:
    doc = {
        "data": [
            {"id": i, "name": f"item {i}", "price": i * 1.25, "tags": ["a", "b"][: i % 3], "ok": i % 2 == 0, "x": None}
            for i in range(2000)
        ],
        "next": "https://api.example.com/items?page=2",
    }
    text = json.dumps(doc)
    assert kernels.json_loads(text) == doc
    assert kernels.json_loads(text.encode()) == doc


# --------------------------------------------------------------------------------------------------------------------
# The paths of the native fast path: string widths and lengths around its word size, escapes between runs, keys in
# and out of its key cache. Every case must still come out as the stdlib's.
# --------------------------------------------------------------------------------------------------------------------
_PIECES = [
    "a",
    "é",
    "ÿ",
    "Ā",
    "Ω",
    "東",
    "\U0001f600",
    '\\"',
    "\\\\",
    "\\n",
    "\\u00e9",
    "\\u6771",
    "\\ud83d\\ude00",
    " ",
]


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 15, 16, 17, 47, 48, 49, 63, 64, 65, 200])
@pytest.mark.parametrize("piece", _PIECES)
def test_strings_of_every_width_and_length(kernels: ModuleType, length: int, piece: str) -> None:
    body = "x" * length + piece + "y" * (length % 5)
    text = '{"%s": "%s", "k%s": ["%s"]}' % (body, body, body, body)  # noqa: UP031 - JSON braces
    same_as_stdlib(kernels, text)
    same_as_stdlib(kernels, text.encode())
    same_as_stdlib(kernels, text[:-3])  # cut inside the last string


def test_many_distinct_keys_and_repeats_across_calls(kernels: ModuleType) -> None:
    # More distinct keys than the cache has slots, then the same documents again: hits, misses and evictions all
    # give the stdlib's keys (same text, same order) and values.
    docs = [json.dumps({f"key{i}_{j}": i * j for j in range(50)}) for i in range(120)]
    for _ in range(2):
        for doc in docs:
            same_as_stdlib(kernels, doc)
            same_as_stdlib(kernels, doc.encode())


def test_keys_of_every_kind(kernels: ModuleType) -> None:
    keys = ["", "a", "id", "x" * 64, "x" * 65, "é", "k\\u00e9", "a\\nb", "\\u0041", "日本", "a" * 300]
    text = "{" + ", ".join(f'"{key}": {n}' for n, key in enumerate(keys)) + "}"
    for _ in range(3):
        same_as_stdlib(kernels, text)


@pytest.mark.parametrize("length", range(18))
def test_short_keys_at_every_length_and_position(kernels: ModuleType, length: int) -> None:
    # Keys up to 15 bytes are read as two words when 16 bytes follow the quote: every length around that, with an
    # escape, a non-ASCII or control character at every position, keys equal but for their last byte, and the same
    # keys at the end of the text (where fewer than 16 bytes follow) and again from the cache.
    keys = ["k" * length, "k" * length + "x", "x" + "k" * length]
    for at in range(length + 1):
        for piece in ("\\n", "\\u0041", "\\u00e9", '\\"', "\u00e9", "\u6771", "\x01", "\x1f", "\x7f", " "):
            keys.append("k" * at + piece + "k" * (length - at))
    for key in keys:
        for text in (f'{{"{key}": 1, "{key}x": 2, "{key}": 3}}', f'[{{"{key}": [1]}}, {{"{key}":2}}]' + " " * 20):
            same_as_stdlib(kernels, text)
            same_as_stdlib(kernels, text.encode())
            same_as_stdlib(kernels, text[: len(text) // 2])


def test_values_after_a_failed_parse_are_not_leaked_or_shared(kernels: ModuleType) -> None:
    # A document the fast path abandons late (after building most of it) is the stdlib's, and the next one is fine.
    doc = '{"a": [1, 2, {"b": "c"}], "d": "e", "f": [NaN, 1e400, -Infinity], "g": [1, 2,]}'
    same_as_stdlib(kernels, doc)
    same_as_stdlib(kernels, doc.replace(",]", "]"))


# --------------------------------------------------------------------------------------------------------------------
# Documents of a few KB and more, where most keys and strings are read from the middle of the text (the native
# decoder reads short keys as whole words when 16 bytes follow) and wide ints sit at every offset. Every edge must
# still come out as the stdlib's.
# --------------------------------------------------------------------------------------------------------------------
LARGE_SIZE = 8 * 1024


def padded(data: str, size: int = LARGE_SIZE) -> str:
    """The same document (or the same error) at ``size`` characters: JSON whitespace after the value."""
    return data + " " * max(0, size - len(data))


def large_array(*values: str, offset: int = 0) -> str:
    """An array of ``values`` after ``offset`` bytes of string and a few KB of small numbers and text."""
    filler = ", ".join(f'{{"n": {i}, "s": "item {i}", "f": {i}.25}}' for i in range(200))
    return '["' + "a" * offset + '", ' + ", ".join(values) + ", " + filler + "]"


@pytest.mark.parametrize("data", EDGE_TEXT, ids=range(len(EDGE_TEXT)))
def test_text_edges_in_large_documents_match_stdlib(kernels: ModuleType, data: str) -> None:
    for form in (padded(data), "[" + padded(data) + "]", padded(data) + "x"):
        same_as_stdlib(kernels, form)
        same_as_stdlib(kernels, form.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("data", EDGE_BYTES, ids=range(len(EDGE_BYTES)))
def test_byte_edges_in_large_documents_match_stdlib(kernels: ModuleType, data: bytes) -> None:
    same_as_stdlib(kernels, data + b" " * LARGE_SIZE)
    same_as_stdlib(kernels, bytearray(data + b" " * LARGE_SIZE))


_WIDE_INTS = [
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "-18446744073709551616",
    "1000000000000000000",
    "9999999999999999999",
    "-9999999999999999999",
    "123456789012345678901234567890",
    "1" * 400,
]


@pytest.mark.parametrize("offset", range(0, 40, 3))
def test_wide_ints_anywhere_in_large_documents_stay_ints(kernels: ModuleType, offset: int) -> None:
    # orjson alone would give floats for the ones beyond 64 bits (the twin decodes with it); the digit run starts at
    # every offset modulo 19.
    for value in _WIDE_INTS:
        text = large_array(value, offset=offset)
        for form in (text, text.encode()):
            result = same_as_stdlib(kernels, form)
            assert result[1][2] == ("int", int(value))
    # All together, and next to a value orjson refuses (the stdlib takes NaN).
    same_as_stdlib(kernels, large_array(*_WIDE_INTS, offset=offset))
    same_as_stdlib(kernels, large_array(*_WIDE_INTS, "NaN", offset=offset))


def test_long_digit_runs_in_strings_of_large_documents(kernels: ModuleType) -> None:
    # False alarms for the twin's wide-int check: the documents take the slower path, with the same answers.
    for digits in (18, 19, 20, 64):
        same_as_stdlib(kernels, large_array(f'"{"7" * digits}"', f'"id-{"1" * digits}"', "1.5e-3"))
        same_as_stdlib(kernels, large_array(f'{{"{"7" * digits}": {"8" * 18}}}').encode())


@pytest.mark.parametrize("enabled", [True, False])
def test_decoding_keeps_the_gc_setting(kernels: ModuleType, enabled: bool) -> None:
    # The native decoder pauses the cyclic GC while it builds a document; whatever the path (its own parser, a
    # refusal, the stdlib's answer or error), the setting afterwards is the caller's.
    import gc

    was_enabled = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        for doc in (
            "[1, 2]",
            large_array("1"),
            large_array("NaN"),
            large_array("1,"),
            "[1,",
            large_array(_WIDE_INTS[4]),
        ):
            for form in (doc, doc.encode(), bytearray(doc.encode())):
                outcome(kernels.json_loads, form)
                assert gc.isenabled() is enabled
    finally:
        (gc.enable if was_enabled else gc.disable)()


@pytest.mark.native
@pytest.mark.parametrize("items", [20_000, 200_000])
def test_native_decode_runs_no_collection_inside(items: int) -> None:
    # A document of tens of thousands of containers would trigger many collections during the parse, each
    # traversing every young object made so far; the native decoder pauses the GC, so none starts inside the call.
    import gc

    native = pytest.importorskip("aiorequestful._native")
    doc = json.dumps([{"id": i, "tags": ["a", "b"]} for i in range(items)]).encode()
    phases: list[str] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        phases.append(phase)

    was_enabled = gc.isenabled()
    gc.enable()
    gc.callbacks.append(record)
    try:
        gc.collect()
        phases.clear()
        result = native.json_loads(doc)
        during = len(phases)
    finally:
        gc.callbacks.remove(record)
        if not was_enabled:
            gc.disable()
    assert during == 0
    assert len(result) == items and result[-1] == {"id": items - 1, "tags": ["a", "b"]}


# --------------------------------------------------------------------------------------------------------------------
# Generated documents: numbers in every spelling (the native decoder computes short decimals itself and leaves
# longer ones to a general parser), text of every width, alone and inside a larger document.
# --------------------------------------------------------------------------------------------------------------------
_HYPOTHESIS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_number_text = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.tuples(st.integers(0, 10**20), st.integers(0, 10**20), st.integers(-400, 400)).map(
        lambda t: f"{t[0]}.{t[1]}e{t[2]:+d}"
    ),
    st.tuples(st.integers(-(10**17), 10**17), st.integers(0, 30)).map(lambda t: f"{t[0]}.{'0' * t[1]}5"),
    st.tuples(st.integers(0, 2**53 + 10), st.integers(-25, 25)).map(lambda t: f"{t[0]}E{t[1]}"),
    st.integers(-(2**70), 2**70).map(str),
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=40,
)


@_HYPOTHESIS
@given(numbers=st.lists(_number_text, min_size=1, max_size=20))
def test_generated_numbers_match_stdlib(kernels: ModuleType, numbers: list[str]) -> None:
    for number in numbers:
        same_as_stdlib(kernels, number)
        same_as_stdlib(kernels, "-" + number.lstrip("-"))
    same_as_stdlib(kernels, large_array(*numbers))


@_HYPOTHESIS
@given(value=_json_values, ensure_ascii=st.booleans(), large=st.booleans())
def test_generated_documents_match_stdlib(kernels: ModuleType, value: Any, ensure_ascii: bool, large: bool) -> None:
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    if large:
        text = large_array(text)
    for form in (text, text.encode("utf-8", "surrogatepass"), text[:-1]):
        same_as_stdlib(kernels, form)


@_HYPOTHESIS
@given(body=st.binary(max_size=40), large=st.booleans(), pad=st.sampled_from([0, 7, 60]))
def test_generated_bytes_in_strings_match_stdlib(kernels: ModuleType, body: bytes, large: bool, pad: int) -> None:
    # Arbitrary bytes inside a string: valid UTF-8 of every width, and every kind of invalid sequence (stray
    # continuation bytes, overlong forms, surrogates, beyond U+10FFFF, cut short), next to non-ASCII text, in
    # strings short and long.
    body = b"x" * pad + body + "é東".encode() * (pad // 7) + b"y" * pad
    for text in (
        b'["' + body + b'"]',
        b'{"' + body + b'": "\\u00e9\\u6771' + body + b'"}',
        b'["\xc3\xa9' + body + b'"]',
    ):
        same_as_stdlib(kernels, large_array(text.decode("latin-1")).encode("latin-1") if large else text)


# --------------------------------------------------------------------------------------------------------------------
# The pure twin decodes with orjson where it is installed and falls back to the stdlib wherever orjson would differ.
# --------------------------------------------------------------------------------------------------------------------
def test_twin_decodes_with_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiorequestful import _native_py

    calls: list[Any] = []
    orjson_loads = _native_py._orjson_loads
    assert orjson_loads is not None

    def spy(data: Any) -> Any:
        calls.append(data)
        return orjson_loads(data)

    monkeypatch.setattr(_native_py, "_orjson_loads", spy)
    assert _native_py.json_loads(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    assert _native_py.json_loads('{"a": null}') == {"a": None}
    assert len(calls) == 2


@pytest.mark.parametrize(
    "data",
    [
        "123456789012345678901234567890",
        "[-9223372036854775809, 18446744073709551616, 9223372036854775807]",
        '{"n": 1234567890123456789012}',
        " \n 99999999999999999999",
        '["id 1234567890123456789012", 1]',  # a false alarm inside a string: still the stdlib's answer
        "[NaN, Infinity, -Infinity, 1e400, -1e400]",
        '"\\ud800"',
        "\ufeff[1]",
    ],
)
def test_twin_takes_the_stdlib_answer_where_orjson_differs(data: str) -> None:
    from aiorequestful import _native_py

    for form in (data, data.encode("utf-8", "surrogatepass")):
        assert outcome(_native_py.json_loads, form) == outcome(json.loads, form)


def test_twin_keeps_wide_ints_as_ints() -> None:
    # orjson alone would give floats for these.
    from aiorequestful import _native_py

    values = _native_py.json_loads("[-9223372036854775809, 18446744073709551616, 123456789012345678901234567890]")
    assert values == [-9223372036854775809, 18446744073709551616, 123456789012345678901234567890]
    assert all(type(value) is int for value in values)


@pytest.mark.parametrize("data", EDGE_TEXT[::3], ids=range(len(EDGE_TEXT[::3])))
def test_twin_without_orjson_is_the_stdlib(monkeypatch: pytest.MonkeyPatch, data: str) -> None:
    from aiorequestful import _native_py

    monkeypatch.setattr(_native_py, "_orjson_loads", None)
    assert outcome(_native_py.json_loads, data) == outcome(json.loads, data)


def test_twin_imports_and_decodes_where_orjson_is_missing() -> None:
    import subprocess

    code = (
        "import sys; sys.modules['orjson'] = None\n"  # makes `import orjson` raise ImportError
        "from aiorequestful import _native_py as t\n"
        "assert t._orjson_loads is None\n"
        "assert t.json_loads(b'[1, NaN, 123456789012345678901234567890]')[2] == 123456789012345678901234567890\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "ok", done.stderr
