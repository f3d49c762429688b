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
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import drivers, external, measurements, profile, targets
from bench.launch import launch, selected_rows
from bench.measurements import Bench, Pinning, Tally
from bench.options import REPO, Options, relative
from bench.processes import Fleet, ServiceFailed, dead
from bench.report import BenchReport, TargetResult, machine_facts
from bench.rows import Row


def plan_pinning(enabled: bool) -> Pinning:
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or len(cpus) < 2:
        return Pinning()
    rest = frozenset(cpus[1:])
    if len(cpus) == 2:
        return Pinning(frozenset(cpus[:1]), rest, rest)
    return Pinning(frozenset(cpus[:1]), frozenset(cpus[1:2]), frozenset(cpus[2:]))


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
                          "collapsed_stacks": relative(out)}
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


def run(options: Options, log: Callable[[str], None] = print) -> BenchReport:
    began = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if options.install_generators:
        external.install_generators(log)
    driver = drivers.pick(options.driver)
    run_external = options.external if options.external is not None else (
        "hey" not in external.missing_generators())
    machine = machine_facts(REPO)  # before the harness pins itself
    pinning = plan_pinning(options.pin)
    if pinning.load is not None:  # the harness mostly sleeps; keep it off the CPU under test
        os.sched_setaffinity(0, pinning.load | (pinning.upstream or frozenset()))
    log_dir = options.results_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    ext_results: list[dict[str, Any]] = []
    chosen = selected_rows(options)
    soaks = soak_names(options, chosen)
    kinds = 2 if any(r.kind == "stream" for r in chosen) else 1
    log(f"{len(chosen)} rows, {len(options.peers)} peers: about " + str(round(estimate_minutes(
        options, kinds * (2 + len(options.peers)) + len(chosen),
        1 + len(chosen) + len(options.peers), len(soaks)))) + " min")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, Fleet(log_dir) as fleet:
        workdir = Path(tmp)
        started, upstream = launch(fleet, options, pinning, workdir, chosen, log, notes)
        bench = Bench(pinning, upstream, fleet.services, workdir)
        for target in started.targets:
            spec = started.specs.get(target.process)
            bench.count(target, targets.check(
                target.name, target.service.port, spec, target.kind,
                target.body_path.read_bytes(), dict(target.headers), notes))
        names = {t.name for t in started.targets}
        for flag, asked in (("--soak-rows", soaks), ("--profile-rows", options.profile_rows)):
            if unknown := sorted(set(asked or ()) - names):
                notes.append(f"{flag}: no target named {', '.join(unknown)} in this run "
                             f"(targets: {', '.join(sorted(names))})")
        log(f"measuring {len(started.targets)} targets ...")
        tallies = [Tally(target) for target in started.targets]
        measure(bench, tallies, options, driver, soaks, log)
        plan = external.Plan(rounds=max(options.external_rounds, 1),
                             burst_requests=options.external_burst,
                             burst_concurrency=options.concurrency, rate=options.rate,
                             rate_seconds=options.external_rate_s)
        if run_external and "hey" in external.missing_generators():
            notes.append("--external: hey is not installed (apt-get install -y hey, or "
                         "--install-generators): no external table")
        elif run_external:
            ext_results = external.measure(bench, tallies, plan, log)
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
                       + relative(log_dir / "<row>.log"),
        "extra_headers": [name for name, _ in options.headers],
        **started.settings,
    }
    if ext_results:
        settings["external"] = {"generator": "hey", "rounds": plan.rounds,
                                "burst_requests": plan.burst_requests,
                                "burst_concurrency": plan.burst_concurrency, "rate": plan.rate,
                                "rate_connections": plan.rate_connections,
                                "rate_seconds": plan.rate_seconds}
    return BenchReport(began, machine, settings, results, notes, profiles, ext_results)


