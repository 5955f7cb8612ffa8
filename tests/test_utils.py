# SPDX-License-Identifier: MIT
"""The package top level, exceptions, type aliases and private helpers."""

from __future__ import annotations

import http
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

import aiorequestful
from aiorequestful import exception as base_exceptions
from aiorequestful import types as aliases
from aiorequestful._utils import classproperty, format_url_log, get_iterator, required_modules_installed
from aiorequestful.exception import (
    AIORequestfulError,
    AIORequestfulImportError,
    HTTPError,
    InputError,
    RequestError,
)
from aiorequestful.response.exception import (
    PayloadHandlerError,
    ResponseError,
    ResponseTooLargeError,
    StatusHandlerError,
)

try:  # typing.TypeAliasType exists from 3.12; typing_extensions provides the same class before that
    from typing import TypeAliasType  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - 3.11
    from typing_extensions import TypeAliasType


# --------------------------------------------------------------------------------------------------
# §1 top level
# --------------------------------------------------------------------------------------------------
def test_program_constants() -> None:
    assert aiorequestful.PROGRAM_NAME == "aiorequestful"
    assert aiorequestful.PROGRAM_OWNER_NAME == "George Martin Marino"
    assert aiorequestful.PROGRAM_OWNER_USER == "geo-martino"
    assert aiorequestful.PROGRAM_OWNER_EMAIL == "gm.engineer+aiorequestful@pm.me"
    assert aiorequestful.PROGRAM_URL == "https://github.com/geo-martino/aiorequestful"


def test_module_and_package_roots() -> None:
    assert aiorequestful.MODULE_ROOT == "aiorequestful"
    assert isinstance(aiorequestful.PACKAGE_ROOT, Path)
    package_dir = Path(aiorequestful.__file__).parent
    assert aiorequestful.PACKAGE_ROOT == package_dir.parent
    assert (aiorequestful.PACKAGE_ROOT / aiorequestful.MODULE_ROOT / "__init__.py").is_file()


def test_version_attribute_is_added() -> None:
    # 1.0.20 had none; users asked for one (tests/test_packaging.py checks it matches the metadata).
    assert isinstance(aiorequestful.__version__, str)


# --------------------------------------------------------------------------------------------------
# §1 exceptions
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (AIORequestfulError, (Exception,)),
        (InputError, (AIORequestfulError, ValueError)),
        (AIORequestfulImportError, (AIORequestfulError, ImportError)),
        (HTTPError, (AIORequestfulError,)),
        (RequestError, (HTTPError,)),
        (ResponseError, (HTTPError,)),
        (PayloadHandlerError, (AIORequestfulError,)),
        (StatusHandlerError, (AIORequestfulError,)),
    ],
)
def test_exception_hierarchy(cls: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    assert cls.__bases__ == bases


def test_cache_and_auth_errors_join_the_hierarchy() -> None:
    cache_exception = pytest.importorskip("aiorequestful.cache.exception")
    auth_exception = pytest.importorskip("aiorequestful.auth.exception")
    assert cache_exception.CacheError.__bases__ == (AIORequestfulError,)
    assert auth_exception.AuthoriserError.__bases__ == (AIORequestfulError,)


def test_exception_module_exports() -> None:
    for name in ("AIORequestfulError", "InputError", "AIORequestfulImportError", "HTTPError", "RequestError"):
        assert isinstance(getattr(base_exceptions, name), type)


def test_plain_exceptions_take_a_message() -> None:
    assert str(RequestError("boom")) == "boom"
    assert str(PayloadHandlerError("bad payload")) == "bad payload"
    with pytest.raises(ValueError, match="bad input"):
        raise InputError("bad input")
    with pytest.raises(ImportError):
        raise AIORequestfulImportError("missing")


def test_response_error_without_response() -> None:
    assert str(ResponseError()) == ""
    error = ResponseError("x")
    assert (str(error), error.message, error.response) == ("x", "x", None)
    assert str(ResponseError(message="")) == ""


async def test_response_error_with_a_real_response(serve: Callable[..., Any]) -> None:
    async def not_found(_: web.Request) -> web.Response:
        return web.Response(status=404, text="gone")

    app = web.Application()
    app.router.add_get("/", not_found)
    base_url = await serve(app)
    async with aiohttp.ClientSession() as session, session.get(base_url) as response:
        error = ResponseError("x", response)
        assert str(error) == "Status code: 404 | x"
        assert error.response is response and error.message == "x"
        assert str(ResponseError(response=response)) == "Status code: 404"
        assert str(ResponseError("", response)) == "Status code: 404"
        with pytest.raises(HTTPError, match=r"^Status code: 404 \| x$"):
            raise error
        too_large = ResponseTooLargeError("big", response, max_body_size=5)
        assert isinstance(too_large, ResponseError) and too_large.max_body_size == 5
        assert str(too_large) == "Status code: 404 | big"


def test_error_attributes_for_the_request() -> None:
    """ResponseError keeps the whole body apart from its message; PayloadHandlerError may name its request."""
    assert ResponseError("short", body="the whole body").body == "the whole body"
    assert ResponseError("short").body is None
    plain = PayloadHandlerError("bad")
    assert (str(plain), plain.method, plain.url, plain.status, plain.content_type) == ("bad", None, None, None, None)
    named = PayloadHandlerError("bad", method="GET", url="http://h/x", status=200, content_type="text/html")
    assert (named.method, named.url, named.status, named.content_type) == ("GET", "http://h/x", 200, "text/html")


# --------------------------------------------------------------------------------------------------
# §2 types
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("alias", "name", "container"),
    [
        (aliases.UnitIterable, "UnitIterable", Iterable),
        (aliases.UnitCollection, "UnitCollection", Collection),
        (aliases.UnitSequence, "UnitSequence", Sequence),
        (aliases.UnitMutableSequence, "UnitMutableSequence", MutableSequence),
        (aliases.UnitList, "UnitList", list),
    ],
)
def test_generic_aliases_are_type_alias_types(alias: Any, name: str, container: Any) -> None:
    assert isinstance(alias, TypeAliasType)
    assert alias.__name__ == name
    (param,) = alias.__type_params__
    assert alias.__value__ == (param | container[param])
    assert typing.get_args(alias[int]) == (int,)  # subscriptable like the PEP 695 original


