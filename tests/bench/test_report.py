"""The report: ratios against references of the same kind, the targets' verdicts, the tables
and the files, from fixed data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.profile import top_functions
from bench.report import BenchReport, TargetResult
from bench.table import render_markdown, write
from bench.verdicts import MET, MISSED, UNMEASURED, verdicts

MACHINE = {"cpu_model": "Test CPU", "cores": 2, "usable_cores": 2, "kernel": "6.1",
           "python": "3.11.7", "aiohttp": "3.14.5", "uvloop": "0.23.0", "sidecar": "0.1.0",
           "commit": "abc1234", "memory_gb": 8.0}
SETTINGS = {"driver": "wrk 4.1.0", "concurrency": 32, "duration_s": 10.0, "warmup_s": 2.0,
            "rounds": 3, "rate": 100.0, "latency_duration_s": 30.0, "chunks": 20,
            "pacing_ms": 10.0, "pinning": "process under test on CPU 0", "startup_spawns": 5,
            "sidecar_log": "access log on", "configs": "bench/results/configs", "soak_s": 60.0,
            "soak_rows": ["all"], "rss_requests": 20_000, "otlp": "rotel, OTLP/grpc",
            "peers": {"litellm": "1.0"}}


def result(name: str, rps: float, p50: float, p99: float, cpu_us: float, *,
           kind: str = "json", role: str = "row", ttft: float | None = None,
           coalesced: int | None = None, startup: float | None = None,
           soak: dict[str, Any] | None = None, served: int = 30_000,
           stages: list[str] | None = None) -> TargetResult:
    stream = kind == "stream"
    return TargetResult(
        name=name, kind=kind, role=role, process=name.removesuffix("-stream"),
        url=f"http://{name}/v1/chat/completions", rps=rps, requests=int(rps * 10), non_2xx=0,
        errors=0, cpu_pct=99.0, cpu_us_per_request=cpu_us, load_side_cpu_pct=40.0,
        latency_ms={"p50": p50, "p99": p99}, latency_errors=0, send_lag_ms={"p99": 0.1},
        ttft_ms={"p50": ttft, "p99": ttft + 1} if ttft is not None else {},
        gap_ms={"p50": 10.1, "p99": 11.0} if stream else {},
        stream_events=4000 if stream else None, coalesced=coalesced if stream else None,
        rss_mb=55.0, rss_peak_mb=56.0, requests_served=served, soak=soak,
        pid=hash(name.removesuffix("-stream")) % 100_000, startup_ms=startup,
        startup_samples_ms=[startup] if startup else [], rps_rounds=[rps * 0.95, rps, rps * 1.05],
        info={"stages": stages} if stages else {})


SOAK = {"seconds": 60.0, "requests": 90_000, "served_before": 40_000, "rss_requests": 20_000,
        "rss_mb_at_requests": 54.0, "rss_sampled_after_requests": 40_100,
        "slope_mb_per_10k_requests": 0.01, "samples": []}


def sample(all_rps: float = 3000.0, all_p50: float = 1.8, hit_rps: float = 7000.0,
           stream_coalesced: int = 0, all_soak: dict[str, Any] | None = None) -> BenchReport:
    return BenchReport("2026-01-01 00:00 UTC", MACHINE, SETTINGS, [
        result("direct", 10000.0, 1.0, 2.0, 40.0, role="direct"),
        result("floor", 4000.0, 1.4, 3.0, 150.0, role="floor", startup=160.0),
        result("core", 3600.0, 1.6, 3.2, 170.0, startup=300.0, stages=["read_body", "route"]),
        result("all", all_rps, all_p50, 3.9, 200.0, startup=450.0,
               soak=SOAK if all_soak is None else all_soak),
        result("hit", hit_rps, 1.1, 2.0, 90.0, startup=450.0),
        result("direct-stream", 160.0, 196.0, 200.0, 650.0, kind="stream", role="direct",
               ttft=1.0, coalesced=0),
        result("floor-stream", 150.0, 196.5, 201.0, 900.0, kind="stream", role="floor",
               ttft=1.5, coalesced=0),
        result("stream", 148.0, 197.0, 202.0, 1000.0, kind="stream", ttft=2.2,
               coalesced=stream_coalesced, startup=460.0),
    ])


def _vs(report: BenchReport, name: str) -> dict[str, Any]:
    target = report.target(name)
    assert target is not None
    return report.compare(target)


def test_rows_compare_with_references_of_their_own_kind() -> None:
    """A JSON row is compared with the JSON floor, a stream row with the streaming floor."""
    report = sample()
    all_vs = _vs(report, "all")
    assert all_vs["rps_pct_of_floor"] == pytest.approx(75.0)
    assert all_vs["cpu_x_floor"] == pytest.approx(200 / 150)
    assert all_vs["cpu_us_over_core"] == pytest.approx(30.0)
    assert all_vs["added_p50_vs_floor_ms"] == pytest.approx(0.4)
    assert all_vs["added_p99_vs_direct_ms"] == pytest.approx(1.9)
    stream_vs = _vs(report, "stream")
    assert stream_vs["rps_pct_of_floor"] == pytest.approx(148 / 150 * 100)
    assert stream_vs["ttft_p50_vs_floor_ms"] == pytest.approx(0.7)
    assert stream_vs["ttft_p50_vs_direct_ms"] == pytest.approx(1.2)
    assert stream_vs["cpu_us_over_core"] is None  # the core is not measured with streams
    floor_vs = _vs(report, "floor")
    assert floor_vs["added_p50_vs_direct_ms"] == pytest.approx(0.4)
    assert floor_vs["added_p50_vs_floor_ms"] is None and floor_vs["cpu_us_over_core"] is None


def test_verdicts_follow_the_issue_targets() -> None:
    """Every target of the issue gets a line; they pass or fail on the numbers."""
    good = {v.target: v.status for v in verdicts(sample())}
    assert len(good) == 12
    assert all(status == MET for status in good.values()), good
    bad = {v.target: v.status for v in verdicts(sample(
        all_rps=2000.0, all_p50=2.5, hit_rps=5000.0, stream_coalesced=400,
        all_soak={**SOAK, "slope_mb_per_10k_requests": 1.0, "rss_mb_at_requests": 120.0}))}
    assert [t for t, s in bad.items() if s == MISSED] == [
        "`all`: RPS \u2265 70 % of the floor's",
        "`all` at 100 req/s: p50 within 0.5 ms of the floor's",
        "`hit`: RPS \u2265 1.5 \u00d7 the floor's",
        "`stream`: no coalescing of chunks (beyond what the floor and the direct call show)",
        "`all`: RSS \u2264 100 MB after 20,000 requests",
        "`all`: no upward RSS trend in the soak"]


def test_missing_rows_are_not_measured_rather_than_passed() -> None:
    """Without the rows a target names, its line says `not measured`."""
    report = sample()
    report.targets = [t for t in report.targets if t.name in ("direct", "floor", "core")]
    statuses = {v.target: v.status for v in verdicts(report)}
    assert statuses["`all`: RPS \u2265 70 % of the floor's"] == UNMEASURED
    assert statuses["`stream`: no coalescing of chunks (beyond what the floor and the direct "
                    "call show)"] == UNMEASURED
    assert statuses["`core` (issue 6): RPS \u2265 75 % of the floor's"] == MET


def _table(text: str, heading: str) -> list[list[str]]:
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return [[cell.strip() for cell in line.split("|")[1:-1]]
            for line in section.splitlines() if line.startswith("| ")][1:]


def test_markdown_has_targets_then_three_tables() -> None:
    """Targets first, then the JSON, stream and process tables with the ratio columns."""
    text = render_markdown(sample())
    assert text.index("## Targets") < text.index("## JSON chats") < text.index("## Streams") \
        < text.index("## Processes")
    assert "- `all`: RPS \u2265 70 % of the floor's: met (3000 vs 4000 req/s = 75.0 %" in text
    chats = _table(text, "## JSON chats")
    assert [row[0] for row in chats] == ["direct", "floor", "core", "all", "hit"]
    all_row = chats[3]
    assert all_row[1] == "3000 \u00b15 %" and all_row[2] == "75 %"
    assert all_row[4] == "1.33 \u00d7" and all_row[5] == "+30"
    assert all_row[11] == "+0.40"  # p50 over the floor
    streams = _table(text, "## Streams")
    assert [row[0] for row in streams] == ["direct-stream", "floor-stream", "stream"]
    assert streams[2][8] == "+0.70" and streams[2][13] == "0 / 4000"
    processes = _table(text, "## Processes")
    assert [row[0] for row in processes] == ["direct", "floor", "core", "all", "hit", "stream"]
    assert processes[3][4] == "54.0" and processes[3][5] == "+0.010"
    assert processes[2][7] == "read_body \u2192 route"
    assert "Test CPU, 2 cores" in text and "litellm 1.0" in text


def test_coalescing_is_judged_against_the_noise_the_references_show() -> None:
    """Merged events within what the floor shows (plus 0.5 % of events) pass; more do not."""
    def status(stream: int, floor: int) -> str:
        report = sample(stream_coalesced=stream)
        reference = report.target("floor-stream")
        assert reference is not None
        reference.coalesced = floor
        return {v.target: v.status for v in verdicts(report)}[
            "`stream`: no coalescing of chunks (beyond what the floor and the direct call "
            "show)"]
    assert status(60, 50) == MET  # 1.5 % vs the floor's 1.25 % + 0.5 %
    assert status(90, 50) == MISSED
    assert status(20, 0) == MET and status(21, 0) == MISSED


def test_write_saves_latest_and_the_requested_json(tmp_path: Path) -> None:
    """latest.md, latest.json and --json PATH are written; targets keyed by name with ratios."""
    write(sample(), tmp_path / "results", tmp_path / "out" / "run.json")
    data = json.loads((tmp_path / "out" / "run.json").read_text())
    assert (tmp_path / "results" / "latest.json").read_text() == \
        (tmp_path / "out" / "run.json").read_text()
    assert (tmp_path / "results" / "latest.md").read_text().startswith("# llm-sidecar benchmark")
    assert data["schema"] == 2
    assert data["targets"]["all"]["vs"]["rps_pct_of_floor"] == pytest.approx(75.0)
    assert data["targets"]["direct"]["vs"]["added_p50_vs_direct_ms"] is None
    assert len(data["verdicts"]) == 12 and data["verdicts"][0]["status"] == MET


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
    report = sample()
    report.profiles = {"all": found}
    section = render_markdown(report)
    assert "### Where all spends its CPU under load (py-spy, 10 samples" in section
    assert "| 60.0 | `parse (body.py)` |  | 90.0 | `handle (handler.py)` |" in section
