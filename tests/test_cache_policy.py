# SPDX-License-Identifier: MIT
"""The network-free HTTP caching rules in ``aiorequestful.cache.policy``, checked against RFC 9111 (HTTP
Caching), RFC 9110 (HTTP-date) and RFC 5861 (stale-while-revalidate, stale-if-error) section by section.

Every time is given explicitly (request and response times, ``now``): nothing here reads the wall clock.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from datetime import timedelta
from email.utils import formatdate
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from aiorequestful.cache.policy import (
    HEURISTIC_STATUSES,
    Assessment,
    CachePolicy,
    StoredTimes,
    assess,
    conditional_headers,
    current_age,
    freshens_stored,
    freshness_lifetime,
    parse_cache_control,
    parse_delta_seconds,
    parse_http_date,
    refreshed_headers,
    row_lifetime,
    storability,
    vary_names,
)
from aiorequestful.security import is_secret_header

#: A fixed "now" for every test: 2026-01-01T00:00:00Z.
T0 = 1767225600.0


def http_date(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)


def lifetime_of(
    headers: list[tuple[str, str]],
    *,
    status: int = 200,
    shared: bool = False,
    policy: CachePolicy | None = None,
    fallback: float = 3600.0,
    response_time: float = T0,
) -> float:
    return freshness_lifetime(
        status,
        headers,
        shared=shared,
        policy=policy or CachePolicy(clock=lambda: T0),
        fallback=fallback,
        response_time=response_time,
    )


def judge(
    headers: list[tuple[str, str]],
    *,
    age: float,
    request: list[tuple[str, str]] | None = None,
    shared: bool = False,
    policy: CachePolicy | None = None,
    status: int = 200,
    vary: dict[str, str | None] | None = None,
) -> Assessment:
    """Assess a response received (instantly) at T0 and stored, ``age`` seconds later."""
    times = StoredTimes(T0, T0, vary or {})
    return assess(
        status,
        [("Date", http_date(T0)), *headers],
        times,
        request or [],
        policy=policy or CachePolicy(clock=lambda: T0),
        shared=shared,
        fallback=0.0,
        is_secret=is_secret_header,
        now=T0 + age,
    )


def store_reason(
    headers: list[tuple[str, str]],
    *,
    request: list[tuple[str, str]] | None = None,
    method: str = "GET",
    status: int = 200,
    shared: bool = False,
    policy_on: bool = True,
) -> str | None:
    return storability(method, status, request or [], headers, shared=shared, policy_on=policy_on)


# ----------------------------------------------------------------------------------------------------------------
# Cache-Control parsing (RFC 9111 section 5.2)
# ----------------------------------------------------------------------------------------------------------------
def test_cache_control_names_are_case_insensitive_and_arguments_keep_their_case() -> None:
    """RFC 9111 section 5.2: cache directives are identified by a token, compared case-insensitively."""
    parsed = parse_cache_control('Max-Age=60, NO-STORE, Private="X-User-Id"')
    assert parsed == {"max-age": "60", "no-store": None, "private": "X-User-Id"}


def test_cache_control_quoted_string_arguments_keep_their_commas_and_escapes() -> None:
    """RFC 9111 section 5.2 and 5.2.2.4: a quoted-string argument (the field list of a qualified no-cache) may
    hold commas; they do not split directives. A backslash escapes the next character (RFC 9110 section 5.6.4)."""
    parsed = parse_cache_control(r'no-cache="Set-Cookie, X-Trace", max-age=5, ext="a\"b, c"')
    assert parsed == {"no-cache": "Set-Cookie, X-Trace", "max-age": "5", "ext": 'a"b, c'}


def test_cache_control_token_and_quoted_forms_of_an_argument_are_equivalent() -> None:
    """RFC 9111 section 5.2: recipients ought to accept both the token and the quoted-string form of an
    argument, so max-age="5" is max-age=5."""
    assert parse_cache_control('max-age="5"') == parse_cache_control("max-age=5") == {"max-age": "5"}
    assert lifetime_of([("Cache-Control", 'max-age="120"')]) == 120.0


def test_cache_control_duplicate_directive_keeps_its_first_occurrence() -> None:
    """RFC 9111 section 4.2.1: for a directive given more than once, the first occurrence is used (or the
    response is stale); this parser keeps the first, across field lines too."""
    assert parse_cache_control("max-age=10, max-age=999") == {"max-age": "10"}
    assert parse_cache_control(["max-age=10", "MAX-AGE=999, public"]) == {"max-age": "10", "public": None}
    assert lifetime_of([("Cache-Control", "max-age=10"), ("Cache-Control", "max-age=999")]) == 10.0


def test_cache_control_several_field_lines_are_one_list() -> None:
    """RFC 9111 section 5.2 (a list-based field, RFC 9110 section 5.3): several field lines combine into one
    list, as if joined with commas."""
    assert parse_cache_control(["no-cache", "max-age=5 ,  must-revalidate"]) == parse_cache_control(
        "no-cache, max-age=5, must-revalidate"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        (",,, ,", {}),
        ("=5, =, max-age", {"max-age": None}),
        ("max-age==5", {"max-age": "=5"}),
        ('no-cache="unterminated, max-age=5', {"no-cache": '"unterminated, max-age=5'}),
        ("\x00\x7f, public", {"\x00\x7f": None, "public": None}),
    ],
)
def test_cache_control_garbage_is_ignored_not_raised(text: str, expected: dict[str, str | None]) -> None:
    """RFC 9111 section 5.2: a cache ignores directives it does not understand; malformed text yields what can
    be read and never an error (an unterminated quote swallows the rest of the line)."""
    assert parse_cache_control(text) == expected


def test_cache_control_garbage_arguments_make_a_response_stale() -> None:
    """RFC 9111 section 4.2.1: a response with invalid freshness information (max-age with a non-integer
    argument, or none) is considered stale."""
    for value in ("max-age=abc", "max-age", "max-age=-1", "max-age=1.5", "max-age==5"):
        assert lifetime_of([("Cache-Control", value)]) == 0.0, value


def test_cache_control_a_long_field_line_does_not_hide_a_later_no_store() -> None:
    """RFC 9111 section 5.2.2.5: a cache MUST NOT store a response with no-store. A long (but legal: aiohttp
    accepts lines up to 8190 bytes) first Cache-Control line must not make the parser skip a second line
    that says no-store: a line that still fits the 8 KiB bound is read, and a Cache-Control longer than the
    bound is not trusted for storing (its unread part may say no-store), with or without a policy."""
    fits = [("Cache-Control", "x" * 8000), ("Cache-Control", "no-store")]
    assert store_reason(fits) == "the response says Cache-Control: no-store"
    too_long = [("Cache-Control", "x" * 8190), ("Cache-Control", "no-store")]
    for policy_on in (True, False):
        assert store_reason(too_long, policy_on=policy_on) == "the response's Cache-Control is too long to read in full"
    request = [("Cache-Control", "max-age=5, " + "y" * 9000)]
    assert store_reason([], request=request) == "the request's Cache-Control is too long to read in full"


def test_cache_control_a_directive_cut_by_the_bound_is_dropped_not_guessed() -> None:
    """RFC 9111 section 1.2.2 and 5.2: only the first 8 KiB are read; a directive the bound cuts in two is
    dropped rather than read short (max-age=12 out of max-age=12345)."""
    line = "x" * 8180 + ", max-age=12345"
    assert parse_cache_control(line) == {"x" * 8180: None}
    assert parse_cache_control("no-store, " + "y" * 20000) == {"no-store": None}


def test_cache_control_many_unknown_directives_do_not_hide_known_ones() -> None:
    """RFC 9111 section 5.2.3: unknown extension directives are ignored; they are also bounded (64 kept), but
    the bound does not swallow a directive this cache acts on, such as no-store."""
    text = ", ".join(f"ext{n}" for n in range(100)) + ", no-store, max-age=5"
    parsed = parse_cache_control(text)
    assert "no-store" in parsed and parsed["max-age"] == "5"
    assert sum(1 for name in parsed if name.startswith("ext")) == 64


def test_cache_control_hostile_input_is_bounded() -> None:
    """RFC 9111 section 5.2: the parser reads at most 8 KiB whatever it is given, so a huge field costs little:
    it stops taking field lines from an endless supply once the budget is spent."""
    taken = 0

    def endless() -> Iterator[str]:
        nonlocal taken
        for n in itertools.count():
            taken += 1
            yield f"e{n}=1, " * 100_000

    parsed = parse_cache_control(endless())
    assert taken <= 2
    assert len(parsed) <= 64


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.lists(st.text(), max_size=5)))
def test_cache_control_parsing_never_raises(value: str | list[str]) -> None:
    """RFC 9111 section 5.2: any field text yields a dict of lower-case names to str-or-None arguments."""
    parsed = parse_cache_control(value)
    assert all(name == name.lower() and (arg is None or isinstance(arg, str)) for name, arg in parsed.items())


# ----------------------------------------------------------------------------------------------------------------
# delta-seconds (RFC 9111 section 1.2.2)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("60", 60),
        (" 60 ", 60),
        ("007", 7),
        ("", None),
        (None, None),
        ("-1", None),
        ("+5", None),
        ("1.5", None),
        ("1e3", None),
        ("0x10", None),
        ("\u0665", None),  # ARABIC-INDIC DIGIT FIVE: a digit, but not an ASCII DIGIT
        ("12 34", None),
    ],
)
def test_delta_seconds_is_a_non_negative_ascii_integer(text: str | None, expected: int | None) -> None:
    """RFC 9111 section 1.2.2: delta-seconds = 1*DIGIT (ASCII digits only); anything else is invalid."""
    assert parse_delta_seconds(text) == expected


def test_delta_seconds_too_large_is_two_to_the_31() -> None:
    """RFC 9111 section 1.2.2: a delta-seconds larger than the cache can represent is taken as 2**31."""
    assert parse_delta_seconds(str(2**31 - 1)) == 2**31 - 1
    assert parse_delta_seconds(str(2**31)) == 2**31
    assert parse_delta_seconds(str(2**31 + 1)) == 2**31
    assert parse_delta_seconds("9" * 5000) == 2**31  # past Python's int-from-text digit limit: no error
    assert lifetime_of([("Cache-Control", "max-age=" + "9" * 40)]) == float(2**31)


@given(st.integers(min_value=0, max_value=10**40))
def test_delta_seconds_property_integers(number: int) -> None:
    """RFC 9111 section 1.2.2: every decimal integer reads as itself, capped at 2**31."""
    assert parse_delta_seconds(str(number)) == min(number, 2**31)


@given(st.text(max_size=50))
def test_delta_seconds_property_never_raises(text: str) -> None:
    """RFC 9111 section 1.2.2: any text yields a value in 0..2**31 or None, never an error."""
    result = parse_delta_seconds(text)
    assert result is None or 0 <= result <= 2**31


# ----------------------------------------------------------------------------------------------------------------
# HTTP-date (RFC 9110 section 5.6.7)
# ----------------------------------------------------------------------------------------------------------------
SUNDAY = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT, the RFC's own example


@pytest.mark.parametrize(
    "text",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850 format
        "Sun Nov  6 08:49:37 1994",  # ANSI C's asctime() format
        "  Sun, 06 Nov 1994 08:49:37 GMT  ",
    ],
)
def test_http_date_accepts_all_three_formats(text: str) -> None:
    """RFC 9110 section 5.6.7: a recipient that parses a timestamp value MUST accept all three HTTP-date
    formats; the asctime form has no zone and is in UTC like every HTTP-date."""
    assert parse_http_date(text, now=T0) == SUNDAY


def test_http_date_rfc850_two_digit_year_within_fifty_years() -> None:
    """RFC 9110 section 5.6.7: an RFC 850 two-digit year that appears more than 50 years in the future is the
    most recent past year with those digits; otherwise it is the year in the coming 50."""
    now_2026 = T0
    assert parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT", now=now_2026) == parse_http_date(
        "Tue, 01 Jan 2070 00:00:00 GMT"
    )
    assert parse_http_date("Friday, 01-Jan-76 00:00:00 GMT", now=now_2026) == parse_http_date(
        "Wed, 01 Jan 2076 00:00:00 GMT"
    )
    assert parse_http_date("Saturday, 01-Jan-77 00:00:00 GMT", now=now_2026) == parse_http_date(
        "Sat, 01 Jan 1977 00:00:00 GMT"
    )
    assert parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT", now=0.0) == 0.0  # seen from 1970: 1970


def test_http_date_leap_second_is_accepted() -> None:
    """RFC 9110 section 5.6.7: second = 2DIGIT with 60 allowed (a leap second); it is the second after :59."""
    assert parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT") == parse_http_date("Sun, 01 Jan 2017 00:00:00 GMT")


def test_http_date_offsets_other_than_gmt_are_read_leniently() -> None:
    """RFC 9110 section 5.6.7: recipients are encouraged to be robust; an Internet Message Format date with a
    numeric zone is read at its offset."""
    assert parse_http_date("Sun, 06 Nov 1994 09:49:37 +0100") == SUNDAY


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "0",
        "-1",
        "yesterday",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Xyz 1994 08:49:37 GMT",
        "Sun, 06 Nov 99999 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT" + " " * 60,
        "\x00" * 10,
    ],
)
def test_http_date_invalid_is_none(text: str | None) -> None:
    """RFC 9110 section 5.6.7: a value that is not a valid date (impossible day, hour or second, unknown month,
    out-of-range year, overlong text) is invalid: None, never an error."""
    assert parse_http_date(text) is None


def test_http_date_two_digit_year_with_an_absurd_now() -> None:
    """RFC 9110 section 5.6.7: the two-digit year rule reads "now" (for a stored response, its stored receipt
    time, which a hostile row may make huge or negative); any such time gives a date or None, not an error."""
    rfc850 = "Sunday, 06-Nov-94 08:49:37 GMT"
    for now in (1e300, -1e300, 0.0, 253402300799.0):
        assert parse_http_date(rfc850, now=now) in (SUNDAY, parse_http_date("Thu, 06 Nov 9994 08:49:37 GMT"))
    times = StoredTimes(0.0, 1e300)
    assert current_age([("Date", rfc850)], times, 1e300) >= 0.0


@given(st.text(max_size=80))
def test_http_date_property_never_raises(text: str) -> None:
    """RFC 9110 section 5.6.7: any text yields a finite POSIX time or None."""
    result = parse_http_date(text, now=T0)
    assert result is None or math.isfinite(result)


@given(st.integers(min_value=0, max_value=253402300799))
def test_http_date_property_imf_fixdate_round_trip(seconds: int) -> None:
    """RFC 9110 section 5.6.7: every IMF-fixdate a sender generates reads back as the same second."""
    assert parse_http_date(http_date(seconds)) == float(seconds)


# ----------------------------------------------------------------------------------------------------------------
# freshness lifetime (RFC 9111 section 4.2.1) and heuristics (section 4.2.2)
# ----------------------------------------------------------------------------------------------------------------
def test_freshness_s_maxage_counts_only_in_a_shared_cache() -> None:
    """RFC 9111 section 4.2.1 and 5.2.2.10: a shared cache uses s-maxage before max-age; a private cache
    ignores s-maxage."""
    headers = [("Cache-Control", "max-age=60, s-maxage=600")]
    assert lifetime_of(headers, shared=True) == 600.0
    assert lifetime_of(headers, shared=False) == 60.0
    assert lifetime_of([("Cache-Control", "s-maxage=bad, max-age=60")], shared=True) == 0.0


def test_freshness_max_age_wins_over_expires() -> None:
    """RFC 9111 section 5.3: a recipient MUST ignore Expires when Cache-Control has max-age."""
    headers = [("Cache-Control", "max-age=30"), ("Date", http_date(T0)), ("Expires", http_date(T0 + 9999))]
    assert lifetime_of(headers) == 30.0


def test_freshness_is_expires_minus_date() -> None:
    """RFC 9111 section 4.2.1: freshness_lifetime = Expires - Date; without a Date, the time the response
    was received stands in for it (RFC 9110 section 6.6.1)."""
    assert lifetime_of([("Date", http_date(T0 - 100)), ("Expires", http_date(T0 + 200))]) == 300.0
    assert lifetime_of([("Expires", http_date(T0 + 200))], response_time=T0) == 200.0
    assert lifetime_of([("Date", http_date(T0)), ("Expires", http_date(T0 - 50))]) == 0.0  # in the past


@pytest.mark.parametrize("expires", ["0", "-1", "never", "", "Sun, 31 Feb 2027 00:00:00 GMT"])
def test_freshness_invalid_expires_is_already_expired(expires: str) -> None:
    """RFC 9111 section 5.3: a cache recipient MUST interpret invalid date formats, especially "0", as
    representing a time in the past (already expired)."""
    headers = [("Date", http_date(T0)), ("Expires", expires), ("Last-Modified", http_date(T0 - 86400 * 100))]
    assert lifetime_of(headers) == 0.0


def test_freshness_first_expires_of_several() -> None:
    """RFC 9111 section 4.2.1: with two Expires field lines, the first occurrence is used."""
    headers = [("Date", http_date(T0)), ("Expires", http_date(T0 + 10)), ("Expires", http_date(T0 + 1000))]
    assert lifetime_of(headers) == 10.0


def test_freshness_rfc850_and_asctime_expires() -> None:
    """RFC 9111 section 5.3 with RFC 9110 section 5.6.7: Expires in the obsolete forms counts like an
    IMF-fixdate (it is not "invalid", so not expired)."""
    date = [("Date", "Sun, 06 Nov 1994 08:49:37 GMT")]
    assert lifetime_of([*date, ("Expires", "Sun Nov  6 08:59:37 1994")], response_time=SUNDAY) == 600.0
    assert lifetime_of([*date, ("Expires", "Sunday, 06-Nov-94 08:59:37 GMT")], response_time=SUNDAY) == 600.0


def test_heuristic_freshness_is_a_tenth_of_the_time_since_last_modified_and_capped() -> None:
    """RFC 9111 section 4.2.2: without explicit freshness, a cache may use a fraction (typically 10 %) of the
    time since Last-Modified (measured to Date); the policy caps it (one day by default)."""
    headers = [("Date", http_date(T0)), ("Last-Modified", http_date(T0 - 5000))]
    assert lifetime_of(headers) == 500.0
    assert lifetime_of(headers, policy=CachePolicy(heuristic_fraction=0.5)) == 2500.0
    long_ago = [("Date", http_date(T0)), ("Last-Modified", http_date(T0 - 86400 * 365))]
    assert lifetime_of(long_ago) == 86400.0
    assert lifetime_of(long_ago, policy=CachePolicy(max_heuristic=timedelta(hours=1))) == 3600.0
    future = [("Date", http_date(T0)), ("Last-Modified", http_date(T0 + 60))]
    assert lifetime_of(future) == 0.0


def test_heuristic_freshness_only_for_heuristically_cacheable_statuses_or_public() -> None:
    """RFC 9111 section 4.2.2 and RFC 9110 section 15.1: heuristics apply only to heuristically cacheable
    status codes, or to a response marked explicitly cacheable such as with public."""
    assert HEURISTIC_STATUSES == {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501}
    modified = [("Date", http_date(T0)), ("Last-Modified", http_date(T0 - 5000))]
    assert lifetime_of(modified, status=404) == 500.0
    assert lifetime_of(modified, status=302, fallback=7.0) == 7.0  # not heuristic: the configured fallback
    assert lifetime_of([*modified, ("Cache-Control", "public")], status=302) == 500.0


def test_heuristic_freshness_never_overrides_an_explicit_expiry() -> None:
    """RFC 9111 section 4.2.2: a cache MUST NOT use heuristics when an explicit expiration time is present."""
    modified = [("Date", http_date(T0)), ("Last-Modified", http_date(T0 - 86400 * 30))]
    assert lifetime_of([*modified, ("Cache-Control", "max-age=5")]) == 5.0
    assert lifetime_of([*modified, ("Expires", http_date(T0 + 7))]) == 7.0


def test_unspecified_freshness_and_the_fallback() -> None:
    """RFC 9111 section 4.2.2: without explicit or heuristic freshness, the lifetime is configuration
    (unspecified_freshness), else the repository's expiry given as the fallback; heuristic_fraction=0 turns
    heuristics off."""
    modified = [("Last-Modified", http_date(T0 - 5000))]
    assert lifetime_of([], fallback=42.0) == 42.0
    assert lifetime_of([], policy=CachePolicy(unspecified_freshness=timedelta(0)), fallback=42.0) == 0.0
    assert lifetime_of(modified, policy=CachePolicy(heuristic_fraction=0), fallback=42.0) == 42.0


# ----------------------------------------------------------------------------------------------------------------
# age (RFC 9111 section 4.2.3)
# ----------------------------------------------------------------------------------------------------------------
def test_age_calculation_worked_through() -> None:
    """RFC 9111 section 4.2.3, with numbers. Asked at 1000, received at 1002 with Date 990 and Age 5:
    apparent_age = max(0, 1002 - 990) = 12; response_delay = 1002 - 1000 = 2; corrected_age_value = 5 + 2 = 7;
    corrected_initial_age = max(12, 7) = 12; at now = 1100 the resident_time is 98, so current_age = 110."""
    times = StoredTimes(T0 + 1000, T0 + 1002)
    headers = [("Date", http_date(T0 + 990)), ("Age", "5")]
    assert current_age(headers, times, T0 + 1100) == 110.0


def test_age_calculation_when_the_age_header_dominates() -> None:
    """RFC 9111 section 4.2.3: asked at 1000, received at 1004 with Date 1003 and Age 30: apparent_age = 1,
    corrected_age_value = 30 + 4 = 34, corrected_initial_age = 34; at now = 1010 current_age = 34 + 6 = 40."""
    times = StoredTimes(T0 + 1000, T0 + 1004)
    assert current_age([("Date", http_date(T0 + 1003)), ("Age", "30")], times, T0 + 1010) == 40.0


def test_age_with_a_clock_ahead_or_missing_headers() -> None:
    """RFC 9111 section 4.2.3: apparent_age is never negative (an origin clock ahead of ours), a missing Date
    is the receipt time, a missing or invalid Age is 0, and an overflowing Age is 2**31 (section 1.2.2)."""
    times = StoredTimes(T0, T0 + 1)
    assert current_age([("Date", http_date(T0 + 500))], times, T0 + 11) == 11.0  # delay 1 + resident 10
    assert current_age([], times, T0 + 1) == 1.0
    assert current_age([("Age", "soon")], times, T0 + 1) == 1.0
    assert current_age([("Age", "9" * 30)], times, T0 + 1) == float(2**31) + 1.0
    assert current_age([], times, T0 - 100) == 1.0  # a clock that went back: resident time is not negative


def test_fresh_means_lifetime_greater_than_age() -> None:
    """RFC 9111 section 4.2: response_is_fresh = (freshness_lifetime > current_age)."""
    assert judge([("Cache-Control", "max-age=60")], age=59.5).serve
    assert not judge([("Cache-Control", "max-age=60")], age=60).serve


# ----------------------------------------------------------------------------------------------------------------
# storing (RFC 9111 section 3, 3.5, 5.2.2.5, 5.2.2.7)
# ----------------------------------------------------------------------------------------------------------------
def test_only_understood_safe_methods_and_final_statuses_are_stored() -> None:
    """RFC 9111 section 3: the request method is understood by the cache (GET, HEAD here), the status is final
    and understood (not 1xx, 206 or 304)."""
    headers = [("Cache-Control", "max-age=60")]
    assert store_reason(headers) is None
    assert store_reason(headers, method="head") is None
    assert store_reason(headers, method="POST") == "POST responses are not stored"
    for status in (100, 103, 206, 304):
        assert store_reason(headers, status=status) == f"a {status} response is not stored"


def test_no_store_is_never_stored_even_without_a_policy() -> None:
    """RFC 9111 section 5.2.2.5 and 5.2.1.5: a cache MUST NOT store a response with no-store, nor any response
    to a request with no-store; the cache honours this with or without a policy."""
    for policy_on in (True, False):
        assert store_reason([("Cache-Control", "NO-STORE")], policy_on=policy_on) is not None
        assert store_reason([], request=[("Cache-Control", "no-store")], policy_on=policy_on) is not None
    assert store_reason([], status=500, policy_on=False) is None  # otherwise no policy: stored as it always was


def test_private_is_stored_by_a_private_cache_only() -> None:
    """RFC 9111 section 5.2.2.7: a shared cache MUST NOT store a private response; a private cache may (and
    private makes it explicitly storable, section 3)."""
    headers = [("Cache-Control", "private")]
    assert store_reason(headers, shared=True) == "the response is private and this cache is shared"
    assert store_reason(headers, shared=False, status=302) is None


def test_qualified_private_is_not_stored_by_a_shared_cache() -> None:
    """RFC 9111 section 5.2.2.7: with private="field", a shared cache MUST NOT store the listed fields. The
    cache stores whole responses, so (as the RFC notes most caches do) it treats the qualified form as
    unqualified and stores nothing, rather than the user-specific field."""
    headers = [("Cache-Control", 'private="X-User", max-age=600'), ("X-User", "alice")]
    assert store_reason(headers, shared=True) == "the response is private and this cache is shared"
    assert store_reason(headers, shared=False) is None


def test_responses_to_authorised_requests_in_a_shared_cache() -> None:
    """RFC 9111 section 3.5: a shared cache MUST NOT reuse a response to a request with Authorization unless
    the response has must-revalidate, public or s-maxage; a private cache may."""
    request = [("Authorization", "Bearer secret")]
    assert store_reason([("Cache-Control", "max-age=60")], request=request, shared=True) is not None
    for allowing in ("public", "s-maxage=60", "max-age=60, must-revalidate"):
        assert store_reason([("Cache-Control", allowing)], request=request, shared=True) is None, allowing
    assert store_reason([("Cache-Control", "max-age=60")], request=request, shared=False) is None


def test_explicit_freshness_or_a_heuristic_status_is_needed_to_store() -> None:
    """RFC 9111 section 3: a response is stored when it has public, private (private cache), Expires, max-age,
    s-maxage (shared cache), or a heuristically cacheable status."""
    assert store_reason([], status=404) is None
    assert store_reason([], status=302) == "a 302 response without explicit freshness is not stored"
    assert store_reason([], status=500) is not None
    for allowing in ("public", "max-age=5"):
        assert store_reason([("Cache-Control", allowing)], status=302) is None
    assert store_reason([("Expires", "0")], status=302) is None  # stored, but already stale (section 5.3)
    assert store_reason([("Cache-Control", "s-maxage=5")], status=302, shared=True) is None
    assert store_reason([("Cache-Control", "s-maxage=5")], status=302, shared=False) is not None
    assert store_reason([("Cache-Control", "private")], status=302, shared=False) is None


def test_no_cache_responses_may_be_stored() -> None:
    """RFC 9111 section 5.2.2.4: no-cache does not forbid storing, only reuse without validation."""
    assert store_reason([("Cache-Control", "no-cache"), ("ETag", '"a"')]) is None


def test_vary_star_is_not_stored_and_never_matches() -> None:
    """RFC 9111 section 4.1: a Vary of "*" always fails to match, so such a response is not stored."""
    headers = [("Cache-Control", "max-age=60"), ("Vary", "Accept, *")]
    assert store_reason(headers) == "the response says Vary: *"
    assert not judge(headers, age=0).matches


# ----------------------------------------------------------------------------------------------------------------
# Vary (RFC 9111 section 4.1)
# ----------------------------------------------------------------------------------------------------------------
def test_vary_names_are_lower_case_unique_and_star_is_none() -> None:
    """RFC 9111 section 4.1: Vary lists field names (case-insensitive); "*" means nothing matches."""
    assert vary_names([("Vary", "Accept-Encoding, ACCEPT"), ("vary", "accept-encoding,User-Agent")]) == (
        "accept-encoding",
        "accept",
        "user-agent",
    )
    assert vary_names(CIMultiDict([("Vary", "*")])) is None
    assert vary_names([]) == ()


def _vary_assess(stored_request: list[tuple[str, str]], request: list[tuple[str, str]], vary: str) -> bool:
    headers = [("Vary", vary), ("Cache-Control", "max-age=60")]
    times = StoredTimes.for_request(T0, T0, headers, stored_request, is_secret_header)
    result = assess(
        200,
        headers,
        times,
        request,
        policy=CachePolicy(),
        shared=False,
        fallback=0.0,
        is_secret=is_secret_header,
        now=T0,
    )
    return result.matches


def test_vary_compares_normalised_values() -> None:
    """RFC 9111 section 4.1: values may be normalised before comparison: whitespace around list members does
    not count, and several field lines compare as their comma-joined list."""
    stored = [("Accept-Encoding", "gzip,  br")]
    assert _vary_assess(stored, [("accept-encoding", "gzip, br")], "Accept-Encoding")
    assert _vary_assess(stored, [("Accept-Encoding", "gzip"), ("Accept-Encoding", "br")], "Accept-Encoding")
    assert not _vary_assess(stored, [("Accept-Encoding", "br, gzip")], "Accept-Encoding")
    assert not _vary_assess(stored, [("Accept-Encoding", "identity")], "Accept-Encoding")


def test_vary_absent_header_matches_only_absent() -> None:
    """RFC 9111 section 4.1: a header absent from one request matches another request only if it is absent
    there too; present-but-empty is present."""
    assert _vary_assess([], [], "X-Lang")
    assert not _vary_assess([], [("X-Lang", "")], "X-Lang")
    assert not _vary_assess([("X-Lang", "")], [], "X-Lang")
    assert _vary_assess([("X-Lang", "")], [("X-Lang", "")], "X-Lang")
    assert not _vary_assess([("X-Lang", "de")], [], "X-Lang")


def test_vary_on_a_secret_header_never_stores_its_value() -> None:
    """RFC 9111 section 4.1 (the stored request headers are what Vary selects by): for a credential header
    only presence is recorded; the cache's credential scope keeps users apart, never the secret itself."""
    headers = [("Vary", "Authorization, Accept")]
    request = [("Authorization", "Bearer top-secret"), ("Accept", "text/html")]
    times = StoredTimes.for_request(T0, T0, headers, request, is_secret_header)
    assert dict(times.vary) == {"authorization": "", "accept": "text/html"}
    assert "top-secret" not in times.encode()
    assert not _vary_assess(request, [("Accept", "text/html")], "Authorization, Accept")  # absent now
    assert _vary_assess(request, [("Authorization", "Bearer other"), ("Accept", "text/html")], "Authorization")


