# SPDX-License-Identifier: MIT
"""robots.txt rules against real local servers: parsed rules, each RFC 9309 fetch outcome, one fetch per origin,
expiry, the size bound, and redirects."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

pytest.importorskip("protego")

from aiorequestful.flow.robots import MAX_ROBOTS_SIZE, RobotsDisallowedError, RobotsTxt

RULES = """
User-agent: *
Disallow: /private
Crawl-delay: 2

User-agent: examplebot
Disallow: /nobots
Allow: /nobots/welcome
"""


class RobotsServer:
    """A site whose robots.txt answer the test sets; counts robots.txt fetches and records User-Agents."""

    def __init__(self) -> None:
        self.status = 200
        self.body = RULES
        self.hits: Counter[str] = Counter()
        self.agents: list[str] = []
        self.stall = asyncio.Event()
        self.stalling = False
        self.redirects = 0

    async def robots(self, request: web.Request) -> web.StreamResponse:
        self.hits["robots"] += 1
        self.agents.append(request.headers.get("User-Agent", ""))
        if self.stalling:
            await self.stall.wait()
        if self.redirects:
            raise web.HTTPFound(f"/hop/{self.redirects - 1}")
        return self.rules(request)

    def rules(self, request: web.Request) -> web.Response:
        return web.Response(status=self.status, text=self.body)

    async def hop(self, request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        if left == 0:
            return self.rules(request)
        raise web.HTTPFound(f"/hop/{left - 1}")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/robots.txt", self.robots)
        app.router.add_get("/hop/{left}", self.hop)
        return app


@pytest.fixture
async def site(serve) -> tuple[RobotsServer, URL]:
    server = RobotsServer()
    base = await serve(server.app())
    yield server, base
    server.stall.set()


async def test_rules_are_applied_for_the_user_agent(site) -> None:
    server, base = site
    robots = RobotsTxt("examplebot")
    async with aiohttp.ClientSession() as session:
        await robots.check(session, base / "public")
        await robots.check(session, base / "private")  # the * group does not apply to examplebot
        await robots.check(session, base / "nobots" / "welcome")
        with pytest.raises(RobotsDisallowedError) as caught:
            await robots.check(session, base / "nobots" / "secret")
        assert not await robots.allowed(session, base / "nobots")
        other = RobotsTxt("someone-else")
        assert not await other.allowed(session, base / "private" / "x")
        assert await other.allowed(session, base / "nobots")
    message = str(caught.value)
    assert "/nobots/secret is disallowed for user agent 'examplebot'" in message
    assert str(base / "robots.txt") in message and "not sent" in message
    assert caught.value.robots_url == base / "robots.txt"
    assert server.agents[0] == "examplebot"  # the rules' user agent is who asks for them
    assert other.crawl_delay(base) == 2.0 and robots.crawl_delay(base / "x") is None


async def test_concurrent_requests_share_one_fetch_and_rules_are_kept(site) -> None:
    server, base = site
    robots = RobotsTxt("examplebot")
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*(robots.allowed(session, base / f"page{i}") for i in range(100)))
        server.body = "User-agent: *\nDisallow: /\n"  # changed on the server, but the rules are kept
        assert await robots.allowed(session, base / "again")
    assert all(results)
    assert server.hits["robots"] == 1


async def test_rules_are_fetched_again_once_expired(site) -> None:
    server, base = site
    robots = RobotsTxt("examplebot", expire=0)
    async with aiohttp.ClientSession() as session:
        assert await robots.allowed(session, base / "page")
        server.body = "User-agent: *\nDisallow: /\n"
        assert not await robots.allowed(session, base / "page")
    assert server.hits["robots"] == 2


async def test_forget_drops_the_rules(site) -> None:
    server, base = site
    robots = RobotsTxt("examplebot")
    async with aiohttp.ClientSession() as session:
        await robots.allowed(session, base / "a")
        robots.forget(base / "anything")
        await robots.allowed(session, base / "a")
        robots.forget()
        await robots.allowed(session, base / "a")
    assert server.hits["robots"] == 3


@pytest.mark.parametrize("status", [404, 401, 403, 410])
async def test_unavailable_file_allows_everything(site, status: int) -> None:
    server, base = site
    server.status = status
    async with aiohttp.ClientSession() as session:
        assert await RobotsTxt("examplebot").allowed(session, base / "nobots" / "x")


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_unreachable_file_disallows_everything_then_is_asked_again(site, status: int) -> None:
    server, base = site
    server.status = status
    robots = RobotsTxt("examplebot", retry_unreachable=0)
    async with aiohttp.ClientSession() as session:
        assert not await robots.allowed(session, base / "public")
        server.status = 200
        assert await robots.allowed(session, base / "public")
    assert server.hits["robots"] == 2


async def test_unreachable_keeps_using_rules_fetched_earlier(site) -> None:
    server, base = site
    robots = RobotsTxt("examplebot", expire=0)
    async with aiohttp.ClientSession() as session:
        assert await robots.allowed(session, base / "public")
        server.status = 503
        assert await robots.allowed(session, base / "public")  # the earlier rules, not "disallow all"
        assert not await robots.allowed(session, base / "nobots")


async def test_a_timeout_is_unreachable(site) -> None:
    server, base = site
    server.stalling = True
    robots = RobotsTxt("examplebot", timeout=aiohttp.ClientTimeout(total=0.2))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RobotsDisallowedError):
            await robots.check(session, base / "public")


async def test_a_refused_connection_is_unreachable(unused_tcp_port: int) -> None:
    robots = RobotsTxt("examplebot")
    async with aiohttp.ClientSession() as session:
        assert not await robots.allowed(session, URL(f"http://127.0.0.1:{unused_tcp_port}/page"))


@pytest.mark.parametrize(("redirects", "allowed"), [(1, False), (5, False), (6, True)])
async def test_redirects_are_followed_up_to_five(site, redirects: int, allowed: bool) -> None:
    server, base = site
    server.redirects = redirects  # robots.txt -> /hop/{n-1} -> ... -> /hop/0 (the rules): n redirects
    async with aiohttp.ClientSession() as session:
        assert await RobotsTxt("examplebot").allowed(session, base / "nobots") is allowed


async def test_only_the_first_500_kib_are_parsed(site) -> None:
    server, base = site
    padding = "# " + "x" * 98 + "\n"
    early = "User-agent: *\nDisallow: /early\n"
    server.body = early + padding * ((MAX_ROBOTS_SIZE // len(padding)) + 10) + "Disallow: /late\n"
    robots = RobotsTxt("examplebot")
    async with aiohttp.ClientSession() as session:
        assert not await robots.allowed(session, base / "early")
        assert await robots.allowed(session, base / "late")


async def test_the_file_itself_and_non_web_urls_are_never_refused(site) -> None:
    server, base = site
    server.body = "User-agent: *\nDisallow: /\n"
    robots = RobotsTxt("examplebot")
    async with aiohttp.ClientSession() as session:
        await robots.check(session, base / "robots.txt")
        await robots.check(session, "relative/path")
    assert server.hits["robots"] == 0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="user_agent"):
        RobotsTxt("  ")
    with pytest.raises(ValueError, match="expire"):
        RobotsTxt("bot", expire=-1)
    with pytest.raises(ValueError, match="retry_unreachable"):
        RobotsTxt("bot", retry_unreachable="soon")  # type: ignore[arg-type]


def test_missing_protego_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "protego", None)
    with pytest.raises(ImportError, match=r"aiorequestful\[robots\]"):
        RobotsTxt("bot")


# ------------------------------------------------------------------------------------------------------------
# through RequestHandler
# ------------------------------------------------------------------------------------------------------------
def _crawl_app(hits: Counter[str], robots_body: str) -> web.Application:
    async def robots(request: web.Request) -> web.Response:
        hits["/robots.txt"] += 1
        return web.Response(text=robots_body)

    async def page(request: web.Request) -> web.Response:
        hits[request.path] += 1
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_get("/robots.txt", robots)
    app.router.add_get("/{tail:.*}", page)
    return app


async def test_handler_never_sends_a_disallowed_request(serve) -> None:
    from aiorequestful.request import RequestHandler
    from aiorequestful.response.payload import JSONPayloadHandler
    from aiorequestful.timer import StepCountTimer

    hits: Counter[str] = Counter()
    base = await serve(_crawl_app(hits, "User-agent: examplebot\nDisallow: /private\n"))
    handler = RequestHandler.create(
        payload_handler=JSONPayloadHandler(),
        retry_timer=StepCountTimer(0, 3, 0),  # a budget that must not be spent on a disallowed URL
        robots=RobotsTxt("examplebot"),
        base_url=str(base),
    )
    async with handler:
        pages = await asyncio.gather(*(handler.get(f"/public/{i}") for i in range(20)))
        with pytest.raises(RobotsDisallowedError, match=r"/private/1 is disallowed for user agent 'examplebot'"):
            await handler.get(base / "private" / "1")
        with pytest.raises(RobotsDisallowedError):
            await handler.get("/private/2", params={"q": "x"})  # relative, joined to the base URL
    assert [p["path"] for p in pages] == [f"/public/{i}" for i in range(20)]
    assert hits["/robots.txt"] == 1
    assert not any(path.startswith("/private") for path in hits)  # zero requests to the disallowed path
    stats = handler.stats
    assert (stats.calls, stats.failures, stats.retries, stats.requests) == (22, 2, 0, 20)


def test_handler_refuses_a_wrong_robots_argument() -> None:
    from aiorequestful.request import RequestHandler

    with pytest.raises(TypeError, match="robots must be a RobotsTxt"):
        RequestHandler.create(robots="examplebot")  # type: ignore[arg-type]
