# SPDX-License-Identifier: MIT
"""``make bench``: every benchmark in one run, as ratios, written to ``benches/results/``.

Steps, all in one invocation so that every ratio compares numbers taken minutes apart on the same machine:

1. pytest-benchmark over ``test_bench_kernels.py`` and ``test_bench_json.py`` (native vs twin per kernel; JSON
   native vs twin vs orjson vs stdlib), in two passes of opposite order, combined per bench as the lower of the
   two pass medians (other load on the machine only ever slows a pass down);
2. a loopback ``aiohttp.web`` server in its own process (``benches.server``, 127.0.0.1 only);
3. end-to-end throughput (``benches.e2e``): client processes for the two backends, interleaved, each measuring
   raw ``aiohttp`` + orjson, ``RequestHandler.get`` and ``RequestHandler.get`` with flow control, in rotating order;
   then the same for raw and ``RequestHandler`` on the ~50 KB ``/json50k`` page (native vs pure on a large body);
4. cache hits (against the network, a dict, and the in-thread ``sqlite3`` SELECT + ``orjson.loads`` ceiling) and
   writes (``benches.cache_bench``), one client process per backend;
5. RSS over a long crawl with the cache on (``benches.memory``), per backend;
6. a crawl and a re-crawl of a revalidating server (``benches.http_cache_bench``) with the HTTP caching policy,
   the default cache and no cache, per backend: origin requests, 200s and 304s and body bytes, from the server;
7. in full runs, client instructions per request under callgrind (``benches.instructions``): raw, native and
   pure on ``/json``, then one kernel from the twin at a time on the workloads that call it;
8. in full runs (``--no-original`` to leave it out) the end-to-end client and the cache-hit bench against PyPI
   ``aiorequestful==1.0.20`` in a throwaway Python 3.12 venv; skipped cleanly when that cannot be installed.
   Never in CI (smoke size).

Then it writes ``latest.json`` (machine, configuration, every sample, the summary), ``REPORT.md`` and
``ratios.png``. ``--quick`` shrinks every size; ``--smoke`` is the tiny size the CI smoke test runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benches" / "results"
README = ROOT / "README.md"
BENCH_FILES = ["benches/test_bench_kernels.py", "benches/test_bench_json.py"]
ORIGINAL_PYTHON = "/root/.pyenv/versions/3.12.1/bin/python3.12"
ORIGINAL_SPEC = "aiorequestful==1.0.20"
ORIGINAL_PINS = ("aiohttp>=3.11,<3.12", "aiosqlite<0.22")

BACKENDS = ("native", "pure")


@dataclass(frozen=True)
class Sizes:
    """How much of everything to run."""

    passes: int
    pytest_args: tuple[str, ...]
    e2e_n: int
    e2e_rounds: int
    e2e_blocks: int
    e2e_warmup: int
    cache_n: int
    cache_items: int
    cache_rounds: int
    writes: int
    memory_n: int
    #: Ids per crawl of the HTTP caching re-crawl bench (each scenario crawls them twice).
    http_cache_n: int = 2_000
    concurrencies: tuple[int, ...] = (1, 32)
    original: bool = False
    pytest_select: str | None = None  # a ``-k`` expression (smoke: one input per kernel)
    memory_backends: tuple[str, ...] = BACKENDS
    #: Count client instructions per request under valgrind callgrind (a few minutes; full runs only).
    instructions: bool = False
    #: Requests of the two runs of each per-kernel callgrind variant (the difference is what one request costs).
    kernel_n: tuple[int, int] = (60, 260)
    #: The 50 KB JSON network crawl (native vs pure): requests per sample, client processes per backend
    #: (interleaved), rounds of the two modes per process, warm-up requests.
    json50k_n: int = 300
    json50k_rounds: int = 3
    json50k_blocks: int = 3
    json50k_warmup: int = 60
    notes: dict[str, str] = field(default_factory=dict)


SIZES: dict[str, Sizes] = {
    "full": Sizes(
        passes=2,
        pytest_args=(
            "--benchmark-warmup=on",
            "--benchmark-warmup-iterations=5000",
            "--benchmark-max-time=0.5",
            "--benchmark-min-rounds=10",
        ),
        e2e_n=600,
        e2e_rounds=6,
        e2e_blocks=5,
        e2e_warmup=300,
        cache_n=600,
        cache_items=3000,
        cache_rounds=10,
        writes=20_000,
        memory_n=100_000,
        original=True,
        instructions=True,
    ),
    "quick": Sizes(
        passes=2,
        pytest_args=("--benchmark-warmup=on", "--benchmark-max-time=0.1", "--benchmark-min-rounds=5"),
        e2e_n=300,
        e2e_rounds=2,
        e2e_blocks=3,
        e2e_warmup=100,
        cache_n=300,
        cache_items=600,
        cache_rounds=3,
        writes=5_000,
        memory_n=10_000,
        http_cache_n=500,
        memory_backends=("native",),
        json50k_n=150,
        json50k_rounds=2,
        json50k_blocks=2,
        json50k_warmup=30,
    ),
    "smoke": Sizes(
        passes=1,
        pytest_args=(
            "--benchmark-warmup=off",
            "--benchmark-max-time=0.00001",
            "--benchmark-min-rounds=1",
            "--benchmark-calibration-precision=1",
        ),
        e2e_n=20,
        e2e_rounds=1,
        e2e_blocks=2,
        e2e_warmup=5,
        cache_n=20,
        cache_items=10,
        cache_rounds=1,
        writes=200,
        memory_n=200,
        http_cache_n=40,
        json50k_n=8,
        json50k_rounds=1,
        json50k_blocks=1,
        json50k_warmup=2,
        concurrencies=(1, 4),
        memory_backends=("native",),
        pytest_select="geometric-count-5 or 429-hit or dispatch_build or item-no-query or refill or 1KB",
    ),
}

# The project's performance targets (reported, never asserted by a test).
TARGET_E2E = 0.95  # RequestHandler >= 0.95x raw aiohttp + orjson requests/s ...
E2E_TARGET_CONCURRENCIES = (1, 32)  # ... at concurrency 1 and at 32
TARGET_INSTRUCTIONS = {"native": 1.05, "pure": 1.15}  # client instructions / request <= this x raw aiohttp + orjson
TARGET_JSON_ORJSON = 1.0  # native decode >= 1.0x orjson on the 1 KB, 50 KB and 2 MB documents
TARGET_JSON_STDLIB = 2.0  # native decode >= 2x stdlib json on the same documents
TARGET_KERNEL = 1.0  # every native kernel faster than its twin
TARGET_CACHE = 10.0  # cache-hit throughput >= 10x loopback network throughput
HIT_TARGET_CONCURRENCY = 32  # the cache-hit targets below are at this concurrency
TARGET_HITS_VS_ORIGINAL = 10.0  # cache hits >= 10x aiorequestful 1.0.20's on the same workload (SQLite file, JSON)
TARGET_HITS_VS_CEILING = 0.5  # cache hits >= 0.5x an in-thread sqlite3 SELECT + orjson.loads of the same rows
TARGET_HITS_NATIVE_VS_PURE = 1.3  # native >= 1.3x pure on the cache-hit crawl
TARGET_50K_NATIVE_VS_PURE = 1.0  # native >= 1.0x pure on the 50 KB JSON network crawl
JSON50K_CONCURRENCY = 32
#: A kernel whose swap for its twin moves a workload's instructions per request by at least this many percent
#: keeps its native boundary; below it, the kernel moves no end-to-end figure.
KERNEL_BOUNDARY_PCT = 1.0
JSON_TARGET_SIZES = ("1KB", "50KB", "2MB")


# ----------------------------------------------------------------------------------------------------------------
# running things
# ----------------------------------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def backend_env(backend: str) -> dict[str, str]:
    """The environment of a child process that must use ``backend`` (and fail rather than fall back)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AIOREQUESTFUL_NO_EXTENSIONS", "AIOREQUESTFUL_REQUIRE_EXTENSIONS")
    }
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if backend == "native":
        env["AIOREQUESTFUL_REQUIRE_EXTENSIONS"] = "1"
    elif backend == "pure":
        env["AIOREQUESTFUL_NO_EXTENSIONS"] = "1"
    return env


