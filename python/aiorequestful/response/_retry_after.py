# SPDX-License-Identifier: MIT
"""Parse a ``Retry-After`` header value (RFC 9110 §10.2.3) into seconds to wait: delay-seconds or an HTTP-date.

The value is either delay-seconds (``120``) or an HTTP-date (``Sun, 06 Nov 1994 08:49:37 GMT``; the obsolete
RFC 850 and asctime forms are accepted too, RFC 9110 §5.6.7). Used by ``RateLimitStatusHandler``, the request
handler and flow control.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ("parse_retry_after",)

# delay-seconds is 1*DIGIT (ASCII digits only); a sign and a fraction ("1.5") from lenient servers are accepted too.
_SECONDS = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")

# RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT". Its two-digit year needs RFC 9110's rule, not email.utils'.
_RFC850 = re.compile(
    r"(?P<weekday>[A-Za-z]+),\s*(?P<day>\d{1,2})-(?P<month>[A-Za-z]{3})-(?P<year>\d{2})\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2}):(?P<second>\d{2})\s*(?:GMT|UTC|UT|Z)?",
    re.IGNORECASE | re.ASCII,
)
_MONTHS = {name: index for index, name in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}

# Anything longer is not a date, and would only cost time to look at.
_MAX_DATE_LENGTH = 64


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait (``>= 0.0``) from a ``Retry-After`` value, or None when there is no usable value.

    * delay-seconds: digits, surrounding whitespace ignored; a decimal (``"1.5"``) is accepted; a negative number
      gives ``0.0``; a number too large for a float gives ``math.inf`` (never an error, never slow).
    * HTTP-date: IMF-fixdate, RFC 850 or asctime; a date without a zone is taken as UTC; a past date gives ``0.0``.
    * ``None``, an empty value or anything else: None.

    :param value: the header value.
    :param now: the current time as a ``time.time()`` value (default: now); only used for dates.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"Retry-After value must be a str or None, not {type(value).__name__}")
    text = value.strip()
    if not text:
        return None

    if _SECONDS.fullmatch(text):
        # float() parses any length of digits in linear time and saturates to inf (int() would refuse
        # more than 4300 digits and build a huge number first).
        seconds = float(text)
        return seconds if seconds > 0 else 0.0

    if len(text) > _MAX_DATE_LENGTH:
        return None
    reference = time.time() if now is None else float(now)
    moment = _parse_http_date(text, reference)
    if moment is None:
        return None
    seconds = moment - reference
    # `not seconds > 0` also maps a NaN `now` to "no wait" rather than propagating NaN.
    return seconds if seconds > 0 else 0.0


def _parse_http_date(text: str, now: float) -> float | None:
    """The POSIX time of an HTTP-date, or None when ``text`` is not one."""
    match = _RFC850.fullmatch(text)
    if match is not None:
        return _rfc850_timestamp(match, now)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if moment.tzinfo is None:  # asctime carries no zone; HTTP dates are always UTC
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError, OSError):  # pragma: no cover - datetime's own range is narrower
        return None


def _rfc850_timestamp(match: re.Match[str], now: float) -> float | None:
    month = _MONTHS.get(match["month"].lower())
    if month is None:
        return None
    two_digits = int(match["year"])
    # RFC 9110 §5.6.7: a two-digit year more than 50 years in the future means the most recent past year
    # with the same last two digits.
    current = datetime.fromtimestamp(now, UTC).year if math.isfinite(now) else 2000
    year = current - current % 100 + two_digits
    if year > current + 50:
        year -= 100
    elif year <= current - 50:
        year += 100
    try:
        moment = datetime(
            year,
            month,
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    return moment.timestamp()
