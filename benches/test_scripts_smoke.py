# SPDX-License-Identifier: MIT
"""The end-to-end, cache, HTTP caching, memory and report scripts at "smoke" size, so they cannot rot between
``make bench`` runs.

Each runs the same code ``benches.run`` runs, against the same out-of-process loopback server, with a handful of
requests. Only correctness is asserted (results decoded, hits served from the cache, files written), never timing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from benches import cache_bench, e2e, http_cache_bench, instructions, memory, run
from benches._data import item_body, json_body
from benches.server import POOL, REVALIDATING_BODY_SIZE, revalidating_body, running_server


@pytest.fixture(scope="module")
def bench_server() -> Iterator[str]:
    with running_server() as base:
        yield base


def test_server_serves_the_bench_items(bench_server: str) -> None:
    import urllib.request

    assert bench_server.startswith("http://127.0.0.1:")
    for item in (0, 7, POOL + 7):
        with urllib.request.urlopen(e2e.item_url(bench_server, item), timeout=10) as response:
            assert response.read() == item_body(item % POOL)
    assert cache_bench.server_hits(bench_server) >= 3


def test_server_serves_the_fixed_json_body(bench_server: str) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{bench_server}/json", timeout=10) as response:
        assert response.read() == json_body()
    assert 1_900 <= len(json_body()) <= 2_300


async def test_instruction_client_decodes_every_request(bench_server: str) -> None:
    for path in ("raw", "handler", "flow"):  # flow: a query per request, so coalescing merges none of them
        assert await instructions.client(bench_server, path, n=40, concurrency=8) == 40


@pytest.mark.skipif(instructions.valgrind() is None, reason="valgrind is not installed (scripts/valgrind.sh install)")
def test_callgrind_counts_smoke(bench_server: str) -> None:
    # The traced client, the ready/go hand-over and the per-request difference, at a handful of requests.
    result = instructions.measure(bench_server, repeats=1, small_n=4, large_n=12, paths=(("raw", "raw", "native"),))
    (runs,) = [result["paths"]["raw"]["per_request"]]
    assert len(runs) == 1 and runs[0] > 10_000  # a request costs far more than ten thousand instructions
    totals = result["paths"]["raw"]["totals"]
    assert totals["12"][0] > totals["4"][0]
    assert result["paths"]["raw"]["objects"] and result["paths"]["raw"]["functions"]


async def test_e2e_throughput_smoke(bench_server: str) -> None:
    result = await e2e.throughput(bench_server, n=20, concurrencies=[1, 4], rounds=2, warmup=8)
    samples = result["samples"]
    modes = ("raw", "handler", "handler_flow")
    assert result["modes"] == list(modes)
    assert {(s["mode"], s["concurrency"]) for s in samples} == {(m, c) for m in modes for c in (1, 4)}
    assert all(s["n"] == 20 and s["rps"] > 0 and s["cpu_us"] >= 0 for s in samples)
    # The order of the modes rotates every round (so none always runs first).
    firsts = [next(s["mode"] for s in samples if s["round"] == r) for r in (0, 1)]
    assert firsts == ["raw", "handler"]
    for mode in ("handler", "handler_flow"):
        stats = result["handler_stats"][mode]
        assert (
            stats["failures"] == 0 and stats["retries"] == 0 and stats["calls"] == 2 * 2 * 20 + 8 + 25
        )  # timed + warm-up + verified
    assert result["backend"]["kernels"].startswith("aiorequestful._native")


async def test_e2e_json50k_modes_smoke(bench_server: str) -> None:
    # The 50 KB crawl of benches.run: both modes fetch /json50k whatever the id, and are checked against it.
    modes = ["raw_json50k", "handler_json50k"]
    result = await e2e.throughput(bench_server, n=6, concurrencies=[4], rounds=1, warmup=2, modes=modes)
    assert result["modes"] == modes
    assert [(s["mode"], s["n"]) for s in result["samples"]] == [(m, 6) for m in modes]
    assert result["handler_stats"]["handler_json50k"]["calls"] == 6 + 2 + 1  # timed + warm-up + verified


async def test_cache_bench_as_the_original_runs_it(bench_server: str, tmp_path: Path) -> None:
    # benches.run starts the cache bench in the 1.0.20 venv this way: hits and the ceiling only, no writes.
    result = await cache_bench.cache_throughput(
        bench_server, n=10, items=5, concurrencies=[4], rounds=1, writes=0, workdir=tmp_path,
        modes=["cache_hit", "sqlite_ceiling"],
    )  # fmt: skip
    assert {s["mode"] for s in result["samples"]} == {"cache_fill", "cache_hit", "sqlite_ceiling"}
    assert result["writes"] is None and result["checks"]["leaked_to_network"] == 0
    (row,) = run.summarise_cache({"original": result})
    assert row["hit_vs_ceiling"] is not None and row["network_rps"] is None and row["writes_per_s"] is None


async def test_cache_bench_smoke(bench_server: str, tmp_path: Path) -> None:
    result = await cache_bench.cache_throughput(
        bench_server, n=24, items=12, concurrencies=[1, 4], rounds=1, writes=300, workdir=tmp_path
    )
    modes = {s["mode"] for s in result["samples"]}
    assert modes == {"cache_fill", "network", "cache_hit", "dict_orjson", "sqlite_ceiling"}
    checks = result["checks"]
    assert checks["cache_hits"] == checks["hit_requests"] == 2 * 24 and checks["cache_misses"] == 0
    assert checks["leaked_to_network"] == 0  # every hit was served without touching the server
    writes = result["writes"]
    assert writes["rows"] == writes["n"] == 300 and writes["tasks"] == cache_bench.WRITE_TASKS


def _fetch(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:  # urllib raises for 304 and 400
        with error:
            return error.code, dict(error.headers), error.read()


def test_revalidating_origin_answers_304_and_counts_what_it_sends(bench_server: str) -> None:
    origin = f"{bench_server}/revalidating/origin-test-{id(bench_server)}"
    status, headers, body = _fetch(f"{origin}/items/7")
    assert status == 200 and body == revalidating_body(7, 0) and json.loads(body)["version"] == 0
    assert headers["Cache-Control"] == "max-age=0" and headers["ETag"] == '"7.0"'
    assert REVALIDATING_BODY_SIZE - 100 <= len(body) <= REVALIDATING_BODY_SIZE
    assert _fetch(f"{origin}/items/7", {"If-None-Match": '"7.0"'})[::2] == (304, b"")
    assert _fetch(f"{origin}/items/7", {"If-None-Match": 'W/"7.0", "x"'})[0] == 304  # the weak comparison
    assert _fetch(f"{origin}/items/7", {"If-None-Match": '"7.9"'})[0] == 200
    assert _fetch(f"{origin}/change?every=7", method="POST")[0] == 200
    status, headers, body = _fetch(f"{origin}/items/7", {"If-None-Match": '"7.0"'})  # changed: a full answer
    assert status == 200 and headers["ETag"] == '"7.1"' and json.loads(body)["version"] == 1
    assert _fetch(f"{origin}/items/8", {"If-None-Match": '"8.0"'})[0] == 304  # 8 is not a multiple of 7
    stats = json.loads(_fetch(f"{origin}/stats")[2])
    sent = 2 * len(revalidating_body(7, 0)) + len(revalidating_body(7, 1))
    assert stats == {"requests": 6, "ok": 3, "not_modified": 3, "conditional": 5, "body_bytes": sent}
    # Another run name is another origin: nothing changed there and nothing was counted.
    assert json.loads(_fetch(f"{origin}-other/stats")[2])["requests"] == 0
    assert _fetch(f"{bench_server}/revalidating/bad%20name/stats")[0] == 400
    assert _fetch(f"{origin}/change?every=0", method="POST")[0] == 400


async def test_http_cache_recrawl_smoke(bench_server: str, tmp_path: Path) -> None:
    n = 30
    result = await http_cache_bench.recrawl(bench_server, n=n, concurrency=4, change_every=10, workdir=tmp_path)
    assert result["backend"]["kernels"].startswith("aiorequestful._native")
    by = {(s["mode"], s["changed"]): s for s in result["scenarios"]}
    assert set(by) == {(mode, changed) for mode in http_cache_bench.MODES for changed in (0, 3)}
    first_bytes = sum(len(revalidating_body(i, 0)) for i in range(n))
    changed_bytes = sum(len(revalidating_body(i, 1)) for i in range(0, n, 10))
    new_bytes = first_bytes - sum(len(revalidating_body(i, 0)) for i in range(0, n, 10)) + changed_bytes
    for scenario in result["scenarios"]:
        for crawl in scenario["crawls"]:
            # The server's counters and the handler's stats agree on every count, in every crawl.
            server, client = crawl["server"], crawl["client"]
            assert {name: client[name] for name in ("requests", "ok", "not_modified", "body_bytes")} == {
                name: server[name] for name in ("requests", "ok", "not_modified", "body_bytes")
            }
        first = scenario["crawls"][0]["server"]
        assert (first["requests"], first["ok"], first["body_bytes"]) == (n, n, first_bytes)

    def again(mode: str, changed: int) -> tuple[int, int, int, int, int]:
        crawl = by[(mode, changed)]["crawls"][1]
        served = crawl["server"]
        return served["requests"], served["ok"], served["not_modified"], served["body_bytes"], crawl["outdated"]

    assert again("policy", 0) == (n, 0, n, 0, 0)  # every stored response confirmed by a bodiless 304
    assert again("policy", 3) == (n, 3, n - 3, changed_bytes, 0)  # only the changed ones sent again
    assert again("default_cache", 0) == (0, 0, 0, 0, 0)  # served without asking the server ...
    assert again("default_cache", 3) == (0, 0, 0, 0, 3)  # ... so the changed ones come back as they were
    assert again("no_cache", 0) == (n, n, 0, first_bytes, 0)
    assert again("no_cache", 3) == (n, n, 0, new_bytes, 0)
    assert by[("default_cache", 3)]["crawls"][1]["client"]["cache_hits"] == n
    assert by[("policy", 0)]["crawls"][1]["server"]["conditional"] == n


def test_http_cache_disagreement_is_named() -> None:
    server = {"requests": 5, "ok": 1, "not_modified": 4, "body_bytes": 4000}
    client = {**server, "failures": 0, "retries": 0}
    assert http_cache_bench.disagreements(server, client) == []
    wrong = http_cache_bench.disagreements(server, {**client, "body_bytes": 0, "retries": 1})
    assert wrong == ["body_bytes: server 4000, handler 0", "the handler had 0 failures and 1 retries"]


async def test_memory_crawl_smoke(bench_server: str, tmp_path: Path) -> None:
    result = await memory.crawl(bench_server, n=300, concurrency=8, workdir=tmp_path)
    assert result["cache_misses"] + result["cache_hits"] == 300
    assert result["cache_misses"] >= 150 and result["cache_hits"] >= 100  # repeats are mostly hits
    assert len(result["samples"]) == 101 and result["samples"][-1]["requests"] == 300
    assert result["flatness"]["warm_rss"] > 0 and isinstance(result["flatness"]["flat"], bool)


def test_flatness_verdicts() -> None:
    mb = 2**20
    flat = [{"requests": i * 1000, "rss": 60 * mb + (i % 3) * 4096} for i in range(101)]
    assert memory.flatness(flat)["flat"]
    leaking = [{"requests": i * 1000, "rss": 60 * mb + i * 200 * 1000} for i in range(101)]  # 200 B/request
    verdict = memory.flatness(leaking)
    assert not verdict["flat"] and verdict["slope_bytes_per_10k"] == pytest.approx(2_000_000, rel=1e-6)
    # the memory tier filling (a bounded cache) from the middle of the crawl on is warm-up, not growth ...
    filling = [
        {"requests": i * 1000, "rss": 60 * mb + min(max(i - 50, 0), 10) * mb, "tier": min(max(i - 50, 0), 10) * 400}
        for i in range(101)
    ]
    verdict = memory.flatness(filling)
    assert verdict["flat"] and verdict["judged_from"] == 60_000 and verdict["tier_entries"] == 4000
    # ... but growth once it is full is growth
    leaking_after = [{**sample, "rss": sample["rss"] + max(sample["requests"] - 60_000, 0) * 300} for sample in filling]
    assert not memory.flatness(leaking_after)["flat"]


@pytest.mark.slow
def test_run_smoke_writes_the_report(tmp_path: Path) -> None:
    from benches import run

    run.main(["--smoke", "--out-dir", str(tmp_path)])
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["mode"] == "smoke"
    report = (tmp_path / "REPORT.md").read_text()
    assert "| Measure |" in report and latest["machine"]["cpu"] in report
    assert (tmp_path / "ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Every headline row came from this run's numbers.
    assert latest["headline"] and all(row["value"] is not None for row in latest["headline"])
    assert "## 7. HTTP caching: re-crawl of a revalidating server" in report
    assert "### 50 KB JSON crawl (`/json50k`)" in report and "Hits ÷ ceiling" in report
    assert {row["backend"] for row in latest["summary"]["json50k"]} == {"native", "pure"}
    assert latest["summary"]["json50k_backends"][0]["ratio"] > 0
    assert {row["mode"] for row in latest["summary"]["http_cache"]} == set(http_cache_bench.MODES)
