# SPDX-License-Identifier: MIT
"""One OAuth2 token shared by a fleet of workers through Redis.

Assign a :class:`RedisTokenStore` to an OAuth2 authoriser's ``token_store`` and every worker using the same store
name shares one token:

* an authorisation first looks at the shared token and uses it when it is valid (not expired, not refused by the
  server, accepted by the authoriser's tester);
* otherwise one worker renews it: it takes a Redis lock (``SET NX`` with an expiry that a keep-alive extends while
  the renewal runs, so a worker that dies releases it within ``lock_timeout``), looks once more (another worker
  may have just renewed), runs the authoriser's own flow (client credentials, refresh, or the browser flow) and
  publishes the new token;
* the others wait for the new token (polling with back-off) and use it; when the lock goes away without a usable
  token (the renewal failed), the next one tries.

Within a process, the authoriser's single-flight already makes concurrent callers share one authorisation, so a
fleet of N processes with any number of tasks makes one token request per renewal.

The token is one Redis hash written by one command (``HSET`` inside a script), so no worker ever reads a
half-written token. Its expiry travels as "milliseconds left when written" plus the server's ``TIME`` at writing,
and a reader turns it into its own ``expires_at``: the workers' clocks never need to agree.

If Redis is unavailable, an authorisation runs the authoriser's flow locally (per process, as without a store)
and the token it gets is published when Redis is back. Tokens are secrets: nothing here logs them, and the
Redis server holding them must be protected like the token file would be (ACLs, TLS with ``rediss://``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .._backend import kernels
from ..shared.connection import RedisConnection, RedisScript
from ..types import Headers

if TYPE_CHECKING:
    from .oauth2 import OAuth2Authoriser

__all__ = ("RedisTokenStore",)

logger = logging.getLogger(__name__)

_READ = RedisScript(
    """
local v = redis.call('HMGET', KEYS[1], 'body', 'written', 'remaining', 'version')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {v[1], v[2], v[3], v[4], string.format('%.0f', now), redis.call('EXISTS', KEYS[2])}
"""
)

_WRITE = RedisScript(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'body', ARGV[1], 'written', string.format('%.0f', now), 'remaining', ARGV[2])
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return version
"""
)

