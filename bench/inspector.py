"""What open inspector pages cost the miss path: requests per second and CPU per request of a
sidecar with the inspector on, with no page, one page and ten pages following
/sidecar/events.

    .venv/bin/python -m bench.inspector            # ~1 minute
    .venv/bin/python -m bench.inspector --quick    # ~15 s

The fake upstream and the sidecar (the core plus the inspector: cache, spend and exporters off,
so the inspector is the only feature) run as processes, the sidecar pinned to CPU 0 and the load
on the other CPUs; closed loop at 32 connections (wrk, else hey, else the asyncio generator),
rounds interleaved. The pages are a separate process of asyncio readers (on the load CPUs) that
read their event stream as a browser would; the figures say how many events they received, so
a page that was silently dropped would show. CPU µs per request of the sidecar is the steadiest
figure on a shared machine. The whole-proxy benchmark (`python -m bench`) is separate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import drivers
from bench.options import REPO
from bench.processes import Fleet, Service, free_port
from bench.targets import CHAT, sidecar_argv, sidecar_env

CONFIG = """\
cache: {backend: "off"}
spend: {ledger: "off"}
telemetry: {prometheus: false}
admin: {ui: true}
"""
PAGES = (0, 1, 10)


async def follow(url: str, pages: int, counts: list[int]) -> None:
    """`pages` readers of the event stream, counting `request` events, until cancelled."""
    async def page(index: int) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/sidecar/events") as response:
                async for line in response.content:
                    if line.startswith(b"event: request"):
                        counts[index] += 1

    await asyncio.gather(*(page(i) for i in range(pages)))


def pages_main(url: str, pages: int) -> None:
    """Run as a child process: follow until SIGTERM, then print the event counts as JSON."""
    counts = [0] * pages
    loop = asyncio.new_event_loop()
    task = loop.create_task(follow(url, pages, counts))
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        loop.run_until_complete(task)
    print(orjson.dumps(counts).decode(), flush=True)


def closed_loop(driver: str, service: Service, body: Path, cpus: frozenset[int] | None,
                seconds: float, workdir: Path) -> tuple[float, float, int]:
    """(requests per second, CPU µs per request of the sidecar, requests)."""
    load = drivers.Load(f"{service.url}/v1/chat/completions", body,
                        (("Authorization", "Bearer sk-bench"),), cpus)
    return drivers.measured_throughput(driver, service, load, seconds, workdir)


def measure(seconds: float, rounds: int) -> dict[str, Any]:
    under, load = drivers.split_cpus()
    driver = drivers.pick("auto")
    log_dir = REPO / "bench" / "results" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    samples: dict[int, list[tuple[float, float, int]]] = {n: [] for n in PAGES}
    received: dict[int, int] = dict.fromkeys(PAGES, 0)
    with tempfile.TemporaryDirectory(prefix="bench-inspector-") as tmp, Fleet(log_dir) as fleet:
        workdir = Path(tmp)
        body = workdir / "chat.json"
        body.write_bytes(orjson.dumps(CHAT))
        (workdir / "state").mkdir()
        config = workdir / "sidecar.yaml"
        config.write_text(CONFIG)
        up_port, side_port = free_port(), free_port()
        upstream = fleet.spawn("upstream", [sys.executable, "-m", "bench.upstream", "--port",
                                            str(up_port)], port=up_port,
                               ready_path="/v1/models", cpus=load)
        side = fleet.spawn("sidecar", sidecar_argv(side_port, config,
                                                   f"http://127.0.0.1:{up_port}"),
                           port=side_port, ready_path="/readyz", cpus=under,
                           env=sidecar_env(workdir / "state", access_log=True),
                           log_name="sidecar-inspector.log")
        upstream.wait_ready()
        side.wait_ready()
        closed_loop(driver, side, body, load, 1.0, workdir)  # warm up
        for i in range(rounds):
            for pages in PAGES[i % len(PAGES):] + PAGES[:i % len(PAGES)]:
                readers = None
                if pages:
                    readers = subprocess.Popen(
                        [sys.executable, "-m", "bench.inspector", "--follow", side.url,
                         "--pages", str(pages)], stdout=subprocess.PIPE, cwd=REPO)
                    if load:
                        os.sched_setaffinity(readers.pid, load)
                    asyncio.run(asyncio.sleep(0.5))  # let them connect
                samples[pages].append(closed_loop(driver, side, body, load,
                                                  seconds / rounds, workdir))
                if readers is not None:
                    readers.send_signal(signal.SIGTERM)
                    out, _ = readers.communicate(timeout=30)
                    received[pages] += sum(orjson.loads(out or b"[]"))
    figures = {}
    for pages, runs in samples.items():
        requests = sum(n for _, _, n in runs)
        figures[pages] = {"rps": sum(r for r, _, _ in runs) / len(runs),
                          "cpu_us_per_request": sum(c for _, c, _ in runs) / len(runs),
                          "requests": requests, "events_per_page": received[pages] / max(
                              pages, 1)}
    return {"driver": drivers.describe(driver), "pages": figures}


def report(run: dict[str, Any]) -> str:
    base = run["pages"][0]
    lines = ["| pages open | RPS @32 | vs no page | CPU µs/req | events received per page |",
             "|---:|---:|---:|---:|---:|"]
    for pages, f in run["pages"].items():
        lines.append(f"| {pages} | {f['rps']:.0f} | {100 * f['rps'] / base['rps']:.1f} % | "
                     f"{f['cpu_us_per_request']:.0f} | "
                     f"{'—' if not pages else format(f['events_per_page'], ',.0f')} |")
    lines.append(f"\n(driver: {run['driver']}; a page receives at most 200 records every 250 ms, "
                 "the rest counted as skipped, so its events do not grow with traffic)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inspector", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=45.0,
                        help="closed-loop seconds per configuration, split over the rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="9 s per configuration, 1 round")
    parser.add_argument("--follow", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--pages", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.follow:
        pages_main(args.follow, args.pages)
        return 0
    seconds, rounds = (9.0, 1) if args.quick else (args.duration, args.rounds)
    print(report(measure(seconds, rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
