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
    assert row["ratio"] == 0.92 and row["ratio_range"] == [0.5, 0.95] and row["met"] is False  # target 0.95
    assert row["flow_ratio"] is None


def _e2e_samples(backend: str, concurrency: int, raw: float, handler: float, mode: str = "") -> list[dict]:
    return [
        {"backend": backend, "concurrency": concurrency, "round": 0, "mode": f"{name}{mode}", "rps": rps,
         "cpu_us": 100}
        for name, rps in (("raw", raw), ("handler", handler))
    ]  # fmt: skip


def test_e2e_target_applies_at_concurrency_1_and_32() -> None:
    samples = _e2e_samples("native", 1, 1000, 960) + _e2e_samples("native", 32, 1000, 940)
    samples += _e2e_samples("native", 4, 1000, 500)
    rows = {row["concurrency"]: row for row in run.summarise_e2e(samples)}
    assert (rows[1]["met"], rows[32]["met"], rows[4]["met"]) == (True, False, None)
    table = {r[0]: r for r in run.summary_rows({**_empty_summary(), "e2e": list(rows.values())})}
    assert table["End to end, concurrency 1: RequestHandler / raw aiohttp + orjson"][1:] == (
        "0.96x met",
        "n/a",
        "≥ 0.95x",
    )
    assert table["End to end, concurrency 32: RequestHandler / raw aiohttp + orjson"][1] == "0.94x **missed**"
    assert table["End to end, concurrency 4: RequestHandler / raw aiohttp + orjson"][3] == "-"


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
    # Targets: native <= 1.05x, pure <= 1.15x raw.
    assert row[1] == "1.15x (460.0k) **missed**" and row[2] == "1.25x (500.5k) **missed**" and "(400.2k)" in row[0]
    assert row[3] == "≤ 1.05x native / ≤ 1.15x pure"
    section = "\n".join(run.instruction_section(summary))
    assert "I(N=1,200) - I(N=200)" in section and "`_PyEval_EvalFrameDefault`" in section
    assert "| libpython3.11.so.1.0 | 300,000 | 300,000 | 300,000 |" in section
    assert "| 1.15 | ≤ 1.05x | **missed** |" in section
    recs = run.recommendations({**full, "headline": []})
    assert len(recs) == 2 and "59.8k instructions a request" in recs[0]


def test_instruction_targets_met() -> None:
    counted = _counted()
    counted["paths"]["native"]["per_request"] = [410_000.0, 410_000.0]  # 1.02x
    counted["paths"]["pure"]["per_request"] = [459_000.0, 459_000.0]  # 1.147x
    summary = run.summarise_instructions(counted)
    full = {**_empty_summary(), "instructions": summary}
    (row,) = [r for r in run.summary_rows(full) if "instructions" in r[0]]
    assert row[1] == "1.02x (410.0k) met" and row[2] == "1.15x (459.0k) met"
    verdicts = {r["label"].split("), ")[1].split(":")[0]: r["met"] for r in run.headline(full)}
    assert verdicts == {"native": True, "pure": True}
    assert run.recommendations({**full, "headline": []}) == []


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


def _empty_summary() -> dict:
    return {"kernels": [], "json": [], "e2e": [], "cache": [], "memory": []}


def _cache_result(rps: dict[str, float], writes: bool = True, concurrencies: tuple[int, ...] = (1, 32)) -> dict:
    samples = [{"mode": "cache_fill", "concurrency": 32, "round": 0, "n": 10, "rps": 500.0, "cpu_us": 50.0}]
    for r in range(3):
        for c in concurrencies:
            for mode, value in rps.items():
                # Round 1 is slower across the board: the per-round ratios do not move.
                scale = 0.5 if r == 1 else 1.0
                samples.append({"mode": mode, "concurrency": c, "round": r, "n": 10, "rps": value * scale,
                                "cpu_us": 10.0})  # fmt: skip
    return {
        "backend": {"native": None},
        "samples": samples,
        "checks": {"hit_requests": 60, "leaked_to_network": 0},
        "writes": {"n": 2000, "tasks": 1000, "rps": 9000.0} if writes else None,
    }


def _raw(**parts: object) -> dict:
    return {"pytest_benchmark": [], "e2e": [], "cache": {}, "memory": {}, **parts}


