# SPDX-License-Identifier: MIT
"""The report logic of ``benches.run``: verdicts, plain statements for every miss, run order. No timing."""

from __future__ import annotations

from benches import run


def _kernel_bench(kernel: str, case: str, backend: str, ns: float, p: int = 0) -> dict:
    return {"pass": p, "name": f"test[{backend}-{case}]", "kernel": kernel, "case": case, "backend": backend,
            "median_ns": ns}  # fmt: skip


def test_kernel_slower_than_its_twin_is_reported_plainly() -> None:
    benches = [
        _kernel_bench("dispatch_lookup", "200-miss", "rust", 90.0),
        _kernel_bench("dispatch_lookup", "200-miss", "py", 60.0),
        _kernel_bench("timer_plan", "geometric-count-5", "rust", 300.0, p=0),
        _kernel_bench("timer_plan", "geometric-count-5", "rust", 500.0, p=1),
        _kernel_bench("timer_plan", "geometric-count-5", "py", 4000.0),
    ]
    rows = {r["kernel"]: r for r in run.summarise_kernels(benches)}
    assert rows["dispatch_lookup"]["met"] is False and rows["timer_plan"]["met"] is True
    assert rows["timer_plan"]["rust_ns"] == 300.0  # the lower of the pass medians: load only slows a pass
    summary = {"kernels": list(rows.values()), "json": [], "e2e": [], "cache": [], "memory": []}
    summary["headline"] = run.headline(summary)
    recs = run.recommendations(summary)
    assert len(recs) == 1 and "`dispatch_lookup`" in recs[0] and "Keep this path in Python" in recs[0]
    verdicts = {row["label"].split("`")[1]: row["met"] for row in summary["headline"]}
    assert verdicts == {"dispatch_lookup": False, "timer_plan": True}
    table = run.headline_table(summary["headline"])
    assert "**missed**" in table and "| met |" in table


def test_json_targets_apply_to_every_document_size() -> None:
    benches = []
    for size, nbytes in (("1KB", 1000), ("50KB", 50_000), ("2MB", 2_000_000)):
        for backend, ns in (("rust", 100.0), ("py", 300.0), ("orjson", 80.0), ("stdlib", 300.0)):
            benches.append(
                {
                    "kernel": "json_loads",
                    "case": size,
                    "backend": backend,
                    "median_ns": ns,
                    "correct": True,
                    "bytes": nbytes,
                }
            )
    rows = {r["size"]: r for r in run.summarise_json(benches)}
    assert rows["1KB"]["met_orjson"] is False and rows["1KB"]["met_stdlib"] is True
    assert rows["50KB"]["met_orjson"] is False and rows["50KB"]["met_stdlib"] is True
    assert rows["2MB"]["rust_vs_orjson"] == 0.8 and rows["2MB"]["rust_vs_stdlib"] == 3.0


def test_e2e_ratio_is_the_median_of_per_round_ratios() -> None:
    samples = []
    for r, (raw, handler) in enumerate([(1000, 950), (2000, 1000), (1000, 920)]):
        samples += [
            {"backend": "native", "concurrency": 32, "round": r, "mode": "raw", "rps": raw, "cpu_us": 100},
            {"backend": "native", "concurrency": 32, "round": r, "mode": "handler", "rps": handler, "cpu_us": 120},
        ]
    (row,) = run.summarise_e2e(samples)
    assert row["ratio"] == 0.92 and row["ratio_range"] == [0.5, 0.95] and row["met"] is True
    assert row["flow_ratio"] is None


def test_backends_take_turns_going_first() -> None:
    assert run.interleaved_rounds(3, ["native", "pure"]) == [
        (0, "native"),
        (0, "pure"),
        (1, "pure"),
        (1, "native"),
        (2, "native"),
        (2, "pure"),
    ]


def test_child_environments_pin_the_backend() -> None:
    native, pure = run.backend_env("native"), run.backend_env("pure")
    assert native["AIOREQUESTFUL_REQUIRE_EXTENSIONS"] == "1" and "AIOREQUESTFUL_NO_EXTENSIONS" not in native
    assert pure["AIOREQUESTFUL_NO_EXTENSIONS"] == "1" and "AIOREQUESTFUL_REQUIRE_EXTENSIONS" not in pure


def test_kernel_call_sites_are_found() -> None:
    sites = run.kernel_call_sites()
    assert any(site.startswith("aiorequestful/request.py:") for site in sites["DispatchTable"])
    assert any(site.startswith("aiorequestful/response/payload.py:") for site in sites["json_loads"])


