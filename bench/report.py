"""The benchmark's results: one `TargetResult` per target, compared with its references.

Every target is compared with the direct call and the floor *of its own kind* (JSON chats or
paced streams): RPS as a share of the floor's, CPU per request as a multiple of the floor's,
latency and time to first token added over each, and, for sidecar rows, CPU per request over the
`core` row's (what the row's features cost). `verdicts.py` checks the issue's targets on these
numbers; `table.py` renders them as markdown and writes the files. The JSON (`schema` 2) holds
every number of the tables plus the raw material (per-round figures, start-up samples, soak
samples, driver output).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.verdicts import verdicts

SCHEMA = 2


@dataclass(slots=True)
class TargetResult:
    name: str
    kind: str  # json | stream
    role: str  # direct | floor | row | peer
    process: str  # name of the process (targets of two kinds may share one)
    url: str
    rps: float  # closed loop at the set concurrency
    requests: int
    non_2xx: int
    errors: int
    cpu_pct: float  # of one core, process under test, during the throughput run
    cpu_us_per_request: float
    load_side_cpu_pct: float  # upstream (unless it is the target) + driver, of their CPUs
    latency_ms: dict[str, float]  # open loop at the fixed rate (whole answer / whole stream)
    latency_errors: int
    send_lag_ms: dict[str, float]
    ttft_ms: dict[str, float]  # streams: first event, from the scheduled send instant
    gap_ms: dict[str, float]  # streams: between consecutive events
    stream_events: int | None  # streams: events received in the fixed-rate run
    coalesced: int | None  # streams: events that arrived in one read with the one before
    rss_mb: float  # after all the load
    rss_peak_mb: float
    requests_served: int = 0  # by the process in all, all its targets and the soak included
    soak: dict[str, Any] | None = None  # memory.Soak.to_json
    pid: int = 0  # of the process under test (the fake upstream for direct)
    foreign_cpu_pct: float = 0.0  # CPU used by processes not of this run, % of one CPU
    steal_pct: float = 0.0  # CPU time the hypervisor took, % of one CPU
    startup_ms: float | None = None  # median
    startup_samples_ms: list[float] = field(default_factory=list)
    rps_rounds: list[float] = field(default_factory=list)  # one per interleaved round
    p50_rounds_ms: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # stages, config, version
    throughput_raw: dict[str, Any] = field(default_factory=dict)  # the driver's own numbers


def _minus(a: dict[str, float], b: dict[str, float] | None, key: str) -> float | None:
    if b is None or key not in a or key not in b:
        return None
    return a[key] - b[key]


@dataclass(slots=True)
class BenchReport:
    started_at: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    targets: list[TargetResult]
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, Any] = field(default_factory=dict)  # --profile: name -> top functions
    external: list[dict[str, Any]] = field(default_factory=list)  # external.py: hey's rows

    def target(self, name: str) -> TargetResult | None:
        return next((t for t in self.targets if t.name == name), None)

    def reference(self, result: TargetResult, role: str) -> TargetResult | None:
        """The direct call or the floor measured the same way (kind) as `result`."""
        return next((t for t in self.targets if t.role == role and t.kind == result.kind),
                    None)

    def compare(self, t: TargetResult) -> dict[str, Any]:
        """`t` against the direct call, the floor and (rows) the core: the headline ratios."""
        direct, floor = self.reference(t, "direct"), self.reference(t, "floor")
        core = self.target("core")
        proxy = t.role in ("row", "peer")  # a proxy measured against the floor
        out: dict[str, Any] = {
            "rps_pct_of_floor": t.rps / floor.rps * 100 if floor and floor.rps else None,
            "cpu_x_floor": (t.cpu_us_per_request / floor.cpu_us_per_request
                            if floor and floor.cpu_us_per_request else None),
            "cpu_us_over_floor": (t.cpu_us_per_request - floor.cpu_us_per_request
                                  if floor and proxy else None),
            # what a row's features cost: only rows of the core's kind, other than the core
            "cpu_us_over_core": (t.cpu_us_per_request - core.cpu_us_per_request
                                 if core and t.role == "row" and t.kind == core.kind
                                 and t is not core else None),
        }
        for ref_name, ref in (("direct", direct), ("floor", floor)):
            # the floor is compared with the direct call; proxies with both
            mine = ref is not None and ref is not t and (proxy or ref_name == "direct")
            for key in ("p50", "p99"):
                out[f"added_{key}_vs_{ref_name}_ms"] = (
                    _minus(t.latency_ms, ref.latency_ms if ref else None, key) if mine else None)
                out[f"ttft_{key}_vs_{ref_name}_ms"] = (
                    _minus(t.ttft_ms, ref.ttft_ms if ref else None, key)
                    if mine and t.kind == "stream" else None)
        return out

    def to_json(self) -> dict[str, Any]:
        targets = {}
        for t in self.targets:
            entry = dataclasses.asdict(t)
            entry["vs"] = self.compare(t)
            targets[t.name] = entry
        return {"schema": SCHEMA, "started_at": self.started_at, "machine": self.machine,
                "settings": self.settings, "targets": targets,
                "verdicts": [dataclasses.asdict(v) for v in verdicts(self)],
                "notes": self.notes, "profiles": self.profiles, "external": self.external}


def machine_facts(repo: Path) -> dict[str, Any]:
    import sidecar

    try:
        uvloop_version = metadata.version("uvloop")
    except metadata.PackageNotFoundError:  # pragma: no cover
        uvloop_version = "absent"
    return {
        "cpu_model": _cpu_model(), "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)), "kernel": platform.release(),
        "python": platform.python_version(), "aiohttp": metadata.version("aiohttp"),
        "uvloop": uvloop_version, "sidecar": sidecar.__version__, "commit": _commit(repo),
        "memory_gb": _memory_gb(),
    }


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit(repo: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=False)
        return done.stdout.strip() if done.returncode == 0 else ""
    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except OSError:
        return "unknown"
    return f"{head} (+ local changes)" if head and dirty else head or "unknown"
