"""One benchmark run: start everything, check it, measure, report.

    spawn the fake upstream and (for telemetry rows) an OTLP receiver (load CPUs)
    install the peers asked for (--peers; once, into bench/.peers/)
    start-up: spawn the floor, each row's sidecar and each peer N times, time spawn -> ready
    spawn them for good (CPU under test); each must answer correctly (targets.check)
    warm up each target
    throughput: R rounds; in each, every target gets one slice (order rotates per round)
    latency:    R rounds of open-loop slices at the fixed rate (streams: TTFT, gaps too)
    soak:       the --soak-rows at full load, RSS sampled
    RSS and peak of each process, then stop everything (SIGTERM, then SIGKILL), also on
    Ctrl-C, SIGTERM or an error

With two or more CPUs the processes under test get CPU 0 and the fake upstream, the OTLP
receiver and the load generator share the others (with three or more, the generator gets its
own); for the direct target the upstream itself is moved onto CPU 0 while it is measured.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import drivers, measurements, otlp, peers, profile, rows, targets
from bench.measurements import Bench, Pinning, Tally, Target
from bench.processes import Fleet, Service, ServiceFailed, dead, free_port
from bench.report import BenchReport, TargetResult, machine_facts
from bench.rows import Kind, Row
from bench.targets import Spec

REPO = Path(__file__).resolve().parent.parent
PEERS_DIR = REPO / "bench" / ".peers"
CUSTOM = "custom"  # the row of --sidecar-config


@dataclass(frozen=True, slots=True)
class Options:
    duration: float = 10.0  # throughput seconds per target, split over the rounds
    # Open-loop seconds per target, split over the rounds. On a small VM one round's p50 swings
    # by +-0.5 ms (CPU wake-up); pooled over 30 s in 5 rounds the p50 gap to the floor settles
    # within about 0.1-0.2 ms, enough for the 0.5 ms / 1 ms targets (60 s gave 0.07 ms).
    latency_duration: float = 30.0
    rounds: int = 5
    rate: float = 100.0
    concurrency: int = 32
    warmup: float = 2.0
    startup_spawns: int = 5
    chunks: int = 20
    pacing_ms: float = 10.0
    soak: float = 60.0  # seconds of full load with RSS sampled, on each of the soak rows
    rss_requests: int = 20_000  # RSS is judged once a process has served this many
    rows: tuple[str, ...] = rows.ROW_NAMES
    peers: tuple[str, ...] = ()
    soak_rows: tuple[str, ...] | None = None  # None: `all`, else the first row
    profile_rows: tuple[str, ...] | None = None  # None: floor, core, all
    driver: str = "auto"
    sidecar_config: Path | None = None  # adds a row "custom" with this file
    access_log: bool = True  # False: SIDECAR_LOG_LEVEL=warning
    pin: bool = True
    headers: tuple[tuple[str, str], ...] = ()  # --header: on every request to every target
    results_dir: Path = REPO / "bench" / "results"
    json_path: Path | None = None
    quick: bool = False
    profile: bool = False  # sample targets with py-spy after the measurements
    profile_seconds: float = 10.0


QUICK = {"duration": 2.0, "latency_duration": 2.0, "rounds": 1, "warmup": 1.0,
         "startup_spawns": 2, "soak": 3.0, "rss_requests": 2_000}


def plan_pinning(enabled: bool) -> Pinning:
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or len(cpus) < 2:
        return Pinning()
    rest = frozenset(cpus[1:])
    if len(cpus) == 2:
        return Pinning(frozenset(cpus[:1]), rest, rest)
    return Pinning(frozenset(cpus[:1]), frozenset(cpus[1:2]), frozenset(cpus[2:]))


def selected_rows(options: Options) -> list[Row]:
    chosen = [rows.row(name) for name in options.rows]
    if options.sidecar_config is not None:
        chosen.append(Row(CUSTOM, (), f"the sidecar with {options.sidecar_config}"))
    return chosen


def soak_names(options: Options, chosen: list[Row]) -> tuple[str, ...]:
    if options.soak_rows is not None:
        return options.soak_rows
    names = [r.name for r in chosen if r.kind == "json"]
    return ("all",) if "all" in names else tuple(names[:1])


def estimate_minutes(options: Options, n_targets: int, n_processes: int,
                     n_soaks: int) -> float:
    """Roughly how long a run takes: slices, start-ups (~1 s each) and soaks."""
    per_target = options.warmup + options.duration + options.latency_duration + 2
    spawns = options.startup_spawns * n_processes * 1.0
    return (per_target * n_targets + spawns + (options.soak + 2) * n_soaks + 15) / 60


def _rotated(tallies: list[Tally], round_index: int) -> list[Tally]:
    shift = round_index % len(tallies)
    return tallies[shift:] + tallies[:shift]


def measure(bench: Bench, tallies: list[Tally], options: Options, driver: str,
            soaks: tuple[str, ...], log: Callable[[str], None]) -> None:
    rounds = max(options.rounds, 1)
    for tally in tallies:
        measurements.warm_up(bench, tally, driver, options.concurrency, options.warmup)
    for i in range(rounds):
        log(f"throughput round {i + 1}/{rounds} ...")
        for tally in _rotated(tallies, i):
            measurements.throughput_slice(bench, tally, driver, options.concurrency,
                                          options.duration / rounds)
    for i in range(rounds):
        log(f"latency round {i + 1}/{rounds} ...")
        for tally in _rotated(tallies, i):
            measurements.latency_slice(bench, tally, options.rate,
                                       options.latency_duration / rounds)
    for tally in tallies:
        if tally.target.name in soaks:
            log(f"soak of {tally.target.name} ...")
            measurements.soak(bench, tally, driver, options.concurrency, options.soak,
                              options.rss_requests)


def profile_targets(bench: Bench, tallies: list[Tally], options: Options, driver: str,
                    python: dict[str, bool], log: Callable[[str], None],
                    notes: list[str]) -> dict[str, Any]:
    """One extra throughput slice per chosen target under py-spy; never counted."""
    names = options.profile_rows or ("floor", "core", "all")
    chosen = [t for t in tallies if t.target.name in names and t.target.role != "direct"]
    py_spy = profile.find_py_spy()
    if py_spy is None:
        notes.append("--profile: py-spy is not installed (pip install py-spy); no profile")
        return {}
    profiles = {}
    for tally in chosen:
        name = tally.target.name
        if not python.get(tally.target.process, True):
            notes.append(f"--profile {name}: not a Python process; py-spy cannot sample it")
            continue
        log(f"profiling {name} with py-spy ...")
        out = options.results_dir / f"{name}-profile.txt"
        sampler = profile.start(py_spy, tally.target.service.pid, options.profile_seconds, out)
        drivers.throughput(driver, bench.load(tally), concurrency=options.concurrency,
                           duration=options.profile_seconds + 1, workdir=bench.workdir)
        try:
            profile.finish(sampler)
        except RuntimeError as exc:
            notes.append(f"--profile {name}: {exc}")
            continue
        profiles[name] = {**profile.top_functions(out.read_text()),
                          "collapsed_stacks": _relative(out)}
    return profiles


def health_notes(results: list[TargetResult], pinning: Pinning) -> list[str]:
    notes = []
    noisy, late = [], []
    for r in results:
        if r.errors or r.non_2xx or r.latency_errors:
            notes.append(f"{r.name}: {r.errors} transport errors and {r.non_2xx} non-2xx "
                         f"answers under load, {r.latency_errors} in the fixed-rate run")
        if pinning.under_test and r.load_side_cpu_pct > 85:
            notes.append(f"{r.name}: the load side (upstream + generator) was "
                         f"{r.load_side_cpu_pct:.0f} % busy while the target used "
                         f"{r.cpu_pct:.0f} % of its CPU: its RPS may be limited by the load "
                         "side rather than by itself, which flattens RPS ratios (compare CPU "
                         "per request instead, or use wrk)")
        if r.foreign_cpu_pct > 10 or r.steal_pct > 10:
            noisy.append(f"{r.name} {r.foreign_cpu_pct:.0f} %"
                         + (f" + {r.steal_pct:.0f} % stolen" if r.steal_pct > 1 else ""))
        if r.send_lag_ms.get("p99", 0.0) > 1.0:
            late.append(f"{r.name} {r.send_lag_ms['p99']:.1f} ms")
    if noisy:
        notes.append("other processes on this machine (or the hypervisor) used CPU while these "
                     "targets were measured, as a share of one CPU: " + ", ".join(noisy)
                     + "; their numbers are noisy")
    if late:
        notes.append("the fixed-rate generator sent late (p99 after the scheduled instant) "
                     "for: " + ", ".join(late))
    return notes


@dataclass(slots=True)
class _Started:
    """What the set-up hands to the measurements."""

    targets: list[Target] = field(default_factory=list)
    specs: dict[str, Spec] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def start(fleet: Fleet, options: Options, pinning: Pinning, workdir: Path, chosen: list[Row],
          log: Callable[[str], None], notes: list[str]) -> tuple[_Started, Service]:
    """Spawn upstream, receiver, floor, rows and peers; time start-ups; check every target."""
    kinds: tuple[Kind, ...] = ("json", "stream") if any(r.kind == "stream" for r in chosen) \
        else ("json",)
    bodies = targets.write_bodies(workdir)
    up_port = free_port()
    upstream = fleet.spawn(
        "upstream", [sys.executable, "-m", "bench.upstream", "--port", str(up_port),
                     "--chunks", str(options.chunks), "--pacing-ms", str(options.pacing_ms)],
        port=up_port, ready_path="/v1/models", cpus=pinning.upstream)
    upstream.wait_ready()
    upstream_url = f"http://127.0.0.1:{up_port}"
    started = _Started()
    context = {"upstream": upstream_url, "otlp": "http://127.0.0.1:4317",
               "otlp_protocol": "grpc"}
    if any(rows.needs_otlp(r) for r in chosen):
        receiver = otlp.plan(sys.executable, free_port(), free_port(), workdir)
        fleet.spawn("otlp", receiver.argv, port=receiver.port, ready_path="/",
                    cpus=pinning.upstream, ready_any=True).wait_ready()
        context.update(otlp=receiver.endpoint, otlp_protocol=receiver.protocol)
        started.settings["otlp"] = (f"{receiver.name}, OTLP/{receiver.protocol} at "
                                    f"{receiver.endpoint}")
        if receiver.name == "sink":
            notes.append("rotel is not installed (pip install -e '.[bench]'): the telemetry "
                         "rows export OTLP/HTTP to bench/otlp.py's sink instead of OTLP/gRPC")

    extra = dict(options.headers)
    specs = [targets.floor_spec(upstream_url, kinds)]
    for r in chosen:
        config = options.sidecar_config if r.name == CUSTOM else None
        specs.append(targets.row_spec(r, upstream_url, context, workdir, options.access_log,
                                      config))
    for name in options.peers:
        run = peers.prepare(name, PEERS_DIR, upstream_url, workdir, log)
        specs.append(Spec(name, "peer", run.argv_for_port, run.ready_path,
                          env={**os.environ, **run.env}, headers=run.headers, kinds=kinds,
                          python=run.python, info={"version": run.version}))
    started.settings["peers"] = {s.name: s.info["version"] for s in specs if s.role == "peer"}
    configs = options.results_dir / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        if "config" in spec.info:
            shutil.copy(spec.info["config"], configs / f"{spec.name}.yaml")
    started.settings["configs"] = _relative(configs)

    log(f"start-up ({options.startup_spawns} spawns each of {len(specs)} processes) ...")
    startup = {s.name: targets.startup(fleet, s, pinning.under_test, options.startup_spawns,
                                       notes) for s in specs}
    for spec in specs:
        port = free_port()
        started.services[spec.name] = fleet.spawn(
            spec.name, spec.argv_for_port(port), port=port, ready_path=spec.ready_path,
            cpus=pinning.under_test, env=spec.env)
        started.specs[spec.name] = spec
    for spec in specs:
        started.services[spec.name].wait_ready(timeout=120)
        if spec.row is not None and spec.name != CUSTOM:
            targets.check_stages(spec, started.services[spec.name].port, notes)

    for kind in kinds:
        suffix = "" if kind == "json" else "-stream"
        started.targets.append(Target(
            f"direct{suffix}", kind, "direct", "direct (fake upstream)", upstream,
            f"{upstream.url}/v1", bodies["chat", kind],
            tuple(targets.client_headers({}, extra).items())))
        for spec in specs:
            if kind not in spec.kinds:
                continue
            name = spec.name if kind == spec.kinds[0] else f"{spec.name}{suffix}"
            service = started.services[spec.name]
            started.targets.append(Target(
                name, kind, spec.role, spec.name, service, f"{service.url}/v1",
                bodies[spec.body, kind],
                tuple(targets.client_headers(spec.headers, extra).items()),
                startup[spec.name] if name == spec.name else [], spec.info))
    return started, upstream


def run(options: Options, log: Callable[[str], None] = print) -> BenchReport:
    began = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    driver = drivers.pick(options.driver)
    machine = machine_facts(REPO)  # before the harness pins itself
    pinning = plan_pinning(options.pin)
    if pinning.load is not None:  # the harness mostly sleeps; keep it off the CPU under test
        os.sched_setaffinity(0, pinning.load | (pinning.upstream or frozenset()))
    log_dir = options.results_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    chosen = selected_rows(options)
    soaks = soak_names(options, chosen)
    kinds = 2 if any(r.kind == "stream" for r in chosen) else 1
    log(f"{len(chosen)} rows, {len(options.peers)} peers: about " + str(round(estimate_minutes(
        options, kinds * (2 + len(options.peers)) + len(chosen),
        1 + len(chosen) + len(options.peers), len(soaks)))) + " min")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, Fleet(log_dir) as fleet:
        workdir = Path(tmp)
        started, upstream = start(fleet, options, pinning, workdir, chosen, log, notes)
        bench = Bench(pinning, upstream, fleet.services, workdir)
        for target in started.targets:
            spec = started.specs.get(target.process)
            bench.count(target, targets.check(
                target.name, target.service.port, spec, target.kind,
                target.body_path.read_bytes(), dict(target.headers), notes))
        log(f"measuring {len(started.targets)} targets ...")
        tallies = [Tally(target) for target in started.targets]
        measure(bench, tallies, options, driver, soaks, log)
        python = {name: spec.python for name, spec in started.specs.items()}
        profiles = (profile_targets(bench, tallies, options, driver, python, log, notes)
                    if options.profile or options.profile_rows else {})
        if gone := dead([upstream, *started.services.values()]):
            raise ServiceFailed(f"{', '.join(gone)} died during the run")
        results = [measurements.result(bench, tally, options.rss_requests) for tally in tallies]
        for r in results:
            log(f"  {r.name}: {r.rps:.0f} req/s, {r.cpu_us_per_request:.0f} \u00b5s/req, "
                f"p50 {r.latency_ms.get('p50', 0):.2f} ms")
        for name, spec in started.specs.items():
            if spec.role == "row":
                status = fleet.stop(started.services[name])
                if status != 0:
                    notes.append(f"{name} exited with status {status} on SIGTERM (expected 0)")
    notes = health_notes(results, pinning) + notes
    settings = {
        "driver": drivers.describe(driver), "driver_name": driver, "quick": options.quick,
        "concurrency": options.concurrency, "duration_s": options.duration,
        "rounds": max(options.rounds, 1), "warmup_s": options.warmup, "rate": options.rate,
        "latency_duration_s": options.latency_duration, "chunks": options.chunks,
        "pacing_ms": options.pacing_ms, "startup_spawns": options.startup_spawns,
        "soak_s": options.soak, "soak_rows": list(soaks), "rss_requests": options.rss_requests,
        "rows": [r.name for r in chosen], "pinning": pinning.describe(),
        "sidecar_config": str(options.sidecar_config) if options.sidecar_config else None,
        "sidecar_log": ("access log on (level info), stdout to " if options.access_log else
                        "SIDECAR_LOG_LEVEL=warning (no access log), stdout to ")
                       + _relative(log_dir / "<row>.log"),
        "extra_headers": [name for name, _ in options.headers],
        **started.settings,
    }
    return BenchReport(began, machine, settings, results, notes, profiles)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
