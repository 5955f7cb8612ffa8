# SPDX-License-Identifier: MIT
"""HTTP caching rules (RFC 9111, with RFC 5861's stale-while-revalidate and stale-if-error), without any I/O.

:class:`CachePolicy` is the opt-in setting that turns a response cache into a standards-following HTTP cache:
give it to a cache (``SQLiteCache(..., policy=CachePolicy())``) or to one repository
(``repository.policy = CachePolicy(...)``). Everything else here is the arithmetic the cached session applies to
each request: what may be stored (:func:`storability`), how old and how fresh a stored response is
(:func:`assess`), and how a ``304 Not Modified`` refreshes it (:func:`refreshed_headers`).

The rules are written here rather than taken from a library: hishel 2's network-free core (the closest fit) reads
the wall clock itself, so freshness cannot be tested on a clock the test controls; it models requests, responses
and entries in its own types and storage layout; and it parses but does not act on stale-while-revalidate and
stale-if-error windows, which are much of the reason to want this. The tests check these functions against the
examples and rules of RFC 9111 section by section.

Times are POSIX seconds from the policy's ``clock`` (``time.time`` unless a test gives another).
"""

from __future__ import annotations

import calendar
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_tz
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import TypeIs

__all__ = (
    "CACHEABLE_METHODS",
    "HEURISTIC_STATUSES",
    "Assessment",
    "CachePolicy",
    "StoredTimes",
    "assess",
    "conditional_headers",
    "freshens_stored",
    "freshness_lifetime",
    "parse_cache_control",
    "parse_delta_seconds",
    "parse_http_date",
    "refreshed_headers",
    "storability",
    "vary_names",
)

#: Methods whose responses the policy stores and serves (RFC 9111 §3: only understood, safe methods).
CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
#: Methods that change the resource: a non-error response to one invalidates what is stored for its URL (§4.4).
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Methods known to be safe (RFC 9110 §9.2.1); any other method, extensions included, invalidates like the unsafe.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: Status codes that are "heuristically cacheable" (RFC 9110 §15.1).
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
#: Status codes that count as errors for stale-if-error (RFC 5861 §4).
ERROR_STATUSES = frozenset({500, 502, 503, 504})
#: Request headers that make a request conditional: a caller that sends its own is answered by the origin alone.
CONDITIONAL_HEADERS = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range")

#: RFC 9111 §1.2.2: a delta-seconds too large to represent is taken as 2**31.
_DELTA_MAX = 2**31
# Bounds on what is parsed, so a hostile header costs little.
_MAX_FIELD = 8192
_MAX_DIRECTIVES = 64
#: Directives this module acts on: the bound on how many directives are kept counts only the others, so a
#: response cannot hide its ``no-store`` behind a crowd of unknown extensions.
_KNOWN_DIRECTIVES = frozenset(
    {
        "max-age",
        "max-stale",
        "min-fresh",
        "must-revalidate",
        "no-cache",
        "no-store",
        "no-transform",
        "only-if-cached",
        "private",
        "proxy-revalidate",
        "public",
        "s-maxage",
        "must-understand",
        "stale-while-revalidate",
        "stale-if-error",
    }
)
#: The obsolete RFC 850 date form, whose year has two digits (RFC 9110 section 5.6.7).
_RFC850 = re.compile(r"[A-Za-z]+,\s*\d{1,2}-[A-Za-z]{3}-(\d{2})\s")
#: 9999-12-31T23:59:59Z, the last second a datetime can hold.
_LAST_SECOND = 253402300799.0


