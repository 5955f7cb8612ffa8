# SPDX-License-Identifier: MIT
"""Client CPU instructions per request, counted by valgrind's callgrind (exact, unlike wall clock on a busy VM).

Each path runs as a client process under ``valgrind --tool=callgrind`` against the loopback server of
``benches.server`` (its own process, not traced): ``n`` GETs of ``/json`` (~2 KB) with 32 workers. The client is run
for ``N = 200`` and ``N = 1200`` requests and ``(I(1200) - I(200)) / 1000`` is the cost of one request: start-up,
imports, session set-up and teardown are the same in both runs and cancel. Every path is measured twice (two
repeats) so the report can show that the figures agree.

Paths:

* ``raw``: ``aiohttp.ClientSession.get`` + status check + ``orjson.loads(await resp.read())`` - the reference;
* ``native``: ``RequestHandler.get`` with ``JSONPayloadHandler`` (the same handler configuration as ``benches.e2e``),
  native kernels;
* ``pure``: the same with ``AIOREQUESTFUL_NO_EXTENSIONS=1``.

Per-kernel variants (``KERNEL_VARIANTS``, one repeat each: the counts do not vary between runs) price one kernel
at a time end to end: the same client with every kernel native, and with only that kernel taken from the twin
(``AIOREQUESTFUL_TWIN_KERNELS``), on a workload that calls it. One control variant takes from the twin a kernel the
``/json`` handler never calls (``KERNEL_CONTROLS``): the swap alone (another module object, another heap layout)
moves the count by a few thousand instructions either way, and the control shows by how much in this run. The
workloads:

* ``handler``: the path above (``json_loads`` on each body, ``DispatchTable.lookup`` on each status, the retry
  timer that ``timer_plan`` plans);
* ``handler50k``: the same on ``/json50k`` (a ~50 KB page of records);
* ``flow``: the handler with every flow-control feature on, never binding (``bucket_take`` per request,
  ``cache_key`` for coalescing), as ``benches.e2e``'s ``handler_flow``; each request's URL carries its own query
  (``/json?request=<n>``), so coalescing never merges two of them;
* ``cache_hit``: a ``RequestHandler`` over a SQLite cache file filled before counting starts; every counted
  request is a hit (``json_loads`` of the stored payload; no network).

``python -m benches.instructions client --base URL --path PATH --n N`` is the traced client.
``python -m benches.instructions measure --base URL`` runs the whole measure and prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 32
SMALL_N = 200
LARGE_N = 1_200
#: (path name, client path, backend environment)
PATHS = (("raw", "raw", "native"), ("native", "handler", "native"), ("pure", "handler", "pure"))
#: Client paths and the URL each one fetches.
CLIENT_PATHS = ("raw", "handler", "handler50k", "flow", "cache_hit")
#: Distinct ids of the cache-hit client (filled before counting; every counted request hits one of them).
CACHE_ITEMS = 200
#: The kernels each per-kernel workload calls (``AIOREQUESTFUL_TWIN_KERNELS`` names).
KERNEL_WORKLOADS: dict[str, tuple[str, ...]] = {
    "handler": ("json_loads", "DispatchTable", "timer_plan"),
    "handler50k": ("json_loads",),
    "flow": ("bucket_take", "cache_key"),
    "cache_hit": ("json_loads",),
}
#: A kernel each workload never calls, taken from the twin anyway: what the swap itself moves (another module
#: object, another heap layout), the floor each effect on that workload is measured against.
KERNEL_CONTROLS: dict[str, tuple[str, ...]] = {
    "handler": ("bucket_take",),
    "handler50k": ("bucket_take",),
    "flow": ("timer_plan",),
    "cache_hit": ("bucket_take",),
}


def kernel_variants(pure: bool = False) -> tuple[tuple[str, str, str, str], ...]:
    """(variant name, client path, backend, twin kernels): every workload all native, with each of its kernels (and
    its controls) from the twin alone, and with ``pure`` also entirely pure (context; ``make bench`` leaves it out:
    the ``pure`` path of ``measure`` is the handler's)."""
    return tuple(
        variant
        for workload, names in KERNEL_WORKLOADS.items()
        for variant in (
            (f"{workload}:native", workload, "native", ""),
            *(
                (f"{workload}:twin:{name}", workload, "native", name)
                for name in (*names, *KERNEL_CONTROLS.get(workload, ()))
            ),
            *(((f"{workload}:pure", workload, "pure", ""),) if pure else ()),
        )
    )


KERNEL_VARIANTS = kernel_variants()
#: Requests of the two runs of a per-kernel variant (the difference is what one request costs; the counts repeat to
#: within a few hundred thousand instructions a run, so 200 requests of difference resolve about 0.3 % of a request).
KERNEL_N = (60, 260)


# ----------------------------------------------------------------------------------------------------------------
# the traced client
# ----------------------------------------------------------------------------------------------------------------
def wait_for_go() -> None:
    """Tell the driver that set-up is done (``READY <pid>``) and wait until it has switched instrumentation on."""
    print(f"READY {os.getpid()}", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("the driver went away")


async def client(base: str, path: str, n: int, concurrency: int = CONCURRENCY, wait: bool = False) -> int:
    """``n`` GETs of ``base/json`` over ``concurrency`` workers; returns how many decoded to a dict.

    With ``wait``, imports and the session (or handler) are set up first, then ``wait_for_go``: under
    ``--instr-atstart=no`` the start-up runs uninstrumented (five times faster) and is not counted at all.
    """
    import aiohttp
    import orjson

    url = f"{base}/json50k" if path == "handler50k" else f"{base}/json"
    remaining = iter(range(n))
    done = 0
    workdir = None

    if path == "raw":
        session = aiohttp.ClientSession()

        async def fetch() -> Any:
            async with session.get(url) as response:
                if response.status != 200:
                    raise AssertionError(f"status {response.status}")
                return orjson.loads(await response.read())

        closer: Any = session
    elif path == "cache_hit":
        from benches.cache_bench import open_cache
        from benches.e2e import item_url, make_handler

        workdir = tempfile.TemporaryDirectory(prefix="aiorequestful-callgrind-cache-")
        handler = await make_handler(cache=open_cache(Path(workdir.name) / "hits")).__aenter__()
        urls = [item_url(base, i) for i in range(CACHE_ITEMS)]
        for item_url_ in urls:  # the fill: misses, over the network, before counting starts
            await handler.get(item_url_)
        counter = iter(range(10**9))

        async def fetch() -> Any:
            return await handler.get(urls[next(counter) % CACHE_ITEMS])

        closer = None
    else:
        from benches.e2e import make_flow_handler, make_handler

        handler = await (make_flow_handler() if path == "flow" else make_handler()).__aenter__()
        # With coalescing on, concurrent GETs of one URL would share a single request: a query that differs per
        # request keeps every one a request of its own (the server ignores it), as in a crawl.
        numbers = iter(range(10**9))

        async def fetch() -> Any:
            return await handler.get(f"{url}?request={next(numbers)}" if path == "flow" else url)

        closer = None

    if wait:
        wait_for_go()

    async def worker() -> None:
        nonlocal done
        for _ in remaining:
            if type(await fetch()) is dict:
                done += 1

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        if closer is not None:
            await closer.close()
        else:
            await handler.__aexit__(None, None, None)
        if workdir is not None:
            workdir.cleanup()
    if done != n:
        raise AssertionError(f"only {done} of {n} requests returned a JSON object")
    return done


# ----------------------------------------------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------------------------------------------
def valgrind() -> str | None:
    return shutil.which("valgrind")


def _env(backend: str, twin: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("AIOREQUESTFUL_NO_EXTENSIONS", None)
    env.pop("AIOREQUESTFUL_REQUIRE_EXTENSIONS", None)
    env.pop("AIOREQUESTFUL_TWIN_KERNELS", None)
    if twin:
        env["AIOREQUESTFUL_TWIN_KERNELS"] = twin
    if backend == "pure":
        env["AIOREQUESTFUL_NO_EXTENSIONS"] = "1"
    else:
        env["AIOREQUESTFUL_REQUIRE_EXTENSIONS"] = "1"
    # Same hash seed in every run: dict and set layouts (and so the instructions they cost) do not vary.
    env["PYTHONHASHSEED"] = "0"
    return env


def count(base: str, path: str, backend: str, n: int, out_file: Path, twin: str = "") -> int:
    """Instructions of one traced client run from the end of its set-up (callgrind's ``Collected`` figure).

    The client starts uninstrumented (``--instr-atstart=no``); once it reports ready, ``callgrind_control -i on``
    switches instrumentation on and the client is told to go. What is left before and after the requests (the
    first connections, teardown, exit) is the same for every ``n`` and cancels in the difference of two runs.
    """
    cmd = [
        valgrind() or "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_file}",
        sys.executable,
        "-m",
        "benches.instructions",
        "client",
        "--wait",
        "--base",
        base,
        "--path",
        path,
        "--n",
        str(n),
    ]
    with subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=_env(backend, twin),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) == 2 and line[0] == "READY":
            control = shutil.which("callgrind_control") or "callgrind_control"
            subprocess.run([control, "-i", "on", line[1]], capture_output=True, timeout=300, check=True)
            proc.stdin.write("go\n")
            proc.stdin.flush()
        try:
            _out, err = proc.communicate(timeout=1800)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    found = re.search(r"Collected\s*:\s*(\d+)", err)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"callgrind run failed ({' '.join(cmd)}):\n{err[-2000:]}")
    return int(found.group(1))


_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.*\S)\s*$")


