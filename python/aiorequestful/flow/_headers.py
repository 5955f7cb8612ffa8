# SPDX-License-Identifier: MIT
"""Rate-limit response headers: when a server says the quota is spent, wait for its reset before asking again.

Three families are read, all leniently (a value that cannot be read is ignored; nothing here ever raises):

* the IETF draft's structured field (draft-ietf-httpapi-ratelimit-headers): ``RateLimit: "default";r=0;t=30``
  (``r`` = requests remaining, ``t`` = seconds until the quota resets; several comma-separated policies may be
  listed). ``RateLimit-Policy`` only describes the quota and does not say when it is spent, so it is not needed;
* the draft's older forms: ``RateLimit: limit=100, remaining=0, reset=30`` and the separate
  ``RateLimit-Remaining``/``RateLimit-Reset`` headers;
* the common ``X-RateLimit-Remaining``/``X-RateLimit-Reset``.

A reset is delay-seconds, or (a number too large to be a delay: above ``10**9``) a Unix time in seconds, or in
milliseconds above ``10**12``. Only a spent quota (remaining ``0``) with a usable reset asks for a wait; when
several say so, the longest wait wins. A wait longer than the cap is not believed and asks for nothing (as a
``Retry-After`` over the cap pauses nobody), so one absurd header cannot stop a host for long.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from ..response.status import DEFAULT_MAX_RETRY_AFTER

__all__ = ("MAX_RESET_WAIT", "rate_limit_reset")

#: The longest wait a rate-limit header may ask for, in seconds (as ``Retry-After``'s cap: one hour).
MAX_RESET_WAIT: float = DEFAULT_MAX_RETRY_AFTER

# Above this a reset is a Unix time in seconds (2001-09-09), above the next one in milliseconds.
_EPOCH_SECONDS = 1e9
_EPOCH_MILLISECONDS = 1e12
# Header values longer than this are not parsed at all (a hostile server cannot make parsing costly).
_MAX_VALUE = 4096


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    text = text.strip().strip('"').strip()
    if not text or len(text) > 32:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _reset_seconds(value: float | None, now: float) -> float | None:
    """Seconds until a reset given as delay-seconds or a Unix time (s or ms); None when unusable."""
    if value is None or value < 0:
        return None
    if value > _EPOCH_MILLISECONDS:
        value = value / 1000.0 - now
    elif value > _EPOCH_SECONDS:
        value -= now
    return value if value > 0 else None


def _items(value: str) -> list[str]:
    """Split a header value at the commas that are not inside a quoted string."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _params(item: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in item.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            params.setdefault(name.strip().lower(), value.strip())
    return params


def _structured(value: str, now: float) -> list[float]:
    """Waits asked for by a ``RateLimit`` header: the structured-field form and the older dictionary form."""
    waits: list[float] = []
    items = _items(value)
    dictionary: dict[str, str] = {}
    for item in items:
        params = _params(item)
        if "r" in params or "t" in params:
            remaining, reset = _number(params.get("r")), _number(params.get("t"))
            if remaining is not None and remaining <= 0:
                seconds = _reset_seconds(reset, now)
                if seconds is not None:
                    waits.append(seconds)
        else:
            # The older form: one dictionary, ``limit=100, remaining=0, reset=30``.
            for name, text in params.items():
                dictionary.setdefault(name, text)
    remaining = _number(dictionary.get("remaining"))
    if remaining is not None and remaining <= 0:
        seconds = _reset_seconds(_number(dictionary.get("reset")), now)
        if seconds is not None:
            waits.append(seconds)
    return waits


def _pair(headers: Mapping[str, str], remaining_name: str, reset_name: str, now: float) -> float | None:
    remaining = _number(_get(headers, remaining_name))
    if remaining is None or remaining > 0:
        return None
    return _reset_seconds(_number(_get(headers, reset_name)), now)


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if not isinstance(value, str) or len(value) > _MAX_VALUE:
        return None
    return value


def rate_limit_reset(headers: Mapping[str, str], cap: float = MAX_RESET_WAIT, now: float | None = None) -> float | None:
    """The seconds a response's rate-limit headers ask to wait before the next request: the time until the quota
    resets when it is spent, else None (also for garbage, and for a wait over ``cap``).

    Read: the IETF draft's ``RateLimit: "policy";r=0;t=30`` (``r`` remaining, ``t`` seconds to the reset; several
    policies may be listed), its older ``RateLimit: limit=100, remaining=0, reset=30`` and
    ``RateLimit-Remaining``/``RateLimit-Reset``, and ``X-RateLimit-Remaining``/``X-RateLimit-Reset``. A reset is
    delay-seconds, or a Unix time (seconds above ``10**9``, milliseconds above ``10**12``). Only a spent quota
    (remaining 0) asks for a wait; the longest wait asked wins. Never raises.

    :param headers: the response headers (case-insensitive, as aiohttp gives them).
    :param cap: the longest believable wait.
    :param now: the current Unix time (for a reset given as a Unix time); default ``time.time()``.
    """
    try:
        current = time.time() if now is None else float(now)
        waits: list[float] = []
        value = _get(headers, "RateLimit")
        if value is not None:
            waits += _structured(value, current)
        for remaining_name, reset_name in (
            ("RateLimit-Remaining", "RateLimit-Reset"),
            ("X-RateLimit-Remaining", "X-RateLimit-Reset"),
        ):
            seconds = _pair(headers, remaining_name, reset_name, current)
            if seconds is not None:
                waits.append(seconds)
    except (TypeError, ValueError, OverflowError):  # whatever a broken mapping does: never raise
        return None
    if not waits:
        return None
    wait = max(waits)
    return wait if wait <= cap else None
