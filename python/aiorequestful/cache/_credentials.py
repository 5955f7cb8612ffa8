# SPDX-License-Identifier: MIT
"""A one-way digest of the credentials a request carried, so that a cache never serves one identity's
response to a request made with other credentials (rule 7: a secret is never stored, only this digest).

The ``Authorization`` header is the credential (aiohttp turns ``auth=``, a session's ``auth`` and user info
in the URL into that header). ``Basic`` credentials are often low-entropy passwords, so the value is first
stretched with PBKDF2 before the cache-key kernel turns it into the stored digest; someone holding the cache
file therefore cannot cheaply test password guesses against it. Derivations are memoised per process (one
per distinct credential, e.g. one per OAuth2 token lifetime) and computed off the event loop, single-flight.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from .._backend import kernels

__all__ = ("CREDENTIAL_HEADERS", "NO_CREDENTIALS", "credential_digest", "credential_values")

#: The request headers whose values identify who is asking.
CREDENTIAL_HEADERS = ("authorization",)

#: The digest stored for a request without credentials (and for entries saved directly by key).
NO_CREDENTIALS = ""

_SALT = b"aiorequestful.cache.credentials/v1"
_ITERATIONS = 100_000
_MEMO_SIZE = 256

_memo: OrderedDict[tuple[str, ...], str] = OrderedDict()
_pending: dict[tuple[str, ...], asyncio.Task[str]] = {}


def credential_values(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> tuple[str, ...]:
    """The credential header values of ``headers`` (case-insensitive names, repeated values kept in order)."""
    if not headers:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    # A CIMultiDict's items() yields every value of a repeated header; a plain dict holds one per spelling.
    return tuple(str(value) for name, value in items if str(name).lower() in CREDENTIAL_HEADERS and value)


def _derive(values: tuple[str, ...]) -> str:
    parts: list[bytes] = [_SALT]
    for value in values:
        raw = value.encode("utf-8", "surrogatepass")
        parts.append(hashlib.pbkdf2_hmac("sha256", raw, _SALT, _ITERATIONS))
    return kernels.cache_key("CREDENTIALS", "", (), parts)


async def credential_digest(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> str:
    """The stored digest for the credentials in ``headers``; ``NO_CREDENTIALS`` when there are none."""
    values = credential_values(headers)
    if not values:
        return NO_CREDENTIALS
    digest = _memo.get(values)
    if digest is not None:
        _memo.move_to_end(values)
        return digest
    loop = asyncio.get_running_loop()
    task = _pending.get(values)
    if task is None or task.get_loop() is not loop:
        # Many concurrent first requests with one new token share a single derivation, which runs in its own
        # task so that a cancelled caller does not cancel it for the others.
        task = loop.create_task(asyncio.to_thread(_derive, values))
        _pending[values] = task
        task.add_done_callback(lambda done: _settle(values, done))
    return await asyncio.shield(task)


def _settle(values: tuple[str, ...], task: asyncio.Task[str]) -> None:
    if _pending.get(values) is task:
        del _pending[values]
    if task.cancelled() or task.exception() is not None:
        return
    _memo[values] = task.result()
    while len(_memo) > _MEMO_SIZE:
        _memo.popitem(last=False)
