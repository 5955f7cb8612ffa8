# SPDX-License-Identifier: MIT
"""The one list of names that carry secrets, and the helpers that mask them.

Every place that must keep a secret out of sight asks this module: log lines mask these headers, query
parameters and body keys; the cache never stores these headers and scopes its entries by their values; error
messages show URLs through :func:`redact_url`. Keeping the list in one place means a name added here (or by a
user with :func:`add_secret_headers`) is honoured everywhere at once.

Names are compared case-insensitively (HTTP field names are case-insensitive, and so are the query parameter
names that conventionally hold keys and signatures).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from yarl import URL

__all__ = (
    "DEFAULT_SECRET_HEADERS",
    "DEFAULT_SECRET_QUERY_NAMES",
    "REDACTED",
    "SECRET_KEY_PARTS",
    "add_secret_headers",
    "add_secret_query_names",
    "is_secret_header",
    "is_secret_key",
    "redact_url",
    "secret_headers",
    "secret_query_names",
)

#: What a masked value is replaced with.
REDACTED = "<redacted>"

#: Request and response headers whose values are credentials or session state.
DEFAULT_SECRET_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "set-cookie2",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-access-token",
        "x-amz-security-token",
        "x-goog-api-key",
    }
)

#: Query parameter names (exact, case-insensitive) that conventionally carry keys, tokens or signatures.
DEFAULT_SECRET_QUERY_NAMES: frozenset[str] = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "api-key",
        "sig",
        "signature",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "code",
        "code_verifier",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
    }
)

#: Substrings that make any key (query parameter, JSON/form field, header) count as a secret.
SECRET_KEY_PARTS: tuple[str, ...] = (
    "secret",
    "password",
    "passwd",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "code_verifier",
    "assertion",
    "signature",
)

_lock = threading.Lock()
_headers: frozenset[str] = DEFAULT_SECRET_HEADERS
_query_names: frozenset[str] = DEFAULT_SECRET_QUERY_NAMES


def _lowered(names: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(names, str):
        names = (names,)
    lowered = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"A secret {what} name must be a non-empty string, got {name!r}")
        lowered.add(name.strip().lower())
    return frozenset(lowered)


def add_secret_headers(*names: str) -> None:
    """Treat the headers ``names`` as secret from now on, process-wide (logs, cache storage, cache scope).

    For an API that takes its key in a header of its own, e.g. ``add_secret_headers("X-Tenant-Key")``.
    """
    global _headers
    new = _lowered(names, "header")
    with _lock:
        _headers = _headers | new


def add_secret_query_names(*names: str) -> None:
    """Treat the query parameters ``names`` as secret from now on, process-wide (masked in logs and messages)."""
    global _query_names
    new = _lowered(names, "query parameter")
    with _lock:
        _query_names = _query_names | new


def secret_headers() -> frozenset[str]:
    """The lower-case names of every secret header: the defaults plus those added."""
    return _headers


def secret_query_names() -> frozenset[str]:
    """The lower-case names of every secret query parameter: the defaults plus those added."""
    return _query_names


def is_secret_header(name: Any) -> bool:
    """Whether the header ``name`` carries a secret (case-insensitive)."""
    return str(name).lower() in _headers


def is_secret_key(name: Any) -> bool:
    """Whether a key (query parameter, body field or header name) looks like it holds a secret."""
    lowered = str(name).lower()
    return lowered in _headers or lowered in _query_names or any(part in lowered for part in SECRET_KEY_PARTS)


def redact_url(url: URL | str) -> str:
    """``url`` as text safe to show: user info and the values of secret-looking query parameters are masked.

    Text that yarl cannot parse as a URL is masked whole (it may still hold a secret).
    """
    if not isinstance(url, URL):
        try:
            url = URL(str(url))
        except (ValueError, TypeError):
            return REDACTED
    if url.user is not None or url.password is not None:
        # with_user(None) drops the password too; both are replaced by one marker.
        url = url.with_user(None).with_password(None)
        if url.host is not None:
            url = url.with_user(REDACTED)
    query = url.query
    if query and any(is_secret_key(name) for name in query):
        url = url.with_query([(name, REDACTED if is_secret_key(name) else value) for name, value in query.items()])
    return url.human_repr()