# ----------------------------------------------------------------------------------------------------------------
# validation required (RFC 9111 section 4.2.4, 5.2.2)
# ----------------------------------------------------------------------------------------------------------------
def test_no_cache_response_is_validated_even_when_fresh() -> None:
    """RFC 9111 section 5.2.2.4: a no-cache response MUST NOT be reused without successful validation; a
    qualified no-cache="field" is treated the same (the RFC notes this common handling)."""
    for value in ("no-cache, max-age=600", 'no-cache="Set-Cookie", max-age=600'):
        result = judge([("Cache-Control", value), ("ETag", '"v1"')], age=1)
        assert result.revalidate and not result.serve and not result.serve_stale, value
        assert result.validators == {"If-None-Match": '"v1"'}


def test_must_revalidate_forbids_every_stale_use() -> None:
    """RFC 9111 section 5.2.2.2 and 4.2.4: once stale, a must-revalidate response MUST NOT be reused without
    validation: not by max-stale, stale-while-revalidate nor stale-if-error."""
    headers = [("Cache-Control", "max-age=10, must-revalidate, stale-while-revalidate=60, stale-if-error=60")]
    result = judge(headers, age=20, request=[("Cache-Control", "max-stale")])
    assert (result.serve, result.serve_stale, result.stale_if_error) == (False, False, False)
    assert judge(headers, age=5).serve


