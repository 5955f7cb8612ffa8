# SPDX-License-Identifier: MIT
"""robots.txt: fetched once per origin, kept for a while, and asked before a request is sent.

The file is parsed by Protego (the parser Scrapy uses, ``pip install aiorequestful[robots]``) rather than by
hand: robots.txt has decades of lenient-parsing conventions (wildcards, ``$`` anchors, longest-match precedence,
user-agent grouping) that a small hand-written parser gets subtly wrong.

What a fetch outcome means follows RFC 9309 §2.3.1:

* **2xx**: the rules apply. At most :data:`MAX_ROBOTS_SIZE` bytes (the RFC's 500 KiB) are read and parsed; the
  rest of a larger file is ignored.
* **redirects**: up to five are followed; more and the file counts as unavailable.
* **4xx** (the file is *unavailable*): everything is allowed. A 429 is the exception: it asks the crawler to
  slow down and says nothing about rules, so it is treated as unreachable (below).
* **5xx, a transport error or a time-out** (the file is *unreachable*): everything is disallowed, unless rules
  fetched earlier are still at hand, which are then used (the RFC allows either). Unreachable outcomes are kept
  only for ``retry_unreachable`` seconds, so the file is asked for again soon.

Rules are kept for ``expire`` (24 hours by default, the RFC's upper bound for using a cached copy), per origin
(scheme, host and port), on the event loop's clock (so tests can fast-forward it). Concurrent requests to an
origin whose rules are not known yet share one fetch.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from .._aiohttp import session_base_url
from ..exception import RequestError
from ..limits import DEFAULT_AUTH_TIMEOUT
from ..security import redact_url
from ._hosts import HostKey, host_key

if TYPE_CHECKING:
    from protego import Protego

__all__ = ("DEFAULT_MAX_CRAWL_DELAY", "MAX_ROBOTS_SIZE", "RobotsDisallowedError", "RobotsTxt")

logger = logging.getLogger(__name__)

#: RFC 9309 §2.5: crawlers must parse at least the first 500 KiB of a robots.txt.
MAX_ROBOTS_SIZE = 500 * 1024
_MAX_REDIRECTS = 5
#: The longest ``Crawl-delay`` a handler honours by default, in seconds.
DEFAULT_MAX_CRAWL_DELAY = 60.0

#: Outcome kinds.
_PARSED, _UNAVAILABLE, _UNREACHABLE = "parsed", "unavailable", "unreachable"


class RobotsDisallowedError(RequestError):
    """A request was not sent because the origin's robots.txt disallows it for this user agent."""

    def __init__(self, url: URL, user_agent: str, robots_url: URL) -> None:
        self.url = url
        self.user_agent = user_agent
        self.robots_url = robots_url
        super().__init__(
            f"{redact_url(url)} is disallowed for user agent {user_agent!r} by {redact_url(robots_url)}; "
            "the request was not sent"
        )


@dataclass(frozen=True)
class _Rules:
    kind: str
    parser: Protego | None
    fetched_at: float
    detail: str

    def allows(self, url: URL, user_agent: str) -> bool:
        if self.kind == _UNAVAILABLE:
            return True
        if self.parser is None:  # unreachable, with nothing fetched earlier
            return False
        return bool(self.parser.can_fetch(str(url), user_agent))


