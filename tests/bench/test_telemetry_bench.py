"""`python -m bench.telemetry` end to end: every mode measured, the exports all delivered (it
refuses to report a figure made cheap by dropped spans). No timing thresholds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_telemetry_bench_measures_every_mode() -> None:
    """A short run prints one row per mode with positive CPU figures."""
    done = subprocess.run([sys.executable, "-m", "bench.telemetry", "--requests", "300"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = re.findall(r"^\| ([^|]+) \| ([\d.]+) \| ([\d.]+) \|", done.stdout, re.MULTILINE)
    assert [name.strip() for name, _, _ in rows] == [
        "off (no telemetry stage)", "metrics only (Prometheus)",
        "traces + metrics, 1 gRPC exporter", "traces + metrics, gRPC uncompressed",
        "traces + metrics, gRPC + HTTP exporters", "traces sampled at 10 %, gRPC"]
    assert all(float(cpu) > 0 for _, _, cpu in rows)
