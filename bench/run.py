"""One benchmark run: start the fake upstream, the floor and the sidecar, measure, report.

    spawn the fake upstream (load CPUs)
    start-up: spawn the floor and the sidecar N times each, time spawn -> ready, stop each
    spawn the floor and the sidecar (CPU under test); each must answer a chat correctly
    warm up each target
    throughput: R rounds; in each, every target gets one slice (order rotates per round)
    latency:    R rounds of open-loop slices at the fixed rate, samples pooled per target
    streams:    sequential streaming requests per target (TTFT)
    RSS and peak of each process under test, then stop everything (SIGTERM, then SIGKILL),
    also on Ctrl-C, SIGTERM or an error

With two or more CPUs the process under test gets CPU 0 to itself and the fake upstream and
the load generator share the others (with three or more, the generator gets its own); for the
direct target the upstream itself is moved onto CPU 0 while it is measured (measurements.py).
"""

from __future__ import annotations

import http.client
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import drivers, measurements, profile
from bench.measurements import Bench, Pinning, Tally, Target
from bench.processes import Fleet, ServiceFailed, dead, free_port
from bench.report import BenchReport, TargetResult, machine_facts

REPO = Path(__file__).resolve().parent.parent
DEFAULT_HEADERS = (("Authorization", "Bearer sk-bench"),)
CHAT = {"model": "gpt-4o-mini", "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write one sentence that uses every letter of the alphabet."}],
    "temperature": 0.7, "max_tokens": 64}


@dataclass(frozen=True, slots=True)
class Options:
    duration: float = 15.0  # throughput seconds per target, split over the rounds
    # Open-loop seconds per target, split over the rounds. On a small VM one round's p50 swings
    # by +-0.5 ms (CPU wake-up), as much as the 0.3 ms target; 60 s over 6 rounds settles it
    # within about 0.1 ms (measured: 0.07 ms gap twice, where 15 s runs gave 0.14 and 0.38).
    latency_duration: float = 60.0
    rounds: int = 6
    rate: float = 100.0
    concurrency: int = 32
    warmup: float = 3.0
    ttft_requests: int = 40
    startup_spawns: int = 5
    chunks: int = 20
    pacing_ms: float = 10.0
    driver: str = "auto"
    sidecar_config: Path | None = None
    access_log: bool = True  # False: SIDECAR_LOG_LEVEL=warning
    pin: bool = True
    headers: tuple[tuple[str, str], ...] = DEFAULT_HEADERS
    results_dir: Path = REPO / "bench" / "results"
    json_path: Path | None = None
    quick: bool = False
    profile: bool = False  # sample floor and sidecar with py-spy after the measurements
    profile_seconds: float = 10.0


QUICK = {"duration": 2.0, "latency_duration": 2.0, "rounds": 1, "warmup": 1.0,
         "ttft_requests": 5, "startup_spawns": 2}


def plan_pinning(enabled: bool) -> Pinning:
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or len(cpus) < 2:
        return Pinning()
    rest = frozenset(cpus[1:])
    if len(cpus) == 2:
        return Pinning(frozenset(cpus[:1]), rest, rest)
    return Pinning(frozenset(cpus[:1]), frozenset(cpus[1:2]), frozenset(cpus[2:]))


def sidecar_argv(port: int, upstream_port: int, config: Path | None) -> list[str]:
    script = Path(sys.executable).with_name("llm-sidecar")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sidecar"]
    argv = [*command, "serve", "--upstream", f"http://127.0.0.1:{upstream_port}/",
            "--port", str(port)]
    return [*argv, "--config", str(config)] if config else argv


