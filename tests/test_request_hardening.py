# SPDX-License-Identifier: MIT
"""RequestHandler against hostile and stalled servers: bounded bodies, short error messages, no held
connections, no secrets in logs, default time-outs and no retrying of what cannot succeed.

Every server is a real aiohttp.web application on 127.0.0.1 (tests/servers.py); waits are on events.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

import aiorequestful.limits as limits
import aiorequestful.security as security
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.cache.session import CachedSession
from aiorequestful.request import RequestHandler
from aiorequestful.response._body import EXCERPT_LENGTH, read_body
from aiorequestful.response.exception import PayloadHandlerError, ResponseError, ResponseTooLargeError
from aiorequestful.response.payload import JSONPayloadHandler, StringPayloadHandler
from aiorequestful.timer import StepCountTimer

from .cache_support import raw_rows
from .servers import DROPPED, PRODUCED, STARTED, event, hits, make_app
from .test_cache_request_handler import ItemSettings

MIB = 1024 * 1024
#: Long enough that no test here can pass by waiting for a Retry-After to end.
LONG_RETRY_AFTER = "120"
#: The most any test here waits for something that should happen at once.
GUARD = 30


@pytest.fixture
async def app_url(serve):
    app = make_app()
    return app, await serve(app)


def retrying(**kwargs) -> RequestHandler:
    """A handler that would retry three times, so a test can see that something is *not* retried."""
    return RequestHandler.create(retry_timer=StepCountTimer(initial=0, count=3, step=0), **kwargs)


def peak_rss() -> int:
    """The process's peak resident memory so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --------------------------------------------------------------------------------------------------
# bodies: a size limit, enforced while reading, after decompression
# --------------------------------------------------------------------------------------------------
async def test_gzip_bomb_stops_at_the_default_limit_without_inflating(app_url) -> None:
    """2 GiB of zeros in ~32 MiB of gzip: the read stops at the default 32 MiB, memory stays bounded, the
    connection is dropped and the request is not retried."""
    app, url = app_url
    before = peak_rss()
    async with retrying() as handler:
        assert handler.max_body_size == limits.DEFAULT_MAX_BODY_SIZE
        with pytest.raises(ResponseTooLargeError) as info:
            await asyncio.wait_for(handler.get(url / "bomb" / "a", params={"mib": "2048"}), GUARD)
        await asyncio.wait_for(event(app, DROPPED, "bomb", "a").wait(), GUARD)  # the client closed the connection
    grown = peak_rss() - before
    produced = app[PRODUCED][("bomb", "a")]
    print(f"bomb: produced {produced / MIB:.0f} MiB, peak memory grew {grown / MIB:.0f} MiB")
    assert grown < 1024 * MIB, f"peak memory grew by {grown / MIB:.0f} MiB"
    assert produced < 1024 * MIB, f"the server produced {produced / MIB:.0f} MiB"  # far from the 2 GiB end
    assert hits(app, "bomb", "a") == 1 and handler.stats.retries == 0
    error = info.value
    assert error.max_body_size == limits.DEFAULT_MAX_BODY_SIZE
    assert error.response is not None and error.response.status == 200
    assert str(error) == (
        f"Status code: 200 | GET {url}/bomb/a?mib=2048 | Response body is larger than the maximum body size of "
        f"{limits.DEFAULT_MAX_BODY_SIZE} bytes (max_body_size); the connection was closed"
    )


async def test_body_over_the_handler_limit_fails_at_once_naming_the_redacted_url(app_url) -> None:
    app, url = app_url
    async with retrying(max_body_size=64 * 1024) as handler:
        with pytest.raises(ResponseTooLargeError) as info:
            await handler.get(url / "big" / "a", params={"size": str(64 * MIB), "token": "s3cret-value"})
        await asyncio.wait_for(event(app, DROPPED, "big", "a").wait(), GUARD)
        # The connection was closed, so the handler still works (a fresh connection).
        assert await handler.get(url / "text") == "plain text"
    assert hits(app, "big", "a") == 1 and handler.stats.retries == 0
    message = str(info.value)
    assert "s3cret-value" not in message
    assert message.startswith(f"Status code: 200 | GET {url}/big/a?size={64 * MIB}&token=<redacted> | ")
    assert "maximum body size of 65536 bytes" in message
    assert app[PRODUCED][("big", "a")] < 64 * MIB


