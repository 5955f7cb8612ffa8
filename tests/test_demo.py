# SPDX-License-Identifier: MIT
"""`make demo` end to end: the crawl meets every kind of trouble, recovers, and the second pass is all cache."""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3

from aiorequestful.demo.crawl import run


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
    with contextlib.closing(sqlite3.connect(cache.with_suffix(".sqlite"))) as db:  # `with connect()` never closes
        assert db.execute('SELECT COUNT(*) FROM "items"').fetchone()[0] == 60


async def test_demo_without_cache(tmp_path) -> None:
    out = io.StringIO()
    assert await run(items=30, concurrency=4, cache_path=None, progress=False, stream=out) == 0
    assert "cache: off" in out.getvalue()
    assert "\ncache: " not in out.getvalue()