def run_json(cmd: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run a bench script and parse the one JSON object it prints; its stderr is shown on failure."""
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)


def native_available() -> bool:
    """Whether the native kernels import (``make bench`` sets AIOREQUESTFUL_REQUIRE_EXTENSIONS: then they must)."""
    try:
        importlib.import_module("aiorequestful._native")
    except ImportError:
        if os.environ.get("AIOREQUESTFUL_REQUIRE_EXTENSIONS", "").strip().lower() not in (
            "",
            "0",
            "false",
            "no",
            "off",
        ):
            raise
        return False
    return True


def run_pytest_benchmarks(sizes: Sizes, native: bool, workdir: Path) -> list[dict[str, Any]]:
    """Run the pytest-benchmark files ``sizes.passes`` times (alternating order); returns every benchmark."""
    benches: list[dict[str, Any]] = []
    for p in range(sizes.passes):
        out = workdir / f"pytest-benchmark-{p}.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            *BENCH_FILES,
            "-q",
            "-p",
            "no:cacheprovider",
            "--benchmark-enable",
            "--benchmark-only",
            f"--benchmark-json={out}",
            "--benchmark-group-by=group",
            "--benchmark-sort=name",
            *sizes.pytest_args,
            "--require-native" if native else "--no-native",
        ]
        if p % 2 == 1:
            cmd.append("--bench-reverse")
        if sizes.pytest_select:
            cmd += ["-k", sizes.pytest_select]
        log(f"pytest-benchmark pass {p + 1}/{sizes.passes}")
        env = backend_env("native" if native else "pure")
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"pytest-benchmark failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
        data = json.loads(out.read_text())
        for bench in data["benchmarks"]:
            stats = bench["stats"]
            benches.append(
                {
                    "pass": p,
                    "name": bench["name"],
                    **bench["extra_info"],
                    "median_ns": stats["median"] * 1e9,
                    "min_ns": stats["min"] * 1e9,
                    "iqr_ns": stats["iqr"] * 1e9,
                    "rounds": stats["rounds"],
                    "iterations": stats["iterations"],
                }
            )
    return benches


def interleaved_rounds(rounds: int, backends: list[str]) -> list[tuple[int, str]]:
    """(round, backend) in the order to run them: the backend that goes first alternates every round."""
    order: list[tuple[int, str]] = []
    for r in range(rounds):
        for backend in backends if r % 2 == 0 else list(reversed(backends)):
            order.append((r, backend))
    return order


def _e2e_processes(
    base: str,
    backends: list[str],
    processes: int,
    blocks: int,
    n: int,
    concurrencies: tuple[int, ...],
    warmup: int,
    modes: tuple[str, ...] | None = None,
    what: str = "end-to-end",
) -> list[dict[str, Any]]:
    """``processes`` client processes per backend, interleaved, each running ``blocks`` rounds of the modes."""
    samples: list[dict[str, Any]] = []
    for r, backend in interleaved_rounds(processes, backends):
        log(f"{what} round {r + 1}/{processes} {backend}")
        cmd = [
            sys.executable,
            "-m",
            "benches.e2e",
            "--base",
            base,
            "--n",
            str(n),
            "--concurrency",
            ",".join(map(str, concurrencies)),
            "--rounds",
            str(blocks),
            "--start-round",
            str(r * blocks),
            "--warmup",
            str(warmup),
        ]
        if modes:
            cmd += ["--modes", ",".join(modes)]
        result = run_json(cmd, backend_env(backend), timeout=900)
        check_backend(result, backend)
        samples.extend({**s, "backend": backend} for s in result["samples"])
    return samples


def run_e2e(base: str, sizes: Sizes, backends: list[str]) -> list[dict[str, Any]]:
    return _e2e_processes(
        base, backends, sizes.e2e_rounds, sizes.e2e_blocks, sizes.e2e_n, sizes.concurrencies, sizes.e2e_warmup
    )


def run_e2e_50k(base: str, sizes: Sizes, backends: list[str]) -> list[dict[str, Any]]:
    """The 50 KB JSON network crawl: raw aiohttp + orjson and RequestHandler on ``/json50k``, per backend."""
    return _e2e_processes(
        base,
        backends,
        sizes.json50k_rounds,
        sizes.json50k_blocks,
        sizes.json50k_n,
        (JSON50K_CONCURRENCY,),
        sizes.json50k_warmup,
        modes=("raw_json50k", "handler_json50k"),
        what="50 KB JSON crawl",
    )


def run_instructions(base: str, sizes: Sizes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Client instructions per request under valgrind callgrind (``benches.instructions``): the three paths, then
    the per-kernel variants (one kernel from the twin at a time)."""
    from benches import instructions

    log("instruction counts under callgrind (raw, native, pure; N=200 and N=1200, twice)")
    paths = instructions.measure(base)
    small, large = sizes.kernel_n
    log(
        f"per-kernel instruction counts under callgrind ({len(instructions.KERNEL_VARIANTS)} variants, "
        f"N={small} and N={large})"
    )
    return paths, instructions.measure_kernels(base, small, large)


def check_backend(result: dict[str, Any], backend: str) -> None:
    if backend in BACKENDS and result["backend"]["native"] != (backend == "native"):
        raise RuntimeError(f"a {backend} client ran with {result['backend']}")


def cache_bench_command(python: str, base: str, sizes: Sizes, writes: int) -> list[str]:
    """``benches.cache_bench`` on the cache workload of ``sizes`` (ids, rows, rounds, concurrencies), run by
    ``python`` (ours, or the 1.0.20 venv's: the same workload for both)."""
    return [
        python,
        "-m",
        "benches.cache_bench",
        "--base",
        base,
        "--n",
        str(sizes.cache_n),
        "--items",
        str(sizes.cache_items),
        "--concurrency",
        ",".join(map(str, sizes.concurrencies)),
        "--rounds",
        str(sizes.cache_rounds),
        "--writes",
        str(writes),
    ]


def run_cache(base: str, sizes: Sizes, backends: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for backend in backends:
        log(f"cache hits and writes, {backend}")
        cmd = cache_bench_command(sys.executable, base, sizes, sizes.writes)
        result = run_json(cmd, backend_env(backend), timeout=900)
        check_backend(result, backend)
        results[backend] = result
    return results


def run_memory(base: str, sizes: Sizes, backends: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for backend in backends:
        if backend not in sizes.memory_backends:
            continue
        log(f"memory crawl of {sizes.memory_n} requests, {backend}")
        cmd = [sys.executable, "-m", "benches.memory", "--base", base, "--n", str(sizes.memory_n)]
        result = run_json(cmd, backend_env(backend), timeout=1800)
        check_backend(result, backend)
        results[backend] = result
    return results


def run_http_cache(base: str, sizes: Sizes, backends: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for backend in backends:
        log(f"HTTP caching: crawl and re-crawl of {sizes.http_cache_n} revalidating items, {backend}")
        cmd = [sys.executable, "-m", "benches.http_cache_bench", "--base", base, "--n", str(sizes.http_cache_n)]
        result = run_json(cmd, backend_env(backend), timeout=1800)
        check_backend(result, backend)
        results[backend] = result
    return results


def run_original(base: str, sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """The end-to-end client against PyPI aiorequestful 1.0.20 (needs Python 3.12 and the index); never raises."""
    python = shutil.which(ORIGINAL_PYTHON) or shutil.which("python3.12")
    if python is None:
        return {"skipped": "no Python 3.12 interpreter"}
    venv = workdir / "original-venv"
    try:
        subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--retries", "1", "--timeout", "30"]
        # 1.0.20 declares no upper bounds but only runs on the aiohttp and aiosqlite of its time.
        pip += [ORIGINAL_SPEC, "orjson", *ORIGINAL_PINS]
        subprocess.run(pip, check=True, capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return {"skipped": f"could not install {ORIGINAL_SPEC}: {exc} {detail[-500:]!r}"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOREQUESTFUL_")}
    env["PYTHONPATH"] = str(ROOT)  # benches/ only: aiorequestful itself must come from the throwaway venv
    cmd = [
        str(venv / "bin" / "python"),
        "-m",
        "benches.e2e",
        "--base",
        base,
        "--n",
        str(sizes.e2e_n),
        "--concurrency",
        ",".join(map(str, sizes.concurrencies)),
        "--rounds",
        str(sizes.e2e_rounds * sizes.e2e_blocks),
        "--warmup",
        str(sizes.e2e_warmup),
    ]
    log("end-to-end, original aiorequestful 1.0.20")
    try:
        result = run_json(cmd, env, timeout=900)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        return {"skipped": f"the original package did not complete the bench: {str(exc)[-1500:]}"}
    # The same cache-hit workload as ours (ids, rows, rounds, concurrencies), and the ceiling on its own file.
    cmd = [*cache_bench_command(str(venv / "bin" / "python"), base, sizes, 0), "--modes", "cache_hit,sqlite_ceiling"]
    log("cache hits, original aiorequestful 1.0.20")
    try:
        result["cache"] = run_json(cmd, env, timeout=900)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        result["cache"] = {"skipped": f"the original package did not complete the cache bench: {str(exc)[-1500:]}"}
    return result


# ----------------------------------------------------------------------------------------------------------------
# machine
# ----------------------------------------------------------------------------------------------------------------
def _command_output(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def machine_info(command: str) -> dict[str, Any]:
    import psutil

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    native_version = None
    try:
        native_version = importlib.import_module("aiorequestful._native").__version__
    except ImportError:
        pass
    commit = _command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "aiohttp": _version("aiohttp"),
        "orjson": _version("orjson"),
        "aiosqlite": _version("aiosqlite"),
        "pytest_benchmark": _version("pytest-benchmark"),
        "rustc": _command_output(["rustc", "--version"]),
        "native_module": native_version,
        "git_commit": (commit or "unknown") + ("-dirty" if dirty else ""),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def kernel_call_sites() -> dict[str, list[str]]:
    """Where the public code calls each kernel (``kernels.<name>``), so the report can say what a kernel buys."""
    sites: dict[str, list[str]] = defaultdict(list)
    import aiorequestful  # the package that runs: the source tree, or an installed copy (the sdist leg)

    package = Path(aiorequestful.__file__).parent
    pattern = re.compile(r"\bkernels\.(timer_plan|DispatchTable|cache_key|json_loads|bucket_take)\b")
    for path in sorted(package.rglob("*.py")):
        if path.name in ("_native_py.py", "_backend.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            for match in pattern.finditer(line):
                sites[match.group(1)].append(f"{path.relative_to(package.parent).as_posix()}:{number}")
    return dict(sites)


# ----------------------------------------------------------------------------------------------------------------
# summarising
# ----------------------------------------------------------------------------------------------------------------
def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarise_kernels(benches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for b in benches:
        if b["kernel"] != "json_loads":
            by[(b["kernel"], b["case"])][b["backend"]].append(b["median_ns"])
    rows = []
    for (kernel, case), per in by.items():
        rust, py = (min(per["rust"]) if per.get("rust") else None), min(per["py"])
        speedup = _ratio(py, rust)
        rows.append(
            {
                "kernel": kernel,
                "case": case,
                "rust_ns": rust,
                "py_ns": py,
                "speedup": speedup,
                "met": None if speedup is None else speedup > TARGET_KERNEL,
            }
        )
    return rows


def summarise_json(benches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    correct: dict[tuple[str, str], bool] = {}
    size_bytes: dict[str, int] = {}
    for b in benches:
        if b["kernel"] == "json_loads":
            by[b["case"]][b["backend"]].append(b["median_ns"])
            correct[(b["case"], b["backend"])] = correct.get((b["case"], b["backend"]), True) and b["correct"]
            size_bytes[b["case"]] = b["bytes"]
    rows = []
    for size in ("1KB", "50KB", "2MB"):
        if size not in by:
            continue
        t = {name: min(values) for name, values in by[size].items()}
        vs_orjson = _ratio(t.get("orjson"), t.get("rust"))
        vs_stdlib = _ratio(t.get("stdlib"), t.get("rust"))
        targeted = size in JSON_TARGET_SIZES
        rows.append(
            {
                "size": size,
                "bytes": size_bytes[size],
                "rust_us": _us(t.get("rust")),
                "py_us": _us(t.get("py")),
                "orjson_us": _us(t.get("orjson")),
                "stdlib_us": _us(t.get("stdlib")),
                "rust_vs_orjson": vs_orjson,
                "rust_vs_stdlib": vs_stdlib,
                "rust_vs_py": _ratio(t.get("py"), t.get("rust")),
                "correct": {name: correct[(size, name)] for name in t},
                "met_orjson": (vs_orjson >= TARGET_JSON_ORJSON) if targeted and vs_orjson is not None else None,
                "met_stdlib": (vs_stdlib >= TARGET_JSON_STDLIB) if targeted and vs_stdlib is not None else None,
            }
        )
    return rows


def summarise_instructions(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """Per-request instruction counts of every path, their run-to-run spread and their ratio to raw aiohttp."""
    if not raw or "paths" not in raw:
        return raw
    paths = raw["paths"]
    raw_mean = statistics.fmean(paths["raw"]["per_request"]) if "raw" in paths else None
    rows = []
    for name, path in paths.items():
        runs = path["per_request"]
        mean = statistics.fmean(runs)
        vs_raw = mean / raw_mean if raw_mean else None
        target = TARGET_INSTRUCTIONS.get(name)
        rows.append(
            {
                "path": name,
                "runs": runs,
                "per_request": mean,
                "spread_pct": 100 * (max(runs) - min(runs)) / mean if mean else None,
                "vs_raw": vs_raw,
                "target": target,
                "met": None if target is None or vs_raw is None else vs_raw <= target,
                "objects": path.get("objects", []),
                "functions": path.get("functions", []),
            }
        )
    return {"n": raw["n"], "concurrency": raw["concurrency"], "rows": rows}


#: The kernels in the order the report lists them, and the workloads it prices them on.
KERNEL_ORDER = ("timer_plan", "DispatchTable", "cache_key", "bucket_take", "json_loads")
KERNEL_WORKLOAD_NAMES = {
    "handler": "`/json` (~2 KB), RequestHandler",
    "handler50k": "`/json50k` (~50 KB), RequestHandler",
    "flow": "`/json`, RequestHandler + all flow control (non-binding)",
    "cache_hit": "cache-hit crawl (SQLite file, ~1 KB JSON)",
}


def kernel_verdict(pct: float) -> str:
    """What swapping one kernel for its twin says about its native boundary (the rule is stated in the report)."""
    if pct >= KERNEL_BOUNDARY_PCT:
        return f"keeps its boundary: {pct:.1f} % of the request"
    if pct <= -KERNEL_BOUNDARY_PCT:
        return f"the twin is cheaper by {-pct:.1f} % of the request"
    return "moves no end-to-end figure"


def summarise_kernel_instructions(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """Per kernel and workload: instructions per request with that one kernel from the twin minus all native."""
    if not raw or "variants" not in raw:
        return raw
    variants = raw["variants"]
    rows: list[dict[str, Any]] = []
    workloads: list[dict[str, Any]] = []
    controls: list[dict[str, Any]] = []
    # The control of a workload: a kernel it never calls, from the twin (the swap alone).
    control_of = {
        v["workload"]: v
        for v in variants.values()
        if v["backend"] == "native" and v["twin"] and not v.get("calls", True)
    }
    for variant in variants.values():
        native = variants.get(f"{variant['workload']}:native")
        if native is None or variant is native:
            continue
        entry = {
            "workload": variant["workload"],
            "native": native["per_request"],
            "other": variant["per_request"],
            "delta_native": variant["per_request"] - native["per_request"],
            "pct_native": 100 * (variant["per_request"] - native["per_request"]) / native["per_request"],
        }
        control = control_of.get(variant["workload"])
        if variant["backend"] == "pure":
            workloads.append({**entry, "delta": entry["delta_native"], "pct": entry["pct_native"]})
        elif variant["twin"] and variant.get("calls", True):
            # The effect: against the control when the workload has one (both runs then swapped a kernel), else
            # against all native.
            base = control["per_request"] if control is not None else native["per_request"]
            delta = variant["per_request"] - base
            pct = 100 * delta / base
            rows.append(
                {
                    **entry,
                    "kernel": variant["twin"],
                    "control": None if control is None else control["per_request"],
                    "delta": delta,
                    "pct": pct,
                    "verdict": kernel_verdict(pct),
                }
            )
        elif variant["twin"]:
            controls.append({**entry, "kernel": variant["twin"], "delta": entry["delta_native"],
                             "pct": entry["pct_native"]})  # fmt: skip
    order = {k: i for i, k in enumerate(KERNEL_ORDER)}
    rows.sort(key=lambda r: (order.get(r["kernel"], len(order)), -abs(r["pct"])))
    return {"n": raw["n"], "concurrency": raw["concurrency"], "rows": rows, "controls": controls, "pure": workloads}


def _us(ns: float | None) -> float | None:
    return None if ns is None else ns / 1000


def summarise_e2e(
    samples: list[dict[str, Any]],
    label: str = "",
    raw_mode: str = "raw",
    handler_mode: str = "handler",
    targeted: bool = True,
) -> list[dict[str, Any]]:
    """Per backend and concurrency: median throughput of each mode and the median of the per-round ratios."""
    grouped: dict[tuple[str, int], dict[int, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for s in samples:
        if s["mode"] in (raw_mode, handler_mode, "handler_flow"):
            mode = {raw_mode: "raw", handler_mode: "handler"}.get(s["mode"], s["mode"])
            grouped[(s.get("backend", label), s["concurrency"])][s["round"]][mode] = s
    rows = []
    for (backend, concurrency), by_round in sorted(grouped.items()):
        raw = [r["raw"]["rps"] for r in by_round.values() if "raw" in r]
        handler = [r["handler"]["rps"] for r in by_round.values() if "handler" in r]
        ratios = [r["handler"]["rps"] / r["raw"]["rps"] for r in by_round.values() if "raw" in r and "handler" in r]
        cpu_raw = [r["raw"]["cpu_us"] for r in by_round.values() if "raw" in r]
        cpu_handler = [r["handler"]["cpu_us"] for r in by_round.values() if "handler" in r]
        ratio = _median(ratios)
        flow = [r["handler_flow"]["rps"] for r in by_round.values() if "handler_flow" in r]
        flow_ratios = [
            r["handler_flow"]["rps"] / r["raw"]["rps"] for r in by_round.values() if "raw" in r and "handler_flow" in r
        ]
        rows.append(
            {
                "backend": backend,
                "concurrency": concurrency,
                "rounds": len(by_round),
                "raw_rps": _median(raw),
                "handler_rps": _median(handler),
                "handler_rps_range": [min(handler), max(handler)] if handler else None,
                "ratio": ratio,
                "ratio_range": [min(ratios), max(ratios)] if ratios else None,
                "raw_cpu_us": _median(cpu_raw),
                "handler_cpu_us": _median(cpu_handler),
                "cpu_ratio": _ratio(_median(cpu_raw), _median(cpu_handler)),
                "flow_rps": _median(flow),
                "flow_ratio": _median(flow_ratios),
                "flow_ratio_range": [min(flow_ratios), max(flow_ratios)] if flow_ratios else None,
                "flow_cpu_us": _median([r["handler_flow"]["cpu_us"] for r in by_round.values() if "handler_flow" in r]),
                "met": (
                    None
                    if not targeted or concurrency not in E2E_TARGET_CONCURRENCIES or ratio is None
                    else ratio >= TARGET_E2E
                ),
            }
        )
    return rows


def backend_ratios(
    rows: list[dict[str, Any]],
    key: str,
    target: float | None,
    target_concurrency: int | None,
    normalised_key: str | None = None,
) -> list[dict[str, Any]]:
    """Native ÷ pure of ``key`` per concurrency, with a verdict at ``target_concurrency`` when there is a target.

    The backends run in different processes minutes apart, and on a shared machine one process can run at half
    the speed of the other throughout (the same pure-Python reference code in both shows it). With
    ``normalised_key`` (``key`` as a ratio to a reference measured in the same process, round by round, e.g. the
    ceiling or raw aiohttp), the verdict's ratio divides those, which cancels that; the plain ratio is kept too.
    """
    by = {(r["backend"], r["concurrency"]): r for r in rows}
    out = []
    for concurrency in sorted({c for _, c in by}, reverse=True):
        native, pure = by.get(("native", concurrency)), by.get(("pure", concurrency))
        if not native or not pure:
            continue
        plain = _ratio(native.get(key), pure.get(key))
        normalised = _ratio(native.get(normalised_key), pure.get(normalised_key)) if normalised_key else None
        ratio = normalised if normalised is not None else plain
        targeted = target is not None and concurrency == target_concurrency
        out.append(
            {
                "concurrency": concurrency,
                "native": native.get(key),
                "pure": pure.get(key),
                "plain_ratio": plain,
                "normalised_ratio": normalised,
                "ratio": ratio,
                "target": target if targeted else None,
                "met": None if not targeted or ratio is None or target is None else ratio >= target,
            }
        )
    return out


def summarise_cache(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for backend, result in results.items():
        by: dict[tuple[int, int], dict[str, dict[str, Any]]] = defaultdict(dict)
        fill = None
        for s in result["samples"]:
            if s["mode"] == "cache_fill":
                fill = s
                continue
            by[(s["concurrency"], s["round"])][s["mode"]] = s
        writes = result.get("writes") or {}  # the original's cache bench runs no writes
        for concurrency in sorted({c for c, _ in by}):
            rounds = [v for (c, _), v in by.items() if c == concurrency]

            def median_of(mode: str, key: str = "rps", rounds: list[dict[str, Any]] = rounds) -> float | None:
                return _median([r[mode][key] for r in rounds if mode in r])

            def per_round(mode: str, rounds: list[dict[str, Any]] = rounds) -> float | None:
                return _median(
                    [r["cache_hit"]["rps"] / r[mode]["rps"] for r in rounds if "cache_hit" in r and mode in r]
                )

            hit, dct = median_of("cache_hit"), median_of("dict_orjson")
            ratio, vs_ceiling = per_round("network"), per_round("sqlite_ceiling")
            at_target = concurrency == HIT_TARGET_CONCURRENCY
            rows.append(
                {
                    "backend": backend,
                    "concurrency": concurrency,
                    "cache_hit_rps": hit,
                    "network_rps": median_of("network"),
                    "dict_orjson_rps": dct,
                    "ceiling_rps": median_of("sqlite_ceiling"),
                    "hit_vs_network": ratio,
                    "hit_vs_dict": _ratio(hit, dct),
                    "hit_vs_ceiling": vs_ceiling,
                    "hit_cpu_us": median_of("cache_hit", "cpu_us"),
                    "network_cpu_us": median_of("network", "cpu_us"),
                    "ceiling_cpu_us": median_of("sqlite_ceiling", "cpu_us"),
                    "cache_fill_rps": fill["rps"] if fill else None,
                    "writes_per_s": writes.get("rps"),
                    "write_tasks": writes.get("tasks"),
                    "writes": writes.get("n"),
                    "leaked_to_network": result["checks"]["leaked_to_network"],
                    "met": None if ratio is None else ratio >= TARGET_CACHE,
                    "met_ceiling": None
                    if not at_target or vs_ceiling is None
                    else vs_ceiling >= TARGET_HITS_VS_CEILING,
                    # Filled in by compare_with_original (the original runs in its own step).
                    "hit_vs_original": None,
                    "met_original": None,
                }
            )
    return rows


def compare_with_original(rows: list[dict[str, Any]], original: list[dict[str, Any]]) -> None:
    """Our cache-hit throughput ÷ 1.0.20's on the same workload, per backend and concurrency (in place)."""
    theirs = {r["concurrency"]: r["cache_hit_rps"] for r in original}
    for row in rows:
        ratio = _ratio(row["cache_hit_rps"], theirs.get(row["concurrency"]))
        row["hit_vs_original"] = ratio
        at_target = row["concurrency"] == HIT_TARGET_CONCURRENCY
        row["met_original"] = None if not at_target or ratio is None else ratio >= TARGET_HITS_VS_ORIGINAL


def summarise_memory(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for backend, result in results.items():
        f = result["flatness"]
        rows.append(
            {
                "backend": backend,
                "requests": result["n"],
                "rps": result["rps"],
                "cache_hits": result["cache_hits"],
                "cache_misses": result["cache_misses"],
                "start_mb": result["samples"][0]["rss"] / 2**20,
                "warm_mb": f["warm_rss"] / 2**20,
                "final_mb": f["final_rss"] / 2**20,
                "peak_mb": f["peak_rss_after_warmup"] / 2**20,
                "growth_mb": f["growth_bytes"] / 2**20,
                "growth_pct": f["growth_pct"],
                "slope_kb_per_10k": f["slope_bytes_per_10k"] / 1024,
                "met": f["flat"],
            }
        )
    return rows


def summarise_http_cache(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per backend, change and mode: what the re-crawl cost the origin next to the first crawl."""
    rows = []
    for backend, result in results.items():
        for scenario in result["scenarios"]:
            first, again = scenario["crawls"]
            served, before = again["server"], first["server"]
            rows.append(
                {
                    "backend": backend,
                    "mode": scenario["mode"],
                    "n": scenario["n"],
                    "concurrency": scenario["concurrency"],
                    "changed": scenario["changed"],
                    "changed_pct": 100 * scenario["changed"] / scenario["n"],
                    "requests": served["requests"],
                    "ok": served["ok"],
                    "not_modified": served["not_modified"],
                    "cache_hits": again["client"]["cache_hits"],
                    "body_bytes": served["body_bytes"],
                    "first_body_bytes": before["body_bytes"],
                    "bytes_saved_pct": (
                        100 * (1 - served["body_bytes"] / before["body_bytes"]) if before["body_bytes"] else None
                    ),
                    "requests_saved_pct": (
                        100 * (1 - served["requests"] / before["requests"]) if before["requests"] else None
                    ),
                    "first_seconds": first["seconds"],
                    "seconds": again["seconds"],
                    "outdated": again["outdated"],
                }
            )
    return rows


def _geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def headline(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the README table: one measured value each, its target, and whether it was met."""
    rows: list[dict[str, Any]] = []

    def add(label: str, value: float | None, unit: str, target: str, met: bool | None, chart: bool = True) -> None:
        rows.append({"label": label, "value": value, "unit": unit, "target": target, "met": met, "chart": chart})

    by_kernel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in summary["kernels"]:
        if row["speedup"] is not None:
            by_kernel[row["kernel"]].append(row)
    for kernel, krows in by_kernel.items():
        speedups = [r["speedup"] for r in krows]
        add(
            f"`{kernel}` native vs twin"
            + (f" (geomean of {len(krows)} inputs; slowest {min(speedups):.2f}x)" if len(krows) > 1 else ""),
            _geomean(speedups),
            "x",
            "> 1.0x on every input",
            all(r["met"] for r in krows),
        )
    for row in summary["json"]:
        if row["rust_vs_orjson"] is None:
            continue
        targeted = row["size"] in JSON_TARGET_SIZES
        add(
            f"JSON decode {row['size']}: native vs orjson",
            row["rust_vs_orjson"],
            "x",
            f"≥ {TARGET_JSON_ORJSON:.1f}x" if targeted else "-",
            row["met_orjson"],
        )
        add(
            f"JSON decode {row['size']}: native vs stdlib json",
            row["rust_vs_stdlib"],
            "x",
            f"≥ {TARGET_JSON_STDLIB:.1f}x" if targeted else "-",
            row["met_stdlib"],
        )
    for row in summary["e2e"]:
        add(
            f"End-to-end c={row['concurrency']}, {row['backend']}: RequestHandler vs raw aiohttp+orjson",
            row["ratio"],
            "x",
            f"≥ {TARGET_E2E}x" if row["concurrency"] in E2E_TARGET_CONCURRENCIES else "-",
            row["met"],
        )
    for row in summary["e2e"]:
        if row["concurrency"] == 32 and row["flow_ratio"] is not None:
            add(
                f"End-to-end c=32, {row['backend']}: RequestHandler + all flow control (non-binding) vs raw",
                row["flow_ratio"],
                "x",
                "-",
                None,
            )
    e2e = {(r["backend"], r["concurrency"]): r for r in summary["e2e"]}
    for concurrency in sorted({c for _, c in e2e}):
        native, pure = e2e.get(("native", concurrency)), e2e.get(("pure", concurrency))
        if native and pure:
            add(
                f"End-to-end c={concurrency}: RequestHandler native vs pure",
                _ratio(native["handler_rps"], pure["handler_rps"]),
                "x",
                "-",
                None,
            )
    for row in summary.get("json50k_backends") or []:
        if row["ratio"] is not None:
            add(
                f"End-to-end 50 KB JSON c={row['concurrency']}: RequestHandler native vs pure",
                row["ratio"],
                "x",
                f"≥ {row['target']:.1f}x" if row["target"] is not None else "-",
                row["met"],
            )
    for row in summary["cache"]:
        add(
            f"Cache hits c={row['concurrency']}, {row['backend']}: vs loopback network (RequestHandler)",
            row["hit_vs_network"],
            "x",
            f"≥ {TARGET_CACHE:.0f}x",
            row["met"],
        )
        targeted = row["concurrency"] == HIT_TARGET_CONCURRENCY
        if row.get("hit_vs_original") is not None:
            add(
                f"Cache hits c={row['concurrency']}, {row['backend']}: vs aiorequestful 1.0.20, same workload",
                row["hit_vs_original"],
                "x",
                f"≥ {TARGET_HITS_VS_ORIGINAL:.0f}x" if targeted else "-",
                row["met_original"],
            )
        if row.get("hit_vs_ceiling") is not None:
            add(
                f"Cache hits c={row['concurrency']}, {row['backend']}: vs in-thread sqlite3 SELECT + orjson.loads",
                row["hit_vs_ceiling"],
                "x",
                f"≥ {TARGET_HITS_VS_CEILING:.1f}x" if targeted else "-",
                row["met_ceiling"],
            )
        add(
            f"Cache hits c={row['concurrency']}, {row['backend']}: vs dict + orjson",
            row["hit_vs_dict"],
            "x",
            "-",
            None,
        )
    for row in summary.get("cache_backends") or []:
        if row["ratio"] is not None:
            add(
                f"Cache hits c={row['concurrency']}: native vs pure",
                row["ratio"],
                "x",
                f"≥ {row['target']:.1f}x" if row["target"] is not None else "-",
                row["met"],
            )
    for row in (summary.get("instructions") or {}).get("rows", []):
        if row.get("target") is not None and row["vs_raw"] is not None:
            add(
                f"Client instructions per request (callgrind, /json, c=32), {row['path']}: RequestHandler ÷ raw "
                "aiohttp + orjson (lower is better)",
                row["vs_raw"],
                "x",
                f"≤ {row['target']:.2f}x",
                row["met"],
                chart=False,
            )
    seen_writes: set[str] = set()
    for row in summary["cache"]:
        if row["writes_per_s"] is not None and row["backend"] not in seen_writes:
            seen_writes.add(row["backend"])
            add(
                f"Cache writes, {row['write_tasks']} concurrent tasks, {row['backend']}",
                row["writes_per_s"],
                "writes/s",
                "-",
                None,
                chart=False,
            )
    for row in summary["memory"]:
        add(
            f"RSS growth after warm-up over a {row['requests']:,}-request crawl, cache on, {row['backend']}",
            row["growth_mb"],
            "MB",
            "flat",
            row["met"],
            chart=False,
        )
    if summary.get("original") and summary["original"].get("rows"):
        for row in summary["original"]["rows"]:
            add(
                f"Original aiorequestful 1.0.20, c={row['concurrency']}: RequestHandler vs raw aiohttp+orjson",
                row["ratio"],
                "x",
                "-",
                None,
            )
    return rows


# ----------------------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------------------
def _fmt(value: float | None, unit: str = "x") -> str:
    if value is None:
        return "n/a"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "writes/s":
        return f"{value:,.0f} writes/s"
    if unit == "MB":
        return f"{value:+.1f} MB"
    return f"{value:,.2f} {unit}"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: ""}[met]


def _range(pair: list[float] | None) -> str:
    return "" if not pair else f"({pair[0]:.2f}-{pair[1]:.2f})"


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def machine_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine['cpu']}, {machine['logical_cores']} cores, {machine['memory_gb']} GB RAM; {machine['os']}; "
        f"CPython {machine['python']}, aiohttp {machine['aiohttp']}, orjson {machine['orjson']}, "
        f"{machine['rustc'] or 'rustc n/a'}; commit {machine['git_commit']}; {machine['date']}"
    )


def _cell(value: float | None, unit: str, met: bool | None) -> str:
    text = _fmt(value, unit)
    return text if met is None or value is None else f"{text} {'met' if met else '**missed**'}"


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The compact table for the README: (measure, native, pure, target), every number from this run."""
    rows: list[tuple[str, str, str, str]] = []
    kernels: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in summary["kernels"]:
        kernels[row["kernel"]].append(row)
    for kernel, krows in kernels.items():
        speedups = [r["speedup"] for r in krows if r["speedup"] is not None]
        if not speedups:
            continue
        met = all(r["met"] for r in krows)
        rows.append(
            (
                f"`{kernel}`: native speedup over its pure twin ({_plural(len(speedups), 'input')})",
                f"{_geomean(speedups):.1f}x"
                + (f" (slowest {min(speedups):.1f}x)" if len(speedups) > 1 else "")
                + f" {'met' if met else '**missed**'}",
                "1x (reference)",
                "> 1x on every input",
            )
        )
    for row in summary["json"]:
        targeted = row["size"] in JSON_TARGET_SIZES
        rows.append(
            (
                f"JSON decode {row['size']}: speed vs orjson / vs stdlib json",
                f"{_cell(row['rust_vs_orjson'], 'x', row['met_orjson'])} / "
                f"{_cell(row['rust_vs_stdlib'], 'x', row['met_stdlib'])}",
                f"{_fmt(_ratio(row['orjson_us'], row['py_us']))} / {_fmt(_ratio(row['stdlib_us'], row['py_us']))}",
                f"≥ {TARGET_JSON_ORJSON:.0f}x / ≥ {TARGET_JSON_STDLIB:.0f}x" if targeted else "-",
            )
        )
    e2e = {(r["backend"], r["concurrency"]): r for r in summary["e2e"]}
    for concurrency in sorted({c for _, c in e2e}, reverse=True):
        native, pure = e2e.get(("native", concurrency), {}), e2e.get(("pure", concurrency), {})
        rows.append(
            (
                f"End to end, concurrency {concurrency}: RequestHandler / raw aiohttp + orjson",
                _cell(native.get("ratio"), "x", native.get("met")),
                _cell(pure.get("ratio"), "x", pure.get("met")),
                f"≥ {TARGET_E2E}x" if concurrency in E2E_TARGET_CONCURRENCIES else "-",
            )
        )
        if native.get("flow_ratio") is not None or pure.get("flow_ratio") is not None:
            rows.append(
                (
                    f"End to end, concurrency {concurrency}: with all flow control on (non-binding) / raw",
                    _fmt(native.get("flow_ratio")),
                    _fmt(pure.get("flow_ratio")),
                    "-",
                )
            )
        if native and pure:
            rows.append(
                (
                    f"End to end, concurrency {concurrency}: RequestHandler throughput, native ÷ pure",
                    _fmt(_ratio(native["handler_rps"], pure["handler_rps"])),
                    "",
                    "-",
                )
            )
    for row in summary.get("json50k_backends") or []:
        rows.append(
            (
                f"End to end, 50 KB JSON (`/json50k`), concurrency {row['concurrency']}: RequestHandler "
                "throughput, native ÷ pure (each ÷ raw aiohttp + orjson in its process)",
                _cell(row["ratio"], "x", row["met"]),
                "",
                f"≥ {row['target']:.1f}x" if row["target"] is not None else "-",
            )
        )
    cache = {(r["backend"], r["concurrency"]): r for r in summary["cache"]}
    for concurrency in sorted({c for _, c in cache}, reverse=True):
        native, pure = cache.get(("native", concurrency), {}), cache.get(("pure", concurrency), {})
        targeted = concurrency == HIT_TARGET_CONCURRENCY
        rows.append(
            (
                f"Cache hits, concurrency {concurrency}: RequestHandler from SQLite / over loopback network",
                _cell(native.get("hit_vs_network"), "x", native.get("met")),
                _cell(pure.get("hit_vs_network"), "x", pure.get("met")),
                f"≥ {TARGET_CACHE:.0f}x",
            )
        )
        if native.get("hit_vs_original") is not None or pure.get("hit_vs_original") is not None:
            rows.append(
                (
                    f"Cache hits, concurrency {concurrency}: RequestHandler from SQLite / aiorequestful 1.0.20 on "
                    "the same workload",
                    _cell(native.get("hit_vs_original"), "x", native.get("met_original")),
                    _cell(pure.get("hit_vs_original"), "x", pure.get("met_original")),
                    f"≥ {TARGET_HITS_VS_ORIGINAL:.0f}x" if targeted else "-",
                )
            )
        if native.get("hit_vs_ceiling") is not None or pure.get("hit_vs_ceiling") is not None:
            rows.append(
                (
                    f"Cache hits, concurrency {concurrency}: RequestHandler from SQLite / in-thread sqlite3 SELECT "
                    "+ orjson.loads of the same rows (the ceiling)",
                    _cell(native.get("hit_vs_ceiling"), "x", native.get("met_ceiling")),
                    _cell(pure.get("hit_vs_ceiling"), "x", pure.get("met_ceiling")),
                    f"≥ {TARGET_HITS_VS_CEILING:.1f}x" if targeted else "-",
                )
            )
        rows.append(
            (
                f"Cache hits, concurrency {concurrency}: RequestHandler from SQLite / dict + orjson",
                _fmt(native.get("hit_vs_dict")),
                _fmt(pure.get("hit_vs_dict")),
                "-",
            )
        )
        for row in summary.get("cache_backends") or []:
            if row["concurrency"] == concurrency:
                rows.append(
                    (
                        f"Cache hits, concurrency {concurrency}: throughput, native ÷ pure (each ÷ its ceiling)",
                        _cell(row["ratio"], "x", row["met"]),
                        "",
                        f"≥ {row['target']:.1f}x" if row["target"] is not None else "-",
                    )
                )
    writes = {r["backend"]: r for r in summary["cache"] if r["writes_per_s"] is not None}
    if writes:
        tasks = next(iter(writes.values()))["write_tasks"]
        rows.append(
            (
                f"Cache writes per second, {tasks:,} concurrent tasks",
                _fmt(writes.get("native", {}).get("writes_per_s"), "writes/s"),
                _fmt(writes.get("pure", {}).get("writes_per_s"), "writes/s"),
                "-",
            )
        )
    memory = {r["backend"]: r for r in summary["memory"]}
    if memory:
        requests = next(iter(memory.values()))["requests"]
        cells = []
        for backend in BACKENDS:
            row = memory.get(backend)
            cells.append(
                "not run"
                if row is None
                else f"{_fmt(row['growth_mb'], 'MB')} {'flat' if row['met'] else '**not flat**'}"
            )
        rows.append((f"RSS growth after warm-up, {requests:,}-request crawl with the cache on", *cells, "flat"))
    counted = {r["path"]: r for r in (summary.get("instructions") or {}).get("rows", [])}
    if "raw" in counted:
        cells = [
            f"{counted[p]['vs_raw']:.2f}x ({counted[p]['per_request'] / 1000:.1f}k)"
            + ("" if counted[p].get("met") is None else f" {'met' if counted[p]['met'] else '**missed**'}")
            if p in counted
            else "not run"
            for p in ("native", "pure")
        ]
        rows.append(
            (
                "Client instructions per request, `/json`, concurrency 32 (callgrind): RequestHandler ÷ raw "
                f"aiohttp + orjson ({counted['raw']['per_request'] / 1000:.1f}k); lower is better",
                *cells,
                " / ".join(f"≤ {TARGET_INSTRUCTIONS[p]:.2f}x {p}" for p in ("native", "pure")),
            )
        )
    for row in (summary.get("original") or {}).get("rows", []):
        rows.append(
            (
                f"Original aiorequestful 1.0.20 (pure Python, on CPython 3.12), concurrency {row['concurrency']}: "
                "RequestHandler / raw aiohttp + orjson",
                "",
                _fmt(row["ratio"]),
                "-",
            )
        )
    return rows


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "es" if noun.endswith("s") else "s")


def summary_table(summary: dict[str, Any]) -> str:
    lines = ["| Measure | Native | Pure Python | Target |", "|---|---:|---:|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in summary_rows(summary)]
    return "\n".join(lines)


def headline_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| Measure | Result | Target | Verdict |", "|---|---:|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['label']} | {_fmt(row['value'], row['unit'])} | {row['target']} | {_verdict(row['met'])} |"
        )
    return "\n".join(lines)


def recommendations(summary: dict[str, Any]) -> list[str]:
    """Plain statements for every missed target: say so, and what to do about it."""
    out: list[str] = []
    for row in summary["kernels"]:
        if row["met"] is False:
            out.append(
                f"`{row['kernel']}` ({row['case']}) is slower natively ({row['rust_ns']:.0f} ns) than its twin "
                f"({row['py_ns']:.0f} ns): the FFI call does not repay itself. Keep this path in Python or make the "
                "call coarser (fewer, larger calls across the boundary)."
            )
    for row in summary["json"]:
        if row["met_orjson"] is False:
            out.append(
                f"JSON {row['size']}: native decode runs at {row['rust_vs_orjson']:.2f}x orjson "
                f"({row['rust_us']:,.1f} µs vs {row['orjson_us']:,.1f} µs); the ≥ 1.0x target is missed."
            )
        if row["met_stdlib"] is False:
            out.append(
                f"JSON {row['size']}: native decode runs at {row['rust_vs_stdlib']:.2f}x stdlib json; "
                "the ≥ 2x target is missed."
            )
    for row in summary["e2e"]:
        if row["met"] is False:
            out.append(
                f"End-to-end ({row['backend']}, c={row['concurrency']}): RequestHandler reaches {row['ratio']:.2f}x "
                f"the raw aiohttp + orjson ceiling (per-round range {row['ratio_range'][0]:.2f}-"
                f"{row['ratio_range'][1]:.2f}x; client CPU {row['handler_cpu_us']:.0f} µs vs {row['raw_cpu_us']:.0f} "
                "µs per request). The gap is the handler's Python orchestration per request, not a kernel."
            )
    explained = False
    for row in summary["cache"]:
        if row["met"] is False:
            out.append(
                f"Cache hits ({row['backend']}, c={row['concurrency']}): {row['cache_hit_rps']:,.0f} req/s is "
                f"{row['hit_vs_network']:.1f}x the loopback network ({row['network_rps']:,.0f} req/s), short of 10x. "
                f"A hit costs {row['hit_cpu_us']:.0f} µs of client CPU against {row['network_cpu_us']:.0f} µs for a "
                f"request over loopback, while a dict + orjson lookup does {_num(row['dict_orjson_rps'])}/s."
                + ("" if explained else _CACHE_HIT_PROFILE)
            )
            explained = True
    for row in summary["memory"]:
        if row["met"] is False:
            out.append(
                f"Memory ({row['backend']}): RSS grew {row['growth_mb']:.1f} MB ({row['growth_pct']:.1f}%) after "
                f"warm-up over {row['requests']:,} requests (slope {row['slope_kb_per_10k']:.0f} KB per 10,000): "
                "not flat; look for a per-request leak."
            )
    counted = summary.get("instructions") or {}
    by_path = {row["path"]: row for row in counted.get("rows", [])}
    for row in by_path.values():
        if row.get("met") is False and "raw" in by_path:
            extra = (row["per_request"] - by_path["raw"]["per_request"]) / 1000
            out.append(
                f"Client instructions per request ({row['path']}): {row['vs_raw']:.2f}x raw aiohttp + orjson "
                f"({row['per_request'] / 1000:.1f}k against {by_path['raw']['per_request'] / 1000:.1f}k), above the "
                f"≤ {row['target']:.2f}x target: {extra:.1f}k instructions a request are the handler's own; section 6 "
                "lists the functions they are spent in."
            )
    for row in summary["cache"]:
        if row.get("met_original") is False:
            out.append(
                f"Cache hits ({row['backend']}, c={row['concurrency']}): {row['hit_vs_original']:.1f}x aiorequestful "
                f"1.0.20 on the same workload, short of {TARGET_HITS_VS_ORIGINAL:.0f}x."
            )
        if row.get("met_ceiling") is False:
            out.append(
                f"Cache hits ({row['backend']}, c={row['concurrency']}): {row['hit_vs_ceiling']:.2f}x an in-thread "
                f"sqlite3 SELECT + orjson.loads of the same rows ({row['cache_hit_rps']:,.0f} against "
                f"{row['ceiling_rps']:,.0f} req/s), short of {TARGET_HITS_VS_CEILING:.1f}x: what a hit does beyond "
                "reading and decoding its row costs more than the row itself."
            )
    for what, rows in (("the cache-hit crawl", summary.get("cache_backends")), ("the 50 KB JSON crawl",
                       summary.get("json50k_backends"))):  # fmt: skip
        for row in rows or []:
            if row["met"] is False:
                out.append(
                    f"Native ÷ pure on {what} (c={row['concurrency']}): {row['ratio']:.2f}x, short of "
                    f"{row['target']:.1f}x: the native kernels do not move this workload's throughput that far."
                    + (_CACHE_NATIVE_SHARE if what == "the cache-hit crawl" else "")
                )
    rust_vs_pure = [
        r
        for r in summary["headline"]
        if r["label"].startswith("End-to-end c=") and "native vs pure" in r["label"] and r["value"] is not None
    ]
    for row in rust_vs_pure:
        if abs(row["value"] - 1.0) < 0.05:
            out.append(
                f"{row['label']}: {row['value']:.2f}x, within noise. End to end, the kernels do not change "
                "throughput: network, aiohttp and the handler's Python dominate."
            )
    return out


def _load_warning(machine: dict[str, Any]) -> list[str]:
    """A plain warning when other work was running: wall-clock numbers then mostly measure the scheduler."""
    cores = machine["logical_cores"] or 1
    start = machine["load_average_start"][0]
    if start < 0.5 * cores:
        return []
    return [
        f"> **Warning:** the 1-minute load average was {start:.1f} on {cores} cores when this run started: other "
        "work was competing for the CPU, so wall-clock throughput (end to end, cache) is unusually noisy. The "
        "kernel and JSON ratios and the CPU-per-request columns are the more reliable numbers of this run.",
        "",
    ]


#: Where a cache hit's time goes (callgrind profile of a hit; fixed text, said once under the missed targets).
_CACHE_HIT_PROFILE = (
    " Where a hit goes (callgrind, (I(1200) - I(200)) / 1000, 32 workers, 200 stored items, all hits from the memory "
    "tier): about 125k instructions a hit through RequestHandler.get (142k pure) against 55k for the in-thread "
    "sqlite3 SELECT + orjson.loads ceiling. Of those, about 32k are the handler's plain GET (its counters, log "
    "context, hooks check, status dispatch, release), about 16k the decode of the payload (the ceiling pays that "
    "too), and the rest the cached session's request identity, the tier and the lazily built CachedResponse. The "
    "tier's coherence look (PRAGMA data_version, which takes the file's read lock) cost 11.5k a hit when it ran for "
    "every lookup; it is now trusted for limits.MEMORY_TIER_RECHECK (1 ms), which a callgrind run, 50 times slower "
    "than real time, cannot show, but the wall-clock rows above do. The next step is a payload-only hit that skips "
    "building the CachedResponse and the session's request identity for a URL the tier already knows."
)

#: The decision on the kernels below the 1 % rule (fixed text: a design decision, said under the table).
KERNEL_DECISIONS = (
    "`timer_plan` runs only when a call fails (the retry budget of the retry step, the status handlers and the "
    "pause gate) and `DispatchTable` once per response, a lookup of a few entries; neither has a coarser call to "
    "move into on the request path, so each is to become twin-only (the pure implementation for both builds). "
    "That removal is not made yet: until it is, the native copies stay, tested against their twins like every "
    "kernel."
)

#: Why native and pure hits run alike (fixed text, said with that missed target).
_CACHE_NATIVE_SHARE = (
    " On a hit, the only kernel is the JSON decode of the payload (about a tenth of a hit: section 8 prices it end "
    "to end); the rest - the tier, the cached session, the CachedResponse, the handler - is the same Python in both "
    "builds, so no kernel speed-up can lift a hit more than about 1.1x. Reaching 1.3x needs that path itself in the "
    "extension (a native tier that returns the decoded payload), which is not built."
)

#: What the profiles of the native decoder showed (fixed text: it explains the design, not one run's numbers).
JSON_NOTES = [
    "The native decoder is the package's own strict single-pass parser (`rust/bindings/json.rs`); every input it "
    "is not sure of goes to `json.loads`, so results and errors are the stdlib's. It replaced jiter after a "
    "profile of the 50 KB document: half of jiter's time was its own code (its key cache, string and number "
    "dispatch, dicts regrowing as keys arrived).",
    "",
    "A second profile (callgrind, the 50 KB document) had it 7 % more instructions than orjson: the CPython calls "
    "(dict inserts, `str` and number objects) were the same for both; the gap was per-token work and CPython's "
    "UTF-8 decoder for long non-ASCII strings. Keys of up to 15 ASCII bytes are now found, hashed and matched in "
    "the key cache as two machine words; short decimals (mantissa below 2^53, exponent within 22) are computed "
    "exactly; non-ASCII text is converted in one validating pass into the final `str`. Per decode (callgrind, "
    "instructions): 1 KB 25.0k against orjson's 27.2k, 50 KB 1.61M against 1.73M, 2 MB 67.2M against 80.0M "
    "(stdlib: 79k, 4.16M, 174M).",
    "",
    "The cyclic GC is paused for the parse (no Python code runs inside it, and the caller's setting is restored): "
    "a 2 MB decode no longer triggers about 30 collections inside the call. When the caller keeps the result, one "
    "young collection is then due right after the call; the 2 MB rounds of this bench charge that collection to "
    "each decoder, which puts 2 MB at about parity with orjson. When results replace each other (a client handling "
    "one response after another), no collection is due and 2 MB runs about 1.3x orjson.",
    "",
    "The pure twin decodes with orjson and falls back to the stdlib where orjson refuses what the stdlib accepts "
    "(NaN, Infinity, integers wider than 64 bits); it stays 0.6-0.85x orjson because it must first scan the whole "
    "text for integers wider than 64 bits (orjson would read them as floats): about 1 us at 1 KB, 1.7 ms of 9.6 ms "
    "at 2 MB.",
]


def instruction_section(counted: dict[str, Any] | None) -> list[str]:
    """Section 6: callgrind instruction counts per request, by path, by shared object and by function."""
    lines = ["", "## 6. Client instructions per request (valgrind callgrind)", ""]
    if not counted or "rows" not in counted:
        reason = (counted or {}).get("skipped", "not run (full runs only; needs valgrind)")
        return [*lines, f"Not measured: {reason}."]
    small, large = counted["n"]
    lines += [
        f"`/json` (one ~2 KB API record), concurrency {counted['concurrency']}, loopback server in its own process "
        "(not traced). Each client runs under `valgrind --tool=callgrind --instr-atstart=no`; instrumentation is "
        "switched on (`callgrind_control -i on`) once imports and the session or handler are set up, and the cost "
        f"of one request is (I(N={large:,}) - I(N={small:,})) / {large - small:,}, so what is left of start-up "
        "and teardown cancels. Every path ran twice; the spread is between the two runs. Instruction counts do "
        "not depend on the load of the machine, unlike every wall-clock figure above.",
        "",
        "| Path | Instructions / request (run 1, run 2) | Spread | ÷ raw | Target | Verdict |",
        "|---|---:|---:|---:|---|---|",
    ]
    names = {
        "raw": "raw `aiohttp.ClientSession.get` + `orjson.loads(await r.read())`",
        "native": "`RequestHandler.get` + `JSONPayloadHandler`, native kernels",
        "pure": "the same, pure twin (`AIOREQUESTFUL_NO_EXTENSIONS=1`)",
    }
    for row in counted["rows"]:
        runs = ", ".join(f"{run / 1000:.1f}k" for run in row["runs"])
        lines.append(
            f"| {names.get(row['path'], row['path'])} | {row['per_request'] / 1000:.1f}k ({runs}) | "
            f"{row['spread_pct']:.2f}% | {row['vs_raw']:.2f} | "
            f"{_target_le(row.get('target'))} | {_verdict(row.get('met'))} |"
        )
    by_path = {row["path"]: row for row in counted["rows"]}
    objects = sorted({o["object"] for row in counted["rows"] for o in row["objects"]})
    if objects:
        header = [p for p in ("raw", "native", "pure") if p in by_path]
        lines += ["", "By shared object (instructions per request):", ""]
        lines += ["| Object | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
        for obj in sorted(objects, key=lambda o: -max(_object_cost(by_path[p], o) for p in header)):
            lines.append(f"| {obj} | " + " | ".join(f"{_object_cost(by_path[p], obj):,.0f}" for p in header) + " |")
    for path in ("native", "pure"):
        row = by_path.get(path)
        if not row or not row["functions"]:
            continue
        lines += [
            "",
            f"Top functions of the handler path, {path} (exclusive instructions per request, callgrind_annotate; "
            "the release extension is stripped, so its own code shows as addresses):",
            "",
            "| Function | Object | Instructions / request |",
            "|---|---|---:|",
        ]
        for f in row["functions"][:15]:
            lines.append(f"| `{f['function']}` | {f['object'] or '(inlined)'} | {f['instructions']:,} |")
    return lines


#: How each re-crawl mode is configured, as the report names it.
HTTP_CACHE_MODES = {
    "policy": "SQLite cache + `CachePolicy()`",
    "default_cache": "SQLite cache, no policy",
    "no_cache": "no cache",
}


def http_cache_section(rows: list[dict[str, Any]]) -> list[str]:
    """Section 7: origin requests and body bytes of a re-crawl of a revalidating server, by cache mode."""
    lines = ["", "## 7. HTTP caching: re-crawl of a revalidating server", ""]
    if not rows:
        return [*lines, "Not measured in this run."]
    n, concurrency = rows[0]["n"], rows[0]["concurrency"]
    lines += [
        f"The loopback server (its own process) serves {n:,} JSON records of ~4 KB with `Cache-Control: max-age=0` "
        "and an `ETag`, and answers an `If-None-Match` naming the current ETag with `304 Not Modified`. Each "
        f"scenario crawls all {n:,} through `RequestHandler` at concurrency {concurrency}, then crawls them again "
        "with a new handler (over the same cache file). Between the crawls either nothing changes or every 10th "
        "record changes (new version, new ETag). The counts are the server's (requests, 200s, 304s, body bytes "
        "sent); the handler's stats agreed with them in every crawl (the bench fails otherwise). "
        '"Outdated" counts the re-crawl payloads whose version was not the current one on the server.',
        "",
        "| Backend | Changed between crawls | Re-crawl through | Origin requests | 200 / 304 | Body bytes: re-crawl / "
        "first crawl | Body bytes saved | First crawl (s) | Re-crawl (s) | Outdated payloads |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        saved = row["bytes_saved_pct"]
        lines.append(
            f"| {row['backend']} | {row['changed']:,} ({row['changed_pct']:.0f}%) | "
            f"{HTTP_CACHE_MODES.get(row['mode'], row['mode'])} | {row['requests']:,} | "
            f"{row['ok']:,} / {row['not_modified']:,} | {row['body_bytes']:,} / {row['first_body_bytes']:,} | "
            f"{'-' if saved is None else f'{saved:.1f}%'} | {row['first_seconds']:.2f} | {row['seconds']:.2f} | "
            f"{row['outdated']:,} |"
        )
    lines += [
        "",
        "With the policy, every stored response is stale at once (`max-age=0`), so the re-crawl asks the server "
        "about each one: it saves the bodies of what did not change, not the requests. Without a policy the cache "
        "answers every re-crawl request from storage without asking the server: no requests at all, and what "
        "changed in between is served as it was (the outdated column). On loopback a body costs next to nothing "
        "to send, so the wall times show the client's own work (a revalidation reads and rewrites the stored "
        "entry); over a real network the saved bytes are the saved time.",
    ]
    return lines


def cache_comparison_section(s: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Section 4, continued: the hits against their ceiling, against 1.0.20, and native against pure."""
    at = HIT_TARGET_CONCURRENCY
    lines = [
        "",
        "Cache hits against what bounds them, on the same cache file and ids: the ceiling is one read-only "
        "`sqlite3` connection in the loop's thread running `SELECT payload FROM items WHERE method = ? AND id = ? "
        "AND expires_at > ?` and `orjson.loads` of the payload, in the same worker pool (`sqlite_ceiling` of "
        "`benches.cache_bench`); the original is PyPI aiorequestful 1.0.20 running the same script (same ids, "
        "rows, rounds and concurrencies) in its own CPython 3.12 venv. A ratio to the ceiling is the median of "
        f"the per-round ratios; the ratio to 1.0.20 divides the medians of two processes. Targets at "
        f"concurrency {at}: ≥ {TARGET_HITS_VS_CEILING:.1f}x the ceiling, ≥ {TARGET_HITS_VS_ORIGINAL:.0f}x 1.0.20.",
        "",
        "| Backend | Concurrency | Cache hits (req/s) | Ceiling (req/s) | Hits ÷ ceiling | Verdict "
        "| 1.0.20 hits (req/s) | Hits ÷ 1.0.20 | Verdict |",
        "|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    original = s.get("original") or {}
    theirs_rows = original.get("cache") if isinstance(original.get("cache"), list) else []
    theirs = {r["concurrency"]: r for r in theirs_rows}
    for row in s["cache"]:
        other = theirs.get(row["concurrency"], {})
        lines.append(
            f"| {row['backend']} | {row['concurrency']} | {_num(row['cache_hit_rps'])} | "
            f"{_num(row.get('ceiling_rps'))} | {_fmt(row.get('hit_vs_ceiling'))} | "
            f"{_verdict(row.get('met_ceiling'))} | {_num(other.get('cache_hit_rps'))} | "
            f"{_fmt(row.get('hit_vs_original'))} | {_verdict(row.get('met_original'))} |"
        )
    for row in theirs_rows:
        lines.append(
            f"| original 1.0.20 (CPython 3.12) | {row['concurrency']} | {_num(row['cache_hit_rps'])} | "
            f"{_num(row.get('ceiling_rps'))} | {_fmt(row.get('hit_vs_ceiling'))} | | | | |"
        )
    if isinstance(original.get("cache"), dict) and original["cache"].get("skipped"):
        lines += ["", f"The 1.0.20 cache comparison was skipped: {original['cache']['skipped']}"]
    elif not theirs_rows:
        lines += ["", "The 1.0.20 cache comparison was not run (full runs only; `--original` forces it)."]
    backends = s.get("cache_backends") or []
    if backends:
        lines += [
            "",
            f"Native ÷ pure on the cache-hit crawl (target ≥ {TARGET_HITS_NATIVE_VS_PURE:.1f}x at concurrency "
            f"{at}). The backends run in separate processes, one after the other; on this shared machine one of "
            "them can run at a fraction of the other's speed throughout (the ceiling, the same code in both, shows "
            "it). The verdict therefore divides each backend's hits ÷ ceiling (measured round by round in its own "
            "process); the plain ratio of the throughputs is beside it.",
            "",
            "| Concurrency | Native hits (req/s) | Pure hits (req/s) | Plain ratio | Native ÷ pure, each ÷ its ceiling "
            "| Target | Verdict |",
            "|---:|---:|---:|---:|---:|---|---|",
        ]
        for row in backends:
            target = "-" if row["target"] is None else f"≥ {row['target']:.1f}x"
            lines.append(
                f"| {row['concurrency']} | {_num(row['native'])} | {_num(row['pure'])} | "
                f"{_fmt(row.get('plain_ratio'))} | {_fmt(row['ratio'])} | {target} | {_verdict(row['met'])} |"
            )
    return lines


def json50k_section(s: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Section 3, continued: the 50 KB JSON network crawl, where the decode is a large part of each request."""
    rows = s.get("json50k") or []
    lines = ["", "### 50 KB JSON crawl (`/json50k`)", ""]
    if not rows:
        return [*lines, "Not measured in this run."]
    lines += [
        f"The same ~50 KB page of records on every request, {cfg.get('json50k_n', 0):,} GETs per sample at "
        f"concurrency {JSON50K_CONCURRENCY}; {_plural(cfg.get('json50k_rounds', 0), 'client process')} per "
        f"backend, interleaved, each running {_plural(cfg.get('json50k_blocks', 0), 'round')} of raw aiohttp + "
        "orjson and "
        "RequestHandler + JSONPayloadHandler in rotating order. Native ÷ pure (target "
        f"≥ {TARGET_50K_NATIVE_VS_PURE:.1f}x) divides the two backends' RequestHandler ÷ raw ratios: raw aiohttp + "
        "orjson is the same code in both processes, so this cancels a process that ran slower throughout on a "
        "shared machine; the plain ratio of the median throughputs is beside it.",
        "",
        "| Backend | Raw aiohttp+orjson (req/s) | RequestHandler (req/s) | Ratio (range) | Client CPU µs/req: raw / "
        "handler |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['backend']} | {_num(row['raw_rps'])} | {_num(row['handler_rps'])} | {_fmt(row['ratio'])} "
            f"{_range(row['ratio_range'])} | {_num(row['raw_cpu_us'])} / {_num(row['handler_cpu_us'])} |"
        )
    for row in s.get("json50k_backends") or []:
        lines += [
            "",
            f"Native ÷ pure, RequestHandler on `/json50k`: {_fmt(row['ratio'])} "
            + (f"(target ≥ {row['target']:.1f}x: {_verdict(row['met'])})" if row["target"] is not None else "")
            + f"; plain ratio of the throughputs {_fmt(row.get('plain_ratio'))}.",
        ]
    return lines


def kernel_instruction_section(counted: dict[str, Any] | None) -> list[str]:
    """Section 8: what each kernel's native boundary buys end to end, in instructions per request."""
    lines = ["", "## 8. What each kernel buys end to end (callgrind, one kernel from the twin at a time)", ""]
    if not counted or "rows" not in counted:
        reason = (counted or {}).get("skipped", "not run (full runs only; needs valgrind)")
        return [*lines, f"Not measured: {reason}."]
    small, large = counted["n"]
    lines += [
        "Each workload's client runs under callgrind as in section 6 (concurrency "
        f"{counted['concurrency']}, (I(N={large:,}) - I(N={small:,})) / {large - small:,}), once with every kernel "
        "native and once per kernel with only that kernel taken from the pure twin "
        "(`AIOREQUESTFUL_TWIN_KERNELS=<kernel>`; every caller reads `kernels.<name>` at call time), and once "
        "with a kernel the workload never calls taken from the twin: the control. The swap itself (another "
        "module object, another heap layout) moves a count by up to about 1 % either way, as the controls "
        "show, so the effect of a kernel is its twin run minus the control run (both swapped one kernel), per "
        "request and as a percentage of the control request; minus the all-native run is beside it.",
        "",
        f"Rule for the verdict: an effect of at least {KERNEL_BOUNDARY_PCT:.0f} % of the request means the kernel "
        '"keeps its boundary" (the native code moves an end-to-end figure); below '
        f"{KERNEL_BOUNDARY_PCT:.0f} % either way it " + '"moves no end-to-end figure" (its native speed does not '
        "show in a request); a twin cheaper by at least that much says so.",
        "",
        "| Kernel | Workload | All native (instr./req) | Control | That kernel from the twin | Effect / request "
        "(vs control) | % of the request | vs all native | Verdict |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in counted["rows"]:
        control = "-" if row.get("control") is None else f"{row['control'] / 1000:,.1f}k"
        lines.append(
            f"| `{row['kernel']}` | {KERNEL_WORKLOAD_NAMES.get(row['workload'], row['workload'])} | "
            f"{row['native'] / 1000:,.1f}k | {control} | {row['other'] / 1000:,.1f}k | "
            f"{row['delta'] / 1000:+,.1f}k | {row['pct']:+.2f} % | "
            f"{row.get('delta_native', row['delta']) / 1000:+,.1f}k | {row['verdict']} |"
        )
    if counted.get("controls"):
        lines += ["", "The controls (a kernel the workload never calls, from the twin), against all native:", ""]
        for row in counted["controls"]:
            lines.append(
                f"* `{row['kernel']}` on {KERNEL_WORKLOAD_NAMES.get(row['workload'], row['workload'])}: "
                f"{row['delta'] / 1000:+,.1f}k ({row['pct']:+.2f} %)"
            )
    quiet = sorted({r["kernel"] for r in counted["rows"] if r["verdict"].startswith("moves no")})
    if quiet:
        lines += [
            "",
            "What happens to a kernel that moves no end-to-end figure ("
            + ", ".join(f"`{k}`" for k in quiet)
            + "): "
            + KERNEL_DECISIONS,
        ]
    missing = [k for k in KERNEL_ORDER if k not in {r["kernel"] for r in counted["rows"]}]
    if missing:
        lines += ["", "Not priced in this run: " + ", ".join(f"`{k}`" for k in missing) + "."]
    if counted.get("pure"):
        lines += ["", "Every kernel from the twin (`AIOREQUESTFUL_NO_EXTENSIONS=1`), for scale:", ""]
        for row in counted["pure"]:
            lines.append(
                f"* {KERNEL_WORKLOAD_NAMES.get(row['workload'], row['workload'])}: {row['delta'] / 1000:+,.1f}k "
                f"({row['pct']:+.2f} %)"
            )
    return lines


def _target_le(target: float | None) -> str:
    return "-" if target is None else f"≤ {target:.2f}x"


def _object_cost(row: dict[str, Any], obj: str) -> float:
    return next((o["instructions"] for o in row["objects"] if o["object"] == obj), 0)


def write_report(latest: dict[str, Any], out_dir: Path) -> None:
    s = latest["summary"]
    m = latest["machine"]
    lines = [
        "# aiorequestful benchmark report",
        "",
        f"**Machine:** {machine_line(m)}",
        "",
        f"**Command:** `{m['command']}` (mode: {latest['mode']})",
        "",
        f"Load average at start {m['load_average_start']}, at end {m.get('load_average_end')}. The machine is a "
        "shared, noisy 2-core VM: every ratio compares numbers taken in the same run (kernels: the same pytest "
        "session, two passes in opposite order, the lower of the two medians per bench; end to end: client "
        "processes for the two backends interleaved, each measuring every mode in rotating order; a ratio is the "
        "median of the per-round ratios).",
        "",
        *_load_warning(m),
        "## Summary",
        "",
        'Ratios above 1 mean the first-named is faster. "Pure Python" is the same package with '
        "`AIOREQUESTFUL_NO_EXTENSIONS=1` (its JSON decoder is orjson, with the stdlib answering whatever "
        "orjson refuses or would read differently).",
        "",
        summary_table(s),
        "",
        "![ratios](ratios.png)",
        "",
    ]
    recs = recommendations(s)
    lines += ["## Missed targets and what to do", ""]
    lines += [f"* {r}" for r in recs] if recs else ["Every target was met in this run."]
    lines += ["", "## 1. Kernels: native vs pure twin (median ns per call)", ""]
    lines += ["| Kernel | Input | Native (ns) | Twin (ns) | Native speedup | Verdict |", "|---|---|---:|---:|---:|---|"]
    for row in s["kernels"]:
        lines.append(
            f"| `{row['kernel']}` | {row['case']} | {_num(row['rust_ns'])} | {_num(row['py_ns'])} | "
            f"{_fmt(row['speedup'])} | {_verdict(row['met'])} |"
        )
    sites = latest.get("kernel_call_sites", {})
    lines += ["", "Where the public code calls each kernel (what a kernel's speed can buy end to end):", ""]
    for kernel in ("timer_plan", "DispatchTable", "cache_key", "json_loads", "bucket_take"):
        where = sites.get(kernel)
        lines.append(
            f"* `{kernel}`: " + (", ".join(f"`{w}`" for w in where) if where else "**not called by the public code**")
        )
    lines += ["", "## 2. JSON decoding (median µs per document, UTF-8 bytes in)", ""]
    lines += [
        "| Document | Bytes | Native | Twin (orjson, stdlib fallback) | orjson | stdlib json | Native vs orjson "
        "| Native vs stdlib "
        "| All equal to json.loads |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in s["json"]:
        lines.append(
            f"| {row['size']} | {row['bytes']:,} | {_num(row['rust_us'], 1)} | {_num(row['py_us'], 1)} | "
            f"{_num(row['orjson_us'], 1)} | {_num(row['stdlib_us'], 1)} | {_fmt(row['rust_vs_orjson'])} | "
            f"{_fmt(row['rust_vs_stdlib'])} | {'yes' if all(row['correct'].values()) else row['correct']} |"
        )
    lines += ["", *JSON_NOTES]
    cfg = latest["config"]
    lines += [
        "",
        f"## 3. End to end ({cfg['e2e_n']:,} GETs per sample; {cfg['e2e_rounds']} client processes per backend, "
        f"interleaved, each running {cfg['e2e_blocks']} rounds of the modes in rotating order; ~1 KB JSON bodies; "
        "loopback server in its own process)",
        "",
        "Throughput is the median over samples; a ratio is the median of the per-round ratios (range in brackets). "
        "Client CPU time per request is less sensitive to other load on the machine than wall-clock throughput.",
        "",
        "`RequestHandler.create(payload_handler=JSONPayloadHandler(), retry_timer=GeometricCountTimer(0.2, 3))` then "
        "`await handler.get(url)`, against `aiohttp.ClientSession.get` + `orjson.loads(await resp.read())`. "
        '"+ flow control" adds `rate_limit=RateLimit(1e6, burst=1e6), retry_policy=RetryPolicy(), '
        "pause_on_retry_after=True, coalesce=True` (all on, none binding).",
        "",
        "| Backend | Concurrency | Raw aiohttp+orjson (req/s) | RequestHandler (req/s) | Ratio (range) "
        "| + flow control (req/s) | Ratio (range) | Client CPU µs/req: raw / handler / + flow | Verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    original = s.get("original") or {}
    rows = [(row["backend"], row) for row in s["e2e"]]
    rows += [("original 1.0.20 (CPython 3.12)", row) for row in original.get("rows", [])]
    for name, row in rows:
        flow_range = _range(row.get("flow_ratio_range"))
        lines.append(
            f"| {name} | {row['concurrency']} | {_num(row['raw_rps'])} | {_num(row['handler_rps'])} | "
            f"{_fmt(row['ratio'])} {_range(row['ratio_range'])} | {_num(row.get('flow_rps'))} | "
            f"{_fmt(row.get('flow_ratio'))} {flow_range} | {_num(row['raw_cpu_us'])} / "
            f"{_num(row['handler_cpu_us'])} / {_num(row.get('flow_cpu_us'))} | {_verdict(row['met'])} |"
        )
    if original.get("rows"):
        lines += [
            "",
            "The original runs on CPython 3.12 with aiohttp 3.11 (the newest it runs on) in its own venv; compare its "
            "*ratio* "
            "to raw aiohttp (measured in the same process), not its absolute throughput. It has no flow control.",
        ]
    elif original.get("skipped"):
        lines += ["", f"Original aiorequestful 1.0.20 comparison skipped: {original['skipped']}"]
    else:
        lines += ["", "Original aiorequestful 1.0.20 comparison not run (full runs only; `--original` forces it)."]
    lines += json50k_section(s, cfg)
    lines += [
        "",
        f"## 4. Cache ({cfg['cache_items']:,} cached ids, {cfg['cache_n']:,} requests per sample, "
        f"{cfg['cache_rounds']} rounds of the three modes in alternating order; writes: {cfg['writes']:,} saves "
        "from 1,000 concurrent tasks)",
        "",
        "| Backend | Concurrency | Cache hits (req/s) | Loopback network (req/s) | dict + orjson (lookups/s) "
        "| Hits vs network | Hits vs dict | Client CPU µs per hit | Cold crawl, cache on (req/s) | Writes/s "
        "| Verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in s["cache"]:
        lines.append(
            f"| {row['backend']} | {row['concurrency']} | {_num(row['cache_hit_rps'])} | {_num(row['network_rps'])} | "
            f"{_num(row['dict_orjson_rps'])} | {_fmt(row['hit_vs_network'])} | {_fmt(row['hit_vs_dict'])} | "
            f"{_num(row['hit_cpu_us'])} | "
            f"{_num(row['cache_fill_rps'])} | {_num(row['writes_per_s'])} | {_verdict(row['met'])} |"
        )
    lines += cache_comparison_section(s, cfg)
    lines += [
        "",
        "Every cache-hit request was checked to be a hit (handler stats) and the server's request counter proves "
        "none of them reached the network.",
        "",
        "## 5. Memory (RSS of the client process, crawl at concurrency 32 with the SQLite cache on; first half "
        "misses + writes, second half hits)",
        "",
        "Warm-up is the first 20 % of the crawl, or longer: until the cache's memory tier (a bounded cache of hot "
        "entries, which fills once the crawl starts hitting) is at its fullest; the growth is what comes after.",
        "",
        "| Backend | Requests | req/s | RSS start | RSS after warm-up | RSS final | Peak after warm-up | Growth "
        "| Slope per 10k req | Verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in s["memory"]:
        lines.append(
            f"| {row['backend']} | {row['requests']:,} | {_num(row['rps'])} | {row['start_mb']:.1f} MB | "
            f"{row['warm_mb']:.1f} MB | {row['final_mb']:.1f} MB | {row['peak_mb']:.1f} MB | "
            f"{row['growth_mb']:+.1f} MB ({row['growth_pct']:+.1f}%) | {row['slope_kb_per_10k']:+.0f} KB | "
            f"{'flat' if row['met'] else '**not flat**'} |"
        )
    lines += instruction_section(s.get("instructions"))
    lines += http_cache_section(s.get("http_cache") or [])
    lines += kernel_instruction_section(s.get("kernel_instructions"))
    lines += [
        "",
        "## How to reproduce",
        "",
        "`make bench` (builds the extension, then `AIOREQUESTFUL_REQUIRE_EXTENSIONS=1 .venv/bin/python -m "
        "benches.run`); `--quick` for a shorter run, `--no-original` to leave out PyPI aiorequestful 1.0.20 "
        "(Python 3.12). "
        "Raw numbers for every sample are in `latest.json`.",
        "",
    ]
    (out_dir / "REPORT.md").write_text("\n".join(lines))


def update_readme(latest: dict[str, Any], readme: Path = README) -> bool:
    """Put this run's summary table and machine line into the README's "## Benchmarks" section (in place of the
    ones there; the prose around them is left alone). False when the README has no such table."""
    text = readme.read_text(encoding="utf-8")
    head, marker, rest = text.partition("\n## Benchmarks\n")
    if not marker:
        return False
    section, next_heading, tail = rest.partition("\n## ")
    lines = section.split("\n")
    table = [i for i, line in enumerate(lines) if line.startswith("|")]
    if not table:
        return False
    machine = f"**Machine:** {machine_line(latest['machine'])}"
    lines = [machine if line.startswith("**Machine:**") else line for line in lines]
    lines[table[0] : table[-1] + 1] = summary_table(latest["summary"]).split("\n")
    readme.write_text(head + marker + "\n".join(lines) + next_heading + tail, encoding="utf-8")
    return True


def write_chart(latest: dict[str, Any], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in latest["summary"]["headline"] if r["chart"] and r["value"]]
    labels = [re.sub(r"`", "", r["label"]) for r in rows]
    values = [r["value"] for r in rows]
    colours = ["#2e7d32" if r["met"] else "#c62828" if r["met"] is False else "#78909c" for r in rows]
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(rows) + 1.6))
    y = list(range(len(rows)))[::-1]
    ax.barh(y, values, color=colours)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for yi, row in zip(y, rows, strict=True):
        target = re.search(r"([\d.]+)x", row["target"])
        if target:
            ax.plot([float(target.group(1))] * 2, [yi - 0.4, yi + 0.4], color="black", linewidth=2)
        right = max(row["value"], float(target.group(1)) if target else 0.0)
        ax.text(right * 1.06, yi, f"{row['value']:.2f}x", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    from matplotlib.patches import Patch

    legend = [("#2e7d32", "target met"), ("#c62828", "target missed"), ("#78909c", "no target")]
    ax.legend(handles=[Patch(color=c, label=t) for c, t in legend], loc="lower right", fontsize=8)
    ax.set_xlabel("ratio (log scale; > 1 means the first-named is faster); black tick = target")
    m = latest["machine"]
    ax.set_title(f"aiorequestful benchmark ratios - {m['cpu']}, {m['logical_cores']} cores, {m['date']}", fontsize=9)
    ax.set_xlim(min(min(values) * 0.7, 0.5), max(values) * 2.2)
    fig.tight_layout()
    fig.savefig(out_dir / "ratios.png", dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Run every aiorequestful benchmark and write the report.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="shorter run (a couple of minutes)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes (the CI smoke test)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--original",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also bench PyPI aiorequestful 1.0.20 in a throwaway Python 3.12 venv (default: on for full runs; "
        "skipped cleanly when it cannot be installed)",
    )
    parser.add_argument(
        "--skip",
        default="",
        help="comma list of parts to skip: pytest,e2e,e2e_50k,cache,memory,instructions,http_cache",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: recompute REPORT.md and ratios.png from the raw samples in OUT_DIR/latest.json",
    )
    args = parser.parse_args(argv)
    if args.report_only:
        return rewrite_report(args.out_dir)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = SIZES[mode]
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    invoked = (
        "make bench"
        if argv is None and os.environ.get("MAKELEVEL")
        else " ".join(["python -m benches.run", *map(shlex.quote, argv if argv is not None else sys.argv[1:])])
    )
    started = time.perf_counter()

    native = native_available()
    backends = list(BACKENDS) if native else ["pure"]
    if not native:
        log("aiorequestful._native is not built: measuring the pure backend only (make bench builds it)")
    machine = machine_info(invoked)
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    from benches.server import running_server

    with tempfile.TemporaryDirectory(prefix="aiorequestful-bench-") as tmp:
        workdir = Path(tmp)
        benches = [] if "pytest" in skip else run_pytest_benchmarks(sizes, native, workdir)
        with running_server() as base:
            e2e = [] if "e2e" in skip else run_e2e(base, sizes, backends)
            e2e_50k = [] if "e2e_50k" in skip else run_e2e_50k(base, sizes, backends)
            cache = {} if "cache" in skip else run_cache(base, sizes, backends)
            memory = {} if "memory" in skip else run_memory(base, sizes, backends)
            http_cache = {} if "http_cache" in skip else run_http_cache(base, sizes, backends)
            counted = sizes.instructions and "instructions" not in skip and native
            instructions, kernel_instructions = run_instructions(base, sizes) if counted else (None, None)
            want_original = sizes.original if args.original is None else args.original
            original = run_original(base, sizes, workdir) if want_original and mode != "smoke" else None

    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    raw = {
        "pytest_benchmark": benches,
        "e2e": e2e,
        "e2e_50k": e2e_50k,
        "cache": cache,
        "memory": memory,
        "http_cache": http_cache,
        "original": original,
        "instructions": instructions,
        "kernel_instructions": kernel_instructions,
    }
    summary = summarise(raw)
    latest = {
        "mode": mode,
        "machine": machine,
        "config": {k: v for k, v in asdict(sizes).items() if k != "notes"},
        "seconds": time.perf_counter() - started,
        "kernel_call_sites": kernel_call_sites(),
        "summary": summary,
        "headline": summary["headline"],
        "raw": raw,
    }
    (out_dir / "latest.json").write_text(json.dumps(latest, indent=1, ensure_ascii=False) + "\n")
    write_report(latest, out_dir)
    write_chart(latest, out_dir)
    if mode == "full" and out_dir.resolve() == DEFAULT_OUT.resolve() and update_readme(latest):
        log("README.md: benchmark table and machine line replaced by this run's")
    log(f"done in {latest['seconds']:.0f} s: {out_dir / 'REPORT.md'}")
    return latest


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    """Every table of the report, computed from the raw samples only (so ``--report-only`` can redo it)."""
    summary: dict[str, Any] = {
        "kernels": summarise_kernels(raw["pytest_benchmark"]),
        "json": summarise_json(raw["pytest_benchmark"]),
        "e2e": summarise_e2e(raw["e2e"]),
        "cache": summarise_cache(raw["cache"]),
        "memory": summarise_memory(raw["memory"]),
        # A latest.json written before this bench existed has no such part.
        "http_cache": summarise_http_cache(raw.get("http_cache") or {}),
    }
    original = raw.get("original")
    if original is not None:
        summary["original"] = (
            {
                # The targets are ours; the original is context, so its rows carry no verdict.
                "rows": [{**row, "met": None} for row in summarise_e2e(original["samples"], label="original")],
                "backend": original["backend"],
            }
            if "samples" in original
            else original
        )
        theirs = original.get("cache")
        if theirs and "samples" in theirs:
            rows = [{**row, "met": None, "met_ceiling": None} for row in summarise_cache({"original 1.0.20": theirs})]
            summary["original"]["cache"] = rows
            compare_with_original(summary["cache"], rows)
        elif theirs:
            summary["original"]["cache"] = theirs
    summary["cache_backends"] = backend_ratios(
        summary["cache"], "cache_hit_rps", TARGET_HITS_NATIVE_VS_PURE, HIT_TARGET_CONCURRENCY, "hit_vs_ceiling"
    )
    summary["e2e_backends"] = backend_ratios(summary["e2e"], "handler_rps", None, None)
    summary["json50k"] = summarise_e2e(
        raw.get("e2e_50k") or [], raw_mode="raw_json50k", handler_mode="handler_json50k", targeted=False
    )
    summary["json50k_backends"] = backend_ratios(
        summary["json50k"], "handler_rps", TARGET_50K_NATIVE_VS_PURE, JSON50K_CONCURRENCY, "ratio"
    )
    summary["instructions"] = summarise_instructions(raw.get("instructions"))
    summary["kernel_instructions"] = summarise_kernel_instructions(raw.get("kernel_instructions"))
    summary["headline"] = headline(summary)
    return summary


def rewrite_report(out_dir: Path) -> dict[str, Any]:
    """Recompute the summary of an existing ``latest.json`` and rewrite it, ``REPORT.md`` and ``ratios.png``."""
    latest = json.loads((out_dir / "latest.json").read_text())
    latest["summary"] = summarise(latest["raw"])
    latest["headline"] = latest["summary"]["headline"]
    (out_dir / "latest.json").write_text(json.dumps(latest, indent=1, ensure_ascii=False) + "\n")
    write_report(latest, out_dir)
    write_chart(latest, out_dir)
    return latest


if __name__ == "__main__":
    main()
