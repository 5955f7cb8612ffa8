# SPDX-License-Identifier: MIT
"""Exceptions raised while handling responses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exception import AIORequestfulError, HTTPError
from ..security import redact_url

if TYPE_CHECKING:
    from aiohttp import ClientResponse

__all__ = ("PayloadHandlerError", "ResponseError", "ResponseTooLargeError", "StatusHandlerError")


class ResponseError(HTTPError):
    """A response could not be handled; carries the response when there is one.

    ``str(error)`` joins ``"Status code: {status}"`` (when a response is attached) and the message with ``" | "``.

    :param message: what went wrong.
    :param response: the response that caused the error.
    :param body: the response's whole body text, when it was read (the message shows only its start).
    """

    def __init__(self, message: str | None = None, response: ClientResponse | None = None, *, body: str | None = None):
        self.message = message
        self.response = response
        #: The whole body text of the response, or None when it was not read.
        self.body = body
        #: The request method, the URL (secrets masked), the status code and the response's Content-Type, when
        #: a response is attached (otherwise None).
        self.method: str | None = None
        self.url: str | None = None
        self.status: int | None = None
        self.content_type: str | None = None
        if response is not None:
            method = getattr(response, "method", None)
            self.method = str(method).upper() if method else None
            url = getattr(response, "url", None)
            self.url = redact_url(url) if url is not None else None
            self.status = getattr(response, "status", None)
            headers = getattr(response, "headers", None)
            self.content_type = headers.get("Content-Type") if headers is not None else None
        parts = []
        if response:
            parts.append(f"Status code: {response.status}")
        if message:
            parts.append(message)
        super().__init__(" | ".join(parts))


class ResponseTooLargeError(ResponseError):
    """A response body (counted after decompression) was larger than the maximum body size allowed.

    The connection it arrived on was closed, and nothing of it was cached.

    :param max_body_size: the limit, in bytes, that the body went over.
    """

    def __init__(self, message: str, response: ClientResponse | None = None, *, max_body_size: int) -> None:
        super().__init__(message, response)
        #: The limit, in bytes, that the body went over.
        self.max_body_size = max_body_size


class PayloadHandlerError(AIORequestfulError):
    """A payload could not be serialised or deserialised.

    Raised by the request loop, it names the request: ``method``, ``url`` (redacted), ``status`` and
    ``content_type`` of the response are then set (otherwise None).
    """

    def __init__(
        self,
        *args: object,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(*args)
        #: The request method, when raised for a response of the request loop.
        self.method = method
        #: The request URL with its secrets masked, when raised for a response of the request loop.
        self.url = url
        #: The response status code, when raised for a response of the request loop.
        self.status = status
        #: The response's Content-Type header, when raised for a response of the request loop.
        self.content_type = content_type


class StatusHandlerError(AIORequestfulError):
    """A status handler was given a response it does not handle."""
