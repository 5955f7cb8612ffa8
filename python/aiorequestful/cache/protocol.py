# SPDX-License-Identifier: MIT
"""What ``RequestHandler`` relies on from a session that answers from a cache, as one explicit interface.

``CachedSession`` is the implementation that ships; another session class that offers the same members is used
the same way. The handler counts cache hits and misses for sessions of this kind, and pushes its payload
handler onto the cache's repositories (they store and read payloads with it). With flow control on, it asks
``lookup`` before the gate, so that a cache hit takes no rate-limit slot and waits on no host pause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .backend.base import ResponseCache

__all__ = ("CachingSession",)


@runtime_checkable
class CachingSession(Protocol):
    """A session with a response cache: ``cache`` is the :class:`~aiorequestful.cache.backend.base.ResponseCache`
    it answers from, and a response it serves from that cache is a
    :class:`~aiorequestful.cache.response.CachedResponse`."""

    @property
    def cache(self) -> ResponseCache[Any]: ...

    async def lookup(self, method: str, url: Any, **kwargs: Any) -> Any:
        """The cached response for the request ``session.request(method, url, **kwargs)`` would send, or None;
        nothing is sent. ``request(..., lookup=False)`` then skips the lookup it would otherwise make."""
        ...
