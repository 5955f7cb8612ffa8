# SPDX-License-Identifier: MIT
"""The two things this package needs from aiohttp that aiohttp has no public API for, each in one function.

Everything else in the package uses aiohttp's public surface only (``tests/test_contract_extras.py`` checks the
whole package's syntax tree for aiohttp's private names, allowing this module alone). Both functions are pinned
by tests that run on the oldest and the newest aiohttp the package supports, so a change in aiohttp shows up
here, in one place, rather than as a broken cache or a wrong host key.
"""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse
from yarl import URL

__all__ = ("keep_body", "session_base_url")


def session_base_url(session: Any) -> URL | None:
    """The base URL relative request URLs are joined to by ``session``, or None.

    A session that publishes its base URL as ``base_url`` (``CachedSession`` does) is asked for it; a plain
    ``aiohttp.ClientSession`` keeps the ``base_url=`` it was given only in its private ``_base_url``.
    """
    if session is None:
        return None
    published = getattr(type(session), "base_url", None)
    if isinstance(published, property):
        value = session.base_url
    else:
        value = getattr(session, "_base_url", None)
    return None if value is None else URL(value)


def keep_body(response: ClientResponse, body: bytes) -> None:
    """Make ``response.read()``/``text()``/``json()`` return ``body``, which was read from ``response.content``.

    aiohttp keeps the body its own ``read()`` read in the private ``_body`` attribute and has no public way to
    hand it a body read from the stream (which is then at its end, so a later ``read()`` would give ``b""``).
    """
    response._body = body
