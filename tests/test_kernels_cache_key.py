# SPDX-License-Identifier: MIT
"""``cache_key``: the documented serialisation, stability, normalisation and every error (both backends)."""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest


def raises_exactly(exc_type: type[BaseException], message: str, fn: Any, *args: Any) -> None:
    with pytest.raises(exc_type) as info:
        fn(*args)
    assert info.type is exc_type, f"{info.type.__name__} is not {exc_type.__name__}"
    assert str(info.value) == message


def spelled_out(*fields: tuple[bytes, bytes]) -> str:
    """The key written out by hand: tag byte, u64 little-endian length, payload; SHA-256 hex."""
    data = b"".join(tag + struct.pack("<Q", len(payload)) + payload for tag, payload in fields)
    return hashlib.sha256(data).hexdigest()


def test_serialisation_is_tag_length_payload(kernels: ModuleType) -> None:
    got = kernels.cache_key(
        "get",
        "https://api.example.com/v1/items",
        [("b", "2"), ("a", "9"), ("a", "10")],
        [None, True, False, -12, "caf\u00e9", b"\x00\xff", bytearray(b"ab")],
    )
    expected = spelled_out(
        (b"m", b"GET"),
        (b"u", b"https://api.example.com/v1/items"),
        (b"k", b"a"),
        (b"v", b"10"),
        (b"k", b"a"),
        (b"v", b"9"),
        (b"k", b"b"),
        (b"v", b"2"),
        (b"n", b""),
        (b"t", b""),
        (b"f", b""),
        (b"i", b"-12"),
        (b"s", "caf\u00e9".encode()),
        (b"b", b"\x00\xff"),
        (b"b", b"ab"),
    )
    assert got == expected


def test_keys_are_stable_across_releases(kernels: ModuleType) -> None:
    # Keys are persisted in caches: this digest must never change (a change orphans every stored response).
    key = kernels.cache_key("GET", "https://api.example.com/v1/items", [("page", "2")], ["user-digest", 7])
    assert key == "03f7494ea7ec04a0b946754a920cf733d5a91923f180c6825f65ca8229477ca0"


def test_defaults_and_shape(kernels: ModuleType) -> None:
    key = kernels.cache_key("GET", "http://x/")
    assert key == spelled_out((b"m", b"GET"), (b"u", b"http://x/"))
    assert key == kernels.cache_key("GET", "http://x/", (), ())
    assert len(key) == 64
    assert key == key.lower()
    int(key, 16)


def test_method_is_upper_cased_with_python_case_rules(kernels: ModuleType) -> None:
    assert kernels.cache_key("post", "u") == kernels.cache_key("POST", "u")
    # Full Unicode upper-casing (str.upper): "ß" becomes "SS", "ﬁ" becomes "FI".
    assert kernels.cache_key("stra\u00dfe", "u") == spelled_out((b"m", b"STRASSE"), (b"u", b"u"))
    assert kernels.cache_key("\ufb01", "u") == spelled_out((b"m", b"FI"), (b"u", b"u"))
    # The URL is not normalised here (the caller passes it normalised, without its query).
    assert kernels.cache_key("GET", "HTTP://X/") != kernels.cache_key("GET", "http://x/")


def test_query_order_never_matters(kernels: ModuleType) -> None:
    pairs = [("z", "1"), ("a", "2"), ("a", "1"), ("\u00e9", ""), ("\U0001f600", "x"), ("\ufffd", "y")]
    reference = kernels.cache_key("GET", "u", pairs)
    assert kernels.cache_key("GET", "u", list(reversed(pairs))) == reference
    assert kernels.cache_key("GET", "u", iter(sorted(pairs))) == reference
    # Sorted by code point (= UTF-8 bytes): U+FFFD before U+1F600, unlike UTF-16 order.
    assert kernels.cache_key("GET", "u", [("\U0001f600", ""), ("\ufffd", "")]) == spelled_out(
        (b"m", b"GET"),
        (b"u", b"u"),
        (b"k", "\ufffd".encode()),
        (b"v", b""),
        (b"k", "\U0001f600".encode()),
        (b"v", b""),
    )
    # Repeated keys keep every value.
    assert kernels.cache_key("GET", "u", [("a", "1"), ("a", "1")]) != kernels.cache_key("GET", "u", [("a", "1")])


def test_parts_order_and_types_matter(kernels: ModuleType) -> None:
    keys = {
        kernels.cache_key("GET", "u", (), parts)
        for parts in (["x", "y"], ["y", "x"], ["1"], [1], [b"1"], [True], [1.0 == 1], [None], [False], [0], [""], [b""])
    }
    # [True] and [1.0 == 1] are the same part; every other list is distinct.
    assert len(keys) == 11
    # Field lengths keep neighbours apart.
    assert kernels.cache_key("GET", "u", (), ["ab", "c"]) != kernels.cache_key("GET", "u", (), ["a", "bc"])
    assert kernels.cache_key("GET", "u", [("a", "b")]) != kernels.cache_key("GET", "u", (), ["a", "b"])