def _counted() -> dict:
    def path(runs: list[float], functions: list[dict]) -> dict:
        return {"per_request": runs, "objects": [{"object": "libpython3.11.so.1.0", "instructions": 300_000}],
                "functions": functions}  # fmt: skip

    top = [{"function": "_PyEval_EvalFrameDefault", "object": "libpython3.11.so.1.0", "instructions": 120_000}]
    return {
        "n": [200, 1200],
        "concurrency": 32,
        "paths": {
            "raw": path([400_000.0, 400_400.0], []),
            "native": path([460_000.0, 460_000.0], top),
            "pure": path([500_000.0, 501_000.0], top),
        },
    }


def test_instruction_counts_are_reported_against_raw() -> None:
    summary = run.summarise_instructions(_counted())
    assert summary is not None
    rows = {row["path"]: row for row in summary["rows"]}
    assert rows["raw"]["per_request"] == 400_200.0 and rows["raw"]["vs_raw"] == 1.0
    assert round(rows["native"]["vs_raw"], 4) == round(460_000 / 400_200, 4)
    assert round(rows["pure"]["spread_pct"], 3) == round(100 * 1000 / 500_500, 3)
    full = {"kernels": [], "json": [], "e2e": [], "cache": [], "memory": [], "instructions": summary}
    (row,) = [r for r in run.summary_rows(full) if "instructions" in r[0]]
    assert row[1] == "1.15x (460.0k)" and row[2] == "1.25x (500.5k)" and "(400.2k)" in row[0]
    section = "\n".join(run.instruction_section(summary))
    assert "I(N=1,200) - I(N=200)" in section and "`_PyEval_EvalFrameDefault`" in section
    assert "| libpython3.11.so.1.0 | 300,000 | 300,000 | 300,000 |" in section


def test_instruction_counts_not_run_say_why() -> None:
    assert run.summarise_instructions(None) is None
    assert "Not measured" in "\n".join(run.instruction_section(None))
    skipped = {"skipped": "valgrind is not installed"}
    assert "valgrind is not installed" in "\n".join(run.instruction_section(run.summarise_instructions(skipped)))


def _recrawl_scenario(mode: str, changed: int, again: tuple[int, int, int, int], outdated: int = 0) -> dict:
    def crawl(number: int, counts: tuple[int, int, int, int], seconds: float, outdated: int) -> dict:
        requests, ok, not_modified, body_bytes = counts
        server = {"requests": requests, "ok": ok, "not_modified": not_modified, "body_bytes": body_bytes}
        hits = 100 - requests if mode == "default_cache" else 0
        return {"crawl": number, "seconds": seconds, "outdated": outdated, "server": server,
                "client": {**server, "cache_hits": hits}}  # fmt: skip

    crawls = [crawl(1, (100, 100, 0, 400_000), 2.0, 0), crawl(2, again, 1.5, outdated)]
    return {"mode": mode, "n": 100, "concurrency": 16, "change_every": 10 if changed else None, "changed": changed,
            "crawls": crawls}  # fmt: skip


def test_http_cache_rows_say_what_the_recrawl_saved() -> None:
    raw = {
        "native": {
            "scenarios": [
                _recrawl_scenario("policy", 0, (100, 0, 100, 0)),
                _recrawl_scenario("policy", 10, (100, 10, 90, 40_000)),
                _recrawl_scenario("default_cache", 10, (0, 0, 0, 0), outdated=10),
            ]
        }
    }
    rows = run.summarise_http_cache(raw)
    assert [(r["mode"], r["changed"], r["changed_pct"]) for r in rows] == [
        ("policy", 0, 0.0),
        ("policy", 10, 10.0),
        ("default_cache", 10, 10.0),
    ]
    assert [r["bytes_saved_pct"] for r in rows] == [100.0, 90.0, 100.0]
    assert [r["requests_saved_pct"] for r in rows] == [0.0, 0.0, 100.0]
    assert rows[2]["outdated"] == 10 and rows[2]["cache_hits"] == 100
    section = "\n".join(run.http_cache_section(rows))
    assert "## 7. HTTP caching" in section and "100 JSON records" in section
    assert (
        "| native | 10 (10%) | SQLite cache + `CachePolicy()` | 100 | 10 / 90 | 40,000 / 400,000 | 90.0% |" in section
    )
    assert "| native | 10 (10%) | SQLite cache, no policy | 0 | 0 / 0 | 0 / 400,000 | 100.0% | 2.00 | 1.50 | 10 |" in (
        section
    )


def test_http_cache_not_run_and_old_results_still_report() -> None:
    assert "Not measured in this run." in "\n".join(run.http_cache_section([]))
    # A latest.json from before this bench existed (no "http_cache" part) still summarises (--report-only).
    summary = run.summarise({"pytest_benchmark": [], "e2e": [], "cache": {}, "memory": {}})
    assert summary["http_cache"] == []
