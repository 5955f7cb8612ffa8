# SPDX-License-Identifier: MIT
"""parse_retry_after: delay-seconds and HTTP-dates (RFC 9110 §10.2.3, §5.6.7)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from aiorequestful.response._retry_after import parse_retry_after

NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC).timestamp()


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


@pytest.mark.parametrize("value", [None, "", "   ", "\t\r\n"])
def test_no_value(value: str | None) -> None:
    assert parse_retry_after(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("\t30\r\n", 30.0),
        ("007", 7.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        (".5", 0.5),
        ("2.", 2.0),
        ("+3", 3.0),
        ("-5", 0.0),
        ("-0.5", 0.0),
        ("-0", 0.0),
    ],
)
def test_delay_seconds(value: str, expected: float) -> None:
    result = parse_retry_after(value)
    assert result == expected and isinstance(result, float)


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "1e5",
        "5 seconds",
        "1,5",
        "12abc",
        "NaN",
        "inf",
        "-inf",
        "0x10",
        "--5",
        "1.2.3",
        "\u0661\u0662\u0663",  # Arabic-Indic digits: float() accepts them, RFC 9110's DIGIT does not
        "Sun, 06 Nov",
        "Sun, 31 Feb 2026 08:49:37 GMT",
        "Sun, 06 Nov 2026 25:49:37 GMT",
        "Sun, 06 Nov 99999 08:49:37 GMT",
        "Sunday, 06-Xyz-26 08:49:37 GMT",
        "Sunday, 31-Feb-26 08:49:37 GMT",
        "tomorrow",
        "x" * 10_000,
        "Sun, 06 Nov 2026 08:49:37 GMT" + " " * 100 + "junk",
    ],
)
def test_garbage_is_none(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_huge_digit_strings_neither_hang_nor_overflow() -> None:
    started = time.perf_counter()
    assert parse_retry_after("9" * 1_000_000) == math.inf
    assert parse_retry_after("1" + "0" * 400) == math.inf
    assert parse_retry_after("-" + "9" * 100_000) == 0.0
    assert parse_retry_after("9" * 300) == float("9" * 300)
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("value", [b"120", 120, 1.5, ["120"]])
def test_non_text_is_a_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match="Retry-After value must be a str or None"):
        parse_retry_after(value)


def test_imf_fixdate_in_the_future() -> None:
    moment = datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=90)
    assert parse_retry_after(http_date(moment), now=NOW) == 90.0
    assert parse_retry_after("Fri, 14 Mar 2025 12:01:30 GMT", now=NOW) == 90.0
    assert parse_retry_after("  Fri, 14 Mar 2025 12:01:30 GMT  ", now=NOW) == 90.0


def test_fractional_now() -> None:
    assert parse_retry_after("Fri, 14 Mar 2025 12:01:30 GMT", now=NOW + 0.25) == 89.75


def test_past_date_is_zero() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=NOW) == 0.0
    assert parse_retry_after("Fri, 14 Mar 2025 12:00:00 GMT", now=NOW) == 0.0


def test_asctime_is_utc() -> None:
    assert parse_retry_after("Fri Mar 14 12:02:00 2025", now=NOW) == 120.0
    assert parse_retry_after("Sun Nov  6 08:49:37 1994", now=NOW) == 0.0


def test_rfc850_two_digit_years_follow_rfc_9110() -> None:
    assert parse_retry_after("Friday, 14-Mar-25 12:00:10 GMT", now=NOW) == 10.0
    assert parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now=NOW) == 0.0  # 1994, not 2094
    # A year more than 50 years ahead means the previous century; up to 50 years ahead stays in this one.
    in_2030 = datetime(2030, 11, 6, 8, 49, 37, tzinfo=UTC).timestamp()
    assert parse_retry_after("Wednesday, 06-Nov-30 08:49:37 GMT", now=NOW) == in_2030 - NOW
    nineties = datetime(1990, 1, 1, tzinfo=UTC).timestamp()
    in_1994 = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC).timestamp()
    assert parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now=nineties) == in_1994 - nineties
    assert parse_retry_after("sunday, 06-nov-94 08:49:37 gmt", now=nineties) == in_1994 - nineties


def test_dates_with_an_offset_or_no_zone() -> None:
    # Not valid HTTP-dates, but what lenient servers send: an offset is honoured, no zone means UTC.
    assert parse_retry_after("Fri, 14 Mar 2025 14:01:00 +0200", now=NOW) == 60.0
    assert parse_retry_after("Fri, 14 Mar 2025 12:01:00", now=NOW) == 60.0


def test_default_now_is_the_current_time() -> None:
    moment = datetime.now(UTC) + timedelta(seconds=100)
    result = parse_retry_after(http_date(moment))
    assert result is not None and 90 <= result <= 101