def test_plain_aliases() -> None:
    assert isinstance(aliases.Number, types.UnionType)
    assert isinstance(3, aliases.Number) and isinstance(1.5, aliases.Number) and not isinstance("3", aliases.Number)
    assert aliases.Number == int | float
    assert aliases.ImmutableHeaders == Mapping[str, str]
    assert aliases.MutableHeaders == MutableMapping[str, str]
    assert aliases.Headers == dict[str, str]
    assert aliases.JSON_VALUE == str | int | float | list | dict | bool | None
    assert aliases.ImmutableJSON == Mapping[str, aliases.JSON_VALUE]
    assert aliases.MutableJSON == MutableMapping[str, aliases.JSON_VALUE]
    assert aliases.JSON == dict[str, aliases.JSON_VALUE]
    assert aliases.URLInput == str | URL
    assert aliases.MethodInput == str | http.HTTPMethod


REQUEST_KWARGS_ORDER = [
    "method",
    "url",
    "params",
    "data",
    "json",
    "cookies",
    "headers",
    "skip_auto_headers",
    "auth",
    "allow_redirects",
    "max_redirects",
    "compress",
    "chunked",
    "expect100",
    "raise_for_status",
    "read_until_eof",
    "proxy",
    "proxy_auth",
    "timeout",
    "verify_ssl",
    "fingerprint",
    "ssl_context",
    "ssl",
    "server_hostname",
    "proxy_headers",
    "trace_request_ctx",
    "read_bufsize",
    "auto_decompress",
    "max_line_size",
    "max_field_size",
]


def test_request_kwargs_keys_in_order() -> None:
    assert typing.is_typeddict(aliases.RequestKwargs)
    assert list(aliases.RequestKwargs.__annotations__) == REQUEST_KWARGS_ORDER


def test_request_kwargs_are_client_session_request_options() -> None:
    # Every key is a keyword of aiohttp's request API (method/url positionally), so filtering by it is safe.
    import inspect

    accepted = set(inspect.signature(aiohttp.ClientSession._request).parameters)
    assert set(REQUEST_KWARGS_ORDER) - {"method", "url"} <= accepted | {"ssl_context", "verify_ssl", "fingerprint"}


# --------------------------------------------------------------------------------------------------
# §3 _utils
# --------------------------------------------------------------------------------------------------
def test_classproperty() -> None:
    class Thing:
        label = "thing"

        @classproperty
        def upper(cls) -> str:
            """The label in capitals."""
            return cls.label.upper()

    class Other(Thing):
        label = "other"

    assert Thing.upper == "THING"
    assert Thing().upper == "THING"
    assert Other.upper == "OTHER"
    assert Thing.__dict__["upper"].__doc__ == "The label in capitals."


