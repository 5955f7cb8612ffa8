# SPDX-License-Identifier: MIT
"""Default bounds that keep one hostile or stalled server from holding memory or time without limit.

Every part that reads a body, decompresses a stored entry or waits on a server takes its default from here,
so the documented defaults are the ones in force everywhere.
"""

from __future__ import annotations

import aiohttp

__all__ = (
    "DEFAULT_AUTH_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MEMORY_TIER_BYTES",
    "DEFAULT_MEMORY_TIER_ENTRIES",
    "DEFAULT_TIMEOUT",
    "MEMORY_TIER_RECHECK",
)

#: The largest body, in bytes after decompression, read from a response or from a cache entry (32 MiB).
#: Settable per handler and per request; ``None`` lifts the limit.
DEFAULT_MAX_BODY_SIZE: int = 32 * 1024 * 1024

#: The handler's default time-outs when the session is given none: a connection must open within 30 s and
#: the server must send something at least every 60 s; a whole request may take at most 5 minutes.
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=300, connect=30, sock_read=60)

#: Token and other authorisation requests: a token endpoint that stalls fails within 30 s.
DEFAULT_AUTH_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10, sock_read=20)

#: The in-memory tier of a SQLite cache (hot entries kept in front of the file, per event-loop thread): at most
#: this many entries and this many bytes of stored payload and header text. ``memory_tier_entries=0`` on the
#: cache turns the tier off.
DEFAULT_MEMORY_TIER_ENTRIES: int = 4096
DEFAULT_MEMORY_TIER_BYTES: int = 64 * 1024 * 1024
#: How long (seconds) a SQLite cache's memory tier trusts its last look at whether another connection committed
#: to the file: a commit by another process is seen by every lookup that starts at least this long after it. Each
#: look is a SQLite statement that takes the file's read lock (several microseconds, more than the rest of a hit
#: from the tier); 0 looks before every lookup. This process's own saves and deletes reach the tier at once.
MEMORY_TIER_RECHECK: float = 0.001
