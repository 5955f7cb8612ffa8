# SPDX-License-Identifier: MIT
"""What a cache stores besides the payload: the original status, reason and safe response headers.

A stored entry carries the response's own metadata, minus
anything that is a secret, describes one connection, or no longer matches the re-encoded body.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from .._backend import kernels
from ..response.payload import BytesPayloadHandler, JSONPayloadHandler, StringPayloadHandler
from ..security import secret_headers
from .policy import StoredTimes

__all__ = (
    "DEFAULT_REASON",
    "DEFAULT_STATUS",
    "CacheEntry",
    "ResponseMeta",
    "decode_headers",
    "decoded_once",
    "default_headers",
    "encode_headers",
    "format_stamp",
    "now_stamp",
    "safe_headers",
    "utc_now",
)

#: As in 1.0.20, a response rebuilt from a payload alone (no stored metadata) reports 200 "cached".
DEFAULT_STATUS = 200
DEFAULT_REASON = "cached"

# Never stored, never replayed, for these reasons:
# * credentials and session state: every name in aiorequestful.security.secret_headers() (Authorization,
#   Proxy-Authorization, Cookie, API-key headers, Set-Cookie/Set-Cookie2 and any name a user added), asked at the
#   moment of each save and read: a request header some servers echo, or a session token that belongs to one
#   client, not to the representation;
# * authentication exchanges: WWW-Authenticate/Proxy-Authenticate/(Proxy-)Authentication-Info carry challenges,
#   nonces and next-nonces tied to one connection's auth state; replaying them from a cache would mislead an
#   auth flow and they are never part of what a resource *is*;
# * hop-by-hop headers (RFC 9110 §7.6.1): they describe the connection that carried the response;
# * body encoding and integrity: the cache stores the decoded, re-serialised payload, so the original
#   Content-Length/Content-Encoding and digests would describe bytes we no longer hold (the length is
#   recomputed when the response is rebuilt).
# Compared in lower case: field names are case-insensitive (RFC 9110 §5.1), and a server (or HTTP/2) may send
# "set-cookie" or "authorization" in any case - all of them must be dropped, not only the title-case spelling.
_DROPPED = frozenset(
    name.lower()
    for name in (
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Authentication-Info",
        "Proxy-Authentication-Info",
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "Transfer-Encoding",
        "TE",
        "Trailer",
        "Upgrade",
        "Content-Encoding",
        "Content-Length",
        "Content-MD5",
        "Digest",
        "Content-Digest",
        "Repr-Digest",
    )
)

# RFC 9110 §5.1/§5.5: a field name is a token; a value never contains CR, LF or NUL.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_CHARSET = re.compile(r"""(;\s*charset\s*=\s*)("[^"]*"|[^;\s]*)""", re.IGNORECASE)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def format_stamp(value: datetime) -> str:
    """A fixed-width UTC ISO-8601 stamp, so that text order is time order.

    ``isoformat()`` drops the microseconds when they are zero and keeps local offsets; both break ordering when
    stamps are compared as text in SQL. A naive ``value`` is taken to be local time (as ``datetime`` does).
    """
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


# (second, "YYYY-MM-DDTHH:MM:SS") of the latest now_stamp: one tuple, replaced whole, so threads never see a
# second paired with another second's text.
_last_second: tuple[int, str] = (-1, "")


def now_stamp() -> str:
    """``format_stamp(utc_now())``, read on every cache lookup, so made cheaply: the date and time of day are
    formatted once per second and only the microseconds on each call.

    Exact: ``datetime.now`` reads the same system clock as ``time.time_ns`` and rounds it down to the
    microsecond, as the integer division here does; the date parts are those of ``time.gmtime``.
    """
    global _last_second
    micros = time.time_ns() // 1000
    second, fraction = divmod(micros, 1_000_000)
    last = _last_second
    if last[0] != second:
        t = time.gmtime(second)
        last = _last_second = (
            second,
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}",
        )
    return f"{last[1]}.{fraction:06d}+00:00"


