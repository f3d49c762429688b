"""`python -m bench`: run the benchmark once and print the table (bench/README.md).

Prints the markdown table on stdout, writes bench/results/latest.md and latest.json (and
--json PATH). Progress goes to stderr. Exit status: 0 after a complete run (whether or not the
targets are met: a benchmark measures, CI does not gate on timings), 1 when a process or a
driver failed, 130 when interrupted; every process the run started is stopped in each case.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from bench import drivers
from bench.processes import ServiceFailed
from bench.report import write
from bench.run import DEFAULT_HEADERS, QUICK, Options, run


def _parser() -> argparse.ArgumentParser:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the sidecar against a floor aiohttp relay and a direct call to "
                    "a fast fake upstream, all on this machine.")
    add = parser.add_argument
    add("--quick", action="store_true",
        help=f"short smoke run (well under a minute): {QUICK}; explicit flags still win")
    add("--duration", type=float, metavar="S",
        help=f"throughput seconds per target, in total (default {defaults.duration:g})")
    add("--rounds", type=int, metavar="N",
        help=f"interleave the targets in N rounds, each getting 1/N of --duration and "
             f"--latency-duration (default {defaults.rounds})")
    add("--latency-duration", type=float, metavar="S",
        help=f"fixed-rate latency seconds per target (default {defaults.latency_duration:g})")
    add("--rate", type=float, metavar="N",
        help=f"fixed rate of the latency run, req/s (default {defaults.rate:g})")
    add("--concurrency", type=int, metavar="N",
        help=f"connections of the throughput run (default {defaults.concurrency})")
    add("--warmup", type=float, metavar="S",
        help=f"warm-up seconds per target (default {defaults.warmup:g})")
    add("--ttft-requests", type=int, metavar="N",
        help=f"sequential streams per target (default {defaults.ttft_requests})")
    add("--startup-spawns", type=int, metavar="N",
        help=f"spawns to time start-up over (median; default {defaults.startup_spawns})")
    add("--chunks", type=int, metavar="N",
        help=f"SSE chunks per fake stream (default {defaults.chunks})")
    add("--pacing-ms", type=float, metavar="MS",
        help=f"pause between fake SSE chunks (default {defaults.pacing_ms:g})")
    add("--driver", choices=("auto", *drivers.DRIVERS), default="auto",
        help="throughput load generator; auto: wrk, else hey, else asyncio "
             f"(installed here: {', '.join(drivers.installed())})")
    add("--sidecar-config", type=Path, metavar="FILE",
        help="YAML config for the sidecar under test (its upstream and port are overridden)")
    add("--no-access-log", action="store_true",
        help="run the sidecar with SIDECAR_LOG_LEVEL=warning, to show the access log's cost")
    add("--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="client header on every request, e.g. a local key for a sidecar with auth "
             f"(default: {DEFAULT_HEADERS[0][0]}: {DEFAULT_HEADERS[0][1]})")
    add("--no-pin", action="store_true", help="do not pin processes to CPUs")
    add("--profile", action="store_true",
        help="after measuring, sample the floor and the sidecar under load with py-spy "
             "(pip install py-spy) and add their hottest functions to the report")
    add("--results-dir", type=Path, metavar="DIR",
        help="where latest.md, latest.json and logs/ go (default bench/results)")
    add("--json", type=Path, metavar="PATH", help="also write the JSON results here")
    return parser


def options_from(args: argparse.Namespace) -> Options:
    chosen = {name: getattr(args, name) for name in (
        "duration", "latency_duration", "rounds", "rate", "concurrency", "warmup", "ttft_requests",
        "startup_spawns", "chunks", "pacing_ms", "results_dir")
        if getattr(args, name) is not None}
    if args.quick:
        chosen = {**QUICK, **chosen}
    headers = dict(DEFAULT_HEADERS)
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep:
            raise SystemExit(f"--header {header!r}: expected 'NAME: VALUE'")
        headers = {k: v for k, v in headers.items() if k.lower() != name.strip().lower()}
        headers[name.strip()] = value.strip()
    return dataclasses.replace(
        Options(), **chosen, driver=args.driver, sidecar_config=args.sidecar_config,
        access_log=not args.no_access_log, pin=not args.no_pin, json_path=args.json,
        profile=args.profile,
        quick=args.quick, headers=tuple(headers.items()))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    options = options_from(_parser().parse_args(argv))
    signal.signal(signal.SIGTERM, _interrupt)  # stop the fleet as Ctrl-C would
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        report = run(options, progress)
    except KeyboardInterrupt:
        progress("interrupted: every process this run started has been stopped")
        return 130
    except (ServiceFailed, drivers.DriverFailed) as exc:
        progress(f"bench failed: {exc}")
        return 1
    print(write(report, options.results_dir, options.json_path), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
