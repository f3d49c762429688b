"""Issue 23's harness, with a load generator that is not ours: `hey` (Go, from Debian).

Beside the in-house measurements (`measurements.py`, wrk for throughput and the open-loop
asyncio generator for latency), every JSON target is measured the way the issue's table was:
R interleaved rounds (default 3), each giving every target

- a **burst**: `hey -n 6000 -c 32` (6,000 requests over 32 keep-alive connections, back to
  back): requests per second as hey counts them, and the CPU the process under test and its
  threads used meanwhile (`/proc/<pid>/stat`), per request;
- a **fixed rate**: `hey -z 6s -q 25 -c 4` (4 connections, each at most 25 requests a second:
  100 req/s), every answer's time from hey's CSV, pooled over the rounds for p50 and p99. hey's
  rate is closed loop per connection (a worker waits for its answer before its next tick), so
  unlike the in-house open-loop generator it cannot see queueing behind a slow answer: at
  100 req/s on an idle proxy they agree within the noise, and the difference between the two
  is the generator itself (a Go client, its timer and its 0.1 ms resolution).

The targets are measured as `run.py` set them up (pinned unless `--no-pin`); the report's
"external" table gives each target's ratios to the floor's, the issue's columns.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import drivers
from bench.loadgen import summarize_ms
from bench.measurements import Bench, Tally, on_cpu
from bench.processes import cpu_seconds, loop_cpu_seconds, memory_mb

GENERATORS = ("hey", "wrk")  # Debian packages: apt-get install -y hey wrk


def missing_generators() -> list[str]:
    return [name for name in GENERATORS if shutil.which(name) is None]


def install_generators(log: Callable[[str], None]) -> list[str]:
    """Install hey and wrk from Debian when they are missing and apt-get can (root); what is
    still missing afterwards."""
    missing = missing_generators()
    if not missing:
        return []
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        log(f"{', '.join(missing)} not installed and apt-get not usable here (not root?): "
            f"apt-get install -y {' '.join(missing)}")
        return missing
    log(f"installing {', '.join(missing)} (apt-get) ...")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False,
                       timeout=600)
    return missing_generators()


@dataclass(slots=True)
class ExternalTally:
    tally: Tally
    burst_rps: list[float] = field(default_factory=list)
    burst_requests: int = 0
    burst_seconds: float = 0.0
    burst_cpu_s: float = 0.0
    burst_loop_cpu_s: float = 0.0  # of which the main thread's (the event loop's)
    rate_samples_ms: list[float] = field(default_factory=list)
    rate_cpu_s: float = 0.0
    rate_requests: int = 0
    failures: int = 0  # transport errors and non-2xx answers, both phases

    def result(self) -> dict[str, Any]:
        target = self.tally.target
        rss, _peak = memory_mb(target.service.pid)
        return {
            "name": target.name, "role": target.role,
            "rps": self.burst_requests / self.burst_seconds if self.burst_seconds else 0.0,
            "rps_rounds": self.burst_rps,
            "cpu_us_per_request": (self.burst_cpu_s / self.burst_requests * 1e6
                                   if self.burst_requests else 0.0),
            # the two readings are not taken at the same instant: a process that barely uses
            # other threads can read a hair below 0
            "off_loop_cpu_share": (max(0.0, 1 - self.burst_loop_cpu_s / self.burst_cpu_s)
                                   if self.burst_cpu_s else 0.0),
            "cpu_us_per_request_at_rate": (self.rate_cpu_s / self.rate_requests * 1e6
                                           if self.rate_requests else 0.0),
            "latency_ms": summarize_ms([ms / 1000 for ms in self.rate_samples_ms]),
            "rate_requests": self.rate_requests, "failures": self.failures, "rss_mb": rss,
        }


def _hey(argv: Sequence[str], bench: Bench, timeout: float) -> str:
    load_cpus = bench.pinning.load
    threads = max(1, len(load_cpus or os.sched_getaffinity(0)))
    out, _cpu = drivers.run_generator(["hey", *argv], load_cpus, timeout,
                                      env={"GOMAXPROCS": str(threads)})
    return out


def _request_args(tally: Tally) -> list[str]:
    target = tally.target
    argv = ["-m", "POST", "-T", "application/json", "-D", str(target.body_path)]
    for name, value in target.headers:
        argv += ["-H", f"{name}: {value}"]
    return argv


def burst(bench: Bench, ext: ExternalTally, requests: int, concurrency: int) -> None:
    pid = ext.tally.target.service.pid
    with on_cpu(bench, ext.tally):
        before, loop_before = cpu_seconds(pid), loop_cpu_seconds(pid)
        out = _hey(["-n", str(requests), "-c", str(concurrency), *_request_args(ext.tally),
                    ext.tally.target.url], bench, timeout=300)
        ext.burst_cpu_s += cpu_seconds(pid) - before
        ext.burst_loop_cpu_s += loop_cpu_seconds(pid) - loop_before
    done = drivers.parse_hey(out)
    ext.burst_rps.append(done.rps)
    ext.burst_requests += done.requests
    ext.burst_seconds += done.seconds
    ext.failures += done.errors + done.non_2xx
    bench.count(ext.tally.target, done.requests)


def fixed_rate(bench: Bench, ext: ExternalTally, rate: float, connections: int,
               seconds: float) -> None:
    pid = ext.tally.target.service.pid
    per_connection = max(rate / connections, 0.1)
    with on_cpu(bench, ext.tally):
        before = cpu_seconds(pid)
        out = _hey(["-z", f"{seconds:g}s", "-q", f"{per_connection:g}", "-c", str(connections),
                    "-o", "csv", *_request_args(ext.tally), ext.tally.target.url],
                   bench, timeout=seconds + 60)
        ext.rate_cpu_s += cpu_seconds(pid) - before
    samples, failures = parse_csv(out)
    ext.rate_samples_ms += samples
    ext.rate_requests += len(samples) + failures
    ext.failures += failures
    bench.count(ext.tally.target, len(samples) + failures)


def parse_csv(out: str) -> tuple[list[float], int]:
    """hey's `-o csv`: the time of every 2xx answer in ms, and how many were not 2xx."""
    samples, failures = [], 0
    for row in csv.DictReader(io.StringIO(out)):
        if 200 <= int(row["status-code"]) < 300:
            samples.append(float(row["response-time"]) * 1000)
        else:
            failures += 1
    return samples, failures


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int = 3
    burst_requests: int = 6000
    burst_concurrency: int = 32
    rate: float = 100.0
    rate_connections: int = 4
    rate_seconds: float = 6.0