@dataclass(frozen=True, kw_only=True)
class CachePolicy:
    """How a cache follows HTTP caching (RFC 9111). Off unless given; the default cache stores and serves by its
    own expiry alone, as aiorequestful 1.0.20 did (except that ``no-store`` responses are never stored).

    :param shared: behave as a shared cache (honour ``private``, ``s-maxage``, ``proxy-revalidate`` and the rules
        for responses to requests with ``Authorization``). None (default): shared for a Redis cache (a fleet of
        processes shares it), private for SQLite.
    :param heuristic_fraction: the fraction of the time since ``Last-Modified`` a response without explicit
        freshness stays fresh (RFC 9111 §4.2.2 suggests 10 %); 0 turns heuristic freshness off.
    :param max_heuristic: the most heuristic freshness any response gets.
    :param unspecified_freshness: how long a stored response with no explicit freshness and no heuristic one is
        fresh. None (default): the repository's expiry, as without a policy; ``timedelta(0)``: such a response is
        revalidated (or fetched again) every time.
    :param stale_while_revalidate: serve a stale response within its ``stale-while-revalidate`` window at once
        while one background request revalidates it.
    :param stale_if_error: serve a stale response within its ``stale-if-error`` window when the origin fails
        (500/502/503/504, a transport error, a time-out, or a host pause longer than the request may wait).
    :param stale_if_error_default: a ``stale-if-error`` window for responses that do not name one (out-of-band
        configuration, which RFC 5861 allows); None: only the server's own.
    :param coalesce: concurrent misses and revalidations of one stored key make one origin request; the others
        wait for it and are then answered from the cache (or go on alone when its response could not be stored).
    :param clock: the time now, in POSIX seconds (tests give a clock they control).
    """

    shared: bool | None = None
    heuristic_fraction: float = 0.1
    max_heuristic: timedelta = timedelta(days=1)
    unspecified_freshness: timedelta | None = None
    stale_while_revalidate: bool = True
    stale_if_error: bool = True
    stale_if_error_default: timedelta | None = None
    coalesce: bool = True
    clock: Callable[[], float] = field(default=time.time, repr=False)

    def __post_init__(self) -> None:
        if self.shared is not None and not isinstance(self.shared, bool):
            raise TypeError(f"shared must be True, False or None, not {self.shared!r}")
        fraction = self.heuristic_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise ValueError(f"heuristic_fraction must be a number from 0 to 1, not {fraction!r}")
        for name in ("max_heuristic", "unspecified_freshness", "stale_if_error_default"):
            value = getattr(self, name)
            if value is None and name != "max_heuristic":
                continue
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ValueError(f"{name} must be a timedelta of zero or more, not {value!r}")
        if not callable(self.clock):
            raise TypeError(f"clock must be a callable returning POSIX seconds, not {self.clock!r}")

    def is_shared(self, backend_shared: bool) -> bool:
        """Whether this policy acts as a shared cache over a backend that is (``backend_shared``) or is not."""
        return backend_shared if self.shared is None else self.shared


# ----------------------------------------------------------------------------------------------------------------
# field parsing (lenient: garbage is ignored, never raised)
# ----------------------------------------------------------------------------------------------------------------
def _values(headers: Any, name: str) -> list[str]:
    """Every field line of ``name`` in ``headers`` (a multidict, a mapping, or ``(name, value)`` pairs)."""
    if headers is None:
        return []
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return [str(value) for value in getall(name, ())]
    items = headers.items() if isinstance(headers, Mapping) else headers
    low = name.lower()
    return [str(value) for key, value in items if str(key).lower() == low]


def _first(headers: Any, name: str) -> str | None:
    values = _values(headers, name)
    return values[0] if values else None


