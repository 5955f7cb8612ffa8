# SPDX-License-Identifier: MIT
"""Checks of ``RequestHandler``'s arguments: a wrong one fails where the handler is built, saying what was
expected, instead of at the first request (or never)."""

from __future__ import annotations

from http import HTTPMethod
from typing import Any

from ..response.payload import PayloadHandler
from ..timer import Timer, unusable_as_wait

__all__ = ("check_authoriser", "check_max_body_size", "check_payload_handler", "check_timer", "http_method", "what")


def what(value: Any) -> str:
    """``value`` described for an error message: a class by its name (the usual slip is a missing ``()``)."""
    if isinstance(value, type):
        return f"the class {value.__name__} (an instance was expected: {value.__name__}(...))"
    return f"{type(value).__name__} {value!r}" if isinstance(value, (int, float, str)) else type(value).__name__


def check_timer(value: Any, name: str) -> Timer | None:
    """``value`` as the handler's ``name`` timer: None, or a timer whose schedule can be slept."""
    if value is None:
        return None
    if not isinstance(value, Timer):
        raise TypeError(
            f"{name} must be a Timer (e.g. StepCountTimer(initial=0.5, count=3, step=0.5)) or None, not {what(value)}"
        )
    problem = unusable_as_wait(value)
    if problem is not None:
        raise ValueError(f"{name} cannot be used as a schedule of waits: {type(value).__name__}: {problem}")
    return value


def check_payload_handler(value: Any) -> PayloadHandler:
    if not isinstance(value, PayloadHandler):
        raise TypeError(
            f"payload_handler must be a PayloadHandler instance (e.g. JSONPayloadHandler()), not {what(value)}"
        )
    return value


def check_authoriser(value: Any) -> Any:
    if value is None:
        return None
    from ..auth.base import Authoriser  # the auth package is imported only when an authoriser is given

    if not isinstance(value, Authoriser):
        raise TypeError(f"authoriser must be an Authoriser instance or None, not {what(value)}")
    return value


def check_max_body_size(value: Any) -> int | None:
    """``value`` as a body size limit: None (no limit) or a whole number of bytes >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_body_size must be an int number of bytes or None, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"max_body_size must be >= 0 bytes or None, not {value!r}")
    return value


#: Method strings already converted (``"get"`` -> ``HTTPMethod.GET``): ``str.upper`` plus the enum lookup cost
#: more than a dict hit on every request. Only valid spellings are stored, and only this many of them.
_METHODS: dict[str, HTTPMethod] = {}
_MAX_METHODS = 256


def http_method(value: Any) -> HTTPMethod:
    """``HTTPMethod(value.upper())``, remembered per exact string (same result and errors as uncached)."""
    if type(value) is str:
        method = _METHODS.get(value)
        if method is None:
            method = HTTPMethod(value.upper())
            if len(_METHODS) < _MAX_METHODS:
                _METHODS[value] = method
        return method
    return HTTPMethod(value.upper())
