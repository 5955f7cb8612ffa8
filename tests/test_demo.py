# SPDX-License-Identifier: MIT
"""`make demo` end to end: the crawl meets every kind of trouble, recovers, and the second pass is all cache."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sqlite3

import pytest

from aiorequestful.demo.crawl import Progress, logs_above_progress, run


async def test_demo_crawls_twice_and_second_pass_is_cached(tmp_path) -> None:
    out = io.StringIO()
    cache = tmp_path / "demo"
    # 60 items include every injected fault: 503 (11, 22, ...), 429 + Retry-After (17, 34, 51), resets (29, 58).
    code = await run(items=60, concurrency=8, cache_path=cache, progress=True, stream=out)
    text = out.getvalue()
    assert code == 0, text
    network, cached = text.split("\n\nnetwork: ")[1].split("\n\ncache: ")
    assert network.startswith("60 items")
    assert re.search(r"retries\s+[1-9]", network), network  # the 503s and 429s were retried
    assert re.search(r"errors\s+2 transport", network), network  # items 29 and 58 dropped the connection
    assert "5xx: 5" in network and "4xx: 3" in network  # 11,22,33,44,55 and 17,34,51 on first hit
    assert "hit rate 100%" in cached and "0 misses" in cached
    assert "0 bytes from the network" in cached
    assert "Cached pass returned the same 60 items: yes" in text
    assert re.search(r"aiorequestful \S+, (native|pure) kernels \(.+\)", text), text
    assert re.search(r"waits\s+[0-9.]+ task-seconds, summed over concurrent requests", network), network
    with contextlib.closing(sqlite3.connect(cache.with_suffix(".sqlite"))) as db:  # `with connect()` never closes
        assert db.execute('SELECT COUNT(*) FROM "items"').fetchone()[0] == 60


async def test_demo_without_cache(tmp_path) -> None:
    out = io.StringIO()
    assert await run(items=30, concurrency=4, cache_path=None, progress=False, stream=out) == 0
    assert "cache: off" in out.getvalue()
    assert "\ncache: " not in out.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_demo_progress_bar_keeps_log_lines_apart(monkeypatch) -> None:
    """On a terminal the bar is tqdm's, and a log record written meanwhile clears the bar first, so the record
    never runs into the bar's line (the demo logs to stderr, draws on stdout, both the same terminal)."""
    pytest.importorskip("tqdm")
    out, err = _Terminal(), _Terminal()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    bar = Progress("network", 3, out)
    stream_handler = logging.StreamHandler(err)
    root = logging.getLogger()
    root.addHandler(stream_handler)
    try:
        with logs_above_progress():
            bar.advance()
            drawn = len(out.getvalue())
            logging.getLogger("aiorequestful.request").warning("a retry line")
            cleared = out.getvalue()[drawn:]
            bar.advance()
            bar.advance()
    finally:
        root.removeHandler(stream_handler)
    assert err.getvalue() == "a retry line\n"
    assert re.match(r"\r +\r", cleared), repr(cleared)  # the bar was wiped before the record, then redrawn
    assert "3/3" in out.getvalue()