def safe_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """The (name, value) pairs of ``headers`` that may be stored and replayed, in their original order."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = [(str(name), str(value)) for name, value in items]
    # The shared list of secret names, as it stands now (users may add names at run time).
    return _kept(pairs, secret_headers())


def _kept(pairs: list[tuple[str, str]], secret: frozenset[str]) -> list[tuple[str, str]]:
    # Connection: lists further hop-by-hop header names for this one message (RFC 9110 §7.6.1).
    named = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    }
    dropped = _DROPPED | named if named else _DROPPED
    return [(name, value) for name, value in pairs if (low := name.lower()) not in dropped and low not in secret]


def encode_headers(pairs: Iterable[tuple[str, str]]) -> str:
    """Stored form of the headers: a JSON list of ``[name, value]`` pairs (keeps order and repeated names)."""
    return json.dumps([[name, value] for name, value in pairs], ensure_ascii=False, separators=(",", ":"))


#: How many decoded header lists are kept, and the longest stored text kept (longer ones are decoded each time):
#: at most about 2048 x 4 KiB of text, plus its decoded pairs.
_HEADER_MEMO_SIZE = 2048
_HEADER_MEMO_TEXT = 4096


def decode_headers(text: Any) -> list[tuple[str, str]]:
    """Parse a stored header list; ``ValueError`` for anything that is not one (a corrupt row).

    The secret filter is applied again: a row written by another tool must not smuggle credentials in.

    Every hit of an entry decodes the same text, so the result is kept by the text and by the set of secret
    names in force (a name made secret later is dropped from the next result on). Each caller gets a list of
    its own (of immutable pairs): what one caller does with it never reaches another.
    """
    if not isinstance(text, str):
        raise ValueError(f"stored headers are {type(text).__name__}, not text")
    if len(text) <= _HEADER_MEMO_TEXT:
        return list(_decoded_kept(text, secret_headers()))
    return list(_decoded(text, secret_headers()))


@functools.lru_cache(maxsize=_HEADER_MEMO_SIZE)
def _decoded_kept(text: str, secret: frozenset[str]) -> tuple[tuple[str, str], ...]:
    return _decoded(text, secret)  # an error is raised again on every call: errors are never kept


def _decoded(text: str, secret: frozenset[str]) -> tuple[tuple[str, str], ...]:
    data = kernels.json_loads(text)  # the JSON kernel: stdlib results and errors, faster on every cache hit
    if not isinstance(data, list):
        raise ValueError("stored headers are not a list")
    pairs: list[tuple[str, str]] = []
    for item in data:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)):
            raise ValueError("stored headers hold an item that is not a [name, value] pair of strings")
        name, value = item
        if not _TOKEN.match(name) or _BAD_VALUE.search(value):
            raise ValueError("stored headers hold an invalid header name or value")
        pairs.append((name, value))
    return tuple(_kept(pairs, secret))


def with_utf8_charset(content_type: str) -> str:
    """``content_type`` with any charset parameter replaced by utf-8 (the cache stores text as UTF-8)."""
    return _CHARSET.sub(lambda match: match.group(1) + "utf-8", content_type)


def decoded_once(handler: Any, payload: Any, value: Any) -> tuple[Any, Any] | None:
    """``(handler, value)`` when ``value`` (``handler`` applied to the stored ``payload``) is exactly what
    ``handler`` would give for the ``CachedResponse`` built from it, so that the request loop need not decode the
    same JSON a second time; else None.

    Only for a plain ``JSONPayloadHandler`` and a text payload: the response body is then that text as UTF-8,
    with any declared charset rewritten to utf-8, which decodes to the same value. Other handlers (subclasses
    included) and byte payloads (whose declared charset may differ from what the bytes alone say) are decoded
    from the response as before.
    """
    if type(handler) is JSONPayloadHandler and isinstance(payload, str):
        return handler, value
    return None


def default_headers(payload_handler: Any) -> list[tuple[str, str]]:
    """Headers for an entry stored without any (saved by key, or by an older version): a Content-Type matching
    what the repository's payload handler stores, so that ``json()``/``text()`` work as on the original."""
    if isinstance(payload_handler, JSONPayloadHandler):
        return [("Content-Type", "application/json; charset=utf-8")]
    if isinstance(payload_handler, StringPayloadHandler):
        return [("Content-Type", "text/plain; charset=utf-8")]
    if isinstance(payload_handler, BytesPayloadHandler):
        return [("Content-Type", "application/octet-stream")]
    return []


class ResponseMeta:
    """The status, reason and safe headers of a response, as stored next to its payload.

    With an HTTP caching policy also ``times`` (when it was asked for and received, and what it varies on; see
    ``cache.policy.StoredTimes``) and ``keep``: how many seconds to keep the row when that is less than the
    repository's expiry (None: the repository's expiry).
    """

    __slots__ = ("headers", "keep", "reason", "status", "times")

    def __init__(
        self,
        status: int,
        reason: str | None,
        headers: list[tuple[str, str]],
        times: StoredTimes | None = None,
        keep: float | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.times = times
        self.keep = keep

    def encoded_times(self) -> str | None:
        """``times`` in its stored form, or None."""
        return None if self.times is None else self.times.encode()

    def keep_seconds(self, expire_seconds: float) -> float:
        """Seconds to keep the row: the repository's ``expire_seconds``, or less when ``keep`` says so."""
        return expire_seconds if self.keep is None else max(0.0, min(expire_seconds, self.keep))

    @classmethod
    def from_response(cls, response: Any) -> ResponseMeta | None:
        """The metadata of an aiohttp response, or None for an object that is not one."""
        status = getattr(response, "status", None)
        if isinstance(status, bool) or not isinstance(status, int):
            return None
        reason = getattr(response, "reason", None)
        headers = safe_headers(getattr(response, "headers", None))
        return cls(status, reason if isinstance(reason, str) else None, headers)


class CacheEntry:
    """A live stored response: its payload as stored (text or bytes) and its metadata.

    ``decoded``, when not None, is ``(payload handler, value)``: the value that handler gives for a
    ``CachedResponse`` of this entry, already computed while the row was validated (see :func:`decoded_once`).
    """

    __slots__ = ("decoded", "headers", "payload", "reason", "status", "times")

    def __init__(
        self,
        payload: str | bytes,
        status: int = DEFAULT_STATUS,
        reason: str | None = DEFAULT_REASON,
        headers: list[tuple[str, str]] | None = None,
        decoded: tuple[Any, Any] | None = None,
        times: StoredTimes | None = None,
    ) -> None:
        self.payload = payload
        self.status = status
        self.reason = reason
        self.headers = headers
        self.decoded = decoded
        #: When the response was asked for and received, and what it varies on (stored with a caching policy).
        self.times = times

    def __repr__(self) -> str:
        return f"CacheEntry(status={self.status!r}, reason={self.reason!r}, size={len(self.payload)})"