def test_proxy_revalidate_and_s_maxage_forbid_stale_only_in_a_shared_cache() -> None:
    """RFC 9111 section 5.2.2.8 and 5.2.2.10: proxy-revalidate (and s-maxage, which implies it) is
    must-revalidate for shared caches only."""
    for directive in ("proxy-revalidate", "s-maxage=10"):
        headers = [("Cache-Control", f"max-age=10, {directive}, stale-while-revalidate=60")]
        assert not judge(headers, age=20, shared=True).serve_stale, directive
        assert judge(headers, age=20, shared=False).serve_stale, directive


def test_no_cache_response_is_not_served_on_an_origin_error() -> None:
    """RFC 9111 section 4.2.4: a cache MUST NOT generate a stale response when an in-protocol directive such as
    a no-cache response directive prohibits it; stale-if-error (RFC 5861 section 4) does not override that,
    whether the server or the cache's configuration gives the window."""
    headers = [("Cache-Control", "no-cache, max-age=600, stale-if-error=600")]
    assert not judge(headers, age=1).stale_if_error
    configured = CachePolicy(stale_if_error_default=timedelta(hours=1))
    assert not judge([("Cache-Control", "no-cache")], age=1, policy=configured).stale_if_error
    assert judge([("Cache-Control", "max-age=0")], age=1, policy=configured).stale_if_error


