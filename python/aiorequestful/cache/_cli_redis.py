# SPDX-License-Identifier: MIT
"""The cache CLI on a Redis cache (see :mod:`aiorequestful.cache.cli`).

A cache is found by its name in a namespace (``RedisCache``'s ``cache_name`` and the connection's ``namespace``):
its repositories are the index keys ``RedisTable`` makes (one sorted set per repository, the entries' index
members scored by their expiry in ms), found with ``SCAN`` (never ``KEYS``, which blocks a busy server). The key
layout, payload decoding and purge scripts are those of :mod:`aiorequestful.cache.backend.redis`, so the tool
reads and tidies exactly what the cache writes.

It is safe while a crawler writes: every read is a bounded batch (``SCAN``/``ZSCAN`` pages and pipelines of one
page), and ``purge`` runs the cache's own scripts, each of which is atomic in Redis. Nothing is created: a server
that cannot be reached, or a cache name with no repository in it, is refused. The Redis URL is only ever shown
redacted (a password in it never appears in the output).

A synchronous redis-py client is used (no event loop, no connection health tracking): a command-line tool runs a
few commands and exits, and a failure should be reported, not waited out.
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from yarl import URL

from ..limits import DEFAULT_MAX_BODY_SIZE
from ..security import REDACTED, is_secret_header, redact_url
from ..shared.connection import DEFAULT_NAMESPACE, RedisConnection
from ._cli_common import CacheCliError, cell, payload_text, print_rows, scope_label, write_json
from ._entry import decode_headers, format_stamp
from .backend import redis as backend
from .exception import CacheError

try:
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - without the [redis] extra, run() refuses before these are needed
    NoBackoff = Retry = None  # type: ignore[assignment,misc]

__all__ = ("RedisCacheView", "is_redis_target", "run")

_SCHEMES = ("redis://", "rediss://", "unix://")
#: How many keys one SCAN page asks for when looking for the cache's index keys.
_SCAN_COUNT = 1000
#: How many other cache names a "no such cache" message lists.
_NAMES_SHOWN = 10


def is_redis_target(target: str) -> bool:
    """Whether the CLI's target is a Redis URL (anything else is a cache file)."""
    return target.lower().startswith(_SCHEMES)


@dataclass(frozen=True)
class _Repository:
    name: str
    index_key: str
    entry_prefix: bytes


@dataclass(frozen=True)
class _Member:
    raw: bytes  # the index member as stored (the entry key is the repository's prefix + this)
    expires_ms: float
    scope: str
    key: list[Any]

    def sort_key(self) -> tuple[Any, ...]:
        return (tuple(_part_text(part) for part in self.key), self.scope)


def _part_text(part: Any) -> str:
    """A key part as the user types it: text as it is, numbers (and true/false/null) as JSON writes them."""
    return part if isinstance(part, str) else json.dumps(part)