def test_cache_hits_against_the_ceiling_the_original_and_the_other_backend() -> None:
    cache = {
        "native": _cache_result(
            {"network": 1000, "cache_hit": 13_000, "dict_orjson": 90_000, "sqlite_ceiling": 20_000}
        ),
        "pure": _cache_result({"network": 1000, "cache_hit": 9_000, "dict_orjson": 90_000, "sqlite_ceiling": 20_000}),
    }
    original = {"backend": {"native": None}, "samples": [],
                "cache": _cache_result({"cache_hit": 1_200, "sqlite_ceiling": 18_000}, writes=False)}  # fmt: skip
    summary = run.summarise(_raw(cache=cache, original=original))
    rows = {(r["backend"], r["concurrency"]): r for r in summary["cache"]}
    native, pure = rows[("native", 32)], rows[("pure", 32)]
    assert native["hit_vs_ceiling"] == 0.65 and native["met_ceiling"] is True
    assert pure["hit_vs_ceiling"] == 0.45 and pure["met_ceiling"] is False
    assert round(native["hit_vs_original"], 3) == round(13_000 / 1_200, 3) and native["met_original"] is True
    assert pure["hit_vs_original"] == 7.5 and pure["met_original"] is False
    assert rows[("native", 1)]["met_ceiling"] is None and rows[("native", 1)]["met_original"] is None  # c=32 only
    (_, theirs_32) = summary["original"]["cache"]
    assert theirs_32["cache_hit_rps"] == 1_200 and theirs_32["met"] is None and theirs_32["writes_per_s"] is None
    by_c = {r["concurrency"]: r for r in summary["cache_backends"]}
    assert round(by_c[32]["ratio"], 3) == round(13 / 9, 3) and by_c[32]["met"] is True and by_c[1]["met"] is None

    table = {r[0]: r[1:] for r in run.summary_rows(summary)}
    prefix = "Cache hits, concurrency 32: RequestHandler from SQLite / "
    assert table[prefix + "aiorequestful 1.0.20 on the same workload"] == ("10.83x met", "7.50x **missed**", "≥ 10x")
    ceiling = table[prefix + "in-thread sqlite3 SELECT + orjson.loads of the same rows (the ceiling)"]
    assert ceiling == ("0.65x met", "0.45x **missed**", "≥ 0.5x")
    assert table["Cache hits, concurrency 32: throughput, native ÷ pure (each ÷ its ceiling)"] == (
        "1.44x met",
        "",
        "≥ 1.3x",
    )
    assert table["Cache hits, concurrency 1: throughput, native ÷ pure (each ÷ its ceiling)"][2] == "-"
    recs = run.recommendations(summary)
    assert any("7.5x aiorequestful 1.0.20" in r for r in recs)
    assert any("0.45x an in-thread sqlite3 SELECT" in r for r in recs)
    assert not any("Native ÷ pure" in r for r in recs)
    section = "\n".join(run.cache_comparison_section(summary, {}))
    assert "| native | 32 | 13,000 | 20,000 | 0.65x | met | 1,200 | 10.83x | met |" in section
    assert "| original 1.0.20 (CPython 3.12) | 32 | 1,200 | 18,000 | 0.07x | | | | |" in section
    assert "| 32 | 13,000 | 9,000 | 1.44x | 1.44x | ≥ 1.3x | met |" in section

    # Missed the other way: native hardly faster than pure; and no original run at all.
    cache["native"] = _cache_result({"network": 1000, "cache_hit": 10_000, "sqlite_ceiling": 20_000})
    summary = run.summarise(_raw(cache=cache))
    assert [r["met"] for r in summary["cache_backends"] if r["concurrency"] == 32] == [False]
    assert all(r["hit_vs_original"] is None for r in summary["cache"])
    assert not any("1.0.20" in r[0] for r in run.summary_rows(summary))
    assert any("Native ÷ pure on the cache-hit crawl (c=32): 1.11x, short of 1.3x" in r
               for r in run.recommendations(summary))  # fmt: skip
    assert "not run" in "\n".join(run.cache_comparison_section(summary, {}))

    # The native process ran at half speed throughout (its ceiling too): the verdict divides hits ÷ ceiling.
    cache["native"] = _cache_result({"network": 1000, "cache_hit": 7_000, "sqlite_ceiling": 10_000})
    cache["pure"] = _cache_result({"network": 1000, "cache_hit": 9_000, "sqlite_ceiling": 20_000})
    (row,) = [r for r in run.summarise(_raw(cache=cache))["cache_backends"] if r["concurrency"] == 32]
    assert round(row["plain_ratio"], 3) == round(7 / 9, 3) and row["normalised_ratio"] == row["ratio"] == 0.7 / 0.45
    assert row["met"] is True