async def test_body_within_the_limit_and_the_per_request_override(app_url) -> None:
    _app, url = app_url
    async with RequestHandler.create(max_body_size=1024) as handler:
        assert await handler.get(url / "big" / "exact", params={"size": "1024"}) == "x" * 1024
        with pytest.raises(ResponseTooLargeError, match="maximum body size of 1024 bytes"):
            await handler.get(url / "big" / "over", params={"size": "1025"})
        # Per request: a larger limit, no limit at all, or a smaller one.
        assert len(await handler.get(url / "big" / "b", params={"size": str(MIB)}, max_body_size=MIB)) == MIB
        assert len(await handler.get(url / "big" / "c", params={"size": str(2 * MIB)}, max_body_size=None)) == 2 * MIB
        with pytest.raises(ResponseTooLargeError, match="maximum body size of 9 bytes"):
            await handler.get(url / "text", max_body_size=9)  # "plain text" is 10 bytes
        with pytest.raises(TypeError, match="max_body_size"):
            await handler.get(url / "text", max_body_size="10")
        with pytest.raises(ValueError, match="max_body_size"):
            await handler.get(url / "text", max_body_size=-1)
        handler.max_body_size = None
        assert len(await handler.get(url / "big" / "d", params={"size": str(2 * MIB)})) == 2 * MIB
    with pytest.raises(TypeError, match="max_body_size"):
        RequestHandler.create(max_body_size=1.5)


async def test_error_body_over_the_limit_is_not_retried(app_url) -> None:
    app, url = app_url
    async with retrying(max_body_size=4096) as handler:
        with pytest.raises(ResponseTooLargeError) as info:
            await handler.get(url / "big" / "e", params={"size": str(MIB), "status": "503"})
        with pytest.raises(ResponseTooLargeError):  # a 4xx goes through ClientErrorStatusHandler, bounded too
            await handler.get(url / "big" / "f", params={"size": str(MIB), "status": "404"})
    assert info.value.response is not None and info.value.response.status == 503
    assert hits(app, "big", "e") == 1 and hits(app, "big", "f") == 1 and handler.stats.retries == 0


async def test_the_cache_reads_network_bodies_within_the_limit_and_stores_none_over_it(app_url, tmp_path: Path) -> None:
    app, url = app_url
    cache = SQLiteCache.connect_with_path(str(tmp_path / "cache"), repository_getter=lambda c, u: c.get("big"))

    class BigSettings(ItemSettings):
        def get_key(self, method, url, **_):  # type: ignore[no-untyped-def]
            return (URL(url).path.rsplit("/", 1)[-1],)

        @staticmethod
        def get_name(payload):  # type: ignore[no-untyped-def]
            return None

    cache.create_repository(BigSettings(name="big"))
    async with RequestHandler.create(cache=cache, payload_handler=StringPayloadHandler(), max_body_size=4096) as h:
        with pytest.raises(ResponseTooLargeError):
            await h.get(url / "big" / "huge", params={"size": str(64 * MIB)})
        await asyncio.wait_for(event(app, DROPPED, "big", "huge").wait(), GUARD)
        assert await h.get(url / "big" / "small", params={"size": "100"}) == "x" * 100
        assert await h.get(url / "big" / "small", params={"size": "100"}) == "x" * 100  # from the cache
    assert hits(app, "big", "huge") == 1 and hits(app, "big", "small") == 1
    assert raw_rows(tmp_path / "cache.sqlite", "big", "id") == [("small",)]  # nothing of the large body


async def test_cached_session_alone_bounds_the_body_it_stores(app_url, tmp_path: Path) -> None:
    _app, url = app_url
    cache = SQLiteCache.connect_with_path(str(tmp_path / "alone"), repository_getter=lambda c, u: c.get("big"))

    class BigSettings(ItemSettings):
        def get_key(self, method, url, **_):  # type: ignore[no-untyped-def]
            return (URL(url).path.rsplit("/", 1)[-1],)

        @staticmethod
        def get_name(payload):  # type: ignore[no-untyped-def]
            return None

    cache.create_repository(BigSettings(name="big"))
    async with CachedSession(cache=cache) as session:
        with pytest.raises(ResponseTooLargeError):
            await session.get(url / "big" / "g", params={"size": str(MIB)}, max_body_size=1000)
        response = await session.get(url / "big" / "h", params={"size": "1000"}, max_body_size=1000)
        assert await response.text() == "x" * 1000  # the bytes the cache read are the response's body
        response.release()
    assert raw_rows(tmp_path / "alone.sqlite", "big", "id") == [("h",)]


async def test_read_body_keeps_the_bytes_for_later_reads(app_url) -> None:
    """Pins the one place a private aiohttp attribute is set: after a bounded read, read()/text()/json()
    return the bytes read from the stream (without it they would see an exhausted stream)."""
    _, url = app_url
    async with aiohttp.ClientSession() as session, session.get(url / "json" / "7") as response:
        body = await read_body(response, 1000)
        assert body == await response.read()
        assert await response.text() == body.decode()
        assert (await response.json())["id"] == "7"
        assert await read_body(response, 1000) == body  # already read: the same bytes again
        with pytest.raises(ResponseTooLargeError):
            await read_body(response, 10)  # already read, but larger than this limit
    async with aiohttp.ClientSession() as session, session.get(url / "big" / "r", params={"size": "5000"}) as response:
        with pytest.raises(ResponseTooLargeError) as info:
            await read_body(response, 100)
        assert response.closed
        with pytest.raises(ResponseTooLargeError) as again:
            await response.read()  # every later read meets the same error, not a shortened body
        assert again.value is info.value