def _split_list(text: str) -> list[str]:
    """Split a comma-separated field value, keeping commas inside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif quoted and char == "\\":
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if escaped:
                out.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            else:
                out.append(char)
        return "".join(out)
    return value


def parse_cache_control(values: Iterable[str] | str | None) -> dict[str, str | None]:
    """The directives of ``Cache-Control`` field values: lower-case name -> argument (None when it has none).

    A directive given twice keeps its first occurrence (RFC 9111 §4.2.1 allows that choice). Only the first
    8 KiB of all the field lines together are read (the directive cut at that point is dropped, not guessed), and
    at most 64 directives this module does not act on are kept (the bound never drops one it acts on).
    """
    return _read_cache_control(values)[0]


def _read_cache_control(values: Iterable[str] | str | None) -> tuple[dict[str, str | None], bool]:
    """:func:`parse_cache_control`, and whether text past the 8 KiB bound went unread."""
    if values is None:
        return {}, False
    if isinstance(values, str):
        values = [values]
    directives: dict[str, str | None] = {}
    truncated = False
    unknown = 0
    budget = _MAX_FIELD
    for value in values:
        if budget <= 0:
            truncated = True  # another field line past the bound: not read
            break
        text = value[:budget]
        parts = _split_list(text)
        if len(value) > budget:
            truncated = True
            parts = parts[:-1]  # the last one may be cut short: "max-age=12" out of "max-age=12345"
        budget -= len(text)
        for part in parts:
            name, sep, argument = part.partition("=")
            name = name.strip().lower()
            if not name or name in directives:
                continue
            if name not in _KNOWN_DIRECTIVES:
                if unknown >= _MAX_DIRECTIVES:
                    continue
                unknown += 1
            directives[name] = _unquote(argument.strip()) if sep else None
    return directives, truncated


def parse_delta_seconds(value: str | None) -> int | None:
    """A delta-seconds value (RFC 9111 §1.2.2): a non-negative integer, 2**31 when larger; None when invalid."""
    if value is None:
        return None
    text = value.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    if len(text) > 10:
        return _DELTA_MAX
    return min(int(text), _DELTA_MAX)


def parse_http_date(value: str | None, *, now: float | None = None) -> float | None:
    """An HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms) as POSIX seconds; None if invalid.

    HTTP-dates are in UTC, so a date without a zone (the asctime form) is read as UTC; a leap second (``:60``)
    is accepted. An RFC 850 two-digit year is the one within 50 years of ``now`` (POSIX seconds; the wall
    clock when None) and otherwise in the past (RFC 9110 section 5.6.7).
    """
    if not value or len(value) > 64:
        return None
    text = value.strip()
    try:
        parsed = parsedate_tz(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    year, month, day, hour, minute, second = parsed[:6]
    offset = parsed[9] or 0
    two_digit = _RFC850.match(text)
    if two_digit is not None:
        # Clamped to years 1970..9999: ``now`` may come from a stored record, and gmtime overflows past those.
        moment = min(max(time.time() if now is None else now, 0.0), _LAST_SECOND)
        this_year = time.gmtime(moment).tm_year
        year = this_year + 50 - (this_year + 50 - int(two_digit.group(1))) % 100
    if not 0 <= second <= 60:
        return None
    try:
        # datetime checks the calendar (no 31 February); a leap second is the second after :59.
        checked = datetime(year, month, day, hour, minute, min(second, 59))
    except (TypeError, ValueError, OverflowError):
        return None
    return float(calendar.timegm(checked.timetuple()) + (second - checked.second) - offset)


def vary_names(headers: Any) -> tuple[str, ...] | None:
    """The lower-case request header names a response varies on; None for ``Vary: *`` (it matches nothing)."""
    names: list[str] = []
    for value in _values(headers, "vary"):
        for part in _split_list(value):
            name = part.strip().lower()
            if name == "*":
                return None
            if name and name not in names:
                names.append(name)
    return tuple(names)


def _normalised(values: list[str]) -> str:
    # RFC 9111 §4.1: values may be normalised before comparing; whitespace around list members is not significant.
    return ", ".join(", ".join(_split_list(value)) for value in values)


# ----------------------------------------------------------------------------------------------------------------
# what is stored next to an entry
# ----------------------------------------------------------------------------------------------------------------
def _is_number(value: Any) -> TypeIs[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class StoredTimes:
    """When a stored response was asked for and received, and the request header values it was selected by.

    ``vary`` maps each header named in the response's ``Vary`` to the value the request had (None: absent). A
    secret header (credentials) is never stored: the entry's credential scope already matches it exactly, so it
    is recorded as present or absent only.
    """

    request_time: float
    response_time: float
    vary: Mapping[str, str | None] = field(default_factory=dict)

    def encode(self) -> str:
        """The stored form (compact JSON)."""
        data = {"q": self.request_time, "r": self.response_time, "v": dict(self.vary)}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def decode(cls, text: Any) -> StoredTimes | None:
        """Parse the stored form; None for anything that is not one (the entry is then treated as legacy)."""
        if not isinstance(text, str) or len(text) > 65536:
            return None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # deeply nested arrays exhaust the parser's stack: garbage too
            return None
        if not isinstance(data, dict):
            return None
        request_time, response_time, vary = data.get("q"), data.get("r"), data.get("v", {})
        if not (_is_number(request_time) and _is_number(response_time)):
            return None
        if not (math.isfinite(request_time) and math.isfinite(response_time)):
            return None
        if not isinstance(vary, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in vary.items()
        ):
            return None
        return cls(float(request_time), float(response_time), vary)

    @classmethod
    def for_request(
        cls,
        request_time: float,
        response_time: float,
        response_headers: Any,
        request_headers: Any,
        is_secret: Callable[[str], bool],
    ) -> StoredTimes:
        """The record for a response about to be stored, taking the ``Vary`` values from ``request_headers``."""
        vary: dict[str, str | None] = {}
        for name in vary_names(response_headers) or ():
            values = _values(request_headers, name)
            if not values:
                vary[name] = None
            elif is_secret(name):
                vary[name] = ""  # present; the credential scope holds the rest
            else:
                vary[name] = _normalised(values)
        return cls(request_time, response_time, vary)


# ----------------------------------------------------------------------------------------------------------------
# storing
# ----------------------------------------------------------------------------------------------------------------
def storability(
    method: str,
    status: int,
    request_headers: Any,
    response_headers: Any,
    *,
    shared: bool,
    policy_on: bool,
) -> str | None:
    """Why this response must not be stored, or None when it may be (RFC 9111 §3, §3.5).

    Without a policy (``policy_on`` False) only ``no-store`` (in the request or the response) forbids storing:
    the cache otherwise stores what its repository matches, as it always has.
    """
    request_cc, request_cut = _read_cache_control(_values(request_headers, "cache-control"))
    response_cc, response_cut = _read_cache_control(_values(response_headers, "cache-control"))
    if "no-store" in response_cc:
        return "the response says Cache-Control: no-store"
    if "no-store" in request_cc:
        return "the request says Cache-Control: no-store"
    # A Cache-Control longer than the parser reads may say no-store in the unread part (§5.2.2.5, §5.2.1.5).
    if response_cut:
        return "the response's Cache-Control is too long to read in full"
    if request_cut:
        return "the request's Cache-Control is too long to read in full"
    if not policy_on:
        return None
    if method.upper() not in CACHEABLE_METHODS:
        return f"{method.upper()} responses are not stored"
    if status < 200 or status in (206, 304):
        return f"a {status} response is not stored"
    if vary_names(response_headers) is None:
        return "the response says Vary: *"
    if shared:
        # A qualified private="field" forbids storing the named fields; like most caches (RFC 9111 §5.2.2.7
        # notes it), this one then stores nothing rather than a response with fields taken out.
        if "private" in response_cc:
            return "the response is private and this cache is shared"
        if _first(request_headers, "authorization") is not None and not (
            {"public", "s-maxage", "must-revalidate"} & response_cc.keys()
        ):
            return "a response to an authorised request is not stored by a shared cache unless it allows it"
    explicit = {"max-age", "public"} | ({"s-maxage"} if shared else {"private"})
    if explicit & response_cc.keys() or _first(response_headers, "expires") is not None:
        return None
    if status in HEURISTIC_STATUSES:
        return None
    return f"a {status} response without explicit freshness is not stored"


# ----------------------------------------------------------------------------------------------------------------
# freshness and age
# ----------------------------------------------------------------------------------------------------------------
def freshness_lifetime(
    status: int, headers: Any, *, shared: bool, policy: CachePolicy, fallback: float, response_time: float
) -> float:
    """The freshness lifetime of a stored response in seconds (RFC 9111 §4.2.1, §4.2.2).

    ``fallback`` is used when the response gives no explicit freshness and earns no heuristic one.
    """
    cc = parse_cache_control(_values(headers, "cache-control"))
    if shared and "s-maxage" in cc:
        return float(parse_delta_seconds(cc["s-maxage"]) or 0)  # invalid: stale (§4.2.1)
    if "max-age" in cc:
        return float(parse_delta_seconds(cc["max-age"]) or 0)
    expires_values = _values(headers, "expires")
    if expires_values:
        expires = parse_http_date(expires_values[0], now=response_time)
        if expires is None:
            return 0.0  # an invalid Expires (such as "0") means already expired (§5.3)
        date = parse_http_date(_first(headers, "date"), now=response_time)
        return max(0.0, expires - (response_time if date is None else date))
    last_modified = parse_http_date(_first(headers, "last-modified"), now=response_time)
    if last_modified is not None and policy.heuristic_fraction > 0 and (status in HEURISTIC_STATUSES or "public" in cc):
        date = parse_http_date(_first(headers, "date"), now=response_time)
        since = (response_time if date is None else date) - last_modified
        if since > 0:
            return min(since * policy.heuristic_fraction, policy.max_heuristic.total_seconds())
        return 0.0
    if policy.unspecified_freshness is not None:
        return policy.unspecified_freshness.total_seconds()
    return fallback


def current_age(headers: Any, times: StoredTimes, now: float) -> float:
    """The current age of a stored response in seconds (RFC 9111 §4.2.3)."""
    age_value = parse_delta_seconds(_first(headers, "age")) or 0
    date = parse_http_date(_first(headers, "date"), now=times.response_time)
    date_value = times.response_time if date is None else date
    apparent_age = max(0.0, times.response_time - date_value)
    response_delay = max(0.0, times.response_time - times.request_time)
    corrected_age_value = age_value + response_delay
    corrected_initial_age = max(apparent_age, corrected_age_value)
    resident_time = max(0.0, now - times.response_time)
    return corrected_initial_age + resident_time


@dataclass(frozen=True)
class Assessment:
    """What the cache may do with one stored response for one request.

    ``serve``: fresh enough to return as it is. ``serve_stale``: stale, but within its stale-while-revalidate
    window: return it and revalidate in the background. ``revalidate``: send a conditional request built from
    ``validators`` (empty: the stored response cannot be validated, so a plain request). ``stale_if_error``:
    may be served if the origin fails. ``matches``: False when ``Vary`` selects another request's response (then
    nothing else here applies: it is a miss).
    """

    matches: bool
    serve: bool = False
    serve_stale: bool = False
    stale_if_error: bool = False
    age: float = 0.0
    lifetime: float = 0.0
    validators: Mapping[str, str] = field(default_factory=dict)

    @property
    def revalidate(self) -> bool:
        """A request to the origin is needed before (or, for ``serve_stale``, after) this entry is used."""
        return self.matches and not self.serve


_MISMATCH = Assessment(matches=False)


def conditional_headers(headers: Any) -> dict[str, str]:
    """``If-None-Match``/``If-Modified-Since`` for revalidating a stored response with these headers (§4.3.1)."""
    found: dict[str, str] = {}
    etags = [value for value in _values(headers, "etag") if value.strip()]
    if etags:
        found["If-None-Match"] = ", ".join(value.strip() for value in etags)
    last_modified = _first(headers, "last-modified")
    if last_modified is not None and parse_http_date(last_modified) is not None:
        found["If-Modified-Since"] = last_modified.strip()
    return found


def _vary_matches(times: StoredTimes, request_headers: Any, is_secret: Callable[[str], bool]) -> bool:
    for name, stored in times.vary.items():
        values = _values(request_headers, name)
        if stored is None or not values:
            if (stored is None) != (not values):
                return False
            continue
        if is_secret(name):
            continue  # the credential scope already matched it exactly
        if _normalised(values) != stored:
            return False
    return True


def assess(
    status: int,
    headers: Any,
    times: StoredTimes | None,
    request_headers: Any,
    *,
    policy: CachePolicy,
    shared: bool,
    fallback: float,
    is_secret: Callable[[str], bool],
    now: float | None = None,
) -> Assessment:
    """Judge a stored response (``status``, ``headers``, ``times``) for a request with ``request_headers``.

    An entry stored without times (by a cache without a policy, or by key) is judged fresh: its row's own expiry
    already governs it, as it did when it was stored.
    """
    if vary_names(headers) is None:
        return _MISMATCH
    if times is None:
        return Assessment(matches=True, serve=True)
    if not _vary_matches(times, request_headers, is_secret):
        return _MISMATCH
    if now is None:
        now = policy.clock()
    lifetime = freshness_lifetime(
        status, headers, shared=shared, policy=policy, fallback=fallback, response_time=times.response_time
    )
    age = current_age(headers, times, now)
    response_cc = parse_cache_control(_values(headers, "cache-control"))
    request_cc = parse_cache_control(_values(request_headers, "cache-control"))
    # Pragma: no-cache counts only without a Cache-Control (§5.4), and only as a whole list member: a value like
    # "x-no-cache-hint" is some other directive.
    pragma_no_cache = not request_cc and any(
        part.lower() == "no-cache" for value in _values(request_headers, "pragma") for part in _split_list(value)
    )
    validators = conditional_headers(headers)

    # Directives that forbid serving any stale response (§4.2.4, §5.2.2.2, §5.2.2.4, §5.2.2.8, §5.2.2.10). A
    # response no-cache is one: it may not be used at all without a successful validation, so not on an error.
    no_stale = (
        "must-revalidate" in response_cc
        or "no-cache" in response_cc
        or (shared and ("proxy-revalidate" in response_cc or "s-maxage" in response_cc))
    )
    must_validate = "no-cache" in response_cc or "no-cache" in request_cc or pragma_no_cache

    fresh = age < lifetime
    # The client's own limits (§5.2.1.1, §5.2.1.3): a response they refuse is not served as it is, and not
    # served stale either (max-stale relaxes the server's lifetime, not the client's max-age).
    request_max_age = parse_delta_seconds(request_cc.get("max-age")) if "max-age" in request_cc else None
    min_fresh = parse_delta_seconds(request_cc.get("min-fresh")) if "min-fresh" in request_cc else None
    client_refuses = (request_max_age is not None and age > request_max_age) or (
        min_fresh is not None and lifetime - age < min_fresh
    )
    if client_refuses:
        fresh = False
    staleness = max(0.0, age - lifetime)

    def window(name: str) -> float | None:
        seconds = parse_delta_seconds(response_cc.get(name)) if name in response_cc else None
        if name == "stale-if-error":
            asked = parse_delta_seconds(request_cc.get(name)) if name in request_cc else None
            if asked is not None:
                seconds = asked if seconds is None else max(seconds, asked)
            if seconds is None and policy.stale_if_error_default is not None:
                seconds = int(policy.stale_if_error_default.total_seconds())
        return None if seconds is None else float(seconds)

    sie = window("stale-if-error")
    stale_if_error = policy.stale_if_error and not no_stale and sie is not None and staleness <= sie

    if fresh and not must_validate:
        return Assessment(
            matches=True, serve=True, stale_if_error=stale_if_error, age=age, lifetime=lifetime, validators=validators
        )
    # The client may accept a stale response outright (max-stale, §5.2.1.2), unless the server forbids it.
    if "max-stale" in request_cc and not no_stale and not must_validate and not client_refuses:
        allowed = request_cc["max-stale"]
        limit = math.inf if allowed is None else parse_delta_seconds(allowed)
        if limit is not None and staleness <= limit:
            return Assessment(matches=True, serve=True, age=age, lifetime=lifetime, validators=validators)
    swr = window("stale-while-revalidate")
    serve_stale = (
        policy.stale_while_revalidate
        and not must_validate
        and not no_stale
        and not client_refuses
        and swr is not None
        and staleness <= swr
        and not fresh
    )
    return Assessment(
        matches=True,
        serve_stale=serve_stale,
        stale_if_error=stale_if_error,
        age=age,
        lifetime=lifetime,
        validators=validators,
    )


def refreshed_headers(stored: Iterable[tuple[str, str]], update: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The stored headers updated by those of a ``304 Not Modified`` (RFC 9111 §3.2): each field the 304 carries
    replaces the stored field lines of that name; the others stay. ``update`` must already be filtered to what
    may be stored. ``Content-Length`` is never taken from the 304 (§3.2 excepts it): the stored content's length
    is what the stored response must keep saying."""
    new = [(name, value) for name, value in update if name.lower() != "content-length"]
    replaced = {name.lower() for name, _ in new}
    kept = [(name, value) for name, value in stored if name.lower() not in replaced]
    return kept + new