async def real_request_info(serve: Callable[..., Any]) -> aiohttp.RequestInfo:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    base_url = await serve(app)
    async with aiohttp.ClientSession() as session, session.get(base_url) as response:
        return response.request_info


async def test_get_iterator(serve: Callable[..., Any]) -> None:
    assert list(get_iterator(None)) == []
    iterator = iter([1, 2])
    assert get_iterator(iterator) is iterator
    generator = (x for x in range(2))
    assert get_iterator(generator) is generator
    assert list(get_iterator("abc")) == ["abc"]
    assert list(get_iterator(5)) == [5]
    assert list(get_iterator(object)) == [object]
    assert list(get_iterator([1, 2])) == [1, 2]
    assert list(get_iterator((1, 2))) == [1, 2]
    assert list(get_iterator({"a": 1, "b": 2})) == ["a", "b"]
    assert list(get_iterator({3})) == [3]
    info = await real_request_info(serve)
    assert isinstance(info, tuple)
    assert list(get_iterator(info)) == [info]  # a tuple subclass, but one item


@pytest.mark.parametrize(
    ("length", "width"),
    [(13, 30), (29, 30), (30, 40), (39, 40), (40, 70), (69, 70), (70, 100), (99, 100), (100, 100), (150, 100)],
)
def test_format_url_log_padding(length: int, width: int) -> None:
    prefix = "http://h.io/"
    url = URL(prefix + "a" * (length - len(prefix)))
    assert len(str(url)) == length
    line = format_url_log("get", url, ["done"])
    assert line == f"GET    : {url!s:<{width}} | done"


def test_format_url_log_drops_the_query_and_joins_messages() -> None:
    url = URL("https://example.com/v1/items?token=secret&page=2")
    line = format_url_log("post", url, ["first", 2, None])
    assert line == f"POST   : {'https://example.com/v1/items':<30} | first | 2 | None"
    assert "secret" not in line
    assert format_url_log(http.HTTPMethod.DELETE, url, "single").endswith(" | single")
    assert format_url_log("get", url, "single").startswith("GET    : https://example.com/v1/items ")
    assert format_url_log("patch", "https://example.com/x?y=1", ("a", "b")).endswith("| a | b")
    # With no messages the line still ends in the separator (1.0.20's format).
    assert format_url_log("get", url, None) == f"GET    : {'https://example.com/v1/items':<30} | "


def test_format_url_log_masks_user_info() -> None:
    """A log line never carries the credentials of ``http://user:password@host`` URLs."""
    line = format_url_log("get", "http://someone:pa55word@example.com/v1?token=t0k", "m")
    assert "someone" not in line and "pa55word" not in line and "t0k" not in line
    assert line.startswith("GET    : http://<redacted>@example.com/v1 ")
    assert format_url_log("get", URL("http://only-user@example.com/"), "m").startswith("GET    : http://<redacted>@")


def test_required_modules_installed() -> None:
    assert required_modules_installed([types, typing]) is True
    assert required_modules_installed([]) is True
    assert required_modules_installed([types, None]) is False  # nothing to blame: no error
    with pytest.raises(AIORequestfulImportError, match=r"^Cannot run my task\. Required modules: "):
        required_modules_installed([None], "my task")


def test_required_modules_message_names_the_module() -> None:
    class NeedsDatabase:
        _required_module_names = ("aiosqlite", "typing")

    with pytest.raises(AIORequestfulImportError) as info:
        required_modules_installed([None, typing], NeedsDatabase())
    assert str(info.value) == "Cannot create NeedsDatabase object. Required modules: aiosqlite"


def test_response_error_without_a_response_names_nothing() -> None:
    from aiorequestful.response.exception import ResponseError

    error = ResponseError("plain")
    assert (error.method, error.url, error.status, error.content_type, error.body) == (None, None, None, None, None)
    assert str(error) == "plain"


async def test_settle_waits_for_running_tasks_and_passes_over_finished_ones_still_listed() -> None:
    import asyncio

    from aiorequestful._utils import settle

    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    finished.set_result(None)  # finished, and never unlisted: its done callback has not run
    failed = loop.create_future()
    failed.set_exception(ValueError("ignored"))
    gate = asyncio.Event()

    async def running() -> None:
        await gate.wait()

    task = loop.create_task(running())
    tasks: set[asyncio.Future[None]] = {finished, failed, task}
    loop.call_soon(gate.set)
    await asyncio.wait_for(settle(tasks), timeout=5)
    assert task.done() and not task.cancelled()
