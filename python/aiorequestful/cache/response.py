# SPDX-License-Identifier: MIT
"""A finished response rebuilt from the cache.

The original called aiohttp's private ``ClientResponse.__init__``, whose keyword-only arguments change
between releases (aiohttp 3.14 added ``stream_writer`` and the original broke). ``CachedResponse`` still *is* a
``ClientResponse`` (``isinstance`` checks and type hints keep working) but never runs the base initialiser:
it defines every public member itself, from its own state, so no aiohttp internals are read or written.

Its headers are the original response's stored headers minus secrets and connection details, with
``Content-Length`` recomputed for the stored body, never the request's headers.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import json
import re
from collections.abc import Callable, Iterable
from email.message import Message
from http.cookies import SimpleCookie
from types import MappingProxyType
from typing import Any

import aiohttp
from aiohttp import ClientResponse, ClientResponseError, ContentTypeError, RequestInfo, hdrs
from aiohttp.base_protocol import BaseProtocol
from aiohttp.client_reqrep import ContentDisposition  # the type ClientResponse.content_disposition returns
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from .._backend import kernels
from ..response.payload import JSONPayloadHandler
from ._entry import DEFAULT_REASON, DEFAULT_STATUS, decode_headers, with_utf8_charset

__all__ = ("CachedResponse",)

_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+?\+)?json")
_LINK_PARAM = re.compile(r"^([^\s=]+)\s*=\s*(?:(['\"])(.*?)\2|(\S*))$", re.M)
_HTTP_11 = aiohttp.HttpVersion11


class _Released:
    """What ``release()`` returns: awaitable for old callers (``await resp.release()``), harmless if not awaited."""

    __slots__ = ()

    def __await__(self) -> Any:
        return iter(())


def _parse_content_type(raw: str | None) -> tuple[str, dict[str, str]]:
    if raw is None:
        return "application/octet-stream", {}  # RFC 9110 §8.3: the default when none is given
    message = Message()
    message["content-type"] = raw
    params = {str(key).lower(): str(value) for key, value in (message.get_params() or [])[1:]}
    return message.get_content_type(), params


def _merged_headers(pairs: tuple[Any, ...], text: bool, length: int) -> CIMultiDictProxy[str]:
    merged: CIMultiDict[str] = CIMultiDict()
    for name, value in pairs:
        if name.lower() == "content-length":
            continue
        if text and name.lower() == "content-type":
            value = with_utf8_charset(value)
        merged.add(name, value)
    merged[hdrs.CONTENT_LENGTH] = str(length)
    return CIMultiDictProxy(merged)


#: Headers of at most this many characters in all are kept for the next response with the same ones.
_KEPT_HEADERS_TEXT = 8192
_kept_headers = functools.lru_cache(maxsize=1024)(_merged_headers)


def _response_headers(pairs: tuple[Any, ...], text: bool, length: int) -> CIMultiDictProxy[str]:
    """The headers of a cached response: the stored ones without Content-Length, a text payload's charset
    rewritten to utf-8, then the payload's own Content-Length.

    Every hit of an entry gives the same stored headers, so the finished (read-only) proxy is kept, keyed by
    those headers, whether the payload is text and its length, and shared by the responses that have them:
    nothing can change it, and a copy is a new mapping.
    """
    try:
        size = sum(len(name) + len(value) for name, value in pairs)
    except (TypeError, ValueError):  # not (str, str) pairs: built (and refused) the usual way
        return _merged_headers(pairs, text, length)
    if size > _KEPT_HEADERS_TEXT:
        return _merged_headers(pairs, text, length)
    try:
        return _kept_headers(pairs, text, length)
    except TypeError:  # an unhashable header value: built (or refused) the usual way
        return _merged_headers(pairs, text, length)


def _request_parts(request: Any) -> tuple[RequestInfo, aiohttp.HttpVersion]:
    """The request info and HTTP version of a ``ClientRequest``, a ``ClientResponse`` or a ``RequestInfo``."""
    if isinstance(request, RequestInfo):
        return request, _HTTP_11
    info = getattr(request, "request_info", None)
    if not isinstance(info, RequestInfo):
        raise TypeError(f"Cannot build a cached response from {type(request).__name__}: it has no request info")
    version = getattr(request, "version", None)
    return info, version if isinstance(version, aiohttp.HttpVersion) else _HTTP_11


class CachedResponse(ClientResponse):
    """A finished response whose body came from the cache.

    :param request: the request it answers: a ``ClientRequest`` (as in the original), a ``ClientResponse`` or a
        ``RequestInfo``.
    :param payload: the stored body; text is encoded as UTF-8.
    :param status: the original status (default 200).
    :param reason: the original reason phrase (default ``"cached"``, as in 1.0.20).
    :param headers: the original response's safe headers (default none). ``Content-Length`` is recomputed and,
        for a text payload, a declared charset becomes UTF-8 (the encoding the body is now in).
    :param decoded: ``(payload handler, value)`` when the cache already decoded ``payload`` with that handler
        (see :meth:`decoded_payload`).
    """

    def __init__(  # deliberately does not call ClientResponse.__init__
        self,
        request: Any,
        payload: str | bytes,
        *,
        status: int = DEFAULT_STATUS,
        reason: str | None = DEFAULT_REASON,
        headers: Iterable[tuple[str, str]] | None = None,
        decoded: tuple[Any, Any] | None = None,
    ) -> None:
        info, version = _request_parts(request)
        if isinstance(payload, str):
            body = payload.encode("utf-8")
        elif isinstance(payload, (bytes, bytearray, memoryview)):
            body = bytes(payload)
        else:
            raise TypeError(f"A cached payload must be str or bytes, not {type(payload).__name__}")

        pairs = headers if isinstance(headers, tuple) else tuple(headers or ())

        self.method = str(info.method).upper()
        self.version = version
        self.status = status
        self.reason = reason
        self._cached_text: str | None = None
        self._cached_body_bytes: bytes | None = body
        self._cached_info = info
        self._cached_url = info.url.with_fragment(None) if info.url.raw_fragment else info.url
        self._cached_real_url = info.real_url
        self._cached_pairs: Any = None
        self._cached_headers_proxy: CIMultiDictProxy[str] | None = _response_headers(
            pairs, isinstance(payload, str), len(body)
        )
        self._cached_released = False
        #: What the cache did: "hit" (stored and fresh, or no policy), "stale" (within stale-while-revalidate; a
        #: background request revalidates it), "revalidated" (a 304 confirmed it) or "stale-if-error".
        self.cache_status = "hit"
        #: ``(payload handler, value)`` when the cache already decoded this payload (cache._entry.decoded_once);
        #: read it through :meth:`decoded_payload`. The attribute stays for code that reads it directly.
        self._cached_decoded: tuple[Any, Any] | None = decoded
        self._cached_json = False
        self._cached_content: aiohttp.StreamReader | None = None
        try:
            self._cached_loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._cached_loop = None

    @classmethod
    def from_store(
        cls, info: RequestInfo, payload: str | bytes, status: int, reason: str | None, headers: Any, json_text: bool
    ) -> CachedResponse:
        """A response for a stored row that was checked when it was read from the file (the cache's memory tier
        hands those out), built without decoding anything: the body is encoded, and ``headers`` (stored header
        text, or ``(name, value)`` pairs) decoded, the first time they are read. ``json_text``: the repository's
        payload handler is a plain ``JSONPayloadHandler``, so a text payload is decoded by
        :meth:`decoded_payload` for such a handler, a fresh value on every call."""
        self = cls.__new__(cls)
        self.method = info.method
        self.version = _HTTP_11
        self.status = status
        self.reason = reason
        if isinstance(payload, str):
            self._cached_text, self._cached_body_bytes = payload, None
        else:
            self._cached_text, self._cached_body_bytes = None, payload
        self._cached_info = info
        url = info.url
        self._cached_url = url.with_fragment(None) if url.raw_fragment else url
        self._cached_real_url = info.real_url
        self._cached_pairs = headers
        self._cached_headers_proxy = None
        self._cached_released = False
        self.cache_status = "hit"
        self._cached_decoded = None
        self._cached_json = json_text and self._cached_text is not None
        self._cached_content = None
        self._cached_loop = asyncio.get_running_loop()
        return self

    @property
    def _cached_body(self) -> bytes:
        """The stored body as bytes (text encoded as UTF-8 on first use)."""
        body = self._cached_body_bytes
        if body is None:
            body = self._cached_body_bytes = (self._cached_text or "").encode("utf-8")
        return body

    @_cached_body.setter
    def _cached_body(self, value: bytes) -> None:
        self._cached_body_bytes = value

    @property
    def _cached_headers(self) -> CIMultiDictProxy[str]:
        """The response headers (built on first use for a response made by :meth:`from_store`)."""
        proxy = self._cached_headers_proxy
        if proxy is None:
            pairs = self._cached_pairs
            if isinstance(pairs, str):
                pairs = tuple(decode_headers(pairs))  # checked when read from the file; secrets filtered now
            elif not isinstance(pairs, tuple):
                pairs = tuple(pairs or ())
            body = self._cached_body
            proxy = self._cached_headers_proxy = _response_headers(pairs, self._cached_text is not None, len(body))
        return proxy

    @_cached_headers.setter
    def _cached_headers(self, value: CIMultiDictProxy[str]) -> None:
        self._cached_headers_proxy = value

    def decoded_payload(self, handler: Any) -> tuple[bool, Any]:
        """``(True, value)`` when the cache can give this response's payload as ``handler`` decodes it without the
        caller reading the body: it already decoded it with that handler (that very object) while it validated
        the stored entry, or (a response made by :meth:`from_store`) the payload is JSON text that was validated
        when it was read from the file and ``handler`` is a plain ``JSONPayloadHandler`` (decoded now, a fresh
        value on every call); ``(False, None)`` otherwise (decode the response as usual). The value is the
        caller's to use: it is never shared with another hit."""
        decoded = self._cached_decoded
        if decoded is not None and decoded[0] is handler:
            return True, decoded[1]
        text = self._cached_text
        if self._cached_json and text is not None and type(handler) is JSONPayloadHandler:
            return True, kernels.json_loads(text)
        return False, None

    # ------------------------------------------------------------------------------------------------------------
    # request and status line
    # ------------------------------------------------------------------------------------------------------------
    @property
    def url(self) -> URL:
        return self._cached_url

    @property
    def real_url(self) -> URL:
        return self._cached_real_url

    @property
    def host(self) -> str:
        return self._cached_url.host or ""

    @property
    def request_info(self) -> RequestInfo:
        return self._cached_info

    @property
    def history(self) -> tuple[ClientResponse, ...]:
        return ()

    @property
    def ok(self) -> bool:
        return self.status < 400

    def raise_for_status(self) -> None:
        if not self.ok:
            raise ClientResponseError(
                self.request_info, self.history, status=self.status, message=self.reason or "", headers=self.headers
            )

    # ------------------------------------------------------------------------------------------------------------
    # headers
    # ------------------------------------------------------------------------------------------------------------
    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._cached_headers

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return tuple((name.encode("utf-8"), value.encode("utf-8")) for name, value in self._cached_headers.items())

    @property
    def content_type(self) -> str:
        return _parse_content_type(self._cached_headers.get(hdrs.CONTENT_TYPE))[0]

    @property
    def charset(self) -> str | None:
        return _parse_content_type(self._cached_headers.get(hdrs.CONTENT_TYPE))[1].get("charset")

    @property
    def content_length(self) -> int | None:
        return len(self._cached_body)

    @property
    def content_disposition(self) -> ContentDisposition | None:
        raw = self._cached_headers.get(hdrs.CONTENT_DISPOSITION)
        if raw is None:
            return None
        message = Message()
        message["content-disposition"] = raw
        params = {
            str(key).lower(): str(value) for key, value in (message.get_params(header="content-disposition") or [])[1:]
        }
        disposition = message.get_content_disposition() or raw.split(";", 1)[0].strip().lower()
        return ContentDisposition(disposition, MappingProxyType(params), message.get_filename())

    @property
    def cookies(self) -> SimpleCookie:
        return SimpleCookie()  # Set-Cookie is never stored

    @cookies.setter
    def cookies(self, cookies: SimpleCookie) -> None:
        raise AttributeError("A cached response has no cookies to set")

    @property
    def links(self) -> MultiDictProxy[MultiDictProxy[str | URL]]:
        links: MultiDict[MultiDictProxy[str | URL]] = MultiDict()
        text = ", ".join(self._cached_headers.getall("link", []))
        for item in re.split(r",(?=\s*<)", text) if text else ():
            match = re.match(r"\s*<(.*)>(.*)", item)
            if match is None:
                continue
            target, params_text = match.groups()
            link: MultiDict[str | URL] = MultiDict()
            for param in params_text.split(";")[1:]:
                found = _LINK_PARAM.match(param.strip())
                if found is None:
                    break
                key, _, value, value2 = found.groups()
                link.add(key, value if value is not None else value2)
            key = link.get("rel", target)
            link.add("url", self._cached_url.join(URL(target)))
            links.add(str(key), MultiDictProxy(link))
        return MultiDictProxy(links)

    # ------------------------------------------------------------------------------------------------------------
    # body
    # ------------------------------------------------------------------------------------------------------------
    @property
    def content(self) -> aiohttp.StreamReader:
        """A stream over the stored body (built on first use)."""
        if self._cached_content is None:
            loop = self._cached_loop
            if loop is None:
                loop = asyncio.get_running_loop()
            # A protocol without a transport: the stream is fed once, in full, and never needs flow control.
            limit = max(2**16, len(self._cached_body))
            stream = aiohttp.StreamReader(BaseProtocol(loop), limit, loop=loop)
            if self._cached_body:
                stream.feed_data(self._cached_body)
            stream.feed_eof()
            self._cached_content = stream
        return self._cached_content

    @content.setter
    def content(self, value: aiohttp.StreamReader) -> None:
        self._cached_content = value

    async def read(self) -> bytes:
        return self._cached_body

    def get_encoding(self) -> str:
        charset = _parse_content_type(self._cached_headers.get(hdrs.CONTENT_TYPE))[1].get("charset")
        if charset:
            try:
                return codecs.lookup(charset).name
            except LookupError:
                pass
        return "utf-8"  # JSON's only encoding (RFC 8259) and what the cache stores text in

    async def text(self, encoding: str | None = None, errors: str = "strict") -> str:
        return self._cached_body.decode(encoding or self.get_encoding(), errors=errors)

    async def json(
        self,
        *,
        encoding: str | None = None,
        loads: Callable[[str], Any] = json.loads,
        content_type: str | None = "application/json",
    ) -> Any:
        if content_type:
            received = self._cached_headers.get(hdrs.CONTENT_TYPE, "").lower()
            expected = _JSON_TYPE.match(received) if content_type == "application/json" else content_type in received
            if not expected:
                raise ContentTypeError(
                    self.request_info,
                    self.history,
                    status=self.status,
                    message=f"Attempt to decode JSON with unexpected mimetype: {received}",
                    headers=self.headers,
                )
        stripped = self._cached_body.strip()
        if not stripped:
            return None
        return loads(stripped.decode(encoding or self.get_encoding()))

    # ------------------------------------------------------------------------------------------------------------
    # connection state: a cached response has no connection and is always finished
    # ------------------------------------------------------------------------------------------------------------
    @property
    def connection(self) -> None:
        return None

    @property
    def closed(self) -> bool:
        return True

    @property
    def output_size(self) -> int:
        return 0  # nothing was sent

    @property
    def upload_complete(self) -> asyncio.Future[None]:
        loop = self._cached_loop or asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        future.set_result(None)  # nothing to upload
        return future

    def close(self) -> None:
        self._cached_released = True

    def release(self) -> Any:
        self._cached_released = True
        return _Released()

    async def wait_for_close(self) -> None:
        self.release()

    async def start(self, connection: Any) -> ClientResponse:
        raise RuntimeError("A cached response is already complete")

    async def __aenter__(self) -> CachedResponse:
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.release()

    def __del__(self, *_: Any) -> None:
        return None  # nothing to release (the base class would look for a connection)

    def __repr__(self) -> str:
        reason = (self.reason or "None").encode("ascii", "backslashreplace").decode("ascii")
        return f"<CachedResponse({self._cached_url}) [{self.status} {reason}]>\n{self._cached_headers}\n"
