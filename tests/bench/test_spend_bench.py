"""`python -m bench.spend --quick` runs and reports every figure (no timing thresholds: the
numbers are read, not judged, by tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_spend_bench_reports_every_figure() -> None:
    """Four CPU scenarios with a positive cost each, the ledger start-up of a filled file, the
    burst's share of its cap (never past it) and the cost of a cancelled call."""
    done = subprocess.run([sys.executable, "-m", "bench.spend", "--quick"], cwd=REPO,
                          capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert [s["scenario"] for s in report["cpu_per_request"]] == [
        "no_budgets", "budgets_and_rate_limit", "stream_20_chunks", "image_with_budgets"]
    assert all(s["with_spend_us"] > 0 and s["baseline_us"] > 0
               for s in report["cpu_per_request"])
    ledger = report["ledger"]
    assert ledger["rows_reported"] == ledger["rows"] == 20_000
    assert ledger["startup_ms"] > 0
    assert [b["hold_wait_s"] for b in report["burst"]] == [0.0, 5.0]
    assert all(b["overshoot_nano_usd"] == 0 for b in report["burst"])
    assert report["burst"][1]["cap_used_pct"] >= 80
    cancelled = report["cancelled"]
    assert cancelled["adopted"] == cancelled["calls"] and cancelled["cancelled_call_us"] > 0
