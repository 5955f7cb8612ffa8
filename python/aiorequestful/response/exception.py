# SPDX-License-Identifier: MIT
"""Exceptions raised while handling responses (api.md §1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exception import AIORequestfulError, HTTPError

if TYPE_CHECKING:
    from aiohttp import ClientResponse

__all__ = ("PayloadHandlerError", "ResponseError", "StatusHandlerError")


class ResponseError(HTTPError):
    """A response could not be handled; carries the response when there is one.

    ``str(error)`` joins ``"Status code: {status}"`` (when a response is attached) and the message with ``" | "``.

    :param message: what went wrong.
    :param response: the response that caused the error.
    """

    def __init__(self, message: str | None = None, response: ClientResponse | None = None) -> None:
        self.message = message
        self.response = response
        parts = []
        if response:
            parts.append(f"Status code: {response.status}")
        if message:
            parts.append(message)
        super().__init__(" | ".join(parts))


class PayloadHandlerError(AIORequestfulError):
    """A payload could not be serialised or deserialised."""


class StatusHandlerError(AIORequestfulError):
    """A status handler was given a response it does not handle."""
