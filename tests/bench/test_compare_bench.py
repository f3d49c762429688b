"""`python -m bench.compare --quick` runs and reports every figure (no timing thresholds: the
numbers are read, not judged, by tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_compare_bench_reports_every_figure() -> None:
    """The stage alone and the whole app, without a rule and with a rule at 0 and 100 %
    (every primary copied at 100, none at 0), and the three-model compare next to the slowest
    model alone (each at least its 200 ms delay)."""
    done = subprocess.run([sys.executable, "-m", "bench.compare", "--quick"], cwd=REPO,
                          capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert set(report["shadow_stage_alone"]) == {"no stage", "percent 0", "percent 100"}
    app = report["shadow_cpu_per_primary"]
    assert app["no rule"]["copies"] == app["percent 0"]["copies"] == 0
    assert app["percent 100"]["copies"] > 0
    assert all(v["cpu_us_per_primary"] > 0 for v in app.values())
    compare = report["compare_three_models"]
    assert compare["compare_wall_p50_ms"] >= 200 and compare["slowest_alone_p50_ms"] >= 200
    assert compare["sum_of_models_ms"] == 350
