# SPDX-License-Identifier: MIT
"""What the request loop sends through when it runs inside an aiohttp client middleware."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

if TYPE_CHECKING:
    from aiohttp import ClientRequest, ClientResponse, ClientSession

__all__ = ("Transport",)


class Transport:
    """The request a client middleware was given and the next step of the session's middleware chain.

    Every attempt sends the same ``ClientRequest`` again (aiohttp allows a middleware to call the next step more
    than once). A status handler that re-authorises updates the *session's* default headers, as it does for a
    handler's own session; the request was built before that, so each send first carries over the default
    headers that changed since the request was made.
    """

    __slots__ = ("_defaults", "_next", "request", "session")

    def __init__(self, request: ClientRequest, next_step: Any) -> None:
        self.request = request
        self.session: ClientSession = request.session
        self._next = next_step
        self._defaults: CIMultiDict[str] = CIMultiDict(self.session.headers)

    async def send(self) -> ClientResponse:
        current = self.session.headers
        if current != self._defaults:
            headers = self.request.headers
            for name in {name.lower(): name for name in current}.values():
                values = current.getall(name)
                if self._defaults.getall(name, []) != values:
                    headers.popall(name, None)
                    for value in values:
                        headers.add(name, value)
            self._defaults = CIMultiDict(current)
        return await self._next(self.request)
