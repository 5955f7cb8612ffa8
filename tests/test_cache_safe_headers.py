# SPDX-License-Identifier: MIT
"""Stored headers: secrets and hop-by-hop names are dropped whatever their case (RFC 9110 §5.1)."""

from __future__ import annotations

import pytest

from aiorequestful.cache._entry import decode_headers, encode_headers, safe_headers


@pytest.mark.parametrize(
    "name",
    ["Authorization", "authorization", "AUTHORIZATION", "set-cookie", "SET-COOKIE", "cookie", "www-authenticate"],
)
def test_secret_headers_are_dropped_in_any_case(name: str) -> None:
    assert safe_headers([(name, "secret"), ("Content-Type", "application/json")]) == [
        ("Content-Type", "application/json")
    ]


def test_connection_listed_names_are_dropped_in_any_case() -> None:
    pairs = [("connection", "X-Hop, keep-alive"), ("x-hop", "1"), ("Keep-Alive", "timeout=5"), ("X-Other", "2")]
    assert safe_headers(pairs) == [("X-Other", "2")]


def test_decode_reapplies_the_filter_and_keeps_order() -> None:
    text = encode_headers([("x-a", "1"), ("authorization", "Bearer t"), ("X-B", "2"), ("x-a", "3")])
    assert decode_headers(text) == [("x-a", "1"), ("X-B", "2"), ("x-a", "3")]


@pytest.mark.parametrize("text", ["{", "{}", '[["a"]]', '[["a b", "1"]]', '[["a", "x\\ny"]]', "[1]"])
def test_decode_rejects_what_is_not_a_header_list(text: str) -> None:
    with pytest.raises(ValueError):
        decode_headers(text)


def test_now_stamp_is_format_stamp_of_now() -> None:
    from datetime import UTC, datetime, timedelta

    from aiorequestful.cache._entry import format_stamp, now_stamp

    before = format_stamp(datetime.now(UTC))
    stamp = now_stamp()
    after = format_stamp(datetime.now(UTC) + timedelta(microseconds=1))
    assert len(stamp) == len(before) and stamp.endswith("+00:00")
    assert before <= stamp <= after  # same fixed-width form: text order is time order
    parsed = datetime.fromisoformat(stamp)
    assert format_stamp(parsed) == stamp
