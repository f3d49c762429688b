"""Load drivers: which generator runs, how it is called, and how its output is read.

Throughput (closed loop, N connections for D seconds) uses `wrk` or `hey` when installed, else
the asyncio generator (`bench/loadgen.py`); `auto` prefers wrk (C, the least CPU per request:
it shares a core with the fake upstream), then hey, then asyncio. The fixed-rate run (latency,
and for streams time to first token and pacing) always uses the asyncio generator: `hey -q`
limits each worker's rate and waits for each answer (closed loop), `wrk` has no fixed-rate
mode, and neither times events inside a stream. Every driver runs as a child process pinned to
the load CPUs, and the CPU time it used is measured (`resource.getrusage(RUSAGE_CHILDREN)`)
so a report can tell when the load side, not the target, was the bottleneck.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.processes import Service, child_setup, cpu_seconds

DRIVERS = ("wrk", "hey", "asyncio")
_WRK_MARK = "BENCH_JSON "


class DriverFailed(RuntimeError):
    """A load generator exited non-zero or printed nothing readable."""


@dataclass(frozen=True, slots=True)
class Load:
    """What every driver sends: POST url with the JSON body in body_path and these headers."""

    url: str
    body_path: Path
    headers: tuple[tuple[str, str], ...] = ()
    cpus: frozenset[int] | None = None


@dataclass(slots=True)
class Throughput:
    driver: str
    rps: float
    requests: int
    seconds: float
    non_2xx: int = 0
    errors: int = 0
    cpu_s: float = 0.0  # CPU time the load generator itself used
    latency_ms: dict[str, float] = field(default_factory=dict)  # under load, as it reports


def installed() -> list[str]:
    """The drivers usable on this machine, best first (asyncio is always there)."""
    return [d for d in DRIVERS if d == "asyncio" or shutil.which(d)]


def pick(requested: str) -> str:
    if requested == "auto":
        return installed()[0]
    if requested not in installed():
        raise DriverFailed(f"--driver {requested}: `{requested}` is not installed here "
                           f"(apt-get install -y {requested}); installed: {installed()}")
    return requested


def describe(driver: str) -> str:
    """The driver's name and version, for the report header."""
    if driver == "wrk":
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        match = re.search(r"wrk (\S+)", done.stdout + done.stderr)
        return f"wrk {match.group(1)}" if match else "wrk"
    if driver == "hey":
        return "hey"
    return f"asyncio (aiohttp, Python {sys.version.split()[0]})"