def _opaque_tag(etag: str) -> tuple[bool, str]:
    """``(weak, opaque-tag)`` of an entity tag (RFC 9110 §8.8.3)."""
    tag = etag.strip()
    if tag[:2] == "W/":
        return True, tag[2:]
    return False, tag


def freshens_stored(stored: Any, not_modified: Any) -> bool:
    """Whether a ``304 Not Modified`` with headers ``not_modified`` may update the stored response with headers
    ``stored`` (RFC 9111 §4.3.4): a strong entity tag in the 304 must equal the stored one strongly; a weak
    one must match it weakly; without an entity tag, a Last-Modified in the 304 must be the stored one. A 304
    that names no validator confirms the response the request was made from."""
    tags = [value for value in _values(not_modified, "etag") if value.strip()]
    if tags:
        stored_tags = [_opaque_tag(value) for value in _values(stored, "etag") if value.strip()]
        weak, opaque = _opaque_tag(tags[0])
        if weak:
            return any(stored_opaque == opaque for _, stored_opaque in stored_tags)
        return (False, opaque) in stored_tags
    modified = _first(not_modified, "last-modified")
    if modified is not None:
        confirmed = parse_http_date(modified)
        return confirmed is not None and confirmed == parse_http_date(_first(stored, "last-modified"))
    return True


def row_lifetime(assessment_lifetime: float, headers: Any, policy: CachePolicy, keep: float) -> float:
    """How long to keep a stored row, in seconds: ``keep`` (the repository's expiry) for a response that can be
    revalidated; otherwise only as long as it can still be served (fresh, or within a stale window)."""
    if conditional_headers(headers):
        return keep
    cc = parse_cache_control(_values(headers, "cache-control"))
    extra = 0.0
    for name in ("stale-while-revalidate", "stale-if-error"):
        seconds = parse_delta_seconds(cc.get(name)) if name in cc else None
        if seconds is not None:
            extra = max(extra, float(seconds))
    if policy.stale_if_error_default is not None:
        extra = max(extra, policy.stale_if_error_default.total_seconds())
    return min(keep, assessment_lifetime + extra)
