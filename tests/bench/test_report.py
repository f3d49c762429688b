"""The report: the table, the added-latency columns and the two target lines, from fixed data."""

from __future__ import annotations

import json
from pathlib import Path

from bench.profile import top_functions
from bench.report import BenchReport, TargetResult, render_markdown, write

MACHINE = {"cpu_model": "Test CPU", "cores": 2, "usable_cores": 2, "kernel": "6.1",
           "python": "3.11.7", "aiohttp": "3.14.5", "uvloop": "0.23.0", "sidecar": "0.1.0",
           "commit": "abc1234"}
SETTINGS = {"driver": "wrk 4.1.0", "concurrency": 32, "duration_s": 15.0, "warmup_s": 3.0,
            "rounds": 3,
            "rate": 100.0, "latency_duration_s": 15.0, "ttft_requests": 40, "chunks": 20,
            "pacing_ms": 10.0, "pinning": "process under test on CPU 0", "startup_spawns": 5,
            "sidecar_log": "access log on", "sidecar_config": None}


def result(name: str, rps: float, p50: float, p99: float, cpu_us: float,
           startup: float | None = None) -> TargetResult:
    return TargetResult(
        name=name, url=f"http://{name}/v1/chat/completions", rps=rps, requests=int(rps * 15),
        non_2xx=0, errors=0, cpu_pct=99.0, cpu_us_per_request=cpu_us, load_side_cpu_pct=40.0,
        latency_ms={"p50": p50, "p99": p99}, latency_errors=0, send_lag_ms={"p99": 0.1},
        ttft_ms={"p50": p50 + 0.1}, stream_ms={"p50": 190.0}, ttft_errors=0, rss_mb=40.0,
        rss_peak_mb=41.0, startup_ms=startup, startup_samples_ms=[startup] if startup else [],
        rps_rounds=[rps * 0.95, rps, rps * 1.05])


def sample(sidecar_rps: float = 3000.0, sidecar_p50: float = 1.5) -> BenchReport:
    return BenchReport("2026-01-01 00:00 UTC", MACHINE, SETTINGS, [
        result("direct", 10000.0, 1.0, 2.0, 90.0),
        result("floor", 4000.0, 1.4, 3.0, 250.0, startup=320.0),
        result("sidecar", sidecar_rps, sidecar_p50, 3.5, 330.0, startup=500.0),
    ])


def test_summary_compares_the_sidecar_with_the_floor() -> None:
    """RPS share and p50 gap are computed against the floor and checked against the targets."""
    summary = sample().summary()
    assert summary["rps_pct_of_floor"] == 75.0 and summary["rps_met"]
    assert round(summary["p50_minus_floor_ms"], 6) == 0.1 and summary["p50_met"]
    missed = sample(sidecar_rps=2000.0, sidecar_p50=2.0).summary()
    assert not missed["rps_met"] and not missed["p50_met"]


def test_markdown_has_the_table_and_both_target_lines() -> None:
    """The table has one row per target with added latency vs direct, then the two lines."""
    report = sample()
    text = render_markdown(report)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == ["direct", "floor", "sidecar"]
    assert "| +0.40 | +1.00 |" in rows[2]  # floor: added p50 and p99 vs direct
    assert "| 4000 \u00b15 % |" in rows[2]  # RPS with its spread across rounds
    assert "| \u2014 | \u2014 |" in rows[1]  # direct adds nothing to itself
    assert "sidecar RPS = 75.0 % of floor (target \u2265 75 %): met" in text
    assert "sidecar p50 \u2212 floor p50 = 0.10 ms (target \u2264 0.3 ms): met" in text
    assert "Test CPU, 2 cores" in text and "wrk 4.1.0" in text


def test_write_saves_latest_and_the_requested_json(tmp_path: Path) -> None:
    """latest.md, latest.json and --json PATH are written; the JSON keys targets by name."""
    write(sample(), tmp_path / "results", tmp_path / "out" / "run.json")
    data = json.loads((tmp_path / "out" / "run.json").read_text())
    assert (tmp_path / "results" / "latest.json").read_text() == \
        (tmp_path / "out" / "run.json").read_text()
    assert (tmp_path / "results" / "latest.md").read_text().startswith("# llm-sidecar benchmark")
    assert data["schema"] == 1
    assert data["targets"]["sidecar"]["added_ms"]["p50"] == 0.5
    assert data["targets"]["direct"]["added_ms"] == {"p50": None, "p99": None}


def test_profile_summary_ranks_self_and_inclusive_time() -> None:
    """Collapsed py-spy stacks become self and inclusive shares, minus always-present frames."""
    collapsed = ("main (cli.py:1);handle (handler.py:10);parse (body.py:3) 6\n"
                 "main (cli.py:1);handle (handler.py:12);log (access.py:7) 3\n"
                 "main (cli.py:1);loop (runners.py:118) 1\n")
    found = top_functions(collapsed)
    assert found["samples"] == 10
    assert found["self"][0] == {"function": "parse (body.py)", "pct": 60.0}
    assert found["inclusive"][0] == {"function": "handle (handler.py)", "pct": 90.0}
    assert "main (cli.py)" not in [entry["function"] for entry in found["inclusive"]]
    section = render_markdown(BenchReport(
        "t", MACHINE, SETTINGS, sample().targets, profiles={"sidecar": found}))
    assert "### Where sidecar spends its CPU under load (py-spy, 10 samples" in section
    assert "| 60.0 | `parse (body.py)` |  | 90.0 | `handle (handler.py)` |" in section