# ----------------------------------------------------------------------------------------------------------------
# request directives (RFC 9111 section 5.2.1, 5.4)
# ----------------------------------------------------------------------------------------------------------------
FRESH_600 = [("Cache-Control", "max-age=600")]


def test_request_max_age() -> None:
    """RFC 9111 section 5.2.1.1: the client prefers a response whose age is at most max-age seconds; an
    invalid value is ignored."""
    assert judge(FRESH_600, age=30, request=[("Cache-Control", "max-age=30")]).serve
    assert not judge(FRESH_600, age=31, request=[("Cache-Control", "max-age=30")]).serve
    assert not judge(FRESH_600, age=1, request=[("Cache-Control", "max-age=0")]).serve
    assert judge(FRESH_600, age=31, request=[("Cache-Control", "max-age=soon")]).serve


def test_request_max_stale_with_and_without_a_value() -> None:
    """RFC 9111 section 5.2.1.2: max-stale=N accepts a response stale by at most N seconds; max-stale without
    a value accepts any staleness."""
    headers = [("Cache-Control", "max-age=10")]
    assert judge(headers, age=40, request=[("Cache-Control", "max-stale=30")]).serve
    assert not judge(headers, age=41, request=[("Cache-Control", "max-stale=30")]).serve
    assert judge(headers, age=10**9, request=[("Cache-Control", "max-stale")]).serve
    assert not judge(headers, age=40, request=[("Cache-Control", "max-stale=bad")]).serve


