"""`python -m bench --quick` end to end: every target measured, every number present.

No timing thresholds here: performance is judged by reading the benchmark's report, never by
a test (DESIGN.md §4). These tests only prove the harness runs and reports completely.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--driver", "asyncio",
         "--json", str(out / "run.json"), "--results-dir", str(out / "results")],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "run.json").read_text()), out


@pytest.mark.timeout(240)
def test_quick_run_measures_every_target(quick_run: tuple[dict[str, Any], Path]) -> None:
    """Direct, floor and sidecar each get positive RPS, latency percentiles, TTFT and RSS."""
    report, _ = quick_run
    assert set(report["targets"]) == {"direct", "floor", "sidecar"}
    for name, target in report["targets"].items():
        assert _positive(target["rps"]), name
        assert _positive(target["latency_ms"]["p50"]), name
        assert _positive(target["latency_ms"]["p99"]), name
        assert _positive(target["ttft_ms"]["p50"]), name
        assert _positive(target["rss_mb"]), name
        assert _positive(target["rss_peak_mb"]), name


@pytest.mark.timeout(240)
def test_quick_run_times_sidecar_startup(quick_run: tuple[dict[str, Any], Path]) -> None:
    """The sidecar's start-up to /readyz is reported as a median of positive samples."""
    report, _ = quick_run
    sidecar = report["targets"]["sidecar"]
    assert _positive(sidecar["startup_ms"])
    assert sidecar["startup_samples_ms"] and all(map(_positive, sidecar["startup_samples_ms"]))


@pytest.mark.timeout(240)
def test_quick_run_reports_both_ratios(quick_run: tuple[dict[str, Any], Path]) -> None:
    """The summary has the floor ratios, and latest.md shows the table and both lines."""
    report, out = quick_run
    assert _positive(report["summary"]["rps_pct_of_floor"])
    assert isinstance(report["summary"]["p50_minus_floor_ms"], float)
    assert report["settings"]["driver_name"] == "asyncio"
    markdown = (out / "results" / "latest.md").read_text()
    assert "| sidecar |" in markdown and "| floor |" in markdown and "| direct |" in markdown
    assert "% of floor (target" in markdown and "floor p50 =" in markdown
    assert json.loads((out / "results" / "latest.json").read_text()) == report


@pytest.mark.timeout(240)
def test_quick_run_stops_every_process(quick_run: tuple[dict[str, Any], Path]) -> None:
    """No upstream, floor or sidecar the run started outlives it."""
    report, _ = quick_run
    pids = [target["pid"] for target in report["targets"].values()]
    assert len(set(pids)) == 3 and all(map(_positive, pids))
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []
