# SPDX-License-Identifier: MIT
"""Shared fixtures: backend selection and real aiohttp.web servers on 127.0.0.1 (never another address)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from yarl import URL

from .backends import add_backend_options, deselect_native, kernels  # noqa: F401 - fixture re-export

Serve = Callable[..., Awaitable[URL]]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_backend_options(parser)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect_native(config, items)


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