def test_request_max_stale_does_not_lift_the_clients_own_max_age() -> None:
    """RFC 9111 section 5.2.1.1 and 5.2.1.2: max-stale lets the server's freshness lifetime be exceeded; the
    client's max-age still bounds the age it accepts."""
    request = [("Cache-Control", "max-age=10, max-stale")]
    assert not judge(FRESH_600, age=20, request=request).serve  # fresh for the server, too old for the client
    assert not judge([("Cache-Control", "max-age=5")], age=20, request=request).serve
    assert judge([("Cache-Control", "max-age=5")], age=8, request=request).serve


def test_request_min_fresh() -> None:
    """RFC 9111 section 5.2.1.3: the client wants a response that stays fresh for at least min-fresh more
    seconds: freshness_lifetime >= current_age + min-fresh."""
    assert judge(FRESH_600, age=500, request=[("Cache-Control", "min-fresh=100")]).serve
    assert not judge(FRESH_600, age=501, request=[("Cache-Control", "min-fresh=100")]).serve


def test_request_no_cache_and_pragma() -> None:
    """RFC 9111 section 5.2.1.4 and 5.4: a request no-cache (or, without any Cache-Control, Pragma: no-cache)
    asks for validation before a stored response is used; Pragma is ignored when Cache-Control is present."""
    assert judge(FRESH_600, age=1, request=[("Cache-Control", "no-cache")]).revalidate
    assert judge(FRESH_600, age=1, request=[("Pragma", "No-Cache")]).revalidate
    assert judge(FRESH_600, age=1, request=[("Pragma", "foo, no-cache")]).revalidate
    assert judge(FRESH_600, age=1, request=[("Pragma", "no-cache"), ("Cache-Control", "max-age=60")]).serve