def test_json50k_native_vs_pure() -> None:
    samples = [{**s, "round": r} for r in range(2) for s in _e2e_samples("native", 32, 800, 600, "_json50k")]
    samples += [{**s, "round": r} for r in range(2) for s in _e2e_samples("pure", 32, 800, 500, "_json50k")]
    summary = run.summarise(_raw(e2e_50k=samples))
    assert [(r["backend"], r["ratio"]) for r in summary["json50k"]] == [("native", 0.75), ("pure", 0.625)]
    assert all(r["met"] is None for r in summary["json50k"])  # handler / raw at 50 KB has no target
    (row,) = summary["json50k_backends"]
    assert row["ratio"] == 1.2 and row["met"] is True
    table = {r[0]: r[1:] for r in run.summary_rows(summary)}
    label = (
        "End to end, 50 KB JSON (`/json50k`), concurrency 32: RequestHandler throughput, native ÷ pure (each ÷ raw "
        "aiohttp + orjson in its process)"
    )
    assert table[label] == ("1.20x met", "", "≥ 1.0x")
    section = "\n".join(run.json50k_section(summary, {"json50k_n": 300, "json50k_rounds": 3, "json50k_blocks": 3}))
    assert (
        "| native | 800 | 600 | 0.75x (0.75-0.75) | 100 / 100 |" in section and "1.20x (target ≥ 1.0x: met)" in section
    )
    faster = [{**s, "rps": s["rps"] * 2} if s["backend"] == "pure" else s for s in samples]
    (row,) = run.summarise(_raw(e2e_50k=faster))["json50k_backends"]
    assert row["plain_ratio"] == 0.6 and row["ratio"] == 1.2 and row["met"] is True  # raw ran twice as fast too
    slower = [{**s, "rps": 750} if s["mode"] == "handler_json50k" else s for s in samples]
    (row,) = run.summarise(_raw(e2e_50k=slower))["json50k_backends"]
    assert row["ratio"] == 1.0 and row["met"] is True
    slower = [{**s, "rps": 800} if s["mode"] == "handler_json50k" and s["backend"] == "pure" else s for s in samples]
    (row,) = run.summarise(_raw(e2e_50k=slower))["json50k_backends"]
    assert row["ratio"] == 0.75 and row["met"] is False
    assert "Not measured" in "\n".join(run.json50k_section(run.summarise(_raw()), {}))


def _variant(workload: str, twin: str, per_request: float, calls: bool = True, backend: str = "native") -> dict:
    return {"workload": workload, "backend": backend, "twin": twin, "calls": calls, "per_request": per_request}


def test_kernel_instructions_price_each_kernel_end_to_end() -> None:
    variants = {
        "handler:native": _variant("handler", "", 400_000.0),
        "handler:twin:json_loads": _variant("handler", "json_loads", 436_000.0),
        "handler:twin:DispatchTable": _variant("handler", "DispatchTable", 404_000.0),
        "handler:twin:timer_plan": _variant("handler", "timer_plan", 398_100.0),
        "handler:twin:bucket_take": _variant("handler", "bucket_take", 398_400.0, calls=False),
        "flow:native": _variant("flow", "", 500_000.0),
        "flow:twin:bucket_take": _variant("flow", "bucket_take", 490_000.0),
        "flow:pure": _variant("flow", "", 560_000.0, backend="pure"),
    }
    summary = run.summarise(_raw(kernel_instructions={"n": [100, 400], "concurrency": 32, "variants": variants}))
    counted = summary["kernel_instructions"]
    assert [(r["kernel"], r["workload"]) for r in counted["rows"]] == [
        ("timer_plan", "handler"),
        ("DispatchTable", "handler"),
        ("bucket_take", "flow"),
        ("json_loads", "handler"),
    ]
    verdicts = {r["kernel"]: r["verdict"] for r in counted["rows"]}
    # On the handler workload the effect is against its control (398.4k); the flow workload has none here.
    assert verdicts == {
        "timer_plan": "moves no end-to-end figure",  # -0.3k
        "DispatchTable": "keeps its boundary: 1.4 % of the request",  # +5.6k
        "bucket_take": "the twin is cheaper by 2.0 % of the request",  # -10k against all native
        "json_loads": "keeps its boundary: 9.4 % of the request",  # +37.6k
    }
    rows = {r["kernel"]: r for r in counted["rows"]}
    assert rows["json_loads"]["delta_native"] == 36_000.0 and rows["json_loads"]["control"] == 398_400.0
    assert rows["bucket_take"]["control"] is None
    (control,) = counted["controls"]
    assert control["kernel"] == "bucket_take" and control["delta"] == -1600.0
    section = "\n".join(run.kernel_instruction_section(counted))
    assert "## 8. What each kernel buys end to end" in section and "Rule for the verdict" in section
    assert (
        "| `json_loads` | `/json` (~2 KB), RequestHandler | 400.0k | 398.4k | 436.0k | +37.6k | +9.44 % | +36.0k | "
        "keeps its boundary: 9.4 % of the request |"
    ) in section
    assert (
        "| `bucket_take` | `/json`, RequestHandler + all flow control (non-binding) | 500.0k | - | 490.0k |" in section
    )
    assert "* `bucket_take` on `/json` (~2 KB), RequestHandler: -1.6k (-0.40 %)" in section
    assert "Not priced in this run: `cache_key`." in section
    assert "+60.0k (+12.00 %)" in section  # the whole twin, for scale
    assert "Not measured" in "\n".join(run.kernel_instruction_section(None))


