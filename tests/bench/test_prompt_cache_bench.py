"""`python -m bench.prompt_cache` runs and reports every figure, and its conversation shows
what the feature is for (no timing thresholds: the µs are read, not judged, by tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_prompt_cache_bench_reports_every_figure() -> None:
    """Five CPU figures and four conversation rows; injected breakpoints cost less input than
    none, and a sticky pool less than a pool drawn by weight."""
    done = subprocess.run([sys.executable, "-m", "bench.prompt_cache", "--loops", "20",
                           "--rounds", "1", "--conversations", "1", "--turns", "6"],
                          cwd=REPO, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines()
            if line.startswith("| ") and "---" not in line]
    cpu = [r for r in rows if len(r) == 2][1:]
    assert len(cpu) == 5 and all(float(micros) > 0 for _, micros in cpu)
    runs = {label.strip(): float(cost) for label, cost, _, _ in (r for r in rows if len(r) == 4)
            if label.strip().startswith("breakpoints")}
    assert runs["breakpoints injected, sticky pool"] < runs[
        "breakpoints injected, pool drawn by weight"] < runs[
        "breakpoints off, pool drawn by weight"]
    assert runs["breakpoints off, sticky pool"] == runs["breakpoints off, pool drawn by weight"]