# Take the lock for ARGV[1]; a retried command that already took it finds its own owner there.
_LOCK = RedisScript(
    """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
)

_EXTEND = RedisScript(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
)

_UNLOCK = RedisScript(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
)

#: Returned by a read when Redis could not be asked.
_UNAVAILABLE: Any = object()

_MAX_POLL = 0.5


class _Snapshot:
    """The shared token as read: its fields, the milliseconds it has left (None: unknown) and the lock state."""

    __slots__ = ("body", "locked", "remaining_ms", "version")

    def __init__(self, body: dict[str, Any] | None, remaining_ms: float | None, version: int, locked: bool) -> None:
        self.body = body
        self.remaining_ms = remaining_ms
        self.version = version
        self.locked = locked


def _integer(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class RedisTokenStore:
    """A token shared through Redis by every authoriser that uses the same ``name`` (see the module docs).

    :param connection: the shared Redis.
    :param name: names the token in Redis (e.g. the service and client id); workers sharing a token use the same.
    :param lock_timeout: seconds a renewal lock outlives its holder (a keep-alive extends it while the holder
        runs, so a long browser authorisation keeps it; a worker that dies frees it this long after).
    :param poll_interval: the first wait, in seconds, between two looks at the token while another worker renews
        it (it grows to half a second).
    :param retention: seconds a shared token is kept after it was last written (refresh tokens outlive access
        tokens, so this is longer than any access token's life).
    """

    __slots__ = (
        "_connection",
        "_lock_key",
        "_token_key",
        "_unshared",
        "lock_timeout",
        "logger",
        "name",
        "poll_interval",
        "retention",
    )

    def __init__(
        self,
        connection: RedisConnection,
        name: str,
        *,
        lock_timeout: float = 30.0,
        poll_interval: float = 0.05,
        retention: float = 30 * 86400.0,
    ) -> None:
        if not isinstance(connection, RedisConnection):
            raise TypeError(f"connection must be a RedisConnection, not {type(connection).__name__}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, not {name!r}")
        for label, value in (
            ("lock_timeout", lock_timeout),
            ("poll_interval", poll_interval),
            ("retention", retention),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{label} must be a positive number of seconds, not {value!r}")
        self.logger: logging.Logger = logger
        self._connection = connection
        self.name = name
        self.lock_timeout = float(lock_timeout)
        self.poll_interval = float(poll_interval)
        self.retention = float(retention)
        # A hash tag keeps the token and its lock in one slot (Redis Cluster); quoting keeps braces out of it.
        tag = "{" + quote(name, safe="") + "}"
        self._token_key = connection.key("oauth2", tag)
        self._lock_key = connection.key("oauth2", tag, "lock")
        #: True when this process holds a token it obtained while Redis was unavailable (published when back).
        self._unshared = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, connection={self._connection!r})"

    @property
    def connection(self) -> RedisConnection:
        """The shared Redis."""
        return self._connection

    @property
    def token_key(self) -> str:
        """The Redis key of the shared token (a hash: ``body``, ``written``, ``remaining``, ``version``)."""
        return self._token_key

    @property
    def lock_key(self) -> str:
        """The Redis key of the renewal lock."""
        return self._lock_key

    # ----------------------------------------------------------------------------------------------
    # the authorisation protocol (called by OAuth2Authoriser.authorise under its single-flight)
    # ----------------------------------------------------------------------------------------------
    async def authorise(self, authoriser: OAuth2Authoriser, local: Callable[[], Awaitable[Headers]]) -> Headers:
        """Headers for the shared token, renewing it (one worker at a time) with ``local`` when it is not usable.

        ``local`` is the authoriser's own authorisation (it requests, refreshes or loads a token into
        ``authoriser.response``); it also runs, per process, when Redis is unavailable.
        """
        snapshot = await self._read()
        if snapshot is _UNAVAILABLE:
            return await self._local(authoriser, local)
        if self._unshared:
            # Obtained while Redis was away: publish it if it is still good, rather than throw it away.
            authoriser._load()
            if await authoriser._is_valid():
                await self._write(authoriser)
                return authoriser._finish(True)
        if snapshot.body is not None:
            self._adopt(authoriser, snapshot)
            if await authoriser._is_valid():
                return authoriser._finish(True)
        else:
            # Nothing shared yet: a token this worker already holds (e.g. from its token file) seeds the fleet.
            authoriser._load()
            if await authoriser._is_valid():
                await self._write(authoriser)
                return authoriser._finish(True)
        return await self._renew(authoriser, local)

    async def _renew(self, authoriser: OAuth2Authoriser, local: Callable[[], Awaitable[Headers]]) -> Headers:
        owner = secrets.token_hex(16)
        while True:
            locked = await self._call(_LOCK, (self._lock_key,), (owner, str(self._lock_ms())), None)
            if locked is None:
                return await self._local(authoriser, local)
            if int(locked) == 1:
                return await self._renew_holding(authoriser, local, owner)
            authoriser.logger.debug("Waiting for another worker to renew the token for %s", authoriser.service_name)
            delay = self.poll_interval
            while True:
                await asyncio.sleep(delay)
                delay = min(_MAX_POLL, delay * 1.5)
                snapshot = await self._read()
                if snapshot is _UNAVAILABLE:
                    return await self._local(authoriser, local)
                if snapshot.body is not None:
                    self._adopt(authoriser, snapshot)
                    if await authoriser._is_valid():
                        authoriser.logger.debug(
                            "Using the token renewed by another worker for %s", authoriser.service_name
                        )
                        return authoriser._finish(True)
                if not snapshot.locked:
                    break  # the renewal ended without a usable token (it failed, or its worker died): try ourselves

    async def _renew_holding(
        self, authoriser: OAuth2Authoriser, local: Callable[[], Awaitable[Headers]], owner: str
    ) -> Headers:
        keep_alive = self._connection.spawn(self._keep_alive(owner))
        try:
            # Another worker may have renewed it between our first look and our lock.
            snapshot = await self._read()
            if snapshot is not _UNAVAILABLE and snapshot.body is not None:
                self._adopt(authoriser, snapshot)
                if await authoriser._is_valid():
                    return authoriser._finish(True)
            headers = await local()
            await self._write(authoriser)
            return headers
        finally:
            if keep_alive is not None:
                keep_alive.cancel()
            await self._call(_UNLOCK, (self._lock_key,), (owner,), None)

    async def _local(self, authoriser: OAuth2Authoriser, local: Callable[[], Awaitable[Headers]]) -> Headers:
        """Redis is unavailable: this process authorises on its own and publishes the result when it is back."""
        before = authoriser.response.get(authoriser.response.token_key)
        headers = await local()
        if authoriser.response.get(authoriser.response.token_key) != before:
            self._unshared = True
        return headers

    async def _keep_alive(self, owner: str) -> None:
        interval = self.lock_timeout / 3.0
        while True:
            await asyncio.sleep(interval)
            await self._call(_EXTEND, (self._lock_key,), (owner, str(self._lock_ms())), None)

    # ----------------------------------------------------------------------------------------------
    # Redis operations
    # ----------------------------------------------------------------------------------------------
    def _lock_ms(self) -> int:
        return max(1, math.ceil(self.lock_timeout * 1000.0))

    async def _call(self, script: RedisScript, keys: tuple[str, ...], args: tuple[str, ...], default: Any) -> Any:
        async def run(client: Any) -> Any:
            return await script(client, keys=keys, args=args)

        return await self._connection.call(run, default)

    async def _read(self) -> Any:
        """The shared token as a :class:`_Snapshot`, or ``_UNAVAILABLE``."""
        reply = await self._call(_READ, (self._token_key, self._lock_key), (), _UNAVAILABLE)
        if reply is _UNAVAILABLE:
            return _UNAVAILABLE
        raw, written, remaining, version, now, locked = reply
        body: dict[str, Any] | None = None
        if raw is not None:
            try:
                content = kernels.json_loads(raw)
            except ValueError:
                content = None
            if isinstance(content, dict) and content.get("access_token"):
                body = content
            else:
                self.logger.warning("The shared token %r in Redis is unreadable; it will be renewed", self.name)
        left: float | None = None
        remaining_ms, written_ms, now_ms = _integer(remaining), _integer(written), _integer(now)
        if body is not None and remaining_ms is not None and remaining_ms >= 0:
            # Server time at both ends: milliseconds left when written, less the time since.
            left = float(remaining_ms)
            if written_ms is not None and now_ms is not None:
                left -= max(0, now_ms - written_ms)
        return _Snapshot(body, left, _integer(version) or 0, bool(_integer(locked)))

    async def _write(self, authoriser: OAuth2Authoriser) -> None:
        """Publish the authoriser's token (one atomic write)."""
        content = dict(authoriser.response)
        if not content:
            return
        remaining = -1
        expires_at = content.get("expires_at")
        if expires_at is not None:
            try:
                remaining = max(0, math.floor((float(expires_at) - time.time()) * 1000.0))
            except (TypeError, ValueError):
                remaining = -1
        body = json.dumps(content, default=str, separators=(",", ":"))
        retention = max(1, math.ceil(self.retention * 1000.0))
        written = await self._call(_WRITE, (self._token_key,), (body, str(remaining), str(retention)), None)
        if written is not None:
            self._unshared = False
            authoriser.logger.debug("Shared the token for %s (version %s)", authoriser.service_name, written)

    def _adopt(self, authoriser: OAuth2Authoriser, snapshot: _Snapshot) -> None:
        """Make the shared token the authoriser's."""
        content = dict(snapshot.body or {})
        if snapshot.remaining_ms is not None:
            # This machine's clock from here on: a tester with max_expiry compares expires_at with time.time().
            content["expires_at"] = time.time() + snapshot.remaining_ms / 1000.0
        authoriser.response.replace(content)