# --------------------------------------------------------------------------------------------------
# error messages: short, naming the request; the whole body on the error
# --------------------------------------------------------------------------------------------------
async def test_large_error_body_gives_a_short_message_and_keeps_the_body(app_url) -> None:
    _, url = app_url
    size = 2 * MIB
    async with RequestHandler.create() as handler:
        with pytest.raises(ResponseError) as info:
            await handler.get(url / "big" / "err", params={"size": str(size), "status": "500", "key": "hidden"})
        with pytest.raises(ResponseError) as client_error:
            await handler.get(url / "big" / "err4", params={"size": str(size), "status": "400"})
    for error, status, path in ((info.value, 500, "err"), (client_error.value, 400, "err4")):
        message = str(error)
        assert len(message) < 1000
        assert message.startswith(f"Status code: {status} | GET {url}/big/{path}?size={size}")
        assert "x" * EXCERPT_LENGTH in message and "x" * (EXCERPT_LENGTH + 1) not in message
        assert f"first {EXCERPT_LENGTH} of {size} characters" in message
        assert error.body == "x" * size
    assert "hidden" not in str(info.value) and "key=<redacted>" in str(info.value)


async def test_payload_error_names_the_request_and_what_came_back(app_url) -> None:
    _, url = app_url
    async with RequestHandler.create(payload_handler=JSONPayloadHandler()) as handler:
        with pytest.raises(PayloadHandlerError) as info:
            await handler.get(url / "html", params={"sig": "abc123"})
    error = info.value
    assert (error.method, error.status) == ("GET", 200)
    assert error.url == f"{url}/html?sig=<redacted>"
    assert error.content_type == "text/html; charset=utf-8"
    message = str(error)
    assert message.startswith("Response body is not valid JSON: ")
    assert message.endswith(
        f" | GET {url}/html?sig=<redacted> | Status code: 200 | Content-Type: text/html; charset=utf-8"
    )
    assert "abc123" not in message
    assert isinstance(error.__cause__, PayloadHandlerError)


# --------------------------------------------------------------------------------------------------
# a Retry-After sleep does not hold a pooled connection
# --------------------------------------------------------------------------------------------------
async def test_retry_after_sleep_releases_the_connection(serve) -> None:
    slow_app, other_app = make_app(), make_app()
    slow_url, other_url = await serve(slow_app), await serve(other_app)

    def connector() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2))

    retry = StepCountTimer(initial=0, count=3, step=200)  # a budget long enough to wait the Retry-After out
    async with RequestHandler(connector=connector, retry_timer=retry) as handler:
        sleepers = [
            asyncio.create_task(handler.get(slow_url / "slow429" / key, params={"retry_after": LONG_RETRY_AFTER}))
            for key in "ab"
        ]
        try:
            for key in "ab":
                await asyncio.wait_for(event(slow_app, STARTED, "slow429", key).wait(), GUARD)
            # Both 429s were sent and their requests now sleep: the pool (limit 2) must have room for this.
            assert await asyncio.wait_for(handler.get(other_url / "text"), GUARD) == "plain text"
            assert not any(task.done() for task in sleepers)
        finally:
            for task in sleepers:
                task.cancel()
            await asyncio.gather(*sleepers, return_exceptions=True)


