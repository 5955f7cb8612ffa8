# SPDX-License-Identifier: MIT
"""Reading a response body within a size limit, and error messages that show only the start of a body.

A hostile server can send a body of any size, or a small compressed stream that inflates to gigabytes. The
body is therefore read here chunk by chunk from ``response.content`` (which yields the bytes *after*
decompression), counting as it goes, and the read stops as soon as the count passes the limit: the response
is then closed (its connection is not handed back to the pool) and :class:`ResponseTooLargeError` raised.

A body read here within the limit is kept on the response, so every later ``read()``, ``text()`` or
``json()`` (a payload handler, a status handler, the cache) returns these same bytes without reading again.
"""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse

from .._aiohttp import keep_body
from ..security import redact_url
from .exception import ResponseError, ResponseTooLargeError

__all__ = ("EXCERPT_LENGTH", "body_ready", "error_for_response", "read_body", "request_name")

#: How many characters of a body an error message shows.
EXCERPT_LENGTH = 300


def request_name(response: Any) -> str:
    """``METHOD url`` of the request that produced ``response``, with the URL's secrets masked."""
    method = getattr(response, "method", None) or "?"
    url = getattr(response, "url", None)
    return f"{str(method).upper()} {redact_url(url) if url is not None else '<unknown URL>'}"


def excerpt(body: str) -> str:
    """The first :data:`EXCERPT_LENGTH` characters of ``body``, saying how long the whole is when cut."""
    if len(body) <= EXCERPT_LENGTH:
        return body
    return (
        f"{body[:EXCERPT_LENGTH]}... [first {EXCERPT_LENGTH} of {len(body)} characters; "
        "the whole body is the error's .body]"
    )


def error_for_response(response: ClientResponse, body: str) -> ResponseError:
    """A :class:`ResponseError` for an error response: its request, the start of its body, the whole on ``.body``.

    ``str(error)`` is ``"Status code: {status} | {METHOD} {redacted url} | Content-Type: {type} | {first 300
    characters...}"`` (the content type when the response has one); the error's ``method``, ``url``, ``status``
    and ``content_type`` say the same.
    """
    message = request_name(response)
    content_type = response.headers.get("Content-Type")
    if content_type:
        message = f"{message} | Content-Type: {content_type}"
    if body:
        message = f"{message} | {excerpt(body)}"
    return ResponseError(message, response, body=body)


async def read_body(response: ClientResponse, max_body_size: int | None) -> bytes:
    """The body of ``response``, read at most ``max_body_size`` bytes (after decompression) at a time.

    :param max_body_size: the largest body accepted, in bytes; None reads without a limit.
    :raises ResponseTooLargeError: the body is larger (the response is closed first; every later read of it
        raises the same error).
    :raises aiohttp.ClientError | TimeoutError: the body could not be read.
    """
    content = response.content
    if max_body_size is None or content.at_eof():
        # Nothing left to stream: the body was read already (or is empty), and read() returns it.
        body = await response.read()
        if max_body_size is not None and len(body) > max_body_size:
            raise _too_large(response, max_body_size)
        return body
    ready = body_ready(response, max_body_size)
    if ready is not None:
        return ready
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > max_body_size:
            chunks.clear()
            error = _too_large(response, max_body_size)
            # Every later read of this response meets the same error instead of a shortened body; the
            # connection is closed, not returned to the pool with the rest of the body still on it.
            content.set_exception(error)
            response.close()
            raise error
        chunks.append(chunk)
    body = b"".join(chunks)
    keep_body(response, body)
    return body


def body_ready(response: ClientResponse, max_body_size: int | None) -> bytes | None:
    """The whole body of ``response`` when all of it has arrived and none of it was read yet, within
    ``max_body_size``: taken from the stream at once, without waiting (kept for later reads, as
    :func:`read_body` keeps it). None otherwise: read it with :func:`read_body`."""
    content = response.content
    # Fed to its end but not read from (a read would have left it at its end): all of it is in the buffer.
    if content.is_eof() and not content.at_eof() and (max_body_size is None or content.total_bytes <= max_body_size):
        body = content.read_nowait()
        keep_body(response, body)
        return body
    return None


def _too_large(response: ClientResponse, max_body_size: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"{request_name(response)} | Response body is larger than the maximum body size of {max_body_size} "
        "bytes (max_body_size); the connection was closed",
        response,
        max_body_size=max_body_size,
    )