def measure(bench: Bench, tallies: Sequence[Tally], plan: Plan,
            log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every JSON target through R rounds of a hey burst and a hey fixed-rate run; the order
    of the targets rotates from one round to the next."""
    chosen = [ExternalTally(t) for t in tallies if t.target.kind == "json"]
    for i in range(plan.rounds):
        log(f"external (hey) round {i + 1}/{plan.rounds} ...")
        shift = i % len(chosen)
        for ext in chosen[shift:] + chosen[:shift]:
            burst(bench, ext, plan.burst_requests, plan.burst_concurrency)
            fixed_rate(bench, ext, plan.rate, plan.rate_connections, plan.rate_seconds)
    return [ext.result() for ext in chosen]


def table(results: Sequence[dict[str, Any]], plan: Plan) -> list[str]:
    """The issue's table: each target against the floor measured by the same generator."""
    floor = next((r for r in results if r["role"] == "floor"), None)
    lines = [
        "## JSON chats, external load generator (hey, issue 23's harness)", "",
        f"{plan.rounds} interleaved rounds; each: a burst of {plan.burst_requests:,} requests "
        f"at {plan.burst_concurrency} connections (RPS, and CPU of the process and its threads "
        f"from /proc per request; off-loop: its share on threads other than the event loop's: "
        f"exporters, the ledger writer, gRPC's own), then {plan.rate_seconds:g} s at "
        f"{plan.rate:g} req/s over "
        f"{plan.rate_connections} connections (`hey -q`, every answer's time pooled).", "",
        "| target | RPS | \u00d7 floor | CPU \u00b5s/req | \u00d7 floor "
        "| off-loop CPU | CPU \u00b5s/req at 100/s | p50 ms | p99 ms | +p50 vs floor "
        "| +p99 vs floor | RSS MB | failures |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lat = r["latency_ms"]

        def ratio(key: str, r: dict[str, Any] = r) -> str:
            if not floor or not floor[key]:
                return "—"
            return f"{r[key] / floor[key]:.2f} \u00d7"

        def added(key: str, r: dict[str, Any] = r) -> str:
            lat = r["latency_ms"]
            if not floor or r is floor or key not in lat or key not in floor["latency_ms"]:
                return "—"
            return f"{lat[key] - floor['latency_ms'][key]:+.2f}"
        lines.append(
            f"| {r['name']} | {r['rps']:,.0f} | {ratio('rps')} | {r['cpu_us_per_request']:.0f} "
            f"| {ratio('cpu_us_per_request')} | {r['off_loop_cpu_share'] * 100:.0f} % "
            f"| {r['cpu_us_per_request_at_rate']:.0f} "
            f"| {lat.get('p50', 0):.2f} | {lat.get('p99', 0):.2f} | {added('p50')} "
            f"| {added('p99')} | {r['rss_mb']:.1f} | {r['failures']} |")
    spread = [r for r in results if len(r["rps_rounds"]) > 1 and min(r["rps_rounds"]) > 0]
    if spread:
        median = statistics.median(max(r["rps_rounds"]) / min(r["rps_rounds"]) - 1
                                   for r in spread)
        lines += ["", "Burst RPS per round: " + "; ".join(
            f"{r['name']} " + " / ".join(f"{x:,.0f}" for x in r["rps_rounds"])
            for r in spread) + f" (median spread between rounds {median * 100:.0f} %)."]
    return lines