def test_big_ints_and_bytearray(kernels: ModuleType) -> None:
    big = 10**50
    assert kernels.cache_key("GET", "u", (), [big]) == spelled_out(
        (b"m", b"GET"), (b"u", b"u"), (b"i", str(big).encode())
    )
    assert kernels.cache_key("GET", "u", (), [-(2**63) - 1]) == spelled_out(
        (b"m", b"GET"), (b"u", b"u"), (b"i", str(-(2**63) - 1).encode())
    )
    assert kernels.cache_key("GET", "u", (), [bytearray(b"xy")]) == kernels.cache_key("GET", "u", (), [b"xy"])
    with pytest.raises(ValueError, match="Exceeds the limit"):  # str(int) refuses > 4300 digits; so do we
        kernels.cache_key("GET", "u", (), [10**5000])


def test_lone_surrogates_hash_deterministically(kernels: ModuleType) -> None:
    key = kernels.cache_key("g\ud800", "http://x/\udfff", [("\ud83d", "v")], ["\udc00"])
    assert key == spelled_out(
        (b"m", "G\ud800".encode("utf-8", "surrogatepass")),
        (b"u", "http://x/\udfff".encode("utf-8", "surrogatepass")),
        (b"k", b"\xed\xa0\xbd"),
        (b"v", b"v"),
        (b"s", b"\xed\xb0\x80"),
    )


class Code(enum.IntEnum):
    OK = 200


class Text(str):
    def upper(self) -> str:  # an override never changes the key
        return "nope"


def test_subclasses_are_read_by_value(kernels: ModuleType) -> None:
    assert kernels.cache_key(Text("get"), Text("u"), [(Text("a"), Text("b"))], [Code.OK, Text("s")]) == (
        kernels.cache_key("GET", "u", [("a", "b")], [200, "s"])
    )


@pytest.mark.parametrize("method", [b"GET", None, 1])
def test_method_must_be_str(kernels: ModuleType, method: Any) -> None:
    raises_exactly(TypeError, f"method must be str, not {type(method).__name__}", kernels.cache_key, method, "u")


@pytest.mark.parametrize("url", [b"u", None, ["u"]])
def test_url_must_be_str(kernels: ModuleType, url: Any) -> None:
    raises_exactly(TypeError, f"url must be str, not {type(url).__name__}", kernels.cache_key, "GET", url)


def test_method_is_checked_before_url(kernels: ModuleType) -> None:
    raises_exactly(TypeError, "method must be str, not NoneType", kernels.cache_key, None, None)


@pytest.mark.parametrize("item", [["a", "b"], ("a",), ("a", "b", "c"), ("a", 1), (1, "a"), ("a", b"b"), "ab", None])
def test_bad_query_items(kernels: ModuleType, item: Any) -> None:
    raises_exactly(
        TypeError, "query items must be (str, str) tuples", kernels.cache_key, "GET", "u", [("x", "y"), item]
    )


@pytest.mark.parametrize("part", [1.5, [1], ("a",), memoryview(b"x"), object()])
def test_unsupported_parts(kernels: ModuleType, part: Any) -> None:
    raises_exactly(
        TypeError, f"Unsupported cache key part type: {type(part).__name__}", kernels.cache_key, "GET", "u", (), [part]
    )


def test_query_errors_come_before_part_errors(kernels: ModuleType) -> None:
    raises_exactly(TypeError, "query items must be (str, str) tuples", kernels.cache_key, "GET", "u", [1], [1.5])


def test_non_iterables(kernels: ModuleType) -> None:
    raises_exactly(TypeError, "'NoneType' object is not iterable", kernels.cache_key, "GET", "u", None)
    raises_exactly(TypeError, "'NoneType' object is not iterable", kernels.cache_key, "GET", "u", (), None)
    raises_exactly(TypeError, "'int' object is not iterable", kernels.cache_key, "GET", "u", 5)


def test_errors_from_iterables_propagate(kernels: ModuleType) -> None:
    def broken() -> Iterator[str]:
        yield "a"
        raise LookupError("boom")

    raises_exactly(LookupError, "boom", kernels.cache_key, "GET", "u", (), broken())


def test_signature(kernels: ModuleType) -> None:
    with pytest.raises(TypeError):
        kernels.cache_key("GET", url="u")
    with pytest.raises(TypeError):
        kernels.cache_key("GET", "u", query=[])
