"""`python -m bench`: run the benchmark once and print the report (bench/README.md).

Prints the markdown report on stdout, writes bench/results/latest.md and latest.json (and
--json PATH). Progress goes to stderr. Exit status: 0 after a complete run (whether or not the
targets are met: a benchmark measures, CI does not gate on timings), 1 when a process, a driver
or a peer's installation failed, 2 on bad flags, 130 when interrupted; every process the run
started is stopped in each case.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from bench import drivers, peers, rows
from bench.options import QUICK, Options
from bench.processes import ServiceFailed
from bench.run import run
from bench.table import write


def _names(text: str, known: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown)}; "
                                         f"choose from {', '.join(known)}")
    return names


def _parser() -> argparse.ArgumentParser:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the sidecar, row by row (a configuration each), against a floor "
                    "aiohttp relay and a direct call to a fast fake upstream, all on this "
                    "machine; optionally side by side with peer gateways.")
    add = parser.add_argument
    add("--quick", action="store_true",
        help=f"short smoke run: {QUICK}; explicit flags still win")
    add("--rows", type=lambda t: _names(t, rows.ROW_NAMES, "row"), metavar="A,B,...",
        help=f"rows to measure (default all: {','.join(rows.ROW_NAMES)})")
    add("--peers", type=lambda t: _names(t, peers.PEERS, "peer"), metavar="A,B",
        help=f"also measure peer gateways ({','.join(peers.PEERS)}); installs them into "
             "bench/.peers/ on first use (needs PyPI / npm)")
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
    add("--soak", type=float, metavar="S",
        help=f"seconds of full load with RSS sampled, per soak row (default {defaults.soak:g})")
    add("--soak-rows", type=lambda t: tuple(n.strip() for n in t.split(",") if n.strip()),
        metavar="A,B", help="targets to soak (default: all, else the first row)")
    add("--rss-requests", type=int, metavar="N",
        help=f"judge RSS once a process has served N requests; a soak runs until then "
             f"(default {defaults.rss_requests})")
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
        help="also measure a sidecar with this YAML config, as row 'custom' (its upstream and "
             "port are overridden)")
    add("--no-access-log", action="store_true",
        help="run the sidecars with SIDECAR_LOG_LEVEL=warning, to show the access log's cost")
    add("--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="extra client header on every request to every target")
    add("--no-pin", action="store_true", help="do not pin processes to CPUs")
    add("--profile", action="store_true",
        help="after measuring, sample targets under load with py-spy (pip install py-spy) and "
             "add their hottest functions to the report")
    add("--profile-rows", type=lambda t: tuple(n.strip() for n in t.split(",") if n.strip()),
        metavar="A,B", help="targets to profile (implies --profile; default floor,core,all)")
    add("--external", action=argparse.BooleanOptionalAction, default=None,
        help="also measure every JSON target with issue 23's harness: hey bursts of 6,000 "
             "requests at 32 connections and 6 s at 100 req/s over 4 connections, 3 rounds "
             "(default: when hey is installed)")
    add("--external-rounds", type=int, metavar="N",
        help=f"rounds of the hey harness (default {defaults.external_rounds})")
    add("--install-generators", action="store_true",
        help="apt-get install -y hey wrk first when they are missing (needs root)")
    add("--results-dir", type=Path, metavar="DIR",
        help="where latest.md, latest.json, configs/ and logs/ go (default bench/results)")
    add("--json", type=Path, metavar="PATH", help="also write the JSON results here")
    return parser


def options_from(args: argparse.Namespace) -> Options:
    chosen = {name: getattr(args, name) for name in (
        "duration", "latency_duration", "rounds", "rate", "concurrency", "warmup", "soak",
        "soak_rows", "rss_requests", "startup_spawns", "chunks", "pacing_ms", "results_dir",
        "rows", "peers", "profile_rows", "external_rounds")
        if getattr(args, name) is not None}
    if args.quick:
        chosen = {**QUICK, **chosen}
    headers: dict[str, str] = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep:
            raise SystemExit(f"--header {header!r}: expected 'NAME: VALUE'")
        headers = {k: v for k, v in headers.items() if k.lower() != name.strip().lower()}
        headers[name.strip()] = value.strip()
    return dataclasses.replace(
        Options(), **chosen, driver=args.driver, sidecar_config=args.sidecar_config,
        access_log=not args.no_access_log, pin=not args.no_pin, json_path=args.json,
        profile=args.profile or args.profile_rows is not None, quick=args.quick,
        headers=tuple(headers.items()), external=args.external,
        install_generators=args.install_generators)


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
    except (ServiceFailed, drivers.DriverFailed, peers.PeerUnavailable) as exc:
        progress(f"bench failed: {exc}")
        return 1
    print(write(report, options.results_dir, options.json_path), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