def test_pragma_no_cache_must_be_the_whole_directive() -> None:
    """RFC 9111 section 5.4: Pragma is a list of pragma-directives; only the no-cache member means no-cache,
    not an extension that merely contains the text (x-no-cache-hint, or a quoted argument)."""
    assert judge(FRESH_600, age=1, request=[("Pragma", "x-no-cache-hint")]).serve
    assert judge(FRESH_600, age=1, request=[("Pragma", 'token="no-cache"')]).serve


# ----------------------------------------------------------------------------------------------------------------
# stale-while-revalidate and stale-if-error (RFC 5861 section 3, 4)
# ----------------------------------------------------------------------------------------------------------------
def test_stale_while_revalidate_window() -> None:
    """RFC 5861 section 3: a stale response may be served for up to N seconds past its freshness lifetime
    while it is revalidated in the background; past the window it is revalidated first."""
    headers = [("Cache-Control", "max-age=10, stale-while-revalidate=30"), ("ETag", '"v"')]
    assert judge(headers, age=5).serve
    stale = judge(headers, age=40)
    assert stale.serve_stale and stale.revalidate and not stale.serve
    assert not judge(headers, age=41).serve_stale
    assert not judge(headers, age=20, policy=CachePolicy(stale_while_revalidate=False)).serve_stale
    assert not judge([("Cache-Control", "max-age=10, stale-while-revalidate=x")], age=11).serve_stale


