# SPDX-License-Identifier: MIT
"""CachedResponse: a complete ClientResponse built through aiohttp's public surface only."""

from __future__ import annotations

import warnings
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse, ClientResponseError, ContentTypeError, RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from aiorequestful.cache.response import CachedResponse

from .cache_support import make_app


def request_info(url: str = "http://example.test/items/1", method: str = "GET", **headers: str) -> RequestInfo:
    return RequestInfo(URL(url), method, CIMultiDictProxy(CIMultiDict(headers)), URL(url))


async def test_defaults_follow_the_contract() -> None:
    response = CachedResponse(request_info(Authorization="Bearer secret"), payload='{"a": 1}')
    assert isinstance(response, ClientResponse)
    assert (response.status, response.reason, response.ok) == (200, "cached", True)
    assert response.method == "GET" and response.url == URL("http://example.test/items/1")
    assert response.version == aiohttp.HttpVersion11
    assert dict(response.headers) == {"Content-Length": "8"}  # never the request's headers
    assert response.request_info.headers["Authorization"] == "Bearer secret"  # that is where they belong
    assert await response.read() == b'{"a": 1}'
    assert await response.text() == '{"a": 1}'
    assert await response.json(content_type=None) == {"a": 1}
    assert response.closed and response.connection is None and response.history == ()


async def test_does_not_need_the_private_initialiser(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise TypeError("ClientResponse.__init__() missing 1 required keyword-only argument: 'stream_writer'")

    monkeypatch.setattr(ClientResponse, "__init__", broken)  # what aiohttp >= 3.14 did to 1.0.20
    response = CachedResponse(request_info(), payload=b"still works")
    assert await response.read() == b"still works"


async def test_original_metadata_and_charset() -> None:
    headers = [
        ("Content-Type", "text/plain; charset=iso-8859-1"),
        ("Content-Length", "999"),  # the stored body's length wins
        ("X-Multi", "1"),
        ("X-Multi", "2"),
    ]
    response = CachedResponse(request_info(), payload="café", status=203, reason="Non-Authoritative", headers=headers)
    assert (response.status, response.reason) == (203, "Non-Authoritative")
    assert response.headers.getall("X-Multi") == ["1", "2"]
    assert response.headers["Content-Length"] == str(len("café".encode()))
    assert response.content_length == 5
    # text is stored as UTF-8, so a declared latin-1 charset would now be a lie
    assert response.charset == "utf-8" and response.get_encoding() == "utf-8"
    assert await response.text() == "café"
    assert response.raw_headers[0] == (b"Content-Type", b"text/plain; charset=utf-8")

    raw = CachedResponse(request_info(), payload="café".encode("latin-1"), headers=headers[:1])
    assert raw.charset == "iso-8859-1" and await raw.text() == "café"  # bytes are served as stored
    assert await raw.text(encoding="utf-8", errors="replace") == "caf\ufffd"


async def test_json_keeps_aiohttp_content_type_rules() -> None:
    json_response = CachedResponse(request_info(), '{"x": [1]}', headers=[("Content-Type", "application/vnd.api+json")])
    assert await json_response.json() == {"x": [1]}
    html = CachedResponse(request_info(), '{"x": 1}', headers=[("Content-Type", "text/html")])
    with pytest.raises(ContentTypeError, match="unexpected mimetype: text/html"):
        await html.json()
    assert await html.json(content_type=None) == {"x": 1}
    assert await html.json(content_type="text/html", loads=lambda text: text.upper()) == '{"X": 1}'
    assert await CachedResponse(request_info(), "  \n").json(content_type=None) is None


async def test_stream_links_disposition_and_repr() -> None:
    body = "line\n" * 20_000
    response = CachedResponse(
        request_info("http://example.test/items/1#frag"),
        body,
        headers=[
            ("Link", '</items/2>; rel="next", </items/0>; rel="prev"'),
            ("Content-Disposition", 'attachment; filename="items.txt"'),
        ],
    )
    assert response.url == URL("http://example.test/items/1")
    assert response.real_url == URL("http://example.test/items/1#frag")
    assert response.host == "example.test"
    assert await response.content.readline() == b"line\n"
    assert len(await response.content.read()) == len(body) - 5
    assert await response.read() == body.encode()  # read() is independent of the stream
    assert response.links["next"]["url"] == URL("http://example.test/items/2")
    assert response.links["prev"]["rel"] == "prev"
    disposition = response.content_disposition
    assert disposition is not None and (disposition.type, disposition.filename) == ("attachment", "items.txt")
    assert "CachedResponse(http://example.test/items/1) [200 cached]" in repr(response)
    assert response.cookies == {}


async def test_lifecycle_methods() -> None:
    response = CachedResponse(request_info(), "x")
    async with response as entered:
        assert entered is response
    await response.release()  # awaitable, as older aiohttp code expects
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response.release()  # and harmless when not awaited
    response.close()
    await response.wait_for_close()
    response.raise_for_status()
    failed = CachedResponse(request_info(), "gone", status=404, reason="Not Found")
    with pytest.raises(ClientResponseError) as caught:
        failed.raise_for_status()
    assert (caught.value.status, caught.value.message) == (404, "Not Found")
    with pytest.raises(RuntimeError):
        await response.start(None)


async def test_every_public_member_of_client_response_works() -> None:
    response = CachedResponse(request_info(), '{"a": 1}', headers=[("Content-Type", "application/json")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in dir(ClientResponse):
            if name.startswith("_") or name == "url_obj":  # url_obj is aiohttp's own deprecated alias
                continue
            value = getattr(response, name)
            if name in ("read", "text", "json", "wait_for_close"):
                await value()
            elif name in ("get_encoding", "raise_for_status", "close", "release"):
                value()


async def test_built_from_a_real_response(serve: Any) -> None:
    base = await serve(make_app())
    async with aiohttp.ClientSession() as session, session.get(base / "items" / "7") as live:
        cached = CachedResponse(live, await live.text(), headers=list(live.headers.items()))
    assert cached.request_info == live.request_info and cached.url == live.url
    assert (await cached.json())["id"] == "7"
    assert "Set-Cookie" in cached.headers  # the response class serves what it is given; the cache filters


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        CachedResponse(request_info(), 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no request info"):
        CachedResponse(object(), "x")
