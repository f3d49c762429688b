"""`python -m bench --quick --rows core` end to end: every target measured, every number there.

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

from bench.verdicts import MET, MISSED, UNMEASURED

REPO = Path(__file__).resolve().parents[2]


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--rows", "core", "--driver", "asyncio",
         "--json", str(out / "run.json"), "--results-dir", str(out / "results")],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "run.json").read_text()), out


@pytest.mark.timeout(240)
def test_quick_run_measures_every_target(quick_run: tuple[dict[str, Any], Path]) -> None:
    """Direct, floor and the core row each get positive RPS, CPU, latency and RSS."""
    report, _ = quick_run
    assert set(report["targets"]) == {"direct", "floor", "core"}
    for name, target in report["targets"].items():
        assert _positive(target["rps"]), name
        assert _positive(target["cpu_us_per_request"]), name
        assert _positive(target["latency_ms"]["p50"]), name
        assert _positive(target["latency_ms"]["p99"]), name
        assert _positive(target["rss_mb"]), name
        assert _positive(target["requests_served"]), name
    assert _positive(report["targets"]["core"]["vs"]["rps_pct_of_floor"])
    assert isinstance(report["targets"]["core"]["vs"]["added_p50_vs_floor_ms"], float)


@pytest.mark.timeout(240)
def test_quick_run_checks_the_row_and_times_its_startup(
        quick_run: tuple[dict[str, Any], Path]) -> None:
    """The core's stages are recorded, its config kept, its start-up timed over spawns."""
    report, out = quick_run
    core = report["targets"]["core"]
    assert "route" in core["info"]["stages"]
    assert _positive(core["startup_ms"])
    assert core["startup_samples_ms"] and all(map(_positive, core["startup_samples_ms"]))
    assert "backend: 'off'" in (out / "results" / "configs" / "core.yaml").read_text()


@pytest.mark.timeout(240)
def test_quick_run_soaks_the_first_row(quick_run: tuple[dict[str, Any], Path]) -> None:
    """Without `all`, the first row is soaked: RSS samples over requests, and a trend."""
    report, _ = quick_run
    soak = report["targets"]["core"]["soak"]
    assert report["settings"]["soak_rows"] == ["core"]
    assert len(soak["samples"]) >= 3 and _positive(soak["requests"])
    assert isinstance(soak["slope_mb_per_10k_requests"], float)


@pytest.mark.timeout(240)
def test_quick_run_reports_every_target_line(quick_run: tuple[dict[str, Any], Path]) -> None:
    """Every promise gets a verdict (those of rows not run: not measured) and latest.md has
    the lines and the tables."""
    report, out = quick_run
    statuses = {v["target"]: v["status"] for v in report["verdicts"]}
    assert len(statuses) == 12
    assert statuses["`all`: RPS \u2265 70 % of the floor's"] == UNMEASURED
    assert statuses["`core` (issue 6): RPS \u2265 75 % of the floor's"] in (MET, MISSED)
    markdown = (out / "results" / "latest.md").read_text()
    assert "## Targets" in markdown and "## JSON chats" in markdown
    assert "| core |" in markdown and "| floor |" in markdown and "| direct |" in markdown
    assert json.loads((out / "results" / "latest.json").read_text()) == report


@pytest.mark.timeout(240)
def test_quick_run_stops_every_process(quick_run: tuple[dict[str, Any], Path]) -> None:
    """No upstream, floor or sidecar the run started outlives it."""
    report, _ = quick_run
    pids = [target["pid"] for target in report["targets"].values()]
    assert len(set(pids)) == 3 and all(map(_positive, pids))
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []
