# SPDX-License-Identifier: MIT
"""The abstract cache core, exercised through a small dict-backed backend and SQLite."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Generator
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from aiorequestful.cache import backend
from aiorequestful.cache.backend.base import (
    DEFAULT_EXPIRE,
    CacheRequestType,
    RepositoryRequestType,
    ResponseCache,
    ResponseRepository,
    ResponseRepositorySettings,
)
from aiorequestful.cache.backend.sqlite import SQLiteCache
from aiorequestful.cache.exception import CacheError
from aiorequestful.cache.response import CachedResponse
from aiorequestful.cache.session import CachedSession
from aiorequestful.exception import AIORequestfulError
from aiorequestful.response.exception import PayloadHandlerError
from aiorequestful.response.payload import JSONPayloadHandler, PayloadHandler, StringPayloadHandler

from .cache_support import HITS, ItemSettings, json_settings, make_app, pick_items


def info(url: str, method: str = "GET") -> RequestInfo:
    return RequestInfo(URL(url), method, CIMultiDictProxy(CIMultiDict()), URL(url))


class DictRepository(ResponseRepository):
    """The smallest repository a user could write against 1.0.20's API (no metadata, no credentials)."""

    __slots__ = ("store",)

    def __init__(self, settings: ResponseRepositorySettings, expire: timedelta = DEFAULT_EXPIRE) -> None:
        super().__init__(settings=settings, expire=expire)
        self.store: dict[tuple, Any] = {}

    async def create(self) -> DictRepository:
        return self

    def __await__(self) -> Generator[Any, None, DictRepository]:
        return self.create().__await__()

    async def commit(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def count(self, include_expired: bool = True) -> int:
        return len(self.store)

    async def contains(self, request: Any) -> bool:
        return self.get_key_from_request(request) in self.store

    async def clear(self, expired_only: bool = False) -> int:
        count = len(self.store)
        self.store.clear()
        return count

    def get_key_from_request(self, request: Any) -> Any:
        request = getattr(request, "request_info", request)
        if not isinstance(request, RequestInfo):
            return request
        key = self.settings.get_key(method=request.method, url=request.url, headers=request.headers)
        return None if None in key else (request.method, *key)

    async def get_response(self, request: Any) -> Any:
        return await self.deserialize(self.store.get(self.get_key_from_request(request)))

    async def _set_item_from_key_value_pair(self, key: Any, value: Any) -> None:
        self.store[key] = value

    async def delete_response(self, request: Any) -> bool:
        return self.store.pop(self.get_key_from_request(request), None) is not None

    async def _items(self) -> AsyncIterator[tuple[Any, Any]]:
        for key, value in self.store.items():
            yield key, await self.deserialize(value)

    def __aiter__(self) -> AsyncIterator[tuple[Any, Any]]:
        return self._items()


class DictCache(ResponseCache[DictRepository]):
    __slots__ = ()

    @classmethod
    async def connect(cls, value: Any, **kwargs: Any) -> DictCache:
        return cls(cache_name=str(value), **kwargs)

    def __await__(self) -> Generator[Any, None, DictCache]:
        async def _self() -> DictCache:
            return self

        return _self().__await__()

    async def __aexit__(self, *_: Any) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def create_repository(self, settings: ResponseRepositorySettings) -> DictRepository:
        repository = DictRepository(settings, expire=self.expire)
        self[settings.name] = repository
        return repository


class FailingHandler(PayloadHandler[str]):
    async def serialize(self, payload: Any) -> str:
        raise PayloadHandlerError("no")

    async def deserialize(self, response: Any) -> str:
        raise PayloadHandlerError("no")


# ----------------------------------------------------------------------------------------------------------------
# module surface
# ----------------------------------------------------------------------------------------------------------------
def test_module_values() -> None:
    assert DEFAULT_EXPIRE == timedelta(weeks=1)
    assert CacheRequestType.__name__ == "CacheRequestType"
    assert RepositoryRequestType.__name__ == "RepositoryRequestType"
    # 1.0.20 lists SQLite; the optional Redis backend is registered too when redis-py imports.
    try:
        from aiorequestful.cache.backend.redis import RedisCache
    except ImportError:
        extra: set[type] = set()
    else:
        extra = {RedisCache}
    assert backend.CACHE_CLASSES == frozenset({SQLiteCache, *extra})
    assert backend.CACHE_TYPES == frozenset({"sqlite", *(cls.type for cls in extra)})
    assert backend.ResponseCache is ResponseCache and backend.SQLiteCache is SQLiteCache
    assert issubclass(CacheError, AIORequestfulError)
    assert ResponseCache.type is None


def test_settings_is_an_abstract_dataclass() -> None:
    with pytest.raises(TypeError):
        ResponseRepositorySettings(name="x")  # type: ignore[abstract]
    first, second = ItemSettings(name="a"), ItemSettings(name="a")
    assert first == second and first != ItemSettings(name="b")
    assert first.payload_handler is second.payload_handler  # one shared default instance
    assert isinstance(first.payload_handler, StringPayloadHandler)
    with pytest.raises(TypeError):
        hash(first)
    assert [field.name for field in dataclasses.fields(first)] == ["name", "payload_handler"]
    assert ItemSettings.share_across_credentials is False
    handler = JSONPayloadHandler()
    assert ItemSettings("n", handler).payload_handler is handler


def test_repository_basics() -> None:
    repository = DictRepository(json_settings("items"), expire=timedelta(hours=2))
    assert repository.logger.name == "aiorequestful.cache.backend.base"
    assert repository.connection is None
    assert hash(repository) == hash("items")
    assert repository != DictRepository(json_settings("items"))  # equality is identity
    expected = datetime.now() + timedelta(hours=2)
    assert repository.expire.tzinfo is None  # as in 1.0.20: datetime.now() + expire
    assert abs((repository.expire - expected).total_seconds()) < 5
    with pytest.raises(TypeError):
        ResponseRepository(json_settings())  # type: ignore[abstract]


async def test_serialize_and_deserialize_turn_handler_errors_into_none() -> None:
    repository = DictRepository(ItemSettings(name="x", payload_handler=FailingHandler()))
    assert await repository.serialize("a") is None
    assert await repository.deserialize("a") is None
    assert await repository.serialize(None) is None and await repository.deserialize(None) is None
    plain = DictRepository(json_settings())
    assert await plain.serialize({"a": 1}) == '{"a": 1}'
    assert await plain.deserialize('{"a": 1}') == {"a": 1}


async def test_bulk_helpers_of_the_base_class() -> None:
    repository = DictRepository(json_settings())
    await repository.save_response((("GET", "1"), {"a": 1}))
    await repository.save_responses({("GET", "2"): {"b": 2}, ("GET", "3"): {"c": 3}})
    await repository.save_responses([(("GET", "4"), {"d": 4})])
    assert repository.store[("GET", "2")] == '{"b": 2}'  # stored serialised
    got = await repository.get_responses([info("http://h/items/3"), ("GET", "nope"), ("GET", "1")])
    assert got == [{"c": 3}, {"a": 1}]
    assert await repository.delete_responses([("GET", "1"), ("GET", "1"), ("GET", "4")]) == 2
    assert [key async for key, _ in repository] == [("GET", "2"), ("GET", "3")]


async def test_cache_mapping_and_repository_selection() -> None:
    cache = DictCache(cache_name="dict", repository_getter=pick_items, expire=timedelta(days=2))
    items = cache.create_repository(json_settings("items"))
    other = cache.create_repository(json_settings("other"))
    assert (cache.cache_name, cache.expire, len(cache), list(cache)) == (
        "dict",
        timedelta(days=2),
        2,
        ["items", "other"],
    )
    assert cache["items"] is items and dict(cache.items()) == {"items": items, "other": other}
    assert repr(cache) == repr({"items": items, "other": other}) == str(cache)
    del cache["other"]
    assert "other" not in cache

    assert cache.get_repository_from_url("http://h/items/1") is items
    assert cache.get_repository_from_url("http://h/elsewhere") is None
    assert cache.get_repository_from_requests([info("http://h/items/1"), info("http://h/items/2")]) is items
    assert cache.get_repository_from_requests([]) is None
    with pytest.raises(
        CacheError,
        match=r"^Too many different types of requests given\. Given requests must relate to the same repository type$",
    ):
        cache.get_repository_from_requests([info("http://h/items/1"), info("http://h/elsewhere")])
    with pytest.raises(CacheError, match="no URL"):
        cache.get_repository_from_requests(("GET", "1"))
    assert DictCache(cache_name="x").get_repository_from_url("http://h/items/1") is None  # no getter


async def test_cache_delegates_to_the_selected_repository() -> None:
    cache = DictCache(cache_name="dict", repository_getter=pick_items)
    items = cache.create_repository(json_settings("items"))
    async with cache as entered:
        assert entered is cache
    items.store[("GET", "1")] = '{"a": 1}'
    request, elsewhere = info("http://h/items/1"), info("http://h/other/1")
    assert await cache.get_response(request) == {"a": 1}
    assert await cache.get_responses([request, info("http://h/items/2")]) == [{"a": 1}]
    assert await cache.delete_response(request) is True
    assert await cache.delete_responses([request]) == 0
    for method in ("get_response", "delete_response", "save_response"):
        assert await getattr(cache, method)(elsewhere) is None
    for method in ("get_responses", "delete_responses", "save_responses"):
        assert await getattr(cache, method)([elsewhere]) is None


async def test_cached_session_works_with_a_contract_only_backend(serve: Any) -> None:
    """A repository that only implements 1.0.20's methods still gets hits (with 1.0.20's defaults)."""
    app = make_app()
    base = await serve(app)
    cache = DictCache(cache_name="dict", repository_getter=pick_items)
    cache.create_repository(json_settings("items"))
    async with CachedSession(cache=cache) as session:
        for _ in range(2):
            async with session.get(base / "items" / "5") as response:
                payload = await response.json(content_type=None)
        assert isinstance(response, CachedResponse)
        assert (response.status, response.reason) == (200, "cached")
        assert payload == {"id": "5", "title": "Item 5", "hit": 1}
    assert app[HITS]["5"] == 1


async def test_save_of_an_unreadable_response_is_skipped(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    base = await serve(make_app())
    cache = DictCache(cache_name="dict", repository_getter=pick_items)
    repository = cache.create_repository(json_settings("items"))
    async with CachedSession(cache=cache) as session:
        with caplog.at_level(logging.WARNING):
            async with session.get(base / "html" / "items" / "1") as response:
                await response.read()
    assert repository.store == {}
    assert any("cannot read its body" in record.getMessage() for record in caplog.records)
