# SPDX-License-Identifier: MIT
"""The Authoriser base class and BasicAuthoriser."""

from __future__ import annotations

import base64
import logging

import pytest
from aiohttp import ClientSession, web

import aiorequestful.auth as auth_package
from aiorequestful.auth.base import _DEFAULT_SERVICE_NAME, Authoriser
from aiorequestful.auth.basic import BASIC_CLASSES, BasicAuthoriser
from aiorequestful.auth.exception import AuthoriserError
from aiorequestful.exception import AIORequestfulError


class CountingAuthoriser(Authoriser):
    __slots__ = ("calls",)

    def __init__(self) -> None:
        super().__init__(service_name="counting")
        self.calls = 0

    async def authorise(self) -> dict[str, str]:
        self.calls += 1
        return {"X-Call": str(self.calls)}


def test_package_reexports_authoriser_only() -> None:
    assert auth_package.__all__ == ("Authoriser",)
    assert auth_package.Authoriser is Authoriser


def test_authoriser_is_abstract() -> None:
    with pytest.raises(TypeError):
        Authoriser()  # type: ignore[abstract]


def test_exception_hierarchy() -> None:
    assert issubclass(AuthoriserError, AIORequestfulError)


async def test_await_call_and_authorise_are_equivalent() -> None:
    auth = CountingAuthoriser()
    assert await auth == {"X-Call": "1"}
    assert await auth() == {"X-Call": "2"}
    assert await auth.authorise() == {"X-Call": "3"}
    assert auth.logger is logging.getLogger("aiorequestful.auth.base")
    assert auth.service_name == "counting"
    assert not hasattr(auth, "__dict__")


async def test_base_invalidate_is_a_noop_coroutine() -> None:
    auth = CountingAuthoriser()
    assert await auth.invalidate() is None
    assert await auth.invalidate(rejected="Bearer x") is None
    assert auth.calls == 0


async def test_basic_header() -> None:
    auth = BasicAuthoriser(login="svc-user", password="s3cret")
    assert auth.service_name == _DEFAULT_SERVICE_NAME == "unknown_service"
    assert (auth.login, auth.password, auth.encoding) == ("svc-user", "s3cret", "latin1")
    expected = "Basic " + base64.b64encode(b"svc-user:s3cret").decode()
    assert await auth == {"Authorization": expected}
    assert BASIC_CLASSES == frozenset({BasicAuthoriser})


async def test_basic_encodings() -> None:
    latin = BasicAuthoriser(login="jos\u00e9", password="p\u00e4ss")
    header = (await latin)["Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")) == "jos\u00e9:p\u00e4ss".encode("latin1")

    utf8 = BasicAuthoriser(login="user", password="\u20ac uro", encoding="utf-8")
    header = (await utf8)["Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")) == "user:\u20ac uro".encode()


async def test_basic_errors_do_not_leak_the_password() -> None:
    secret = "pa\u20acss-word-123"
    with pytest.raises(AuthoriserError, match="cannot be encoded as 'latin1'") as info:
        await BasicAuthoriser(login="user", password=secret)
    assert secret not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__

    with pytest.raises(AuthoriserError, match="must not contain ':'"):
        await BasicAuthoriser(login="a:b", password="x")
    with pytest.raises(AuthoriserError, match="Unknown encoding"):
        await BasicAuthoriser(login="a", password="x", encoding="no-such-codec")

    assert "pa" not in repr(BasicAuthoriser(login="user", password="pa-secret")).replace("user", "")


async def test_basic_against_a_server(serve) -> None:
    async def protected(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        ok = scheme == "Basic" and base64.b64decode(value) == b"svc-user:s3cret"
        return web.Response(status=200 if ok else 401)

    app = web.Application()
    app.router.add_get("/", protected)
    url = await serve(app)
    async with ClientSession() as session:
        async with session.get(url, headers=await BasicAuthoriser("svc-user", "s3cret")) as response:
            assert response.status == 200
        async with session.get(url, headers=await BasicAuthoriser("svc-user", "wrong")) as response:
            assert response.status == 401
