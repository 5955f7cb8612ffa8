# SPDX-License-Identifier: MIT
"""Shared fixtures: backend selection and real aiohttp.web servers on 127.0.0.1 (never another address)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import looptime
import pytest
import pytest_asyncio
from aiohttp import web
from yarl import URL

from .backends import add_backend_options, deselect_native, kernels  # noqa: F401 - fixture re-export

Serve = Callable[..., Awaitable[URL]]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_backend_options(parser)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect_native(config, items)


def _looptime_options(item: pytest.Function) -> dict[str, Any] | None:
    """The options of the ``looptime`` markers on ``item`` (closest last), or None when they leave it off."""
    markers = list(item.iter_markers("looptime"))
    if not markers:
        return None
    enabled = True
    options: dict[str, Any] = {}
    for marker in reversed(markers):  # module, then class, then function: the closest one wins
        options.update(marker.kwargs)
        if marker.args:
            enabled = bool(marker.args[0])
    return options if enabled else None


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Iterator[None]:
    """Run tests marked ``looptime`` on looptime's fast-forwarding clock.

    The loop's clock then only moves when nothing is left to run: every wait (``asyncio.sleep``, a rate-limit
    slot, a pause, a time-out) ends exactly on time however loaded the machine is, and takes no real time.
    Real sockets still work: a server on 127.0.0.1 in the same loop answers within the loop's no-op cycles,
    before the clock moves. Fixtures run on the real clock.

    This replaces looptime's own pytest hook (disabled in pyproject.toml): that one asks the loop policy for a
    loop on every test, which for a synchronous test creates a loop that is never closed (a ResourceWarning,
    an error here). Only async tests are touched here, and their loop is already the policy's.
    """
    options = _looptime_options(pyfuncitem)
    if options is None or not pytest_asyncio.is_async_test(pyfuncitem):
        return (yield)
    policy = pyfuncitem.funcargs.get("event_loop_policy") or asyncio.get_event_loop_policy()
    loop = policy.get_event_loop()
    if not isinstance(loop, asyncio.BaseEventLoop):  # not a loop looptime can patch: run on the real clock
        return (yield)
    patched = looptime.patch_event_loop(loop, _enabled=False)
    patched.setup_looptime(**options)
    with patched.looptime_enabled():
        return (yield)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start ``app`` on a free port of 127.0.0.1 and return its base URL; every server stops after the test."""
    runners: list[web.AppRunner] = []

    async def _serve(app: web.Application, *, host: str = "127.0.0.1", shutdown_timeout: float = 0.5) -> URL:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, host, 0)
        await site.start()
        address = runner.addresses[0]
        return URL.build(scheme="http", host=address[0], port=address[1])

    yield _serve
    for runner in reversed(runners):
        await runner.cleanup()
