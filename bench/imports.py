"""RSS by import: what each dependency costs a sidecar at start (issue 23).

    python -m bench.imports            # the table, each step in a fresh interpreter, 5 times

Each row imports one more group of modules on top of the rows above it, in a fresh
interpreter, and reports the resident set size (VmRSS from /proc) and the import time it
added; the median of `--runs` interpreters. The groups are what `llm-sidecar serve` loads
(python, asyncio with ssl, aiohttp, pydantic, ... up to `sidecar.server`), then what a
feature loads only when it is configured (uvloop, sqlite3 for the ledger, grpcio or urllib3
for OTLP export, redis, phonenumbers for redaction). A module already imported by an earlier
row costs nothing in a later one: the order is the order serve imports them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

# (label, modules imported at this step, loaded by `serve` always?)
STEPS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("python 3 interpreter", (), True),
    ("asyncio, ssl (OpenSSL)", ("asyncio", "ssl"), True),
    ("aiohttp (server and client)", ("aiohttp", "aiohttp.web"), True),
    ("pydantic (and pydantic-core)", ("pydantic",), True),
    ("pyyaml, orjson", ("yaml", "orjson"), True),
    ("structlog (imports rich when installed)", ("structlog",), True),
    ("prometheus-client", ("prometheus_client",), True),
    ("sidecar's settings (the pydantic models built)", ("sidecar.config.schema",), True),
    ("the rest of sidecar.server", ("sidecar.server",), True),
    ("uvloop (serve's loop)", ("uvloop",), True),
    ("sqlite3 (the default ledger)", ("sqlite3",), False),
    ("urllib3 (OTLP/HTTP export)", ("urllib3",), False),
    ("grpcio (OTLP/gRPC export)", ("grpc",), False),
    ("redis (a Redis cache or ledger)", ("redis.asyncio",), False),
    ("phonenumbers (redaction)", ("phonenumbers",), False),
)

_PROBE = """
import sys, time
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
out = []
for group in sys.argv[1:]:
    began = time.perf_counter()
    for name in filter(None, group.split(",")):
        try:
            __import__(name)
        except ImportError:
            pass
    out.append(f"{rss():.2f} {(time.perf_counter() - began) * 1000:.2f}")
print(" ".join(out))
"""


def measure(runs: int) -> list[tuple[str, bool, float, float, float]]:
    """Per step: (label, always, RSS MiB after it, MiB it added, ms it took), medians."""
    groups = [",".join(mods) for _, mods, _ in STEPS]
    samples: list[list[tuple[float, float]]] = [[] for _ in STEPS]
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _PROBE, *groups], capture_output=True,
                             text=True, check=True).stdout.split()
        for i in range(len(STEPS)):
            samples[i].append((float(out[2 * i]), float(out[2 * i + 1])))
    rows = []
    previous = 0.0
    for (label, _, always), sample in zip(STEPS, samples, strict=True):
        rss = statistics.median(s[0] for s in sample)
        ms = statistics.median(s[1] for s in sample)
        rows.append((label, always, rss, rss - previous if previous else rss, ms))
        previous = rss
    return rows


def table(rows: list[tuple[str, bool, float, float, float]]) -> list[str]:
    lines = ["| import | loaded by serve | RSS after, MiB | added, MiB | import ms |",
             "|---|---|---:|---:|---:|"]
    for label, always, rss, added, ms in rows:
        lines.append(f"| {label} | {'always' if always else 'when configured'} | {rss:.1f} "
                     f"| {added:+.1f} | {ms:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="interpreters per step (median)")
    args = parser.parse_args()
    print("\n".join(table(measure(args.runs))))


if __name__ == "__main__":
    main()