def _stamp(milliseconds: Any) -> str | None:
    try:
        value = float(milliseconds)
        return format_stamp(datetime.fromtimestamp(value / 1000, UTC))
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _duration(milliseconds: float) -> str:
    seconds = max(0, int(milliseconds // 1000))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


class RedisCacheView:
    """One Redis cache opened for the CLI: its repositories, read in bounded batches, and purged with the cache's
    own scripts."""

    def __init__(self, url: str, *, cache_name: str, namespace: str, timeout: float) -> None:
        self.display_url = redact_url(url)
        self.cache_name = cache_name
        self.namespace = namespace
        self._clean = _Cleaner(url)
        try:
            URL(url)
        except (ValueError, TypeError) as exc:
            raise CacheCliError(f"Invalid Redis URL {self.display_url}: {self._clean(str(exc))}") from None
        try:
            # Used for its key names only (it never connects): the names RedisTable itself uses.
            self.names = RedisConnection(url, namespace=namespace)
        except ValueError as exc:
            raise CacheCliError(self._clean(str(exc))) from None
        try:
            self.client = backend.redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),  # a failure is reported at once, not retried behind the user's back
                decode_responses=False,
            )
        except (ValueError, TypeError) as exc:
            raise CacheCliError(f"Invalid Redis URL {self.display_url}: {self._clean(str(exc))}") from None
        try:
            self.client.ping()
            self.repositories = self._find_repositories()
        except BaseException as exc:
            self.client.close()
            if isinstance(exc, _redis_errors()):
                raise self.failure(exc) from None
            raise

    def close(self) -> None:
        self.client.close()

    def failure(self, exc: BaseException) -> CacheCliError:
        """A redis-py or socket error as the one-line refusal the CLI prints."""
        return _failure(exc, self.display_url, self._clean)

    def _find_repositories(self) -> dict[str, _Repository]:
        found: dict[str, _Repository] = {}
        others: set[str] = set()
        for raw in self.client.scan_iter(match=backend.index_key_pattern(self.names), count=_SCAN_COUNT):
            key = raw.decode("utf-8", "replace")
            names = backend.parse_index_key(self.names, key)
            if names is None:
                continue
            cache, repository = names
            if cache != self.cache_name:
                others.add(cache)
                continue
            prefix, index = backend.repository_keys(self.names, cache, repository)
            found[repository] = _Repository(repository, index, prefix.encode("utf-8"))
        if not found:
            listed = sorted(others)
            known = ", ".join(repr(name) for name in listed[:_NAMES_SHOWN]) + (
                ", ..." if len(listed) > _NAMES_SHOWN else ""
            )
            where = f"caches in that namespace: {known}" if known else "no cache in that namespace"
            raise CacheCliError(
                f"No aiorequestful cache named {self.cache_name!r} at {self.display_url} "
                f"in namespace {self.namespace!r} ({where})"
            )
        return dict(sorted(found.items()))

    def repository(self, name: str) -> _Repository:
        repository = self.repositories.get(name)
        if repository is None:
            known = ", ".join(self.repositories)
            raise CacheCliError(f"No repository {name!r} in cache {self.cache_name!r} (repositories: {known})")
        return repository

    def selected(self, name: str | None) -> list[_Repository]:
        return [self.repository(name)] if name is not None else list(self.repositories.values())

    # --------------------------------------------------------------------------------------------------------
    # reads
    # --------------------------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        """The server's clock, in ms: what the cache's scripts compare expiry scores with."""
        seconds, microseconds = self.client.time()
        return int(seconds) * 1000 + int(microseconds) // 1000

    def members(self, repository: _Repository) -> list[_Member]:
        """Every member of the repository's index, in key order (ZSCAN pages: a member present throughout is seen
        at least once, so one seen twice is counted once)."""
        seen: dict[bytes, float] = {}
        for raw, score in self.client.zscan_iter(repository.index_key, count=backend.CLEAR_CHUNK_SIZE):
            seen[raw] = float(score)
        members = []
        for raw, score in seen.items():
            text = raw.decode("utf-8", "replace")
            try:
                scope, key = backend.split_member(text)
                parts = list(key)
            except ValueError:  # not written by RedisTable: shown as it is
                scope, parts = "", [text]
            members.append(_Member(raw, score, scope, parts))
        members.sort(key=_Member.sort_key)
        return members

    def _batched(self, repository: _Repository, members: Sequence[_Member], queue: Any) -> Iterable[list[Any]]:
        """``queue(pipe, entry_key)`` for every member, run one pipeline per page; yields each member's replies.

        A reply that is an error (a key of another type where an entry should be, written by something else) is
        None, as for an entry that is gone: one such key must not stop the listing of the others.
        """
        size = backend.CLEAR_CHUNK_SIZE
        for start in range(0, len(members), size):
            page = members[start : start + size]
            with self.client.pipeline(transaction=False) as pipe:
                for member in page:
                    queue(pipe, repository.entry_prefix + member.raw)
                replies = [None if isinstance(r, Exception) else r for r in pipe.execute(raise_on_error=False)]
            width = len(replies) // len(page)
            for i in range(len(page)):
                yield replies[i * width : (i + 1) * width]

    def entries(
        self, repository: _Repository, *, expired_only: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]:
        now = self.now_ms()
        members = [m for m in self.members(repository) if not expired_only or m.expires_ms <= now]
        if limit is not None:
            members = members[:limit]

        def queue(pipe: Any, name: bytes) -> None:
            pipe.hmget(name, "n", "s", "t", "f")
            pipe.hstrlen(name, "p")

        rows = []
        for member, (fields, size) in zip(members, self._batched(repository, members, queue), strict=True):
            name, status, stored_at, flags = fields or (None,) * 4
            rows.append(
                {
                    "repository": repository.name,
                    "key": member.key,
                    "name": _text(name),
                    "status": _int(status),
                    "bytes": int(size or 0),
                    "compressed": bool((_int(flags) or 0) & backend.FLAG_ZLIB),
                    "cached_at": _stamp(stored_at),
                    "expires_at": _stamp(member.expires_ms),
                    "ttl_ms": max(0, int(member.expires_ms - now)),
                    "ttl": _duration(member.expires_ms - now),
                    "expired": member.expires_ms <= now,
                    "scope": scope_label(member.scope),
                }
            )
        return rows

    def find(self, repository: _Repository, key: Sequence[str], limit: int | None) -> list[dict[str, Any]]:
        now = self.now_ms()
        members = self.members(repository)
        wanted = list(key)
        found = [m for m in members if [_part_text(part) for part in m.key] == wanted]
        if not found:
            widths = {len(m.key) for m in members}
            hint = ""
            if widths and len(wanted) not in widths:
                parts = ", ".join(str(width - 1) for width in sorted(widths))
                hint = f" (its keys have {parts} part(s) after the method, not {len(wanted) - 1})"
            raise CacheCliError(f"No entry {'/'.join(wanted)} in repository {repository.name!r}{hint}")

        def sizes(pipe: Any, name: bytes) -> None:
            pipe.hstrlen(name, "p")
            pipe.hstrlen(name, "h")
            pipe.hmget(name, "n", "s", "r", "t", "f")

        entries = []
        for member, (payload_size, header_size, fields) in zip(
            found, self._batched(repository, found, sizes), strict=True
        ):
            name, status, reason, stored_at, flags = fields or (None,) * 5
            payload_size, header_size = payload_size or 0, header_size or 0
            present = fields is not None and any(value is not None for value in fields)
            entry_key = repository.entry_prefix + member.raw
            # Read no stored field larger than the limit: the sizes are checked in Redis before a value is sent.
            over = limit is not None and max(int(payload_size), int(header_size)) > limit
            data = headers_text = None
            if present and not over:
                data, headers_text = self.client.hmget(entry_key, "p", "h")
            entries.append(
                {
                    "repository": repository.name,
                    "key": member.key,
                    "name": _text(name),
                    "status": _int(status),
                    "reason": _text(reason),
                    "cached_at": _stamp(stored_at),
                    "expires_at": _stamp(member.expires_ms),
                    "ttl": _duration(member.expires_ms - now),
                    "expired": member.expires_ms <= now,
                    "scope": scope_label(member.scope),
                    "stored": _stored_text(present, int(payload_size), flags),
                    "headers": _headers(headers_text, over, limit),
                    "payload": _payload(data, flags, present, over, int(payload_size), limit),
                }
            )
        return entries

    def stats(self, repository: _Repository) -> dict[str, Any]:
        now = self.now_ms()
        members = self.members(repository)

        def queue(pipe: Any, name: bytes) -> None:
            pipe.hstrlen(name, "p")
            pipe.hget(name, "t")

        size, stamps = 0, []
        for payload_size, stored_at in self._batched(repository, members, queue):
            size += int(payload_size or 0)
            if _int(stored_at) is not None:
                stamps.append(int(stored_at))
        expired = sum(1 for member in members if member.expires_ms <= now)
        return {
            "repository": repository.name,
            "entries": len(members),
            "live": len(members) - expired,
            "expired": expired,
            "payload_bytes": size,
            "oldest": _stamp(min(stamps)) if stamps else None,
            "newest": _stamp(max(stamps)) if stamps else None,
        }

    # --------------------------------------------------------------------------------------------------------
    # writes: RedisTable.clear's scripts, with its batch size
    # --------------------------------------------------------------------------------------------------------
    def purge(self, repositories: Sequence[_Repository], *, expired_only: bool) -> dict[str, int]:
        removed: dict[str, int] = {}
        for repository in repositories:
            keys = (repository.index_key,)
            if expired_only:
                removed[repository.name] = int(self._script(backend.CLEAR_EXPIRED_SCRIPT, keys, ()))
                continue
            total = 0
            while True:
                args = (repository.entry_prefix, str(backend.CLEAR_CHUNK_SIZE))
                deleted, left = self._script(backend.CLEAR_CHUNK_SCRIPT, keys, args)
                total += int(deleted)
                if int(left) == 0:
                    break
            removed[repository.name] = total
        return removed

    def _script(self, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return self.client.evalsha(script.sha, len(keys), *keys, *args)
        except backend.redis.exceptions.NoScriptError:  # a server that has not run it yet (or restarted)
            return self.client.eval(script.source, len(keys), *keys, *args)


def _redis_errors() -> tuple[type[BaseException], ...]:
    return (backend.redis.exceptions.RedisError, OSError)


class _Cleaner:
    """Masks the user info of a URL (raw and percent-decoded) in an error text, and makes the text one line:
    redis-py's messages name the server, and must never show its password."""

    def __init__(self, url: str) -> None:
        try:
            parsed = URL(url)
            found = [parsed.raw_password, parsed.password, parsed.raw_user, parsed.user]
        except (ValueError, TypeError):
            found = [url]
        self.secrets = sorted({secret for secret in found if secret}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return " ".join(text.split())[:300]


def _failure(exc: BaseException, display_url: str, clean: _Cleaner) -> CacheCliError:
    reason = clean(str(exc)) or type(exc).__name__
    errors = backend.redis.exceptions
    if isinstance(exc, (errors.ConnectionError, errors.TimeoutError, OSError)):
        return CacheCliError(f"Cannot reach Redis at {display_url}: {reason}")
    return CacheCliError(f"Redis at {display_url} refused: {type(exc).__name__}: {reason}")


def _stored_text(present: bool, size: int, flags: Any) -> str:
    if not present:
        return "gone (Redis dropped the entry when its time ended, or it was deleted)"
    bits = _int(flags) or 0
    kinds = ["zlib" if bits & backend.FLAG_ZLIB else "", "bytes" if bits & backend.FLAG_BYTES else "text"]
    return f"{size} bytes, " + ", ".join(kind for kind in kinds if kind)


def _headers(text: Any, over: bool, limit: int | None) -> list[list[str]] | str | None:
    if over:
        return f"<not read: an entry over the limit of {limit} bytes>"
    if text is None:
        return None
    try:
        pairs = decode_headers(_text(text))  # the secret filter is applied again here
    except ValueError as exc:
        return f"<corrupt headers: {exc}>"
    # Stored headers are safe already; a value is masked anyway should something else have written one.
    return [[name, REDACTED if is_secret_header(name) else value] for name, value in pairs]


def _payload(data: Any, flags: Any, present: bool, over: bool, size: int, limit: int | None) -> str | None:
    if not present:
        return None
    if over:
        return f"<{size} stored bytes: over the limit of {limit} bytes>"
    try:
        payload = backend.read_stored_payload(data, flags, limit)
    except CacheError as exc:
        return f"<{exc}>"
    except (ValueError, TypeError, zlib.error) as exc:
        return f"<corrupt payload: {type(exc).__name__}: {exc}>"
    return payload if isinstance(payload, str) else payload_text(payload)


# ------------------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------------------
_LIST_COLUMNS = ("repository", "key", "name", "status", "bytes", "cached_at", "expires_at", "ttl", "expired", "scope")


def _cmd_list(cache: RedisCacheView, args: argparse.Namespace, out: TextIO) -> None:
    rows = [
        row
        for repository in cache.selected(args.repository)
        for row in cache.entries(repository, expired_only=args.expired, limit=args.limit)
    ]
    if args.json:
        write_json(rows, out)
        return
    if not rows:
        out.write("no entries\n")
        return
    print_rows(rows, _LIST_COLUMNS, out)


def _cmd_show(cache: RedisCacheView, args: argparse.Namespace, out: TextIO) -> None:
    repository = cache.repository(args.repository)
    found = cache.find(repository, [args.method.upper(), *args.key], DEFAULT_MAX_BODY_SIZE)
    if args.json:
        write_json(found, out)
        return
    fields = ("repository", "key", "name", "status", "reason", "cached_at", "expires_at", "ttl", "expired", "scope")
    for entry in found:
        for field in (*fields, "stored"):
            out.write(f"{field + ':':<12} {cell(entry[field])}\n")
        headers = entry["headers"]
        if isinstance(headers, list):
            out.write("headers:\n" + "".join(f"  {name}: {value}\n" for name, value in headers))
        elif headers is not None:
            out.write(f"headers:     {headers}\n")
        out.write(payload_text(entry["payload"]) + "\n")


def _cmd_stats(cache: RedisCacheView, args: argparse.Namespace, out: TextIO) -> None:
    rows = [cache.stats(repository) for repository in cache.selected(args.repository)]
    summary = {
        "server": cache.display_url,
        "namespace": cache.namespace,
        "cache_name": cache.cache_name,
        "entries": sum(row["entries"] for row in rows),
        "live": sum(row["live"] for row in rows),
        "expired": sum(row["expired"] for row in rows),
        "payload_bytes": sum(row["payload_bytes"] for row in rows),
        "repositories": rows,
    }
    if args.json:
        write_json(summary, out)
        return
    print_rows(rows, ("repository", "entries", "live", "expired", "payload_bytes", "oldest", "newest"), out)
    out.write(
        f"total: {summary['entries']} entries ({summary['live']} live, {summary['expired']} expired), "
        f"{summary['payload_bytes']} payload bytes; cache {cache.cache_name!r} in namespace "
        f"{cache.namespace!r} at {cache.display_url}\n"
    )
    if summary["expired"]:
        out.write("expired entries hold no data (Redis drops them itself); purge --expired tidies the index\n")
    out.write("hit counts are not stored in the cache (see RequestHandler.stats for a running crawl)\n")


def _cmd_purge(cache: RedisCacheView, args: argparse.Namespace, out: TextIO) -> None:
    removed = cache.purge(cache.selected(args.repository), expired_only=args.expired)
    what = "expired entries" if args.expired else "entries"
    for name, count in removed.items():
        out.write(f"{name}: removed {count} {what}\n")
    out.write(f"total: removed {sum(removed.values())} {what}\n")


_COMMANDS = {"list": _cmd_list, "show": _cmd_show, "stats": _cmd_stats, "purge": _cmd_purge}


def run(args: argparse.Namespace, out: TextIO) -> None:
    """Run ``args.command`` on the Redis cache at ``args.target``; ``CacheCliError`` for a refusal."""
    if args.command == "vacuum":
        raise CacheCliError(
            "vacuum is for SQLite cache files: Redis gives memory back by itself when entries are deleted or expire "
            "(purge --expired or --all deletes them)"
        )
    if args.busy_timeout is not None:
        raise CacheCliError("--busy-timeout is for SQLite cache files (--timeout sets how long to wait for Redis)")
    if backend.redis is None:
        raise CacheCliError("Redis caches need redis-py: pip install 'aiorequestful[redis]'")
    cache = RedisCacheView(
        args.target,
        cache_name=backend.DEFAULT_CACHE_NAME if args.cache_name is None else args.cache_name,
        namespace=DEFAULT_NAMESPACE if args.namespace is None else args.namespace,
        timeout=5.0 if args.timeout is None else args.timeout,
    )
    try:
        _COMMANDS[args.command](cache, args, out)
    except _redis_errors() as exc:
        raise cache.failure(exc) from None
    finally:
        cache.close()