def sidecar_env(state_dir: Path, access_log: bool) -> dict[str, str]:
    """The environment without any SIDECAR_* of the caller's, so a run is reproducible."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    env["SIDECAR_STATE_DIR"] = str(state_dir)
    if not access_log:
        env["SIDECAR_LOG_LEVEL"] = "warning"
    return env


def check_answers(target: Target, body: bytes, headers: Sequence[tuple[str, str]]) -> None:
    """One chat through the target must come back 200 with a chat.completion, or the run
    would measure error pages (a configured sidecar may want a key: see --header)."""
    conn = http.client.HTTPConnection("127.0.0.1", target.service.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Content-Type": "application/json", **dict(headers)})
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    if response.status != 200 or b'"chat.completion"' not in answer:
        raise ServiceFailed(f"{target.name} answered a chat with {response.status}: "
                            f"{answer[:300]!r}")


def measure_startup(fleet: Fleet, name: str, argv_for_port: Callable[[int], list[str]],
                    ready_path: str, cpus: frozenset[int] | None, env: dict[str, str] | None,
                    spawns: int, notes: list[str]) -> list[float]:
    samples = []
    for _ in range(spawns):
        port = free_port()
        service = fleet.spawn(f"{name}-startup", argv_for_port(port), port=port,
                              ready_path=ready_path, cpus=cpus, env=env,
                              log_name=f"{name}-startup.log")
        samples.append(service.wait_ready() * 1000)
        status = fleet.stop(service)
        if status != 0:
            notes.append(f"{name} exited with status {status} on SIGTERM (expected 0); "
                         f"see {service.log_path}")
    return samples


def health_notes(results: list[TargetResult], pinning: Pinning) -> list[str]:
    notes = []
    for r in results:
        if r.errors or r.non_2xx or r.latency_errors or r.ttft_errors:
            notes.append(f"{r.name}: {r.errors} transport errors and {r.non_2xx} non-2xx "
                         f"answers under load, {r.latency_errors} in the latency run, "
                         f"{r.ttft_errors} in the streaming run")
        if pinning.under_test and r.load_side_cpu_pct > 85:
            notes.append(f"{r.name}: the load side (upstream + generator) was "
                         f"{r.load_side_cpu_pct:.0f} % busy while the target used "
                         f"{r.cpu_pct:.0f} % of its CPU: its RPS may be limited by the load "
                         "side rather than by itself, which flattens RPS ratios (compare CPU "
                         "per request instead, or use wrk)")
        if r.foreign_cpu_pct > 10 or r.steal_pct > 10:
            notes.append(f"{r.name}: other processes on this machine used "
                         f"{r.foreign_cpu_pct:.0f} % of a CPU and the hypervisor took "
                         f"{r.steal_pct:.0f} % while it was measured: its numbers are noisy")
        if r.send_lag_ms.get("p99", 0.0) > 1.0:
            notes.append(f"{r.name}: the latency generator sent late (p99 "
                         f"{r.send_lag_ms['p99']:.2f} ms after the scheduled instant)")
    return notes


def _rotated(tallies: list[Tally], round_index: int) -> list[Tally]:
    shift = round_index % len(tallies)
    return tallies[shift:] + tallies[:shift]


def measure(bench: Bench, tallies: list[Tally], options: Options, driver: str,
            log: Callable[[str], None]) -> None:
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
    log("streams ...")
    for tally in tallies:
        measurements.streams(bench, tally, options.ttft_requests)


def profile_targets(bench: Bench, tallies: list[Tally], options: Options, driver: str,
                    log: Callable[[str], None], notes: list[str]) -> dict[str, Any]:
    """One extra throughput slice per proxy under py-spy; never counted in the results."""
    py_spy = profile.find_py_spy()
    if py_spy is None:
        notes.append("--profile: py-spy is not installed (pip install py-spy); no profile")
        return {}
    profiles = {}
    for tally in tallies:
        if tally.target.service is bench.upstream:
            continue
        log(f"profiling {tally.target.name} with py-spy ...")
        out = options.results_dir / f"{tally.target.name}-profile.txt"
        sampler = profile.start(py_spy, tally.target.service.pid, options.profile_seconds, out)
        drivers.throughput(driver, bench.load(tally), concurrency=options.concurrency,
                           duration=options.profile_seconds + 1, workdir=bench.workdir)
        try:
            profile.finish(sampler)
        except RuntimeError as exc:
            notes.append(f"--profile {tally.target.name}: {exc}")
            continue
        profiles[tally.target.name] = {**profile.top_functions(out.read_text()),
                                       "collapsed_stacks": _relative(out)}
    return profiles


def run(options: Options, log: Callable[[str], None] = print) -> BenchReport:
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    driver = drivers.pick(options.driver)
    machine = machine_facts(REPO)  # before the harness pins itself
    pinning = plan_pinning(options.pin)
    if pinning.load is not None:  # the harness mostly sleeps; keep it off the CPU under test
        os.sched_setaffinity(0, pinning.load | (pinning.upstream or frozenset()))
    log_dir = options.results_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, Fleet(log_dir) as fleet:
        workdir = Path(tmp)
        chat = orjson.dumps(CHAT)
        chat_body, stream_body = workdir / "chat.json", workdir / "stream.json"
        chat_body.write_bytes(chat)
        stream_body.write_bytes(orjson.dumps({**CHAT, "stream": True}))
        (workdir / "state").mkdir()
        env = sidecar_env(workdir / "state", options.access_log)

        up_port = free_port()
        upstream = fleet.spawn(
            "upstream", [sys.executable, "-m", "bench.upstream", "--port", str(up_port),
                         "--chunks", str(options.chunks), "--pacing-ms", str(options.pacing_ms)],
            port=up_port, ready_path="/v1/models", cpus=pinning.upstream)
        upstream.wait_ready()

        def floor_argv(port: int) -> list[str]:
            return [sys.executable, "-m", "bench.floor", "--port", str(port),
                    "--upstream", f"http://127.0.0.1:{up_port}"]

        def side_argv(port: int) -> list[str]:
            return sidecar_argv(port, up_port, options.sidecar_config)

        log(f"start-up ({options.startup_spawns} spawns each) ...")
        floor_startup = measure_startup(fleet, "floor", floor_argv, "/v1/models",
                                        pinning.under_test, None, options.startup_spawns, notes)
        side_startup = measure_startup(fleet, "sidecar", side_argv, "/readyz",
                                       pinning.under_test, env, options.startup_spawns, notes)
        floor_port, side_port = free_port(), free_port()
        floor = fleet.spawn("floor", floor_argv(floor_port), port=floor_port,
                            ready_path="/v1/models", cpus=pinning.under_test)
        side = fleet.spawn("sidecar", side_argv(side_port), port=side_port,
                           ready_path="/readyz", cpus=pinning.under_test, env=env)
        floor.wait_ready()
        side.wait_ready()
        targets = [Target("direct", upstream, f"{upstream.url}/v1"),
                   Target("floor", floor, f"{floor.url}/v1", floor_startup),
                   Target("sidecar", side, f"{side.url}/v1", side_startup)]
        for target in targets:
            check_answers(target, chat, options.headers)

        bench = Bench(pinning, upstream, fleet.services, chat_body, stream_body,
                      options.headers, workdir)
        tallies = [Tally(target) for target in targets]
        measure(bench, tallies, options, driver, log)
        profiles = (profile_targets(bench, tallies, options, driver, log, notes)
                    if options.profile else {})
        if gone := dead([upstream, floor, side]):
            raise ServiceFailed(f"{', '.join(gone)} died during the run")
        results = [measurements.result(bench, tally) for tally in tallies]
        for r in results:
            log(f"  {r.name}: {r.rps:.0f} req/s, p50 {r.latency_ms.get('p50', 0):.2f} ms")
        status = fleet.stop(side)
        if status != 0:
            notes.append(f"the sidecar exited with status {status} on SIGTERM (expected 0)")
    notes = health_notes(results, pinning) + notes
    settings = {
        "driver": drivers.describe(driver), "driver_name": driver, "quick": options.quick,
        "concurrency": options.concurrency, "duration_s": options.duration,
        "rounds": max(options.rounds, 1), "warmup_s": options.warmup, "rate": options.rate,
        "latency_duration_s": options.latency_duration, "ttft_requests": options.ttft_requests,
        "chunks": options.chunks, "pacing_ms": options.pacing_ms,
        "startup_spawns": options.startup_spawns, "pinning": pinning.describe(),
        "sidecar_config": str(options.sidecar_config) if options.sidecar_config else None,
        "sidecar_log": ("access log on (level info), stdout to " if options.access_log else
                        "SIDECAR_LOG_LEVEL=warning (no access log), stdout to ")
                       + _relative(log_dir / "sidecar.log"),
        "headers": [name for name, _ in options.headers],
    }
    return BenchReport(started, machine, settings, results, notes, profiles)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
