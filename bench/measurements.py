"""What is measured on one target, and how rounds of it add up to a `TargetResult`.

A `Target` is one process under test called one way: JSON chats, or paced event streams
(`kind`); the floor and the direct call are measured both ways when a stream row runs, so each
row has references of its own kind. A `Tally` collects one target's numbers over interleaved
rounds (run.py alternates the targets slice by slice, so drift or a burst of foreign load
spreads over all of them instead of landing on one): throughput slices with the CPU that the
target and the load side used, pooled fixed-rate samples (latency; TTFT, gaps between events
and coalesced events for streams), the soak, and how much CPU processes outside the run took
meanwhile. `on_cpu` is the frame every measurement runs in: it moves the direct target (the
fake upstream itself) onto the CPU under test for the duration, and does the accounting.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import drivers, memory
from bench.loadgen import summarize_ms
from bench.processes import (
    Service,
    cpu_seconds,
    machine_cpu_seconds,
    memory_mb,
    own_cpu_seconds,
    pin,
)
from bench.report import TargetResult
from bench.rows import Kind
from bench.targets import Role


@dataclass(frozen=True, slots=True)
class Pinning:
    under_test: frozenset[int] | None = None
    upstream: frozenset[int] | None = None
    load: frozenset[int] | None = None

    def describe(self) -> str:
        if self.under_test is None:
            return "none (unpinned)"

        def cpus(s: frozenset[int] | None) -> str:
            return ",".join(map(str, sorted(s or ())))
        how = "(sched_setaffinity, as taskset)"
        if self.upstream == self.load:
            return (f"process under test on CPU {cpus(self.under_test)}; fake upstream, OTLP "
                    f"receiver and load generator on CPU {cpus(self.load)} {how}")
        return (f"process under test on CPU {cpus(self.under_test)}; fake upstream and OTLP "
                f"receiver on CPU {cpus(self.upstream)}; load generator on CPU "
                f"{cpus(self.load)} {how}")


@dataclass(slots=True)
class Target:
    name: str  # direct, floor, a row's name, a peer's; "<name>-stream" for a second kind
    kind: Kind
    role: Role
    process: str  # the process's name: targets of two kinds may share one
    service: Service  # the process under test: the fake upstream itself for direct
    base: str  # the OpenAI base URL a client would use
    body_path: Path
    headers: tuple[tuple[str, str], ...]
    startup_ms: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.base + "/chat/completions"


@dataclass(slots=True)
class Tally:
    target: Target
    slices: list[drivers.Throughput] = field(default_factory=list)
    target_cpu_s: float = 0.0
    upstream_cpu_s: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    round_p50_ms: list[float] = field(default_factory=list)
    latency_errors: int = 0
    ttft_ms: list[float] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)
    events: int = 0
    coalesced: int = 0
    soak: memory.Soak | None = None
    wall_s: float = 0.0
    foreign_cpu_s: float = 0.0
    steal_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Bench:
    """What every measurement needs besides its target."""

    pinning: Pinning
    upstream: Service
    services: list[Service]
    workdir: Path
    served: dict[int, int] = field(default_factory=dict)  # pid -> requests it answered

    def load(self, tally: Tally) -> drivers.Load:
        target = tally.target
        return drivers.Load(target.url, target.body_path, target.headers, self.pinning.load)

    def count(self, target: Target, requests: int) -> None:
        pid = target.service.pid
        self.served[pid] = self.served.get(pid, 0) + requests


@contextmanager
def on_cpu(bench: Bench, tally: Tally) -> Iterator[None]:
    """Run a measurement with the target on the CPU under test, and account for the CPU
    that processes outside this run used meanwhile."""
    pid = tally.target.service.pid
    direct = tally.target.service is bench.upstream
    if direct:
        pin(pid, bench.pinning.under_test)
    began = time.perf_counter()
    busy, steal = machine_cpu_seconds()
    own = own_cpu_seconds(bench.services)
    try:
        yield
    finally:
        if direct:
            pin(pid, bench.pinning.upstream)
        busy_now, steal_now = machine_cpu_seconds()
        tally.wall_s += time.perf_counter() - began
        tally.foreign_cpu_s += max(
            (busy_now - busy) - (own_cpu_seconds(bench.services) - own), 0.0)
        tally.steal_s += steal_now - steal


def warm_up(bench: Bench, tally: Tally, driver: str, concurrency: int, seconds: float) -> None:
    with on_cpu(bench, tally):
        done = drivers.throughput(driver, bench.load(tally), concurrency=concurrency,
                                  duration=seconds, workdir=bench.workdir)
    bench.count(tally.target, done.requests)


def throughput_slice(bench: Bench, tally: Tally, driver: str, concurrency: int,
                     seconds: float) -> None:
    pid, upstream = tally.target.service.pid, bench.upstream
    direct = tally.target.service is upstream
    with on_cpu(bench, tally):
        target_before = cpu_seconds(pid)
        upstream_before = 0.0 if direct else cpu_seconds(upstream.pid)
        result = drivers.throughput(driver, bench.load(tally), concurrency=concurrency,
                                    duration=seconds, workdir=bench.workdir)
        tally.target_cpu_s += cpu_seconds(pid) - target_before
        tally.upstream_cpu_s += 0.0 if direct else cpu_seconds(upstream.pid) - upstream_before
    tally.slices.append(result)
    bench.count(tally.target, result.requests)


def latency_slice(bench: Bench, tally: Tally, rate: float, seconds: float) -> None:
    with on_cpu(bench, tally):
        result, _ = drivers.fixed_rate(bench.load(tally), rate=rate, duration=seconds)
    tally.latency_ms += result["samples_ms"]
    tally.lag_ms += result["lags_ms"]
    tally.ttft_ms += result.get("ttft_ms", [])
    tally.gaps_ms += result.get("gaps_ms", [])
    tally.events += result.get("events", 0)
    tally.coalesced += result.get("coalesced", 0)
    if result["latency_ms"]:
        tally.round_p50_ms.append(result["latency_ms"]["p50"])
    tally.latency_errors += result["errors"] + result["non_2xx"]
    bench.count(tally.target, result["requests"] + 3)  # 3 to open the connection


def soak(bench: Bench, tally: Tally, driver: str, concurrency: int, seconds: float,
         rss_requests: int) -> None:
    """Full load for `seconds` (longer if the process has not yet served `rss_requests`),
    reading RSS as it goes."""
    target = tally.target
    served = bench.served.get(target.service.pid, 0)
    rps = sum(s.requests for s in tally.slices) / (sum(s.seconds for s in tally.slices) or 1)
    duration = memory.soak_seconds(seconds, served, rss_requests, rps, cap=seconds * 10)
    with on_cpu(bench, tally):
        result, samples, wall = memory.sampled(
            lambda: drivers.throughput(driver, bench.load(tally), concurrency=concurrency,
                                       duration=duration, workdir=bench.workdir),
            target.service.pid)
    bench.count(target, result.requests)
    tally.soak = memory.soak_of(samples, wall, result.requests, served)


def result(bench: Bench, tally: Tally, rss_requests: int) -> TargetResult:
    """Add the rounds up; RSS is read now, after all the load."""
    slices = tally.slices
    requests = sum(s.requests for s in slices)
    seconds = sum(s.seconds for s in slices) or 1.0
    load_cpus = len((bench.pinning.load or frozenset()) | (bench.pinning.upstream or frozenset()))
    target = tally.target
    rss, peak = memory_mb(target.service.pid)
    wall = tally.wall_s or 1.0
    startup = target.startup_ms
    stream = target.kind == "stream"
    return TargetResult(
        name=target.name, kind=target.kind, role=target.role, process=target.process,
        url=target.url, pid=target.service.pid,
        rps=requests / seconds, requests=requests,
        non_2xx=sum(s.non_2xx for s in slices), errors=sum(s.errors for s in slices),
        cpu_pct=tally.target_cpu_s / seconds * 100,
        cpu_us_per_request=tally.target_cpu_s / requests * 1e6 if requests else 0.0,
        load_side_cpu_pct=(sum(s.cpu_s for s in slices) + tally.upstream_cpu_s)
        / seconds / (load_cpus or 1) * 100,
        latency_ms=summarize_ms([ms / 1000 for ms in tally.latency_ms]),
        latency_errors=tally.latency_errors,
        send_lag_ms=summarize_ms([ms / 1000 for ms in tally.lag_ms]),
        ttft_ms=summarize_ms([ms / 1000 for ms in tally.ttft_ms]) if stream else {},
        gap_ms=summarize_ms([ms / 1000 for ms in tally.gaps_ms]) if stream else {},
        stream_events=tally.events if stream else None,
        coalesced=tally.coalesced if stream else None,
        rss_mb=rss, rss_peak_mb=peak,
        requests_served=bench.served.get(target.service.pid, 0),
        soak=tally.soak.to_json(rss_requests) if tally.soak else None,
        foreign_cpu_pct=tally.foreign_cpu_s / wall * 100, steal_pct=tally.steal_s / wall * 100,
        startup_ms=statistics.median(startup) if startup else None,
        startup_samples_ms=startup, rps_rounds=[s.rps for s in slices],
        p50_rounds_ms=tally.round_p50_ms, info=target.info,
        throughput_raw={"driver": slices[0].driver if slices else None, "seconds": seconds,
                        "driver_cpu_s": sum(s.cpu_s for s in slices),
                        "target_cpu_s": tally.target_cpu_s,
                        "upstream_cpu_s": tally.upstream_cpu_s,
                        "latency_ms_per_round": [s.latency_ms for s in slices]},
    )
