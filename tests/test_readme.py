# SPDX-License-Identifier: MIT
"""The README's quick start runs as written (DEVELOPERS.md: keep README.md true)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


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
