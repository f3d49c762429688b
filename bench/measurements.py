"""What is measured on one target, and how rounds of it add up to a `TargetResult`.

A `Tally` collects one target's numbers over interleaved rounds (run.py alternates the targets
slice by slice, so drift or a burst of foreign load spreads over all of them instead of landing
on one): throughput slices with the CPU that the target and the load side used, pooled
fixed-rate latency samples, the streaming run, and how much CPU processes outside the run
took meanwhile. `on_cpu` is the frame every measurement runs in: it moves the direct target
(the fake upstream itself) onto the CPU under test for the duration, and does the accounting.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import drivers
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
            return (f"process under test on CPU {cpus(self.under_test)}; fake upstream and "
                    f"load generator on CPU {cpus(self.load)} {how}")
        return (f"process under test on CPU {cpus(self.under_test)}; fake upstream on CPU "
                f"{cpus(self.upstream)}; load generator on CPU {cpus(self.load)} {how}")


@dataclass(slots=True)
class Target:
    name: str  # direct | floor | sidecar
    service: Service  # the process under test: the fake upstream itself for direct
    base: str  # the OpenAI base URL a client would use
    startup_ms: list[float] = field(default_factory=list)

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
    streams: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    foreign_cpu_s: float = 0.0
    steal_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Bench:
    """What every measurement needs besides its target."""

    pinning: Pinning
    upstream: Service
    services: list[Service]
    chat_body: Path
    stream_body: Path
    headers: tuple[tuple[str, str], ...]
    workdir: Path

    def load(self, tally: Tally, *, stream: bool = False) -> drivers.Load:
        return drivers.Load(tally.target.url, self.stream_body if stream else self.chat_body,
                            self.headers, self.pinning.load)


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
        drivers.throughput(driver, bench.load(tally), concurrency=concurrency,
                           duration=seconds, workdir=bench.workdir)


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


def latency_slice(bench: Bench, tally: Tally, rate: float, seconds: float) -> None:
    with on_cpu(bench, tally):
        result, _ = drivers.fixed_rate(bench.load(tally), rate=rate, duration=seconds)
    tally.latency_ms += result["samples_ms"]
    tally.lag_ms += result["lags_ms"]
    if result["latency_ms"]:
        tally.round_p50_ms.append(result["latency_ms"]["p50"])
    tally.latency_errors += result["errors"] + result["non_2xx"]


def streams(bench: Bench, tally: Tally, requests: int) -> None:
    with on_cpu(bench, tally):
        tally.streams, _ = drivers.ttft(bench.load(tally, stream=True), requests=requests)


def result(bench: Bench, tally: Tally) -> TargetResult:
    """Add the rounds up; RSS is read now, after all the load."""
    slices = tally.slices
    requests = sum(s.requests for s in slices)
    seconds = sum(s.seconds for s in slices) or 1.0
    rps_rounds = [s.rps for s in slices]
    load_cpus = len((bench.pinning.load or frozenset()) | (bench.pinning.upstream or frozenset()))
    rss, peak = memory_mb(tally.target.service.pid)
    wall = tally.wall_s or 1.0
    startup = tally.target.startup_ms
    return TargetResult(
        name=tally.target.name, url=tally.target.url, pid=tally.target.service.pid,
        rps=requests / seconds, requests=requests,
        non_2xx=sum(s.non_2xx for s in slices), errors=sum(s.errors for s in slices),
        cpu_pct=tally.target_cpu_s / seconds * 100,
        cpu_us_per_request=tally.target_cpu_s / requests * 1e6 if requests else 0.0,
        load_side_cpu_pct=(sum(s.cpu_s for s in slices) + tally.upstream_cpu_s)
        / seconds / (load_cpus or 1) * 100,
        latency_ms=summarize_ms([ms / 1000 for ms in tally.latency_ms]),
        latency_errors=tally.latency_errors,
        send_lag_ms=summarize_ms([ms / 1000 for ms in tally.lag_ms]),
        ttft_ms=tally.streams.get("ttft_ms", {}), stream_ms=tally.streams.get("stream_ms", {}),
        ttft_errors=tally.streams.get("errors", 0), rss_mb=rss, rss_peak_mb=peak,
        foreign_cpu_pct=tally.foreign_cpu_s / wall * 100, steal_pct=tally.steal_s / wall * 100,
        startup_ms=statistics.median(startup) if startup else None,
        startup_samples_ms=startup, rps_rounds=rps_rounds, p50_rounds_ms=tally.round_p50_ms,
        throughput_raw={"driver": slices[0].driver if slices else None, "seconds": seconds,
                        "driver_cpu_s": sum(s.cpu_s for s in slices),
                        "target_cpu_s": tally.target_cpu_s,
                        "upstream_cpu_s": tally.upstream_cpu_s,
                        "latency_ms_per_round": [s.latency_ms for s in slices]},
    )
