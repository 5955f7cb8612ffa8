# SPDX-License-Identifier: MIT
"""Every Python example in docs/ runs for real, against local servers on 127.0.0.1.

The examples of one page run in order in one namespace (a later block may use what an earlier one defined),
each with its stdout captured. Markers are HTML comments, invisible in the rendered pages:

* ``<!-- docs-test: env api oauth redis -->`` anywhere on a page: names the page's examples may use without
  defining them. ``API`` is the base URL (a ``yarl.URL``) of the behaviour server of ``tests/servers.py``,
  ``PROVIDER`` the base URL of the OAuth2 provider of ``tests/oauth_provider.py`` (clients ``app`` with
  secret ``app-secret`` and the public ``public-app``; consent already given, so it redirects straight back),
  ``REDIS_URL`` a throw-away redis-server (the page is skipped when none can be had). Every page gets fresh
  servers.
* ``<!-- docs-test: needs NAME ... -->`` anywhere on a page: dotted names (a module, or a module's attribute) the
  page's examples need; the page is skipped when one cannot be imported or found (``aiohttp.ClientMiddlewareType``:
  aiohttp 3.12 or newer).
* ``<!-- docs-test: skip REASON -->`` on the line before a block: the block is shown, not run. The reason is
  required, and few blocks may carry one (see ``MAX_SKIPPED``).
* ``<!-- docs-test: output -->`` on the line before a ``text`` block that follows a Python block: that text is
  what the Python block must print, exactly (trailing spaces aside).

The servers run on an event loop in a background thread, so the examples can call ``asyncio.run`` as users do.
Every example also runs in a fresh temporary working directory (cache and token files land there).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from . import servers
from .oauth_provider import OAuthProvider

DOCS = Path(__file__).resolve().parent.parent / "docs"

# The docs live in the repository, not in the sdist: a test run from an unpacked sdist has none to check.
pytestmark = pytest.mark.skipif(not (DOCS / "index.md").is_file(), reason="no docs/ beside tests/ (not a checkout)")

#: Namespace every Redis example on the docs pages writes under; cleared before and after the page runs.
REDIS_NAMESPACE = "docs-example"

#: Blocks that may be shown without being run, in all pages together: the docs should stay executable.
MAX_SKIPPED = 4

_MARK = re.compile(r"^\s*<!--\s*docs-test:\s*(\w+)\s*(.*?)\s*-->\s*$")
_FENCE = re.compile(r"^(`{3,})\s*([^\s`]*)")
_ENVS = frozenset({"api", "oauth", "redis"})


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the first code line
    language: str
    code: str
    marker: tuple[str, str] | None = None  # (kind, argument) from the line before the fence
    expected_output: str | None = None


@dataclass
class Page:
    path: Path
    envs: frozenset[str] = frozenset()
    needs: tuple[str, ...] = ()
    blocks: list[Block] = field(default_factory=list)

    @property
    def python(self) -> list[Block]:
        return [b for b in self.blocks if b.language == "python"]


def parse_page(path: Path) -> Page:
    """The fenced blocks of a MyST/Markdown page, their markers, and the page's environments."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = Page(path)
    envs: set[str] = set()
    previous = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        mark = _MARK.match(line)
        if mark and mark.group(1) == "env":
            names = set(mark.group(2).split())
            unknown = names - _ENVS
            assert not unknown, f"{path.name}:{i + 1}: unknown docs-test env {sorted(unknown)}"
            envs |= names
        if mark and mark.group(1) == "needs":
            page.needs += tuple(mark.group(2).split())
        fence = _FENCE.match(line)
        if fence:
            ticks, language = fence.group(1), fence.group(2)
            end = i + 1
            while end < len(lines) and not lines[end].startswith(ticks):
                end += 1
            assert end < len(lines), f"{path.name}:{i + 1}: unclosed code fence"
            marker_match = _MARK.match(previous)
            marker = (marker_match.group(1), marker_match.group(2)) if marker_match else None
            block = Block(path, i + 2, language, "\n".join(lines[i + 1 : end]) + "\n", marker)
            if marker is not None and marker[0] == "output":
                assert page.blocks and page.blocks[-1].language == "python", (
                    f"{path.name}:{i + 1}: an output block must follow a Python block"
                )
                page.blocks[-1].expected_output = block.code
            else:
                page.blocks.append(block)
            previous = ""
            i = end + 1
            continue
        if line.strip():
            previous = line
        i += 1
    page.envs = frozenset(envs)
    return page


def docs_pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