# --------------------------------------------------------------------------------------------------
# no secret in any log record
# --------------------------------------------------------------------------------------------------
async def test_no_secret_reaches_a_debug_log(serve, caplog, monkeypatch) -> None:
    app, proxy_app = make_app(), make_app()
    url, proxy = await serve(app), await serve(proxy_app)
    # add_secret_headers is process-wide: restore the list after this test.
    monkeypatch.setattr(security, "_headers", security.secret_headers())
    security.add_secret_headers("X-Hardening-Tenant-Key")
    secrets = {
        "user": "url-user-7a1",
        "password": "url-pass-9b2",
        "proxy_password": "proxy-pass-3c4",
        "key": "query-key-5d6",
        "sig": "query-sig-7e8",
        "signature": "query-signature-9f0",
        "token": "query-token-1a2",
        "tenant": "tenant-header-3b4",
        "api": "api-key-header-5c6",
    }
    caplog.set_level(logging.DEBUG)
    query = {"key": secrets["key"], "sig": secrets["sig"], "signature": secrets["signature"], "token": secrets["token"]}
    with_userinfo = url.with_user(secrets["user"]).with_password(secrets["password"])
    async with RequestHandler.create(retry_timer=StepCountTimer(initial=0, count=1, step=0)) as handler:
        await handler.get(
            (with_userinfo / "echo").with_query(query),
            headers={"X-Hardening-Tenant-Key": secrets["tenant"], "X-Api-Key": secrets["api"]},
            proxy=proxy.with_user("proxy-user").with_password(secrets["proxy_password"]),
        )
        await handler.get(url / "echo", params=query)
        with pytest.raises(ResponseError):  # a failed response is logged with its URL, body and headers
            await handler.get((with_userinfo / "status" / "500").with_query(query))
        with pytest.raises(aiohttp.TooManyRedirects):  # aiohttp's message quotes the URL
            await handler.get((url / "loop" / "s").with_query(query), max_redirects=1)
    assert hits(proxy_app, "echo") == 1  # the request did go through the "proxy"
    records = [f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    text = "\n".join(records)
    assert "echo" in text and "TooManyRedirects" in text  # the requests were logged ...
    leaked = {name: value for name, value in secrets.items() if value in text}
    assert leaked == {}, f"secrets in the logs: {leaked}"  # ... without any secret


# --------------------------------------------------------------------------------------------------
# time-outs
# --------------------------------------------------------------------------------------------------
async def test_handler_sessions_get_the_default_timeout(app_url) -> None:
    """The default's read part is kept by the handler (tests/test_read_watch.py); the rest is the session's."""
    default = limits.DEFAULT_TIMEOUT
    async with RequestHandler.create() as handler:
        timeout = handler.session.timeout
        assert (timeout.total, timeout.connect, timeout.sock_read) == (default.total, default.connect, None)
    own = aiohttp.ClientTimeout(total=7)
    async with RequestHandler.create(timeout=own) as handler:
        assert handler.session.timeout == own


async def test_server_that_never_answers_times_out(app_url) -> None:
    app, url = app_url
    async with RequestHandler.create(timeout=aiohttp.ClientTimeout(sock_read=0.2)) as handler:
        with pytest.raises(aiohttp.ServerTimeoutError):
            await asyncio.wait_for(handler.get(url / "hang" / "a"), GUARD)
    assert hits(app, "hang", "a") == 1


async def test_a_session_without_a_timeout_uses_the_default_and_a_request_timeout_wins(app_url, monkeypatch) -> None:
    """A session built by the caller with no time-out gets the handler's default per request (made short here,
    so the test does not wait 60 s); a request's own ``timeout=`` replaces it."""
    _app, url = app_url
    monkeypatch.setattr(limits, "DEFAULT_TIMEOUT", aiohttp.ClientTimeout(sock_read=0.2))
    async with RequestHandler(connector=aiohttp.ClientSession) as handler:
        with pytest.raises(aiohttp.ServerTimeoutError):  # wait_for would raise a plain TimeoutError
            await asyncio.wait_for(handler.get(url / "hang" / "b"), GUARD)
        # A per-request time-out wins over the default (here: a longer one, and the slow route answers).
        result = await asyncio.wait_for(
            handler.get(url / "slow" / "c", params={"delay": "0.5"}, timeout=aiohttp.ClientTimeout(total=GUARD)),
            GUARD,
        )
        assert '"ok": true' in result
    monkeypatch.setattr(limits, "DEFAULT_TIMEOUT", aiohttp.ClientTimeout(total=GUARD))
    own = aiohttp.ClientTimeout(sock_read=0.2)
    async with RequestHandler(connector=lambda: aiohttp.ClientSession(timeout=own)) as handler:
        with pytest.raises(aiohttp.ServerTimeoutError):  # the session's own time-out is kept
            await asyncio.wait_for(handler.get(url / "hang" / "d"), GUARD)


# --------------------------------------------------------------------------------------------------
# what sending again cannot fix is not retried
# --------------------------------------------------------------------------------------------------
async def test_redirect_loop_is_raised_at_once(app_url) -> None:
    app, url = app_url
    async with retrying() as handler:
        with pytest.raises(aiohttp.TooManyRedirects):
            await handler.get(url / "loop" / "a", max_redirects=3)
    # aiohttp raises on the third redirect response: three requests, once (retried, it would be 12).
    assert hits(app, "loop", "a") == 3
    assert handler.stats.retries == 0 and handler.stats.errors == 1


async def test_invalid_urls_are_raised_at_once(app_url) -> None:
    app, url = app_url
    async with retrying() as handler:
        with pytest.raises(aiohttp.InvalidURL):
            await handler.get(url / "badredirect")
        with pytest.raises(aiohttp.InvalidURL):
            await handler.get("http:///no-host")
    assert hits(app, "badredirect") == 1
    assert handler.stats.retries == 0 and handler.stats.errors == 2
