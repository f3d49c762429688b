"""`python -m bench.soak` (issue 13's soak): a 10-second run holds every invariant of its report,
with each kind of fault injected; and the report's checks do catch what they are meant to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.soak import judge
from bench.soak_load import Tally

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_a_short_soak_holds_every_invariant(tmp_path: Path) -> None:
    """Ten seconds of mixed load with every fault of the schedule and a Redis restart: exit 0,
    no unexpected error, one ledger row per answer with the reported costs to the nano-dollar,
    nothing held, a clean SIGTERM exit (the memory trend needs a longer run to be judged)."""
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", str(10 / 60), "--clients", "4",
         "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=170,
        check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"] and report["unexpected_errors"] == 0
    checks = report["checks"]
    assert all(checks[name] for name in checks if name != "memory_flat")
    assert report["requests"] > 100
    assert set(report["faults"]["primary"]) == {"errors", "resets", "slow", "breaks", "hangs"}
    assert report["faults"]["redis"] == {"killed": 1, "restarted": 1}
    assert report["cache"].get("HIT", 0) > 0 and report["cache"].get("OFF", 0) > 0
    assert report["expected_errors"]["stream broken on purpose"] > 0
    ledger = report["ledger"]
    assert ledger["rows"] == report["requests"] and ledger["mismatched"] == 0
    assert ledger["reported_usd"] == ledger["rows_for_reported_usd"] > 0


def tally(**reported: int) -> Tally:
    made = Tally(answered=len(reported))
    made.reported = dict(reported)
    made.ids = set(reported)
    return made


def rows(**costs: int) -> list[dict[str, Any]]:
    return [{"request_id": i, "cost_nusd": c, "estimated": 0, "outcome": "ok"}
            for i, c in costs.items()]


SAMPLES = [(float(n), 70.0) for n in range(0, 40_000, 1_000)]


@pytest.mark.parametrize(("made", "held", "failing"), [
    ((tally(a=5, b=7), rows(a=5)), 0.0, ["one_row_per_answer", "costs_equal"]),
    ((tally(a=5), rows(a=5) * 2), 0.0, ["one_row_per_answer"]),
    ((tally(a=5, b=7), rows(a=5, b=8)), 0.0, ["costs_equal"]),
    ((tally(a=5), rows(a=5)), 0.000001, ["nothing_held"]),
], ids=["a row missing", "a row twice", "a cost off by one nano-dollar", "a hold left"])
def test_the_checks_catch_what_they_are_for(made: tuple[Tally, Any], held: float,
                                             failing: list[str]) -> None:
    """Each invariant fails on the defect it is meant to find, and the report is not ok."""
    report = judge(made[0], made[1], held=held, exit_status=0, samples=SAMPLES, seconds=10)
    assert [k for k, v in report["checks"].items() if v is False] == failing
    assert not report["ok"]


def test_memory_growth_is_caught() -> None:
    """An RSS climbing 1 MB per 10,000 requests over the measured half fails memory_flat; a
    flat one passes; too few requests are not judged."""
    base = (tally(a=1), rows(a=1))
    growing = [(float(n), 70.0 + n / 10_000) for n in range(0, 40_000, 1_000)]
    assert judge(*base, held=0.0, exit_status=0, samples=growing, seconds=10)["checks"][
        "memory_flat"] is False
    assert judge(*base, held=0.0, exit_status=0, samples=SAMPLES, seconds=10)["checks"][
        "memory_flat"] is True
    assert judge(*base, held=0.0, exit_status=0, samples=SAMPLES[:10], seconds=10)["checks"][
        "memory_flat"] is None