def run_generator(argv: Sequence[str], cpus: frozenset[int] | None, timeout: float,
         env: Mapping[str, str] | None = None) -> tuple[str, float]:
    """Run a generator to completion; its stdout and the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                          preexec_fn=child_setup(cpus), check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = "\n  ".join((done.stderr or done.stdout).strip().splitlines()[-10:])
        raise DriverFailed(f"{argv[0]} exited with status {done.returncode}:\n  {tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.stdout, cpu


def loadgen(mode: str, load: Load, *options: str, timeout: float) -> tuple[dict[str, Any], float]:
    argv = [sys.executable, "-m", "bench.loadgen", mode, "--url", load.url,
            "--body", str(load.body_path), *options]
    for name, value in load.headers:
        argv += ["--header", f"{name}: {value}"]
    out, cpu = run_generator(argv, load.cpus, timeout)
    try:
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise DriverFailed(f"bench.loadgen {mode} printed no result: {out[-500:]!r}") from None
    return result, cpu


def throughput(driver: str, load: Load, *, concurrency: int, duration: float,
               workdir: Path) -> Throughput:
    """Closed loop: `concurrency` keep-alive connections sending back to back."""
    timeout = duration + 60
    threads = max(1, min(len(load.cpus or os.sched_getaffinity(0)), concurrency))
    if driver == "wrk":
        script = workdir / "wrk-post.lua"
        script.write_text(wrk_script(load))
        seconds = max(1, round(duration))
        out, cpu = run_generator(["wrk", "-t", str(threads), "-c", str(concurrency),
                                  "-d", f"{seconds}s", "-s", str(script), load.url],
                                 load.cpus, timeout)
        return parse_wrk(out, cpu)
    if driver == "hey":
        argv = ["hey", "-c", str(concurrency), "-z", f"{duration:g}s", "-m", "POST",
                "-T", "application/json", "-D", str(load.body_path)]
        for name, value in load.headers:
            argv += ["-H", f"{name}: {value}"]
        out, cpu = run_generator([*argv, load.url], load.cpus, timeout,
                                 env={"GOMAXPROCS": str(threads)})
        return parse_hey(out, cpu)
    result, _ = loadgen("closed", load, "--concurrency", str(concurrency),
                          "--duration", str(duration), timeout=timeout)
    # Its own count: the process's total would add ~0.3 s of imports to a short run.
    return Throughput("asyncio", result["rps"], result["requests"], result["seconds"],
                      result["non_2xx"], result["errors"], result["cpu_s"], result["latency_ms"])


def fixed_rate(load: Load, *, rate: float, duration: float) -> tuple[dict[str, Any], float]:
    """Open loop at `rate` requests per second (always the asyncio generator); event streams
    are timed event by event."""
    return loadgen("open", load, "--rate", str(rate), "--duration", str(duration),
                   timeout=duration + 60)


def wrk_script(load: Load) -> str:
    """A wrk Lua script: POST the body file, then print a JSON summary line when done."""
    lines = [
        f"local f = assert(io.open({json.dumps(str(load.body_path))}, 'rb'))",
        "wrk.method = 'POST'",
        "wrk.body = f:read('*a')",
        "f:close()",
        "wrk.headers['Content-Type'] = 'application/json'",
        *(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in load.headers),
        "done = function(summary, latency, requests)",
        "  local e = summary.errors",
        f"  io.write(string.format('{_WRK_MARK}{{\"requests\": %.0f, \"duration_us\": %.0f, "
        "\"connect\": %.0f, \"read\": %.0f, \"write\": %.0f, \"status\": %.0f, "
        "\"timeout\": %.0f, \"p50_us\": %.0f, \"p90_us\": %.0f, \"p99_us\": %.0f, "
        "\"mean_us\": %.1f, \"max_us\": %.0f}\\n', summary.requests, summary.duration, "
        "e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), "
        "latency:percentile(90), latency:percentile(99), latency.mean, latency.max))",
        "end",
    ]
    return "\n".join(lines) + "\n"


def parse_wrk(out: str, cpu_s: float = 0.0) -> Throughput:
    for line in out.splitlines():
        if line.startswith(_WRK_MARK):
            s = json.loads(line[len(_WRK_MARK):])
            break
    else:
        raise DriverFailed(f"wrk printed no summary (was the Lua script run?): {out[-500:]!r}")
    seconds = s["duration_us"] / 1e6
    latency = {name: s[f"{name}_us"] / 1000 for name in ("p50", "p90", "p99", "mean", "max")}
    return Throughput("wrk", s["requests"] / seconds if seconds else 0.0, int(s["requests"]),
                      seconds, non_2xx=int(s["status"]),
                      errors=int(s["connect"] + s["read"] + s["write"] + s["timeout"]),
                      cpu_s=cpu_s, latency_ms=latency)


def parse_hey(out: str, cpu_s: float = 0.0) -> Throughput:
    total = re.search(r"Total:\s+([\d.]+) secs", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not (total and rps):
        raise DriverFailed(f"hey printed no summary: {out[-500:]!r}")
    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    errors_part = out.split("Error distribution:", 1)[1] if "Error distribution:" in out else ""
    errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", errors_part, re.MULTILINE))
    latency = {f"p{p}": float(s) * 1000 for p, s in
               re.findall(r"(\d+)%+ in ([\d.]+) secs", out) if p in ("50", "90", "99")}
    average = re.search(r"Average:\s+([\d.]+) secs", out)
    if average:
        latency["mean"] = float(average.group(1)) * 1000
    return Throughput("hey", float(rps.group(1)), sum(statuses.values()), float(total.group(1)),
                      non_2xx=sum(n for c, n in statuses.items() if not 200 <= c < 300),
                      errors=errors, cpu_s=cpu_s, latency_ms=latency)


def split_cpus() -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """(the CPU for the process under test, the CPUs for the load), and moves this process to
    the load's; (None, None) on one CPU. For the small benches; `python -m bench` plans its own."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    under, load = frozenset(cpus[:1]), frozenset(cpus[1:])
    os.sched_setaffinity(0, load)
    return under, load


def measured_throughput(driver: str, service: Service, load: Load, seconds: float,
                        workdir: Path) -> tuple[float, float, int]:
    """A closed loop at 32 connections against `service`: (requests per second, its CPU µs
    per request, requests). Any non-2xx answer or error fails the measurement."""
    cpu = cpu_seconds(service.pid)
    result = throughput(driver, load, concurrency=32, duration=seconds, workdir=workdir)
    used = cpu_seconds(service.pid) - cpu
    if result.non_2xx or result.errors:
        raise RuntimeError(f"{service.name}: {result.non_2xx} non-2xx, {result.errors} errors")
    return result.rps, used / max(result.requests, 1) * 1e6, result.requests
