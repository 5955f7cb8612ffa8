# SPDX-License-Identifier: MIT
"""Host servers for flow-control tests: each one counts and timestamps every arrival, and misbehaves on cue.

One app is one *host*: tests start several on 127.0.0.1 (one port each; flow control keys hosts by
``(scheme, host, port)``). Rates and pauses are asserted from the server's own arrival timestamps, read from the
event loop's clock: under ``looptime`` that is the test's fast-forwarded clock, so the timestamps are exact.

``GET|POST /item/{key}?script=a,b,c`` answers the key's n-th arrival with the n-th action of its script and
``ok`` once the script runs out. Actions:

* ``ok`` - 200 JSON ``{"key", "host", "hits"}`` (counted as *answered*);
* ``<status>`` - that status, e.g. ``503`` or ``404``;
* ``<status>:<seconds>`` - that status with ``Retry-After: <seconds>`` (any text: ``-5``, `` 2 ``, ``soon``...);
* ``<status>:date:<seconds>`` - ``Retry-After`` as an HTTP-date that many seconds ahead (rounded up);
* ``raw429:<text>`` - a 429 written byte for byte with ``Retry-After: <text>`` (odd whitespace survives);
* ``badheader`` - a response with a malformed header line (the client fails to parse it);
* ``reset`` - the connection is dropped without a response;
* ``stall:<seconds>`` - answer ``ok`` that late; an answer nobody waits for any more is not counted;
* ``badjson`` - 200 with a body that is not JSON.

A *storm* (``app[STORM] = Storm(...)``) makes the host answer 429 to every request for ``duration`` seconds each
time ``every`` requests have been answered; the Retry-After alternates between delay-seconds and an HTTP-date.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from aiohttp import web
from yarl import URL

ARRIVALS = web.AppKey("arrivals", list)
HITS = web.AppKey("hits", Counter)
NAME = web.AppKey("name", str)
STORM = web.AppKey("storm", object)


@dataclass
class Arrival:
    """One request as the server saw it: when (the loop clock, see :func:`now`), which key, and what it was answered."""

    at: float
    key: str
    method: str
    outcome: str = "pending"


@dataclass
class Storm:
    """Answer 429 to everything for ``duration`` s each time ``every`` requests have been answered."""

    every: int
    duration: float
    until: float = 0.0
    storms: int = 0
    sent: int = 0
    answered: int = 0
    windows: list[tuple[float, float]] = field(default_factory=list)


def now() -> float:
    """The running loop's clock: the one the client's limiter and pauses use (fake under ``looptime``)."""
    return asyncio.get_running_loop().time()


def http_date(seconds_ahead: float) -> str:
    """An IMF-fixdate at least ``seconds_ahead`` seconds from now (HTTP-dates have one-second resolution)."""
    when = datetime.now(UTC) + timedelta(seconds=seconds_ahead)
    when = when.replace(microsecond=0) + timedelta(seconds=1)
    return format_datetime(when, usegmt=True)


def _ok(request: web.Request, arrival: Arrival, hits: int) -> web.Response:
    arrival.outcome = "ok"
    return web.json_response({"key": arrival.key, "host": request.app[NAME], "hits": hits})


async def _raw(request: web.Request, arrival: Arrival, data: bytes, outcome: str) -> web.StreamResponse:
    """Write ``data`` as the whole response, byte for byte, then close the connection."""
    arrival.outcome = outcome
    assert request.transport is not None
    request.transport.write(data)
    await asyncio.sleep(0)
    request.transport.close()
    raise asyncio.CancelledError  # nothing more may be written on this connection


async def item(request: web.Request) -> web.StreamResponse:
    app = request.app
    key = request.match_info["key"]
    arrival = Arrival(now(), key, request.method)
    app[ARRIVALS].append(arrival)
    app[HITS][key] += 1
    hits = app[HITS][key]

    storm: Storm | None = app[STORM]
    if storm is not None:
        at = now()
        if at < storm.until:
            storm.sent += 1
            arrival.outcome = "429"
            left = storm.until - at
            value = str(math.ceil(left)) if storm.storms % 2 else http_date(left)
            return web.Response(status=429, text="storm", headers={"Retry-After": value})

    script = [part for part in request.query.get("script", "").split(",") if part]
    action = script[hits - 1] if hits <= len(script) else "ok"
    name, _, arg = action.partition(":")

    if name == "ok":
        response = _ok(request, arrival, hits)
    elif name == "reset":
        arrival.outcome = "reset"
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError
    elif name == "stall":
        await asyncio.sleep(float(arg))
        if request.transport is None or request.transport.is_closing():
            arrival.outcome = "abandoned"  # the client gave up: this answer reaches nobody
            raise asyncio.CancelledError
        response = _ok(request, arrival, hits)
    elif name == "badjson":
        arrival.outcome = "badjson"
        response = web.Response(text='{"broken": ', content_type="application/json")
    elif name == "badheader":
        body = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\nBad Header Line\r\n\r\nok"
        return await _raw(request, arrival, body, "badheader")
    elif name == "raw429":
        body = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After:" + arg.encode("latin-1")
        body += b"\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow"
        return await _raw(request, arrival, body, "429")
    else:
        status = int(name)
        arrival.outcome = str(status)
        headers = {}
        if arg.startswith("date:"):
            headers["Retry-After"] = http_date(float(arg.removeprefix("date:")))
        elif arg:
            headers["Retry-After"] = arg
        response = web.Response(status=status, text=f"status {status}", headers=headers)

    if storm is not None and arrival.outcome == "ok":
        storm.answered += 1
        if storm.answered % storm.every == 0:
            at = now()
            storm.until = at + storm.duration
            storm.storms += 1
            storm.windows.append((at, storm.until))
    return response


def make_host(name: str, storm: Storm | None = None) -> web.Application:
    app = web.Application()
    app[STORM] = storm
    app[NAME] = name
    app[ARRIVALS] = []
    app[HITS] = Counter()
    app.router.add_route("*", "/item/{key}", item)
    return app


async def start_hosts(serve, count: int, storm: Storm | None = None) -> list[tuple[web.Application, URL]]:
    """``count`` host servers on 127.0.0.1, one port each (each with a copy of ``storm`` when given)."""
    hosts = []
    for index in range(count):
        app = make_host(f"h{index}", None if storm is None else Storm(every=storm.every, duration=storm.duration))
        hosts.append((app, await serve(app)))
    return hosts


def arrivals(app: web.Application, outcome: str | None = None) -> list[Arrival]:
    return [a for a in app[ARRIVALS] if outcome is None or a.outcome == outcome]


def answered(app: web.Application) -> Counter[str]:
    """How many times each key was answered 200."""
    return Counter(a.key for a in app[ARRIVALS] if a.outcome == "ok")


def rate(times: list[float]) -> float:
    """Requests per second over a sorted list of arrival times: (n - 1) intervals over the span."""
    return (len(times) - 1) / (times[-1] - times[0])


def max_in_window(times: list[float], window: float) -> int:
    """The most arrivals in any ``window`` seconds (a sliding window over sorted times)."""
    best = 0
    start = 0
    for end, at in enumerate(times):
        while at - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


# --------------------------------------------------------------------------------------------------
# a host that enforces its own limits and can slow down (politeness tests)
# --------------------------------------------------------------------------------------------------
@dataclass
class Quota:
    """A server's own limits: at most ``rate`` requests in any ``per`` seconds and ``in_flight`` at once; a
    request over either is answered 429 with ``Retry-After: retry_after`` (None: that limit is off)."""

    rate: int | None = None
    per: float = 1.0
    in_flight: int | None = None
    retry_after: str = "1"


@dataclass
class PoliteHost:
    """One host that counts what a client does to it: arrivals, requests in flight (and the most ever), the
    answers it refused; ``latency`` is how long each answer takes (change it to make the host slow down), and
    ``headers`` are sent with every 200 (a callable gets the arrival's number and returns them). ``robots``, when
    given, is served as ``/robots.txt`` (its fetches are counted apart, in ``robots_fetches``); every other
    path is ``/<section>/<key>``, answered alike and recorded in ``paths``."""

    quota: Quota = field(default_factory=Quota)
    latency: float = 0.0
    headers: object = None
    in_flight: int = 0
    most_in_flight: int = 0
    arrivals: list[float] = field(default_factory=list)
    accepted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    #: (arrival time, requests in flight counting this one) for every accepted request.
    concurrency: list[tuple[float, int]] = field(default_factory=list)
    robots: str | None = None
    robots_fetches: int = 0
    #: The path of every arrival (robots.txt apart).
    paths: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        if self.robots is not None:
            app.router.add_get("/robots.txt", self.robots_txt)
        app.router.add_route("*", "/{section}/{key}", self.handle)
        return app

    async def robots_txt(self, request: web.Request) -> web.StreamResponse:
        self.robots_fetches += 1
        return web.Response(text=self.robots, content_type="text/plain")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        at = now()
        self.arrivals.append(at)
        self.paths.append(request.path)
        quota = self.quota
        # The rate is judged over the requests this host accepted (a sliding window of ``per`` seconds).
        recent = 0
        for when in reversed(self.accepted):
            if at - when >= quota.per:
                break
            recent += 1
        if (quota.rate is not None and recent >= quota.rate) or (
            quota.in_flight is not None and self.in_flight >= quota.in_flight
        ):
            self.refused.append(at)
            return web.Response(status=429, text="slow down", headers={"Retry-After": quota.retry_after})
        self.accepted.append(at)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.concurrency.append((at, self.in_flight))
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            headers = self.headers(len(self.accepted)) if callable(self.headers) else self.headers
            return web.json_response({"key": request.match_info["key"]}, headers=headers or None)
        finally:
            self.in_flight -= 1


__all__ = [
    "ARRIVALS",
    "HITS",
    "NAME",
    "STORM",
    "Arrival",
    "PoliteHost",
    "Quota",
    "Storm",
    "answered",
    "arrivals",
    "http_date",
    "make_host",
    "max_in_window",
    "now",
    "rate",
    "start_hosts",
]
