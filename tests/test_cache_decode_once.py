# SPDX-License-Identifier: MIT
"""A cache hit through RequestHandler decodes the stored JSON once (cache._entry.decoded_once), with the same
results as decoding the rebuilt response: fresh values per hit, other handlers unaffected, corrupt rows missed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from aiorequestful.cache._entry import decoded_once
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import BytesPayloadHandler, JSONPayloadHandler, StringPayloadHandler

from .cache_support import HITS, make_app, raw_execute
from .test_cache_request_handler import ItemSettings, pick_repository


class _CountingJSON(JSONPayloadHandler):
    """A subclass: never given a pre-decoded value (its deserialize may do more than the base class)."""

    __slots__ = ("responses",)

    def __init__(self) -> None:
        super().__init__()
        self.responses = 0

    async def deserialize(self, response: Any) -> Any:
        if not isinstance(response, (str, bytes, bytearray, dict, list)):
            self.responses += 1
        return await super().deserialize(response)


def test_decoded_once_only_for_a_plain_json_handler_and_text() -> None:
    json_handler = JSONPayloadHandler()
    assert decoded_once(json_handler, '{"a": 1}', {"a": 1}) == (json_handler, {"a": 1})
    assert decoded_once(json_handler, b'{"a": 1}', {"a": 1}) is None  # bytes: the charset header may disagree
    assert decoded_once(_CountingJSON(), '{"a": 1}', {"a": 1}) is None
    assert decoded_once(StringPayloadHandler(), "x", "x") is None
    assert decoded_once(BytesPayloadHandler(), "x", b"x") is None


@pytest.fixture
async def server(serve: Any) -> tuple[URL, Any]:
    app = make_app()
    return await serve(app), app


async def test_hits_give_equal_fresh_values(server: tuple[URL, Any], tmp_path: Path) -> None:
    base, app = server
    cache = SQLiteCache.connect_with_path(tmp_path / "c.sqlite", repository_getter=pick_repository)
    cache.create_repository(ItemSettings(name="items"))
    url = f"{base}/v2/items/7"
    async with RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler()) as handler:
        first = await handler.get(url)
        second = await handler.get(url)
        third = await handler.get(url)
        stats = handler.stats
    assert first == second == third == {"id": "7", "title": "Item 7", "hit": 1}
    assert second is not third  # each hit has its own value: mutating one never changes another
    second["title"] = "changed"
    assert third["title"] == "Item 7"
    assert app[HITS]["7"] == 1 and stats.cache_hits == 2


async def test_a_subclassed_handler_still_decodes_the_response(server: tuple[URL, Any], tmp_path: Path) -> None:
    base, _ = server
    cache = SQLiteCache.connect_with_path(tmp_path / "c.sqlite", repository_getter=pick_repository)
    cache.create_repository(ItemSettings(name="items"))
    handler_json = _CountingJSON()
    async with RequestHandler.create(cache=cache, payload_handler=handler_json) as handler:
        first = await handler.get(f"{base}/v2/items/8")
        before = handler_json.responses
        second = await handler.get(f"{base}/v2/items/8")
        stats = handler.stats
    assert first == second and stats.cache_hits == 1
    assert handler_json.responses == before + 1  # the cached response was decoded by the handler itself


async def test_a_corrupt_row_is_still_a_logged_miss(
    server: tuple[URL, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base, app = server
    path = tmp_path / "c.sqlite"
    cache = SQLiteCache.connect_with_path(path, repository_getter=pick_repository)
    cache.create_repository(ItemSettings(name="items"))
    url = f"{base}/v2/items/9"
    async with RequestHandler.create(cache=cache, payload_handler=JSONPayloadHandler()) as handler:
        await handler.get(url)
        raw_execute(path, "UPDATE items SET payload = '{not json'")
        with caplog.at_level(logging.WARNING):
            again = await handler.get(url)
    assert again == {"id": "9", "title": "Item 9", "hit": 2}
    assert app[HITS]["9"] == 2
    assert any("corrupt cache entry" in record.getMessage() for record in caplog.records)


async def test_a_hit_hands_over_its_decoded_payload_through_a_public_method(
    server: tuple[URL, Any], tmp_path: Path
) -> None:
    from aiorequestful.cache.response import CachedResponse
    from aiorequestful.cache.session import CachedSession

    base, _ = server
    cache = SQLiteCache.connect_with_path(tmp_path / "p.sqlite", repository_getter=pick_repository)
    table = cache.create_repository(ItemSettings(name="items", payload_handler=JSONPayloadHandler()))
    async with CachedSession(cache=cache) as session:
        async with session.get(f"{base}/v2/items/3") as response:
            await response.read()
        async with session.get(f"{base}/v2/items/3") as response:
            assert isinstance(response, CachedResponse)
            handler = table.settings.payload_handler
            assert response.decoded_payload(handler) == (True, {"id": "3", "title": "Item 3", "hit": 1})
            assert response.decoded_payload(JSONPayloadHandler()) == (False, None)  # another handler object
            assert response._cached_decoded is not None  # the older attribute still works
    plain = CachedResponse(response.request_info, '{"a": 1}')
    assert plain.decoded_payload(handler) == (False, None)