class RobotsTxt:
    """The robots.txt rules of every origin a handler sends to, for one user agent.

    :param user_agent: the product token the rules are matched against (e.g. ``"examplebot"``); also sent as
        the ``User-Agent`` of the robots.txt request unless the session sets its own.
    :param expire: seconds a fetched file's rules are used before it is fetched again (RFC 9309: at most 24 h).
    :param retry_unreachable: seconds an unreachable outcome (5xx, 429, transport error, time-out) is kept.
    :param timeout: the time-out of each robots.txt request.
    :param use_crawl_delay: when True, a request handler paces each host at least as slowly as the
        ``Crawl-delay`` its rules ask of this user agent (one request per that many seconds, on top of any
        ``rate_limit``). False (default): ``Crawl-delay`` is only reported by :meth:`crawl_delay`.
    :param max_crawl_delay: the longest ``Crawl-delay`` honoured, in seconds (default 60); a longer one is
        honoured as this long, so one hostile file cannot stall a crawl for hours per request.
    """

    __slots__ = (
        "_delays",
        "_fetches",
        "_rules",
        "expire",
        "max_crawl_delay",
        "retry_unreachable",
        "timeout",
        "use_crawl_delay",
        "user_agent",
    )

    def __init__(
        self,
        user_agent: str,
        *,
        expire: float = 24 * 3600.0,
        retry_unreachable: float = 60.0,
        timeout: aiohttp.ClientTimeout = DEFAULT_AUTH_TIMEOUT,
        use_crawl_delay: bool = False,
        max_crawl_delay: float = DEFAULT_MAX_CRAWL_DELAY,
    ) -> None:
        if not isinstance(user_agent, str) or not user_agent.strip():
            raise ValueError(f"user_agent must be a non-empty string, got {user_agent!r}")
        for name, value in (
            ("expire", expire),
            ("retry_unreachable", retry_unreachable),
            ("max_crawl_delay", max_crawl_delay),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if not isinstance(use_crawl_delay, bool):
            raise TypeError(f"use_crawl_delay must be a bool, not {type(use_crawl_delay).__name__}")
        _protego()  # fail at construction, not at the first request, when Protego is missing
        self.user_agent = user_agent.strip()
        self.expire = float(expire)
        self.retry_unreachable = float(retry_unreachable)
        self.timeout = timeout
        self.use_crawl_delay = use_crawl_delay
        self.max_crawl_delay = float(max_crawl_delay)
        self._rules: dict[URL, _Rules] = {}
        self._fetches: dict[URL, asyncio.Task[_Rules]] = {}
        #: The Crawl-delay (capped) of every origin whose rules are known, by host key.
        self._delays: dict[HostKey, float | None] = {}

    # ------------------------------------------------------------------------------------------------------------
    # asking
    # ------------------------------------------------------------------------------------------------------------
    async def check(self, session: aiohttp.ClientSession, url: URL | str) -> None:
        """Raise :class:`RobotsDisallowedError` when ``url`` may not be fetched; fetch the rules first if needed."""
        url = URL(url)
        if not url.absolute or url.scheme not in ("http", "https"):
            return  # not a web origin: nothing to ask (aiohttp reports a bad URL itself)
        if url.path == "/robots.txt":
            return  # the file itself is always fetchable
        rules = await self.rules_for(session, url)
        if not rules.allows(url, self.user_agent):
            raise RobotsDisallowedError(url, self.user_agent, _robots_url(url))

    async def allowed(self, session: aiohttp.ClientSession, url: URL | str) -> bool:
        """Whether ``url`` may be fetched (fetching the origin's rules first if they are not known)."""
        try:
            await self.check(session, url)
        except RobotsDisallowedError:
            return False
        return True

    def crawl_delay(self, url: URL | str) -> float | None:
        """The ``Crawl-delay`` the known rules of ``url``'s origin ask of this user agent, or None."""
        rules = self._rules.get(_origin(URL(url)))
        if rules is None or rules.parser is None:
            return None
        delay = rules.parser.crawl_delay(self.user_agent)
        return float(delay) if delay is not None else None

    def host_crawl_delay(self, key: HostKey) -> float | None:
        """The ``Crawl-delay`` (at most ``max_crawl_delay``) the known rules of the host ``key`` ask of this
        user agent, or None (no rules known yet, or no delay asked). Cheap: read when the rules were stored."""
        return self._delays.get(key)

    async def rules_for(self, session: aiohttp.ClientSession, url: URL) -> _Rules:
        origin = _origin(url)
        now = asyncio.get_running_loop().time()
        rules = self._rules.get(origin)
        if rules is not None and now - rules.fetched_at < self._lifetime(rules):
            return rules
        task = self._fetches.get(origin)
        if task is None:
            # Its own task, so that a cancelled caller does not cancel the fetch the others wait on.
            task = asyncio.get_running_loop().create_task(self._refresh(session, origin, rules))
            self._fetches[origin] = task
            task.add_done_callback(lambda _: self._fetches.pop(origin, None))
        return await asyncio.shield(task)

    def forget(self, url: URL | str | None = None) -> None:
        """Drop the known rules of ``url``'s origin (all origins when None), so they are fetched again."""
        if url is None:
            self._rules.clear()
            self._delays.clear()
        else:
            origin = _origin(URL(url))
            self._rules.pop(origin, None)
            self._delays.pop(host_key(origin), None)

    def _capped_delay(self, rules: _Rules) -> float | None:
        if rules.parser is None:
            return None
        try:
            delay = rules.parser.crawl_delay(self.user_agent)
            value = float(delay) if delay is not None else None
        except (TypeError, ValueError, OverflowError):
            return None
        if value is None or not value > 0 or not self.max_crawl_delay > 0:  # also NaN
            return None
        return min(value, self.max_crawl_delay)

    # ------------------------------------------------------------------------------------------------------------
    # fetching
    # ------------------------------------------------------------------------------------------------------------
    def _lifetime(self, rules: _Rules) -> float:
        return self.retry_unreachable if rules.kind == _UNREACHABLE else self.expire

    async def _refresh(self, session: aiohttp.ClientSession, origin: URL, previous: _Rules | None) -> _Rules:
        rules = await self._fetch(session, origin)
        if rules.kind == _UNREACHABLE and previous is not None and previous.parser is not None:
            # Keep using the rules fetched earlier, but ask again after retry_unreachable.
            rules = _Rules(_UNREACHABLE, previous.parser, rules.fetched_at, rules.detail + " (using earlier rules)")
        self._rules[origin] = rules
        self._delays[host_key(origin)] = self._capped_delay(rules)
        if logger.isEnabledFor(logging.INFO):
            logger.info("robots.txt of %s: %s", origin, rules.detail)
        return rules

    async def _fetch(self, session: aiohttp.ClientSession, origin: URL) -> _Rules:
        robots = origin / "robots.txt"
        base = session_base_url(session)
        if base is not None and base.origin() == origin:
            # aiohttp before 3.12 refuses absolute URLs on a session with a base URL; this path joins to the same URL.
            robots = URL("/robots.txt")
        loop = asyncio.get_running_loop()
        headers = None if aiohttp.hdrs.USER_AGENT in session.headers else {aiohttp.hdrs.USER_AGENT: self.user_agent}
        try:
            async with session.get(
                robots, headers=headers, timeout=self.timeout, allow_redirects=True, max_redirects=_MAX_REDIRECTS + 1
            ) as response:  # aiohttp gives up when the count *reaches* max_redirects: +1 follows five
                status = response.status
                if 200 <= status < 300:
                    body = await _read_at_most(response, MAX_ROBOTS_SIZE)
                    parser = _protego().parse(body.decode("utf-8", errors="replace"))
                    return _Rules(_PARSED, parser, loop.time(), f"{status}, {len(body)} bytes of rules")
                if status == 429 or status >= 500:
                    return _Rules(_UNREACHABLE, None, loop.time(), f"{status}: unreachable, every path disallowed")
                if 400 <= status < 500:
                    return _Rules(_UNAVAILABLE, None, loop.time(), f"{status}: no rules, every path allowed")
                return _Rules(_UNREACHABLE, None, loop.time(), f"unexpected {status}: every path disallowed")
        except aiohttp.TooManyRedirects:
            return _Rules(_UNAVAILABLE, None, loop.time(), "more than 5 redirects: no rules, every path allowed")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _Rules(_UNREACHABLE, None, loop.time(), f"{type(exc).__name__}: unreachable, every path disallowed")


def _origin(url: URL) -> URL:
    return url.origin()


def _robots_url(url: URL) -> URL:
    return _origin(url) / "robots.txt"


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Up to ``limit`` bytes of the (decompressed) body; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def _protego() -> Any:
    try:
        from protego import Protego
    except ImportError as exc:  # an optional extra
        raise ImportError(
            "robots.txt support needs Protego: pip install 'aiorequestful[robots]' (or pip install protego)"
        ) from exc
    return Protego
