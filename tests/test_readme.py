# SPDX-License-Identifier: MIT
"""Every Python block of the README runs as written, and its benchmark table is the report's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .redis_support import redis_url_fixture  # noqa: F401 - fixture

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def _run(block: str, tmp_path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "block.py"
    script.write_text(block, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, check=False
    )


def test_every_python_block_is_covered_here() -> None:
    """A new README block must get a test below (each is run and its output checked)."""
    markers = ["server.start(item_count=50)", "SQLiteCache.connect_with_path", "RedisConnection("]
    blocks = _python_blocks()
    assert len(blocks) == len(markers)
    for block in blocks:
        assert sum(marker in block for marker in markers) >= 1, block[:200]


def test_cache_example_runs_as_written(tmp_path) -> None:
    (block,) = [b for b in _python_blocks() if "SQLiteCache.connect_with_path" in b]
    result = _run(block, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "first [1, 2, 3, 4, 5] cache hits: 0",
        "second [1, 2, 3, 4, 5] cache hits: 5",
    ]


def test_redis_example_runs_as_written(tmp_path, redis_url) -> None:
    (block,) = [b for b in _python_blocks() if "RedisConnection(" in b]
    result = _run(block, tmp_path, env={**os.environ, "REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["10 3 cache hits: 1"]


def test_quick_start_runs_as_written(tmp_path) -> None:
    blocks = [block for block in _python_blocks() if "asyncio.run(main())" in block]
    assert blocks, "the README lost its quick start"
    script = tmp_path / "quick_start.py"
    script.write_text(blocks[0], encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Item number 11 [1, 2, 3, 4, 5]"
    assert lines[1] == "retries: 1 responses: {'2xx': 6, '5xx': 1}"


def test_benchmark_table_is_the_reports() -> None:
    """Every number in the README's benchmark table came from `make bench` (benches/results/REPORT.md)."""
    report = (README.parent / "benches" / "results" / "REPORT.md").read_text(encoding="utf-8")
    summary = report.split("## Summary")[1].split("![ratios]")[0]
    report_rows = [line for line in summary.splitlines() if line.startswith("|")]
    readme = README.read_text(encoding="utf-8")
    bench = readme.split("## Benchmarks")[1].split("\n## ")[0]
    assert [line for line in bench.splitlines() if line.startswith("|")] == report_rows
    machine = next(line for line in report.splitlines() if line.startswith("**Machine:**"))
    assert machine in bench
