# SPDX-License-Identifier: MIT
"""Payload handlers: turn responses (or stored payloads) into the value a request returns.

A handler's ``deserialize`` turns a ``ClientResponse``, or a payload previously produced by ``serialize`` and read back
from a cache, into its result type; ``serialize`` turns a payload into the text a cache stores.
"""

from __future__ import annotations

import codecs
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from typing import Any, Generic, TypeVar

from aiohttp import ClientResponse

from .._backend import kernels
from ..types import JSON
from .exception import PayloadHandlerError

__all__ = ("BytesPayloadHandler", "JSONPayloadHandler", "PayloadHandler", "StringPayloadHandler")

T = TypeVar("T")

# JSON text cannot be empty, but an empty HTTP body means "no payload" (aiohttp's ClientResponse.json agrees).
_JSON_WHITESPACE = b" \t\n\r"


def _unrecognised(value: Any) -> PayloadHandlerError:
    return PayloadHandlerError(f"Unrecognised input type: {value}")


def _as_buffer(value: Any) -> memoryview | None:
    """A view of ``value`` as bytes, else None.

    Bytes-like objects (the buffer protocol) and iterables of byte values (``[97, 98]``, ``range(97, 99)``:
    what 1.0.20's ``bytes(r)`` accepts) qualify; an int (``bytes(3)`` is three zero bytes), a mapping, a str or any
    value ``bytes()`` refuses does not.
    """
    if isinstance(value, (str, int, Mapping)) or value is None:
        return None
    try:
        return memoryview(value)
    except TypeError:
        pass
    try:
        return memoryview(bytes(value))
    except (TypeError, ValueError):
        return None


class PayloadHandler(ABC, Generic[T]):
    """Converts a response payload to ``T`` and back to text for storage.

    Subclasses implement both coroutines; calling the handler with a response deserializes it.
    """

    __slots__ = ()

    @abstractmethod
    async def serialize(self, payload: Any) -> str:
        """The text form of ``payload``, as stored by a cache."""
        raise NotImplementedError

    @abstractmethod
    async def deserialize(self, response: Any) -> T:
        """Convert a ``ClientResponse`` or a stored payload to ``T``."""
        raise NotImplementedError

    def __call__(self, response: Any) -> Awaitable[T]:
        return self.deserialize(response=response)


class StringPayloadHandler(PayloadHandler[str]):
    """Returns payloads as text."""

    __slots__ = ()

    async def serialize(self, payload: Any) -> str:
        if isinstance(payload, (bytes, bytearray)):
            return payload.decode()
        return str(payload)

    async def deserialize(self, response: Any) -> str:
        if isinstance(response, str):
            return response
        if isinstance(response, (bytes, bytearray)):
            try:
                return response.decode()
            except UnicodeDecodeError as exc:
                raise PayloadHandlerError(f"Payload is not valid UTF-8 text: {exc}") from exc
        if isinstance(response, ClientResponse):
            try:
                return await response.text()
            except UnicodeDecodeError as exc:
                raise PayloadHandlerError(f"Response body could not be decoded as text: {exc}") from exc
        if response is None:
            raise _unrecognised(response)
        return str(response)


class BytesPayloadHandler(PayloadHandler[bytes]):
    """Returns payloads as bytes.

    :param encoding: the text encoding used to convert between str and bytes.
    """

    __slots__ = ("encoding",)

    def __init__(self, encoding: str = "utf-8") -> None:
        self.encoding = encoding

    async def serialize(self, payload: Any) -> str:
        if isinstance(payload, str):
            return payload
        buffer = _as_buffer(payload)
        if buffer is None:  # bytes(3) would be b"\x00\x00\x00"
            raise _unrecognised(payload)
        return bytes(buffer).decode(self.encoding)

    async def deserialize(self, response: Any) -> bytes:
        if isinstance(response, str):
            try:
                return response.encode(self.encoding)
            except UnicodeEncodeError as exc:
                raise PayloadHandlerError(f"Payload cannot be encoded as {self.encoding}: {exc}") from exc
        if isinstance(response, ClientResponse):
            return await response.read()
        buffer = _as_buffer(response)
        if buffer is None:  # ints, dicts, None... are not payloads
            raise _unrecognised(response)
        return bytes(buffer)


class JSONPayloadHandler(PayloadHandler[JSON]):
    """Returns payloads as decoded JSON.

    :param indent: the indent used when serializing (None: compact single line).
    """

    __slots__ = ("indent",)

    def __init__(self, indent: int | None = None) -> None:
        self.indent = indent

    async def serialize(self, payload: Any) -> str:
        value = payload
        if isinstance(payload, (str, bytes, bytearray)):
            try:
                value = kernels.json_loads(payload)
            except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError is a ValueError
                raise _unrecognised(payload) from exc
        return json.dumps(value, indent=self.indent)

    async def deserialize(self, response: Any) -> JSON:
        if isinstance(response, (dict, list)):
            # A list is valid JSON too. The round trip makes the value JSON-shaped (str keys, no tuples).
            try:
                return kernels.json_loads(json.dumps(response))
            except (ValueError, TypeError, RecursionError) as exc:
                raise PayloadHandlerError("Given payload is not a valid JSON object") from exc
        if isinstance(response, (str, bytes, bytearray)):
            return _loads(response, "Given payload")
        if isinstance(response, ClientResponse):
            return await self._deserialize_response(response)
        raise _unrecognised(response)

    @staticmethod
    async def _deserialize_response(response: ClientResponse) -> Any:
        return _json_body(await response.read(), response.charset)


def decode_body(handler: PayloadHandler[Any], body: bytes, charset: str | None) -> tuple[bool, Any]:
    """What ``await handler(response)`` returns for a response whose whole ``body`` (and ``charset``) is known,
    without the coroutines: (True, value) for a built-in handler that needs nothing else of the response (exactly
    :class:`JSONPayloadHandler`, whose subclasses may read more), else (False, None) - call the handler. Raises
    what the handler would raise."""
    if type(handler) is JSONPayloadHandler:
        return True, _json_body(body, charset)
    return False, None


def _json_body(body: bytes, charset: str | None) -> Any:
    """Decode a response body as :class:`JSONPayloadHandler` does (an empty body is None)."""
    if not body.strip(_JSON_WHITESPACE):
        return None
    # No content-type check (as in 1.0.20): many APIs send JSON as text/plain. A declared charset other than
    # UTF-8 is honoured; without one, stdlib json detects UTF-8/16/32 from the bytes themselves.
    data: str | bytes = body
    if charset:
        try:
            codec = codecs.lookup(charset).name
        except LookupError:
            codec = None  # an unknown charset: let the bytes speak for themselves
        if codec is not None and codec != "utf-8":
            try:
                data = body.decode(codec)
            except UnicodeDecodeError as exc:
                raise PayloadHandlerError(f"Response body is not valid {charset} text: {exc}") from exc
    return _loads(data, "Response body")


def _loads(data: str | bytes | bytearray, what: str) -> Any:
    """Decode JSON text; invalid text is a PayloadHandlerError naming the problem, chained to the cause."""
    try:
        return kernels.json_loads(data)
    # JSONDecodeError, undecodable bytes (UnicodeDecodeError) - both ValueErrors - and nesting too deep to decode.
    except (ValueError, RecursionError) as exc:
        raise PayloadHandlerError(f"{what} is not valid JSON: {exc}") from exc