def function_costs(out_file: Path) -> collections.Counter[str]:
    """Exclusive instructions by function (``file:function [object]``) from ``callgrind_annotate``."""
    annotate = shutil.which("callgrind_annotate") or "callgrind_annotate"
    text = subprocess.run(
        [annotate, "--threshold=100", "--auto=no", "--inclusive=no", str(out_file)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    costs: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match or "PROGRAM TOTALS" in match.group(2) or match.group(2).startswith("=>"):
            continue
        name = re.sub(r"'\d+", "", match.group(2))  # recursion levels of one function are one function
        costs[name] += int(match.group(1).replace(",", ""))
    return costs


def _short(name: str) -> tuple[str, str]:
    """(function, shared object) of a callgrind_annotate name."""
    obj = ""
    found = re.search(r"\[([^\]]*)\]\s*$", name)
    if found:
        obj = Path(found.group(1)).name
        name = name[: found.start()].strip()
    function = name.rsplit(":", 1)[-1] if ":" in name and not name.startswith("???") else name
    return function, obj


def per_request_profile(small: Path, large: Path, requests: int, top: int = 20) -> dict[str, Any]:
    """Instructions per request by function and by shared object: the difference of two runs."""
    a, b = function_costs(small), function_costs(large)
    diff: collections.Counter[str] = collections.Counter()
    for name in set(a) | set(b):
        diff[name] = (b[name] - a[name]) / requests
    by_object: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[tuple[str, str]] = collections.Counter()
    for name, value in diff.items():
        function, obj = _short(name)
        by_object[obj or "(inlined, no object)"] += value
        functions[(function, obj)] += value
    return {
        "functions": [
            {"function": f, "object": o, "instructions": round(v)} for (f, o), v in functions.most_common(top)
        ],
        "objects": [{"object": o, "instructions": round(v)} for o, v in by_object.most_common(8) if v >= 100],
    }


def measure(
    base: str,
    repeats: int = 2,
    small_n: int = SMALL_N,
    large_n: int = LARGE_N,
    paths: tuple[tuple[str, str, str], ...] = PATHS,
) -> dict[str, Any]:
    """Every path, ``repeats`` times, at ``small_n`` and ``large_n`` requests; two traced clients at a time."""
    if valgrind() is None:
        return {"skipped": "valgrind is not installed (make bench installs it with scripts/valgrind.sh)"}
    results: dict[str, Any] = {"n": [small_n, large_n], "concurrency": CONCURRENCY, "paths": {}}
    with tempfile.TemporaryDirectory(prefix="aiorequestful-callgrind-") as tmp:
        jobs = [
            (name, path, backend, repeat, n)
            for repeat in range(repeats)
            for name, path, backend in paths
            for n in (small_n, large_n)
        ]

        def run(job: tuple[str, str, str, int, int]) -> tuple[tuple[str, str, str, int, int], int, Path]:
            name, path, backend, repeat, n = job
            out = Path(tmp) / f"callgrind.{name}.{repeat}.{n}"
            return job, count(base, path, backend, n, out), out

        totals: dict[tuple[str, int, int], int] = {}
        outputs: dict[tuple[str, int, int], Path] = {}
        with ThreadPoolExecutor(max_workers=2) as pool:
            for (name, _path, _backend, repeat, n), total, out in pool.map(run, jobs):
                totals[(name, repeat, n)] = total
                outputs[(name, repeat, n)] = out
        for name, _path, _backend in paths:
            per_request = [
                (totals[(name, r, large_n)] - totals[(name, r, small_n)]) / (large_n - small_n) for r in range(repeats)
            ]
            profile = per_request_profile(outputs[(name, 0, small_n)], outputs[(name, 0, large_n)], large_n - small_n)
            results["paths"][name] = {
                "per_request": per_request,
                "totals": {str(n): [totals[(name, r, n)] for r in range(repeats)] for n in (small_n, large_n)},
                **profile,
            }
    return results


def measure_kernels(
    base: str,
    small_n: int = KERNEL_N[0],
    large_n: int = KERNEL_N[1],
    variants: tuple[tuple[str, str, str, str], ...] = KERNEL_VARIANTS,
) -> dict[str, Any]:
    """Every per-kernel variant once at ``small_n`` and ``large_n`` requests; two traced clients at a time."""
    if valgrind() is None:
        return {"skipped": "valgrind is not installed (make bench installs it with scripts/valgrind.sh)"}
    results: dict[str, Any] = {"n": [small_n, large_n], "concurrency": CONCURRENCY, "variants": {}}
    with tempfile.TemporaryDirectory(prefix="aiorequestful-callgrind-kernels-") as tmp:
        jobs = [(variant, n) for variant in variants for n in (small_n, large_n)]

        def run(job: tuple[tuple[str, str, str, str], int]) -> tuple[str, int, int]:
            (name, path, backend, twin), n = job
            out = Path(tmp) / f"callgrind.{name.replace(':', '.')}.{n}"
            total = count(base, path, backend, n, out, twin)
            out.unlink(missing_ok=True)
            return name, n, total

        totals: dict[tuple[str, int], int] = {}
        with ThreadPoolExecutor(max_workers=2) as pool:
            for name, n, total in pool.map(run, jobs):
                totals[(name, n)] = total
    for name, path, backend, twin in variants:
        results["variants"][name] = {
            "workload": path,
            "backend": backend,
            "twin": twin,
            # Whether the workload calls the swapped kernel at all (False: a control variant).
            "calls": bool(twin) and twin in KERNEL_WORKLOADS.get(path, ()),
            "per_request": (totals[(name, large_n)] - totals[(name, small_n)]) / (large_n - small_n),
            "totals": {str(n): totals[(name, n)] for n in (small_n, large_n)},
        }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("client", help="the traced client")
    one.add_argument("--base", required=True)
    one.add_argument("--path", choices=CLIENT_PATHS, required=True)
    one.add_argument("--n", type=int, required=True)
    one.add_argument("--wait", action="store_true", help="print READY <pid> after set-up, start on a 'go' line")
    everything = sub.add_parser("measure", help="every path under callgrind; prints JSON")
    everything.add_argument("--base", required=True)
    everything.add_argument("--repeats", type=int, default=2)
    everything.add_argument("--small", type=int, default=SMALL_N)
    everything.add_argument("--large", type=int, default=LARGE_N)
    args = parser.parse_args(argv)
    if not args.base.startswith("http://127.0.0.1:"):
        parser.error("the benches only ever talk to 127.0.0.1")
    if args.command == "client":
        asyncio.run(client(args.base, args.path, args.n, wait=args.wait))
    else:
        json.dump(measure(args.base, args.repeats, args.small, args.large), sys.stdout, indent=1)


if __name__ == "__main__":
    main()
