# SPDX-License-Identifier: MIT
"""Contract points found in review: the abstract OAuth2 member, and no private aiohttp API in the cache."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import aiorequestful.cache as cache_package
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
