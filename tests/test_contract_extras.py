# SPDX-License-Identifier: MIT
"""Contract points found in review: the abstract OAuth2 member, and no private aiohttp API in the cache."""

from __future__ import annotations

import ast
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

import aiorequestful
import aiorequestful.cache as cache_package
from aiorequestful._aiohttp import session_base_url
from aiorequestful.auth.oauth2 import OAuth2Authoriser
from aiorequestful.auth.utils import AuthRequest


async def test_oauth2_subclass_implementing_authorise_works() -> None:
    """A user subclass of OAuth2Authoriser implements ``authorise()`` and nothing else."""

    class Static(OAuth2Authoriser):
        async def authorise(self) -> dict[str, str]:
            return {"Authorization": "Bearer static"}

    request = AuthRequest(method="POST", url="http://127.0.0.1/token")
    auth = Static(request)
    assert await auth == {"Authorization": "Bearer static"}
    assert await auth() == await auth.authorise()
    with pytest.raises(TypeError, match="abstract"):
        OAuth2Authoriser(request)  # type: ignore[abstract]


#: aiohttp internals the original's cache leaned on (they broke it on aiohttp 3.14).
_PRIVATE = {"_build_url", "_loop", "_response_class", "TimerNoop", "_request"}


def test_cache_uses_no_private_aiohttp_api() -> None:
    """The cache reaches aiohttp through its public surface only (checked on the source's syntax tree)."""
    offenders = []
    for path in Path(cache_package.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in _PRIVATE:
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aiohttp"):
                offenders.extend(
                    f"{path.name}:{node.lineno} imports {alias.name}" for alias in node.names if alias.name in _PRIVATE
                )
            # ClientResponse.__init__ / ClientRequest(...) are private constructors.
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "ClientRequest":
                offenders.append(f"{path.name}:{node.lineno} ClientRequest(...)")
    assert offenders == []


def _aiohttp_private_names() -> set[str]:
    """Every single-underscore attribute name of aiohttp's client classes (their slots, ATTRS and members)."""
    names: set[str] = set()
    for cls in (
        aiohttp.ClientSession,
        aiohttp.ClientResponse,
        aiohttp.ClientRequest,
        aiohttp.BaseConnector,
        aiohttp.TCPConnector,
        aiohttp.StreamReader,
    ):
        for name in (*dir(cls), *getattr(cls, "ATTRS", ()), *getattr(cls, "__slots__", ())):
            if name.startswith("_") and not name.startswith("__"):
                names.add(name)
    return names


def test_only_one_module_touches_aiohttp_internals() -> None:
    """No module but ``_aiohttp.py`` reads or sets a private attribute of aiohttp's objects (``obj._name`` or
    ``getattr(obj, "_name")``); an object's own privates (``self._x``) are its own business."""
    private = _aiohttp_private_names()
    package = Path(aiorequestful.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == "_aiohttp.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in private:
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    offenders.append(f"{path.relative_to(package)}:{node.lineno} {ast.unparse(node)}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in private
            ):
                offenders.append(f"{path.relative_to(package)}:{node.lineno} {ast.unparse(node)}")
    assert offenders == []


async def test_session_base_url_pins_what_aiohttp_keeps() -> None:
    """The one read of an aiohttp private: a plain session's base URL (and a caching session's published one)."""
    async with aiohttp.ClientSession(base_url="http://127.0.0.1:1/api/") as session:
        assert session_base_url(session) == URL("http://127.0.0.1:1/api/")
    async with aiohttp.ClientSession() as session:
        assert session_base_url(session) is None
    assert session_base_url(None) is None


async def test_caching_session_is_an_explicit_protocol(tmp_path) -> None:
    """The handler recognises a caching session by the protocol, decided once per session."""
    from aiorequestful.cache.backend.sqlite import SQLiteCache
    from aiorequestful.cache.protocol import CachingSession
    from aiorequestful.cache.session import CachedSession
    from aiorequestful.request import RequestHandler

    cache = SQLiteCache.connect_with_path(tmp_path / "c")
    async with CachedSession(cache=cache) as cached, aiohttp.ClientSession() as plain:
        assert isinstance(cached, CachingSession)
        assert not isinstance(plain, CachingSession)
    handler = RequestHandler.create(cache=SQLiteCache.connect_with_path(tmp_path / "d"))
    async with handler:
        assert handler._cache() is not None
    async with RequestHandler.create() as plain_handler:
        assert plain_handler._cache() is None
