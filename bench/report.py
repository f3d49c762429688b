"""The benchmark's results: one `TargetResult` per target, rendered as a markdown table and JSON.

The JSON (`schema` 1) is the record later runs are compared against: `targets.<name>` holds
every number the table shows plus the raw driver outputs; `summary` holds the two ratios the
issue sets targets for. Columns, in the table's order:

    RPS @N            closed-loop requests per second with N connections; with rounds,
                      ± is half the range across rounds relative to their mean
    p50 / p99         latency at a fixed, open-loop rate (from the scheduled send instant);
                      with rounds, ± is half the range of the rounds' p50s, in ms
    added p50 / p99   the same minus the direct call's: what the hop costs
    TTFT p50          send to first `data:` event of a streamed chat, sequential requests
    RSS / peak        VmRSS after the load, VmHWM (peak) since start; direct: the fake upstream
    startup           median spawn -> first 200 on the ready path (/readyz for the sidecar)
    CPU/req, CPU %    CPU time the process under test used during the throughput run,
                      per request and as a share of one core; ~100 % means it was the limit
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

RPS_TARGET_PCT = 75.0  # sidecar RPS as a share of the floor's, at least
P50_TARGET_MS = 0.3  # sidecar p50 minus the floor's, at most
MINUS = "\u2212"
MICRO = "\u00b5"


@dataclass(slots=True)
class TargetResult:
    name: str  # direct | floor | sidecar
    url: str
    rps: float
    requests: int
    non_2xx: int
    errors: int
    cpu_pct: float  # of one core, process under test, during the throughput run
    cpu_us_per_request: float
    load_side_cpu_pct: float  # upstream (unless it is the target) + driver, of their CPUs
    latency_ms: dict[str, float]  # open loop at the fixed rate
    latency_errors: int
    send_lag_ms: dict[str, float]
    ttft_ms: dict[str, float]
    stream_ms: dict[str, float]
    ttft_errors: int
    rss_mb: float
    rss_peak_mb: float
    pid: int = 0  # of the process under test (the fake upstream for direct)
    foreign_cpu_pct: float = 0.0  # CPU used by processes not of this run, % of one CPU
    steal_pct: float = 0.0  # CPU time the hypervisor took, % of one CPU
    startup_ms: float | None = None  # median
    startup_samples_ms: list[float] = field(default_factory=list)
    rps_rounds: list[float] = field(default_factory=list)  # one per interleaved round
    p50_rounds_ms: list[float] = field(default_factory=list)
    throughput_raw: dict[str, Any] = field(default_factory=dict)  # the driver's own numbers


@dataclass(slots=True)
class BenchReport:
    started_at: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    targets: list[TargetResult]
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, Any] = field(default_factory=dict)  # --profile: name -> top functions

    def target(self, name: str) -> TargetResult | None:
        return next((t for t in self.targets if t.name == name), None)

    def added_ms(self, result: TargetResult, key: str) -> float | None:
        direct = self.target("direct")
        if direct is None or result is direct:
            return None
        mine, base = result.latency_ms.get(key), direct.latency_ms.get(key)
        return None if mine is None or base is None else mine - base

    def summary(self) -> dict[str, Any]:
        floor, sidecar = self.target("floor"), self.target("sidecar")
        if floor is None or sidecar is None or not floor.rps:
            return {}
        if "p50" not in floor.latency_ms or "p50" not in sidecar.latency_ms:
            return {}  # every latency request failed: the Notes say so
        pct = sidecar.rps / floor.rps * 100
        gap = sidecar.latency_ms["p50"] - floor.latency_ms["p50"]
        return {
            "rps_pct_of_floor": pct, "rps_target_pct": RPS_TARGET_PCT,
            "rps_met": pct >= RPS_TARGET_PCT,
            "p50_minus_floor_ms": gap, "p50_target_ms": P50_TARGET_MS,
            # the rounds ran back to back, so each pair saw the same machine conditions
            "p50_minus_floor_rounds_ms": [s - f for s, f in
                                          zip(sidecar.p50_rounds_ms, floor.p50_rounds_ms,
                                              strict=False)],
            "p50_met": gap <= P50_TARGET_MS,
            "cpu_per_request_vs_floor": (sidecar.cpu_us_per_request / floor.cpu_us_per_request
                                         if floor.cpu_us_per_request else None),
        }

    def to_json(self) -> dict[str, Any]:
        targets = {}
        for t in self.targets:
            entry = dataclasses.asdict(t)
            entry["added_ms"] = {k: self.added_ms(t, k) for k in ("p50", "p99")}
            targets[t.name] = entry
        return {"schema": 1, "started_at": self.started_at, "machine": self.machine,
                "settings": self.settings, "targets": targets, "summary": self.summary(),
                "notes": self.notes, "profiles": self.profiles}


def _num(value: float | None, digits: int = 2, sign: bool = False) -> str:
    if value is None:
        return "\u2014"
    text = f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
    return text.replace("-", MINUS)


def _spread(rounds: list[float]) -> str:
    """Half the range across rounds, relative to their mean: how far to trust the number."""
    if len(rounds) < 2 or not sum(rounds):
        return ""
    mean = sum(rounds) / len(rounds)
    return f" \u00b1{(max(rounds) - min(rounds)) / 2 / mean * 100:.0f} %"


def _spread_ms(rounds: list[float]) -> str:
    if len(rounds) < 2:
        return ""
    return f" \u00b1{(max(rounds) - min(rounds)) / 2:.2f}"


def render_markdown(report: BenchReport) -> str:
    m, s = report.machine, report.settings
    lines = [
        f"# llm-sidecar benchmark \u00b7 {report.started_at}",
        "",
        f"- **machine**: {m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"Linux {m['kernel']}, Python {m['python']}, aiohttp {m['aiohttp']}, "
        f"uvloop {m['uvloop']}, llm-sidecar {m['sidecar']} @ {m['commit']}",
        f"- **throughput**: {s['driver']}, {s['concurrency']} connections, "
        f"{s['duration_s']:g} s per target in {s['rounds']} interleaved round(s), after a "
        f"{s['warmup_s']:g} s warm-up",
        f"- **latency**: open-loop asyncio generator, {s['rate']:g} req/s for "
        f"{s['latency_duration_s']:g} s ({round(s['rate'] * s['latency_duration_s'])} "
        f"requests) per target in {s['rounds']} interleaved round(s), timed from each "
        "scheduled send instant",
        f"- **streaming**: {s['ttft_requests']} sequential streams per target; the fake upstream "
        f"sends {s['chunks']} chunks {s['pacing_ms']:g} ms apart",
        f"- **pinning**: {s['pinning']}",
        f"- **sidecar**: {s['sidecar_log']}; config: {s['sidecar_config'] or 'none'}; "
        f"start-up: median of {s['startup_spawns']} spawns",
        "",
        f"| target | RPS @{s['concurrency']} | p50 ms | p99 ms | added p50 | added p99 "
        f"| TTFT p50 ms | RSS MB | peak MB | startup ms | CPU {MICRO}s/req | CPU % |",
        "|---|" + "---:|" * 11,
    ]
    for t in report.targets:
        lines.append("| " + " | ".join([
            t.name, f"{t.rps:.0f}{_spread(t.rps_rounds)}",
            _num(t.latency_ms.get("p50")) + _spread_ms(t.p50_rounds_ms),
            _num(t.latency_ms.get("p99")),
            _num(report.added_ms(t, "p50"), sign=True), _num(report.added_ms(t, "p99"), sign=True),
            _num(t.ttft_ms.get("p50")), _num(t.rss_mb, 1), _num(t.rss_peak_mb, 1),
            _num(t.startup_ms, 0), _num(t.cpu_us_per_request, 0), _num(t.cpu_pct, 0),
        ]) + " |")
    summary = report.summary()
    if summary:
        met = {True: "met", False: "NOT met"}
        lines += [
            "",
            f"- sidecar RPS = {summary['rps_pct_of_floor']:.1f} % of floor "
            f"(target \u2265 {RPS_TARGET_PCT:g} %): {met[summary['rps_met']]}",
            f"- sidecar p50 {MINUS} floor p50 = {_num(summary['p50_minus_floor_ms'])} ms "
            f"(target \u2264 {P50_TARGET_MS:g} ms): {met[summary['p50_met']]}"
            + _per_round(summary["p50_minus_floor_rounds_ms"]),
        ]
        ratio = summary["cpu_per_request_vs_floor"]
        if ratio is not None:
            lines.append(f"- sidecar CPU per request = {ratio:.2f} \u00d7 floor's (when both are "
                         f"CPU-bound: RPS = {100 / ratio:.1f} % of floor)")
    if report.notes:
        lines += ["", "Notes:", *(f"- {note}" for note in report.notes)]
    for name, found in report.profiles.items():
        lines += _profile_section(name, found)
    return "\n".join(lines) + "\n"


def _per_round(gaps: list[float]) -> str:
    if len(gaps) < 2:
        return ""
    return f" (round by round: {', '.join(_num(g, sign=True) for g in gaps)} ms)"


def _profile_section(name: str, found: dict[str, Any], rows: int = 12) -> list[str]:
    lines = ["", f"### Where {name} spends its CPU under load (py-spy, {found['samples']} "
                 f"samples; stacks in {found.get('collapsed_stacks', '?')})", "",
             "| self % | function | | inclusive % | function |", "|---:|---|---|---:|---|"]
    own, inclusive = found["self"][:rows], found["inclusive"][:rows]
    for i in range(max(len(own), len(inclusive))):
        left = own[i] if i < len(own) else None
        right = inclusive[i] if i < len(inclusive) else None
        lines.append("| " + " | ".join([
            f"{left['pct']:.1f}" if left else "", f"`{left['function']}`" if left else "", "",
            f"{right['pct']:.1f}" if right else "", f"`{right['function']}`" if right else "",
        ]) + " |")
    return lines


def write(report: BenchReport, results_dir: Path, json_path: Path | None) -> str:
    """Write latest.md and latest.json (and json_path if given); return the markdown."""
    markdown = render_markdown(report)
    data = json.dumps(report.to_json(), indent=2) + "\n"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "latest.md").write_text(markdown)
    (results_dir / "latest.json").write_text(data)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(data)
    return markdown


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
    }


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
