# SPDX-License-Identifier: MIT
"""A keyed one-way digest of the credentials a request carried, so that a cache never serves one identity's
response to a request made with other credentials. A secret is never stored, only this digest.

Which headers are credentials is decided by :func:`aiorequestful.security.secret_headers` at the moment of each
request, so a name added with :func:`~aiorequestful.security.add_secret_headers` scopes entries from then on.
``CachedSession`` puts everything else that identifies the caller into the request's headers the way aiohttp
would send it: ``auth=``, the session's ``auth`` and user info in the URL become ``Authorization``; the
``cookies=`` argument and the session cookie jar's cookies for the URL become ``Cookie``.

The digest is HMAC-SHA256 under a random key that belongs to the cache (kept in the cache itself: a metadata
table of the SQLite file, one Redis key), computed inline: microseconds per request, no thread pool. Someone who
reads the stored digests cannot test guesses of a password or token against them without also holding the key,
and the same credentials give the same digest in every process and after every restart that uses that cache.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from ..security import secret_headers

__all__ = ("KEY_SIZE", "NO_CREDENTIALS", "credential_digest", "credential_pairs", "credential_values", "new_key")

#: The digest stored for a request without credentials (and for entries saved directly by key).
NO_CREDENTIALS = ""

#: The size in bytes of a cache's digest key.
KEY_SIZE = 32


def new_key() -> bytes:
    """A fresh random digest key for a new cache."""
    return secrets.token_bytes(KEY_SIZE)


def credential_pairs(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> tuple[tuple[str, str], ...]:
    """The ``(lower-case name, value)`` pairs of the secret headers in ``headers``, ordered by name.

    Repeated headers keep every value, in the order sent (the sort is stable); the order in which different
    headers were given does not matter.
    """
    if not headers:
        return ()
    names = secret_headers()
    items = headers.items() if isinstance(headers, Mapping) else headers
    # A CIMultiDict's items() yields every value of a repeated header; a plain dict holds one per spelling.
    pairs = [(lowered, str(value)) for name, value in items if (lowered := str(name).lower()) in names]
    pairs.sort(key=lambda pair: pair[0])
    return tuple(pairs)


def credential_values(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> tuple[str, ...]:
    """The values of the secret headers in ``headers`` (see :func:`credential_pairs`)."""
    return tuple(value for _, value in credential_pairs(headers))


def credential_digest(key: bytes, headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> str:
    """The stored digest for the credentials in ``headers`` under the cache's ``key``; ``NO_CREDENTIALS`` when
    there are none. Header names are part of what is digested, so the same value sent as ``X-API-Key`` and as
    ``Authorization`` gives different digests."""
    pairs = credential_pairs(headers)
    if not pairs:
        return NO_CREDENTIALS
    # JSON of the pairs is an unambiguous encoding: no two different lists of pairs give the same bytes.
    data = json.dumps(pairs, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return hmac.digest(key, data, "sha256").hex()
