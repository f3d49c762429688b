"""Figures for the prompt cache: memory per 1,000 cached chat answers, hit vs miss latency, and
hit throughput against the floor relay's (a hit skips the upstream hop, so it should beat a
relay that must make it: target ≥ 1.5 x the floor's requests per second).

    .venv/bin/python -m bench.cache                 # ~1 minute
    .venv/bin/python -m bench.cache --quick         # ~20 s

- **memory**: tracemalloc around a MemoryStore filled with 1,000 entries of bench/upstream.py's
  ~600-byte chat answer, and of its 20-chunk stream, each entry with its own payload and usage;
  the per-entry overhead beyond the payload is what `ENTRY_OVERHEAD_BYTES` must cover.
- **throughput**: the fake upstream, the floor (bench/floor.py) and the sidecar (default config:
  the memory cache on) run as processes, the one measured pinned to CPU 0, load on the other
  CPUs; closed loop at 32 connections (wrk, else hey, else the asyncio generator), rounds
  interleaved. `hit` repeats one request; `miss` sends `Cache-Control: no-cache`, so every
  request goes upstream and is stored (a miss's work without its lookup, ~3 µs); `bypass`
  sends `no-store` (the proxy's own path plus the key: what a miss adds is miss - bypass).
  CPU µs per request of the process under test is the steadiest number on a shared machine.
- **latency**: one keep-alive connection, requests one after another from this process; `miss`
  sends a different seed each time (lookup, upstream, store), `hit` the same request.

The whole-proxy benchmark (`python -m bench`) is separate; this runs only what the cache needs.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench import drivers
from bench.loadgen import percentile
from bench.options import REPO
from bench.processes import Fleet, Service, free_port
from bench.targets import CHAT, sidecar_argv, sidecar_env
from bench.upstream import MODEL, completion_body, stream_events
from sidecar.cache.entry import ENTRY_OVERHEAD_BYTES, Entry
from sidecar.cache.key import CacheKey
from sidecar.cache.store import MemoryStore
from sidecar.call import Answer, Usage
from sidecar.config.cache import CacheSettings

HEADERS = (("Authorization", "Bearer sk-bench"),)


def memory(entries: int) -> dict[str, dict[str, float]]:
    """Bytes per cached answer, JSON and streamed, measured with tracemalloc."""
    out = {}
    for kind, payload in (("json", completion_body()), ("sse", b"".join(stream_events(20)))):
        store = MemoryStore(CacheSettings(max_entries=entries * 2, max_bytes=1 << 40))
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]

        async def fill(kind: str = kind, payload: bytes = payload,
                       store: MemoryStore = store) -> None:
            now = time.time()
            for i in range(entries):
                own = payload[:-1] + payload[-1:]  # a payload object of its own, as in real life
                await store.put(CacheKey(f"{i:032x}", MODEL), Entry(
                    "sse" if kind == "sse" else "json", own, MODEL, now, now + 3600,
                    Answer(Usage(19, 24), "stop", MODEL)))

        asyncio.run(fill())
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        per_entry = used / entries
        out[kind] = {"payload_bytes": len(payload), "bytes_per_entry": per_entry,
                     "overhead_bytes": per_entry - len(payload),
                     "mib_per_1000": per_entry * 1000 / 2**20,
                     "accounted_per_entry": len(payload) + ENTRY_OVERHEAD_BYTES}
    return out


def sequential(port: int, bodies: list[bytes], headers: dict[str, str]) -> dict[str, float]:
    """p50/p99 of requests sent one after another on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples = []
    try:
        for body in bodies:
            began = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", body=body, headers={
                "Content-Type": "application/json", **dict(HEADERS), **headers})
            response = conn.getresponse()
            response.read()
            samples.append((time.perf_counter() - began) * 1000)
            if response.status != 200:
                raise RuntimeError(f"answer {response.status}")
    finally:
        conn.close()
    return {"p50": percentile(samples, 50), "p99": percentile(samples, 99)}


def closed_loop(driver: str, service: Service, body_path: Path, headers: Sequence[
        tuple[str, str]], cpus: frozenset[int] | None, seconds: float, workdir: Path
                ) -> tuple[float, float]:
    """(requests per second, CPU µs per request of the process under test)."""
    load = drivers.Load(f"{service.url}/v1/chat/completions", body_path, tuple(headers), cpus)
    rps, cpu_us, _ = drivers.measured_throughput(driver, service, load, seconds, workdir)
    return rps, cpu_us


