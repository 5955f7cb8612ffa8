# SPDX-License-Identifier: MIT
"""A cache writer run as a separate process by the concurrency tests (never collected by pytest).

python cache_writer_proc.py burst DB WRITER ROWS CONCURRENCY
    Write ROWS rows keyed "<WRITER>-<i>" with CONCURRENCY tasks at a time, read every one back, print
    "ok <written> <read back>" and exit 0; any exception is printed and exits 1.

python cache_writer_proc.py forever DB WRITER SECONDS
    Keep 16 tasks saving rows until SECONDS pass (the test kills it long before), printing
    "committed <key>" (flushed) each time a save returns: every printed key has been committed.
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiorequestful.cache.backend.sqlite import SQLiteCache
from cache_support import json_settings


async def burst(db: str, writer: str, rows: int, concurrency: int) -> int:
    cache = SQLiteCache.connect_with_path(db)
    table = cache.create_repository(json_settings())
    async with cache:
        semaphore = asyncio.Semaphore(concurrency)

        async def write(i: int) -> None:
            async with semaphore:
                await table.save_response((("GET", f"{writer}-{i}"), {"writer": writer, "i": i, "pad": "x" * 200}))

        await asyncio.gather(*(write(i) for i in range(rows)))
        read = await asyncio.gather(*(table.get_response(("GET", f"{writer}-{i}")) for i in range(rows)))
        good = sum(1 for i, value in enumerate(read) if value == {"writer": writer, "i": i, "pad": "x" * 200})
    print(f"ok {rows} {good}", flush=True)
    return 0 if good == rows else 1


async def forever(db: str, writer: str, seconds: float) -> int:
    cache = SQLiteCache.connect_with_path(db)
    table = cache.create_repository(json_settings())
    deadline = time.monotonic() + seconds
    counter = 0
    async with cache:

        async def loop() -> None:
            nonlocal counter
            while time.monotonic() < deadline:
                counter += 1
                key = f"{writer}-{counter}"
                await table.save_response((("GET", key), {"key": key, "pad": "y" * 500}))
                sys.stdout.write(f"committed {key}\n")
                sys.stdout.flush()

        await asyncio.gather(*(loop() for _ in range(16)))
    return 0


def main(argv: list[str]) -> int:
    mode, db, writer = argv[1], argv[2], argv[3]
    try:
        if mode == "burst":
            return asyncio.run(burst(db, writer, int(argv[4]), int(argv[5])))
        if mode == "forever":
            return asyncio.run(forever(db, writer, float(argv[4])))
    except Exception:
        traceback.print_exc()
        return 1
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