PAGES = [parse_page(p) for p in docs_pages()]
RUNNABLE = [page for page in PAGES if page.python]


# Registered here so that the Redis page can ask for it lazily (the import skips when redis-py is missing).
with contextlib.suppress(pytest.skip.Exception):
    from .redis_support import redis_url_fixture  # noqa: F401


# ----------------------------------------------------------------------------------------------------------------
# servers on a background loop
# ----------------------------------------------------------------------------------------------------------------
class BackgroundLoop:
    """An event loop in a thread of its own, serving aiohttp apps on 127.0.0.1 while examples run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="docs-servers", daemon=True)
        self.runners: list[web.AppRunner] = []

    def __enter__(self) -> BackgroundLoop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        async def cleanup() -> None:
            for runner in reversed(self.runners):
                await runner.cleanup()

        self.run(cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def serve(self, app: web.Application) -> URL:
        async def start() -> URL:
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            self.runners.append(runner)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            return URL.build(scheme="http", host=host, port=port)

        return self.run(start())


def _redis_url(request: pytest.FixtureRequest) -> str:
    if "redis_url_fixture" not in globals():
        pytest.skip("redis-py is not installed (pip install aiorequestful[redis])")
    from .redis_support import flush_namespace

    url: str = request.getfixturevalue("redis_url")  # skips when no redis-server can be had
    flush_namespace(url, REDIS_NAMESPACE)
    request.addfinalizer(lambda: flush_namespace(url, REDIS_NAMESPACE))
    return url


def _available(dotted: str) -> bool:
    """Whether ``dotted`` names an importable module, or an attribute of one."""
    module, _, attribute = dotted.rpartition(".")
    for name, attr in ((dotted, ""), (module, attribute)):
        if not name:
            continue
        try:
            imported = importlib.import_module(name)
        except ImportError:
            continue
        return not attr or hasattr(imported, attr)
    return False


@contextlib.contextmanager
def environment(page: Page, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    for need in page.needs:
        if not _available(need):
            pytest.skip(f"{page.path.name} needs {need}, which this environment lacks")
    names: dict[str, Any] = {}
    if "redis" in page.envs:
        names["REDIS_URL"] = _redis_url(request)
    with BackgroundLoop() as background:
        if "api" in page.envs:
            names["API"] = background.serve(servers.make_app())
        if "oauth" in page.envs:
            provider = OAuthProvider(auto_consent=True)
            provider.add_client("app", "app-secret")
            provider.add_client("public-app", None)
            names["PROVIDER"] = background.serve(provider.app())
        yield names


def _normalise(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def run_block(block: Block, namespace: dict[str, Any]) -> str:
    # Blank lines in front keep the page's line numbers in tracebacks: docs/page.md line N is line N here.
    source = "\n" * (block.line - 1) + block.code
    name = block.page.relative_to(DOCS.parent) if block.page.is_relative_to(DOCS.parent) else block.page
    code = compile(source, str(name), "exec")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, namespace)  # running the documentation's own examples is the point
    return out.getvalue()


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.path.relative_to(DOCS)) for p in RUNNABLE])
def test_page_examples_run(page: Page, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with environment(page, request) as names:
        namespace: dict[str, Any] = {"__name__": "__main__", **names}
        for block in page.python:
            if block.marker is not None and block.marker[0] == "skip":
                continue
            printed = run_block(block, namespace)
            if block.expected_output is not None:
                where = f"{block.page.name}:{block.line}"
                assert _normalise(printed) == _normalise(block.expected_output), f"output of the example at {where}"


def test_markers_are_valid() -> None:
    skipped = []
    for page in PAGES:
        for block in page.blocks:
            if block.marker is None:
                continue
            kind, argument = block.marker
            where = f"{page.path.name}:{block.line}"
            assert kind in ("skip", "env", "needs"), f"{where}: unknown docs-test marker {kind!r}"
            if kind == "skip":
                assert block.language == "python", f"{where}: only Python blocks are run, so only they can be skipped"
                assert argument, f"{where}: a skipped example must say why"
                skipped.append(where)
    assert len(skipped) <= MAX_SKIPPED, f"too many examples are not run: {skipped}"


def test_every_example_page_is_found() -> None:
    """The parser sees the pages' examples (a broken fence pattern would silently run nothing)."""
    names = {page.path.name for page in RUNNABLE}
    assert {"getting-started.md", "sqlite-cache.md", "oauth2.md", "flow-control.md", "stats.md"} <= names
    assert sum(len(page.python) for page in RUNNABLE) >= 15