def test_stale_while_revalidate_does_not_override_the_clients_limits() -> None:
    """RFC 9111 section 5.2.1.1 and 5.2.1.3 with RFC 5861 section 3: a client that asks for max-age=0 (or
    min-fresh) does not want a response that old, so it is revalidated before use, not served stale."""
    headers = [("Cache-Control", "max-age=600, stale-while-revalidate=600")]
    for request in ("max-age=0", "min-fresh=590"):
        result = judge(headers, age=20, request=[("Cache-Control", request)])
        assert result.revalidate and not result.serve_stale, request
    assert judge([("Cache-Control", "max-age=10, stale-while-revalidate=60")], age=20).serve_stale


def test_stale_if_error_window_from_response_request_or_configuration() -> None:
    """RFC 5861 section 4: stale-if-error=N lets a response stale by at most N seconds be served when the
    origin fails; in a request it widens the window for that request; configuration may supply a window
    (out-of-band, RFC 9111 section 4.2.4)."""
    headers = [("Cache-Control", "max-age=10, stale-if-error=100")]
    assert judge(headers, age=110).stale_if_error
    assert not judge(headers, age=111).stale_if_error
    assert judge(headers, age=200, request=[("Cache-Control", "stale-if-error=500")]).stale_if_error
    assert judge(headers, age=5).stale_if_error  # fresh: usable on an error as well
    bare = [("Cache-Control", "max-age=10")]
    assert not judge(bare, age=20).stale_if_error
    assert judge(bare, age=20, request=[("Cache-Control", "stale-if-error=60")]).stale_if_error
    assert judge(bare, age=20, policy=CachePolicy(stale_if_error_default=timedelta(seconds=60))).stale_if_error
    assert not judge(headers, age=20, policy=CachePolicy(stale_if_error=False)).stale_if_error


# ----------------------------------------------------------------------------------------------------------------
# validation (RFC 9111 section 4.3.1, 3.2, 4.3.4)
# ----------------------------------------------------------------------------------------------------------------
def test_conditional_request_headers_from_validators() -> None:
    """RFC 9111 section 4.3.1: a cache validates with If-None-Match carrying the stored entity tag (weak ones
    too: If-None-Match uses weak comparison, RFC 9110 section 13.1.2) and If-Modified-Since carrying the stored
    Last-Modified; an invalid Last-Modified is not sent."""
    modified = http_date(T0 - 100)
    assert conditional_headers([("ETag", '"abc"'), ("Last-Modified", modified)]) == {
        "If-None-Match": '"abc"',
        "If-Modified-Since": modified,
    }
    assert conditional_headers([("ETag", ' W/"weak" ')]) == {"If-None-Match": 'W/"weak"'}
    assert conditional_headers([("Last-Modified", "yesterday"), ("ETag", " ")]) == {}
    assert conditional_headers([]) == {}


