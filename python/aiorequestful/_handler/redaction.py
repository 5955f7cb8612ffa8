# SPDX-License-Identifier: MIT
"""Request log lines with every secret masked.

Which names carry secrets is decided by :mod:`aiorequestful.security` alone (one list for logs, the cache and
error messages); this module applies it to what a request log line shows: the URL's query, ``params``, a JSON or
form body, headers, auth and proxy settings, and URLs quoted inside exception messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from yarl import URL

from .._utils import format_url_log, get_iterator
from ..security import REDACTED, is_secret_key, redact_url

__all__ = ("format_request_line", "redact_value", "scrub_urls")

#: A URL inside free text (an exception message): masked before the text reaches a log line.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]]+")


def redact_value(value: Any) -> Any:
    """A copy of ``value`` safe to log: secret-looking keys of mappings (recursively) are masked."""
    if isinstance(value, Mapping):
        return {k: (REDACTED if is_secret_key(k) else redact_value(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(isinstance(item, tuple) and len(item) == 2 for item in value):
            return [(k, REDACTED if is_secret_key(k) else v) for k, v in value]
        return [redact_value(item) for item in value]
    return value


def scrub_urls(text: str) -> str:
    """``text`` with every URL in it redacted (aiohttp's exception messages quote the request URL)."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def _items(value: Any) -> Iterable[tuple[Any, Any]]:
    """Key/value pairs of a mapping or of a sequence of pairs; anything else is one unnamed item (so any JSON
    body or parameter value can be logged)."""
    if isinstance(value, Mapping):
        return value.items()
    if isinstance(value, (list, tuple)) and all(isinstance(item, tuple) and len(item) == 2 for item in value):
        return value
    return [("", value)]


def format_request_line(method: str, url: Any, message: Any, kwargs: dict[str, Any]) -> str:
    """The log line of a request: ``METHOD : url | query and options... | message...``, secrets masked.

    The values of secret-looking query parameters, body keys and headers are masked, ``auth``/``proxy_auth``/
    ``cookies`` are not printed, user info in the URL and the ``proxy`` URL is masked, and a text or bytes body is
    shown only by its length. ``kwargs`` is not modified.
    """
    url = URL(url)
    parts: list[str] = [f"{k}: {REDACTED if is_secret_key(k) else v}" for k, v in sorted(url.query.items())]
    for name in ("params", "json"):
        value = kwargs.get(name)
        if value is None:
            continue
        value = redact_value(value)
        parts.extend(f"{k}: {v}" if k != "" else str(v) for k, v in _items(value))
    for key, value in kwargs.items():
        if not value or key in ("params", "json"):
            continue
        if key in ("headers", "proxy_headers"):
            value = redact_value(dict(value)) if isinstance(value, Mapping) else redact_value(list(value))
        elif key in ("auth", "proxy_auth", "cookies"):
            value = REDACTED
        elif key == "proxy":
            value = redact_url(value)
        elif key == "data":
            # Form text or an encoded body may carry anything: only its size is shown.
            value = f"<{len(value)} bytes>" if isinstance(value, (str, bytes, bytearray)) else redact_value(value)
        parts.append(f"{key.replace('_', ' ').title()}: {value}")
    parts.extend(str(m) for m in get_iterator(message))
    return format_url_log(method, url, parts)
