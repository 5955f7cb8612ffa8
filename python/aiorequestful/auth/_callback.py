# SPDX-License-Identifier: MIT
"""The local listener that receives the authorisation-code redirect, served without blocking the event loop.

It serves HTTP with ``aiohttp.web`` on the socket a :class:`~aiorequestful.auth.utils.SocketHandler` bound on
127.0.0.1, so the event loop is never blocked, the request target is parsed by a real HTTP parser, every
request gets a proper HTTP response, and all connections are closed when the flow ends. Requests for other
paths (a browser's ``/favicon.ico``) are answered with 404 and do not end the flow.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import socket
from uuid import UUID

from aiohttp import web
from multidict import MultiMapping
from yarl import URL

from .exception import AuthoriserError

logger = logging.getLogger("aiorequestful.auth.base")

#: The exact reply the reference sends to the browser once the code arrived.
SUCCESS_MESSAGE = "Code received! You may now close this window"

#: Request lines longer than aiohttp's default (8190) are allowed: some providers issue long codes.
_MAX_LINE_SIZE = 65536
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_MAX_PROVIDER_TEXT = 300

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{message}</p></body></html>
"""


def provider_text(value: str | None) -> str:
    """Text from a provider (error codes, descriptions), made safe for one log line or message."""
    text = _CONTROL_CHARS.sub(" ", value or "").strip()
    return text if len(text) <= _MAX_PROVIDER_TEXT else f"{text[:_MAX_PROVIDER_TEXT]}..."


def _page(status: int, title: str, message: str) -> web.Response:
    response = web.Response(
        status=status,
        text=_PAGE.format(title=html.escape(title), message=html.escape(message)),
        content_type="text/html",
        charset="utf-8",
        headers={
            # The page's URL carries the code: keep it out of caches and Referer headers.
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )
    response.force_close()
    return response


def _normalise_path(path: str) -> str:
    return path.rstrip("/") or "/"


class CallbackListener:
    """Serve one authorisation callback on ``sock`` and resolve to its code.

    :param sock: A bound, listening socket (from ``SocketHandler``); the listener's server takes it over.
    :param redirect_uri: The redirect URI sent to the provider; only its path is served.
    :param state: The state sent with the authorisation request; the callback must return it.
    :param service_name: Used in messages.
    """

    __slots__ = ("_future", "_path", "_runner", "_service_name", "_sock", "_state")

    def __init__(self, sock: socket.socket, *, redirect_uri: URL, state: UUID, service_name: str) -> None:
        self._sock = sock
        self._path = _normalise_path(redirect_uri.path)
        self._state = state
        self._service_name = service_name
        self._future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._runner: web.AppRunner | None = None

    @property
    def done(self) -> bool:
        """True once a callback has been received (successful or not)."""
        return self._future.done()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # access_log=None: the access log would record the request line, i.e. the authorisation code.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5, max_line_size=_MAX_LINE_SIZE
        )
        await runner.setup()
        self._runner = runner
        try:
            await web.SockSite(runner, self._sock).start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop serving and close the listening socket and every accepted connection."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._future.done() and not self._future.cancelled():
            self._future.exception()  # mark as retrieved: the caller may have stopped waiting (time-out)
        elif not self._future.done():
            self._future.cancel()

    async def wait(self, timeout: float | None) -> str:  # noqa: ASYNC109 - the flow's documented time-out
        """The authorisation code; :class:`AuthoriserError` on a refused/invalid callback or after ``timeout``."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except TimeoutError:
            raise AuthoriserError(
                f"Timed out after {timeout} seconds waiting for the authorisation callback for {self._service_name}"
            ) from None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            # Only a GET (the browser following the redirect) may deliver the code; a HEAD probe must not use it up.
            response = _page(405, "Method not allowed", "This address only receives the authorisation redirect.")
            response.headers["Allow"] = "GET"
            return response
        if _normalise_path(request.path) != self._path:
            return _page(404, "Not found", "This address only receives the authorisation redirect.")

        # The target was parsed by aiohttp's HTTP parser; query values are already percent-decoded.
        query = request.query
        if not any(name in query for name in ("code", "state", "error")):
            return _page(400, "Not an authorisation response", "This address only receives the authorisation redirect.")
        if self._future.done():
            return _page(409, "Already received", "This authorisation is complete; you may close this window.")

        try:
            code = self._read_callback(query)
        except AuthoriserError as exc:
            self._future.set_exception(exc)
            logger.debug("Authorisation callback for %s refused: %s", self._service_name, exc)
            return _page(400, "Authorisation failed", f"{exc}. Return to the application for details.")
        self._future.set_result(code)
        logger.debug("Authorisation callback for %s received", self._service_name)
        return _page(200, "Code received!", SUCCESS_MESSAGE)

    def _read_callback(self, query: MultiMapping[str]) -> str:
        for name in ("code", "state", "error"):
            if len(query.getall(name, ())) > 1:
                # RFC 6749 §3.1: parameters must not be repeated; a repeated one is ambiguous, so refuse it.
                raise AuthoriserError(f"The authorisation callback repeats the parameter {name!r}")
        try:
            returned = UUID(query.get("state", ""))
        except ValueError:
            raise AuthoriserError("Returned state is not a valid UUID") from None
        if returned != self._state:
            raise AuthoriserError("Invalid state returned")
        if "error" in query:
            message = f"Authorisation was refused for {self._service_name}: {provider_text(query['error'])}"
            if query.get("error_description"):
                message += f": {provider_text(query['error_description'])}"
            raise AuthoriserError(message)
        code = query.get("code", "")
        if not code:
            raise AuthoriserError("The authorisation callback carries no code")
        return code