def test_304_refreshes_stored_headers() -> None:
    """RFC 9111 section 3.2 and 4.3.4: each header field of the 304 replaces the stored field lines of that
    name; the others stay. The refreshed response's freshness then counts from the 304."""
    stored = [("Content-Type", "text/plain"), ("Cache-Control", "max-age=10"), ("ETag", '"v1"'), ("X-A", "1")]
    update = [("Cache-Control", "max-age=600"), ("Date", http_date(T0 + 1000))]
    headers = refreshed_headers(stored, update)
    assert headers == [
        ("Content-Type", "text/plain"),
        ("ETag", '"v1"'),
        ("X-A", "1"),
        ("Cache-Control", "max-age=600"),
        ("Date", http_date(T0 + 1000)),
    ]
    times = StoredTimes(T0 + 999, T0 + 1000)
    result = assess(
        200,
        headers,
        times,
        [],
        policy=CachePolicy(),
        shared=False,
        fallback=0,
        is_secret=is_secret_header,
        now=T0 + 1300,
    )
    assert result.serve and result.age == 301.0


def test_304_does_not_replace_content_length() -> None:
    """RFC 9111 section 3.2: the Content-Length of a 304 is not used to update the stored response (it describes
    the 304, not the stored content)."""
    stored = [("Content-Length", "1234"), ("ETag", '"v1"')]
    assert refreshed_headers(stored, [("content-length", "0"), ("ETag", '"v1"')]) == [
        ("Content-Length", "1234"),
        ("ETag", '"v1"'),
    ]


def test_304_updates_only_the_stored_response_its_validator_selects() -> None:
    """RFC 9111 section 4.3.4: a strong validator in the 304 selects stored responses with the same strong
    validator (none: the cache MUST NOT update); a weak one selects a stored response it matches weakly; a 304
    without validators updates the response the conditional request was made from."""
    stored = [("ETag", '"v1"'), ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")]
    assert freshens_stored(stored, [("ETag", '"v1"')])
    assert not freshens_stored(stored, [("ETag", '"v2"')])
    assert freshens_stored(stored, [("ETag", 'W/"v1"')])  # weak comparison: opaque tags equal
    assert not freshens_stored([("ETag", 'W/"v1"')], [("ETag", '"v1"')])  # strong needs a strong stored tag
    assert freshens_stored([("ETag", 'W/"v1"')], [("ETag", 'W/"v1"')])
    assert not freshens_stored([("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")], [("ETag", '"v1"')])
    assert freshens_stored(stored, [("Last-Modified", "Sun Nov  6 08:49:37 1994")])  # the same date, asctime
    assert not freshens_stored(stored, [("Last-Modified", "Mon, 07 Nov 1994 08:49:37 GMT")])
    assert freshens_stored(stored, [("Cache-Control", "max-age=60"), ("Date", http_date(T0))])


def test_row_lifetime_keeps_validatable_rows_and_bounds_the_rest() -> None:
    """RFC 9111 section 4.3 and RFC 5861: a response with a validator stays for the repository's expiry (it can
    be revalidated); one without stays only while it can still be served, fresh or within a stale window."""
    policy = CachePolicy()
    assert row_lifetime(10.0, [("ETag", '"a"')], policy, 3600.0) == 3600.0
    assert row_lifetime(10.0, [("Cache-Control", "max-age=10, stale-if-error=50")], policy, 3600.0) == 60.0
    assert row_lifetime(10.0, [], policy, 5.0) == 5.0


# ----------------------------------------------------------------------------------------------------------------
# stored times
# ----------------------------------------------------------------------------------------------------------------
def test_stored_times_round_trip() -> None:
    """RFC 9111 section 4.2.3 and 4.1: the request and response times and the selecting header values are kept
    with an entry and read back exactly."""
    times = StoredTimes(T0 + 0.25, T0 + 1.5, {"accept": "text/html", "x-lang": None, "x-ünï": "ça va"})
    assert StoredTimes.decode(times.encode()) == times


@given(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.dictionaries(st.text(max_size=10), st.one_of(st.none(), st.text(max_size=10)), max_size=5),
)
def test_stored_times_round_trip_property(request_time: float, response_time: float, vary: dict[str, Any]) -> None:
    """RFC 9111 section 4.2.3: any finite times and any Vary record survive encode and decode."""
    times = StoredTimes(request_time, response_time, vary)
    assert StoredTimes.decode(times.encode()) == times


@pytest.mark.parametrize(
    "text",
    [
        None,
        12,
        b'{"q":1,"r":2}',
        "",
        "not json",
        "[]",
        '"text"',
        "{}",
        '{"q":1}',
        '{"q":"1","r":2}',
        '{"q":true,"r":2}',
        '{"q":NaN,"r":2}',
        '{"q":1,"r":Infinity}',
        '{"q":1e999,"r":2}',
        '{"q":1,"r":2,"v":[]}',
        '{"q":1,"r":2,"v":null}',
        '{"q":1,"r":2,"v":{"a":1}}',
        '{"q":1,"r":2,"v":{"a":["x"]}}',
        '{"q":' + "9" * 5000 + ',"r":2}',
        '{"q":1,"r":2,"v":{"a":"' + "x" * 70000 + '"}}',
        "[" * 60000,
        '{"v":' * 13000,
    ],
)
def test_stored_times_hostile_text_is_none(text: Any) -> None:
    """RFC 9111 section 4.2.3 (the times an age is computed from): stored text that is not a valid record -
    wrong types, non-finite numbers, oversized, or nested deep enough to exhaust the parser - reads as None
    (the entry is then treated as legacy), never as an error."""
    assert StoredTimes.decode(text) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_stored_times_decode_never_raises(text: str) -> None:
    """RFC 9111 section 4.2.3: decoding any text gives a StoredTimes with finite times, or None."""
    decoded = StoredTimes.decode(text)
    assert decoded is None or (math.isfinite(decoded.request_time) and math.isfinite(decoded.response_time))


def test_policy_rejects_bad_settings() -> None:
    """The policy's settings are checked when it is made, with the bad value named."""
    with pytest.raises(ValueError, match="heuristic_fraction"):
        CachePolicy(heuristic_fraction=1.5)
    with pytest.raises(ValueError, match="max_heuristic"):
        CachePolicy(max_heuristic=timedelta(seconds=-1))
    with pytest.raises(TypeError, match="shared"):
        CachePolicy(shared="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock"):
        CachePolicy(clock=5)  # type: ignore[arg-type]
