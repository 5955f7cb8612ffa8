# SPDX-License-Identifier: MIT
"""``python -m aiorequestful.cache PATH_OR_REDIS_URL``: look into a response cache, and tidy it.

Commands: ``list`` (entries), ``show`` (one entry), ``stats`` (per repository), ``purge`` (expired entries or
all of a repository's) and ``vacuum`` (give free pages back to the file system; SQLite only).

The target is a SQLite cache file (:mod:`aiorequestful.cache._cli_sqlite`) or, for a ``redis://``, ``rediss://``
or ``unix://`` URL, a Redis cache named by ``--cache-name`` in ``--namespace``
(:mod:`aiorequestful.cache._cli_redis`). Both are safe while a crawler writes to the cache, and neither creates
anything: a target that is not a cache is refused with one line on stderr (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from . import _cli_redis, _cli_sqlite
from ._cli_common import CacheCliError
from ._cli_sqlite import SQLiteCacheFile

__all__ = ("CacheCliError", "SQLiteCacheFile", "main")

#: Options that only mean something for one kind of cache.
_REDIS_ONLY = ("cache_name", "namespace", "timeout")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiorequestful.cache",
        description="Inspect and tidy an aiorequestful response cache, a SQLite file or a Redis cache (safe while "
        "a crawler writes to it).",
    )
    parser.add_argument(
        "target",
        metavar="PATH_OR_REDIS_URL",
        help="the cache file (the .sqlite suffix may be left out), or a redis://, rediss:// or unix:// URL",
    )
    parser.add_argument("--busy-timeout", type=float, help="SQLite: seconds to wait for SQLite's lock (5)")
    parser.add_argument("--cache-name", help="Redis: the cache's name, RedisCache's cache_name (cache)")
    parser.add_argument("--namespace", help="Redis: the connection's key namespace (aiorequestful)")
    parser.add_argument("--timeout", type=float, help="Redis: seconds to wait for the server (5)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list entries")
    listing.add_argument("--repository", help="only this repository")
    listing.add_argument("--expired", action="store_true", help="only expired entries")
    listing.add_argument("--limit", type=int, help="at most this many entries per repository")
    listing.add_argument("--json", action="store_true", help="JSON output")

    show = commands.add_parser("show", help="one entry and its payload")
    show.add_argument("repository")
    show.add_argument("key", nargs="*", help="the key parts after the method, in the repository's key order")
    show.add_argument("--method", default="GET", help="the request method of the entry (GET)")
    show.add_argument("--json", action="store_true", help="JSON output")

    stats = commands.add_parser("stats", help="entries, expired entries and bytes per repository")
    stats.add_argument("--repository", help="only this repository")
    stats.add_argument("--json", action="store_true", help="JSON output")

    purge = commands.add_parser("purge", help="remove expired entries (--expired) or all entries (--all)")
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--expired", action="store_true", help="remove expired entries only")
    which.add_argument("--all", action="store_true", help="remove every entry")
    purge.add_argument("--repository", help="only this repository")

    commands.add_parser("vacuum", help="SQLite: rebuild the file to give free pages back to the file system")
    return parser


def _check(args: argparse.Namespace, redis: bool) -> None:
    if args.busy_timeout is not None and not args.busy_timeout >= 0:  # also refuses NaN
        raise CacheCliError("--busy-timeout must not be negative")
    if args.timeout is not None and not 0 < args.timeout < float("inf"):
        raise CacheCliError("--timeout must be a positive number of seconds")
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise CacheCliError("--limit must be at least 1")
    if not redis:
        given = [f"--{name.replace('_', '-')}" for name in _REDIS_ONLY if getattr(args, name) is not None]
        if given:
            raise CacheCliError(f"{', '.join(given)}: only for a Redis cache (a redis:// URL), not a cache file")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit status (0 done, 2 refused or failed)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    args = _parser().parse_args(argv)
    redis = _cli_redis.is_redis_target(args.target)
    try:
        _check(args, redis)
        (_cli_redis if redis else _cli_sqlite).run(args, out)
    except CacheCliError as exc:
        err.write(f"error: {exc}\n")
        return 2
    return 0