def serve_and_measure(seconds: float, rounds: int, latency_requests: int) -> dict[str, Any]:
    under, load = drivers.split_cpus()
    driver = drivers.pick("auto")
    log_dir = REPO / "bench" / "results" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp, Fleet(log_dir) as fleet:
        workdir = Path(tmp)
        body = orjson.dumps(CHAT)
        body_path = workdir / "chat.json"
        body_path.write_bytes(body)
        (workdir / "state").mkdir()
        up_port, floor_port, side_port = free_port(), free_port(), free_port()
        upstream = fleet.spawn("upstream", [sys.executable, "-m", "bench.upstream", "--port",
                                            str(up_port)], port=up_port,
                               ready_path="/v1/models", cpus=load)
        floor = fleet.spawn("floor", [sys.executable, "-m", "bench.floor", "--port",
                                      str(floor_port), "--upstream",
                                      f"http://127.0.0.1:{up_port}"],
                            port=floor_port, ready_path="/v1/models", cpus=under)
        config = workdir / "sidecar.yaml"
        config.write_text("{}\n")  # defaults: the memory cache on
        side = fleet.spawn("sidecar", sidecar_argv(side_port, config,
                                                   f"http://127.0.0.1:{up_port}"), port=side_port,
                           ready_path="/readyz", cpus=under,
                           env=sidecar_env(workdir / "state", access_log=True),
                           log_name="sidecar-cache.log")
        for service in (upstream, floor, side):
            service.wait_ready()
        no_cache = (*HEADERS, ("Cache-Control", "no-cache"))
        no_store = (*HEADERS, ("Cache-Control", "no-store"))
        targets = {"floor": (floor, HEADERS), "bypass": (side, no_store),
                   "miss": (side, no_cache), "hit": (side, HEADERS)}
        for service, headers in targets.values():  # warm up (and fill the entry for `hit`)
            closed_loop(driver, service, body_path, headers, load, 1.0, workdir)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
        for i in range(rounds):
            names = list(targets)[i % 4:] + list(targets)[:i % 4]
            for name in names:
                service, headers = targets[name]
                samples[name].append(closed_loop(driver, service, body_path, headers, load,
                                                 seconds / rounds, workdir))
        unique = [orjson.dumps({**CHAT, "seed": n}) for n in range(latency_requests)]
        latency = {"floor": sequential(floor_port, [body] * latency_requests, {}),
                   "bypass": sequential(side_port, [body] * latency_requests,
                                        {"Cache-Control": "no-store"}),
                   "hit": sequential(side_port, [body] * latency_requests, {}),
                   "miss": sequential(side_port, unique, {})}
    throughput = {name: {"rps": sum(r for r, _ in s) / len(s),
                         "cpu_us_per_request": sum(c for _, c in s) / len(s)}
                  for name, s in samples.items()}
    return {"driver": drivers.describe(driver), "throughput": throughput, "latency_ms": latency,
            "hit_vs_floor_rps": throughput["hit"]["rps"] / throughput["floor"]["rps"]}


def report(mem: dict[str, dict[str, float]], run: dict[str, Any]) -> str:
    lines = ["| target | RPS @32 | CPU µs/req | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|"]
    for name in ("floor", "bypass", "miss", "hit"):
        t, lat = run["throughput"][name], run["latency_ms"][name]
        lines.append(f"| {name} | {t['rps']:.0f} | {t['cpu_us_per_request']:.0f} | "
                     f"{lat['p50']:.2f} | {lat['p99']:.2f} |")
    lines.append(f"\nhit throughput = {run['hit_vs_floor_rps']:.2f} x the floor's "
                 f"(driver: {run['driver']})\n")
    lines += ["| entries filled from | payload B | bytes/entry | MiB per 1,000 | overhead B |",
              "|---|---:|---:|---:|---:|"]
    for kind, m in mem.items():
        lines.append(f"| {kind} | {m['payload_bytes']:.0f} | {m['bytes_per_entry']:.0f} | "
                     f"{m['mib_per_1000']:.2f} | {m['overhead_bytes']:.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=24.0,
                        help="closed-loop seconds per target, split over the rounds")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--latency-requests", type=int, default=2000)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="3 s, 1 round, 300 requests")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.latency_requests = 3.0, 1, 300
    mem = memory(args.entries)
    run = serve_and_measure(args.duration, args.rounds, args.latency_requests)
    print(report(mem, run))
    if args.json:
        args.json.write_bytes(orjson.dumps({"memory": mem, **run}, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