def test_report_renders_every_new_part(tmp_path) -> None:
    cache = {"native": _cache_result({"network": 1000, "cache_hit": 13_000, "sqlite_ceiling": 20_000}),
             "pure": _cache_result({"network": 1000, "cache_hit": 9_000, "sqlite_ceiling": 20_000})}  # fmt: skip
    original = {"backend": {"native": None}, "samples": _e2e_samples("original", 32, 1000, 600),
                "cache": _cache_result({"cache_hit": 1_200, "sqlite_ceiling": 18_000}, writes=False)}  # fmt: skip
    e2e = _e2e_samples("native", 32, 1000, 960) + _e2e_samples("pure", 32, 1000, 900)
    e2e_50k = _e2e_samples("native", 32, 800, 600, "_json50k") + _e2e_samples("pure", 32, 800, 500, "_json50k")
    variants = {"handler:native": _variant("handler", "", 400_000.0),
                "handler:twin:json_loads": _variant("handler", "json_loads", 436_000.0)}  # fmt: skip
    raw = _raw(cache=cache, original=original, e2e=e2e, e2e_50k=e2e_50k, instructions=_counted(),
               kernel_instructions={"n": [100, 400], "concurrency": 32, "variants": variants})  # fmt: skip
    summary = run.summarise(raw)
    machine = {"cpu": "Test CPU", "logical_cores": 2, "memory_gb": 4, "os": "Linux", "python": "3.11", "aiohttp": "3",
               "orjson": "3", "rustc": None, "git_commit": "abc", "date": "today", "command": "test",
               "load_average_start": [0.1, 0.1, 0.1]}  # fmt: skip
    config = {"e2e_n": 10, "e2e_rounds": 1, "e2e_blocks": 1, "cache_items": 10, "cache_n": 10, "cache_rounds": 3,
              "writes": 2000, "json50k_n": 10, "json50k_rounds": 1, "json50k_blocks": 1}  # fmt: skip
    latest = {"mode": "test", "machine": machine, "config": config, "summary": summary, "raw": raw}
    run.write_report(latest, tmp_path)
    report = (tmp_path / "REPORT.md").read_text()
    for heading in ("### 50 KB JSON crawl (`/json50k`)", "## 8. What each kernel buys end to end",
                    "## 6. Client instructions per request", "Top functions of the handler path, native"):  # fmt: skip
        assert heading in report
    summary_part = report.split("## Summary")[1].split("![ratios]")[0]
    for text in ("aiorequestful 1.0.20 on the same workload | 10.83x met", "(the ceiling) | 0.65x met",
                 "(each ÷ its ceiling) | 1.44x met", "in its process) | 1.20x met", "≤ 1.05x native"):  # fmt: skip
        assert text in summary_part, text
    run.write_chart(latest | {"summary": summary}, tmp_path)
    assert (tmp_path / "ratios.png").read_bytes()[:4] == b"\x89PNG"


def test_a_full_run_puts_its_table_into_the_readme(tmp_path) -> None:
    readme = tmp_path / "README.md"
    before = (
        "# x\n\n## Benchmarks\n\nProse.\n\n**Machine:** old\n\n| Measure | Native |\n|---|---|\n| old | 1 |\n\n"
        "More prose.\n"
    )
    readme.write_text(before + "\n## Next\n\n| other | table |\n")
    machine = {"cpu": "CPU", "logical_cores": 2, "memory_gb": 4, "os": "Linux", "python": "3.11", "aiohttp": "3",
               "orjson": "3", "rustc": None, "git_commit": "abc", "date": "today"}  # fmt: skip
    summary = run.summarise(_raw(e2e=_e2e_samples("native", 32, 1000, 960)))
    assert run.update_readme({"machine": machine, "summary": summary}, readme)
    text = readme.read_text()
    assert f"**Machine:** {run.machine_line(machine)}" in text and "old" not in text
    assert run.summary_table(summary) in text and "Prose.\n" in text and "\nMore prose.\n" in text
    assert text.endswith("\n## Next\n\n| other | table |\n")  # only the Benchmarks section changes
    readme.write_text("# no benchmarks here\n")
    assert not run.update_readme({"machine": machine, "summary": summary}, readme)
