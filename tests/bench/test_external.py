"""bench/external.py (issue 23's harness with hey) and bench/imports.py: hey's CSV read, the
table against the floor, the loop thread's CPU apart from the process's, RSS by import."""

from __future__ import annotations

import itertools
import os

from bench import external, imports
from bench.processes import cpu_seconds, loop_cpu_seconds

CSV = """response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset
0.0015,0.0001,0,0,0.0014,0,200,0.01
0.0031,0,0,0,0.003,0,200,0.02
0.0100,0,0,0,0.01,0,503,0.03
"""


def test_hey_csv_gives_each_2xx_time_in_ms_and_counts_the_rest() -> None:
    samples, failures = external.parse_csv(CSV)
    assert samples == [1.5, 3.1] and failures == 1


def result(name: str, role: str, rps: float, cpu: float, p50: float, p99: float,
           loop_share: float = 0.0) -> dict[str, object]:
    return {"name": name, "role": role, "rps": rps, "rps_rounds": [rps * 0.9, rps * 1.1],
            "cpu_us_per_request": cpu, "off_loop_cpu_share": loop_share,
            "cpu_us_per_request_at_rate": cpu * 2, "latency_ms": {"p50": p50, "p99": p99},
            "rate_requests": 600, "failures": 0, "rss_mb": 50.0}


def test_the_table_gives_each_target_against_the_floor() -> None:
    """Ratios to the floor's RPS and CPU, the latency added to the floor's, the off-loop share,
    and the spread of the burst RPS between rounds."""
    lines = external.table([result("floor", "floor", 8000, 100, 1.5, 3.5),
                            result("all", "row", 4000, 250, 2.0, 4.5, 0.25)],
                           external.Plan())
    all_row = next(line for line in lines if line.startswith("| all |"))
    cells = [c.strip() for c in all_row.strip("|").split("|")]
    assert cells[:6] == ["all", "4,000", "0.50 \u00d7", "250", "2.50 \u00d7", "25 %"]
    assert cells[9:11] == ["+0.50", "+1.00"]
    assert any("median spread between rounds 22 %" in line for line in lines)


def test_the_loop_threads_cpu_is_part_of_the_process_cpu() -> None:
    pid = os.getpid()
    sum(i * i for i in range(200_000))
    assert 0 < loop_cpu_seconds(pid) <= cpu_seconds(pid)


def test_rss_by_import_grows_row_by_row() -> None:
    """One interpreter: every step's RSS at least the one before, each added figure the
    difference; the table has a row per step."""
    rows = imports.measure(runs=1)
    assert [r[0] for r in rows] == [label for label, _, _ in imports.STEPS]
    for before, after in itertools.pairwise(rows):
        assert after[2] >= before[2] - 0.5 and abs(after[3] - (after[2] - before[2])) < 1e-6
    assert len(imports.table(rows)) == len(rows) + 2
