"""`python -m bench.reload`: what a live reload costs, and that nothing in flight notices it.

    .venv/bin/python -m bench.reload [--runs 200] [--reloads 100] [--clients 4]

1. Parse and validate: `load_settings` on a config with every section set (the example of
   docs/configuration.md, plus three providers, routes, retries, breakers, the cache, spend with
   prices, budgets and rate limits, redaction and telemetry), median and p99 of --runs.
2. Rebuild and swap: `Reloader.reload` on a running app with that config (read, validate, keep
   the state, rebuild the derived parts, build the stage list, swap), median and p99.
3. Under load: --clients clients send chat completions back to back to the real app on a real
   socket (a fake upstream answers), while the file is rewritten and reloaded --reloads times;
   every request must succeed. Prints the requests served and failed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiohttp import web

from bench.upstream import create_upstream
from sidecar.app import create_app, make_runner
from sidecar.config import load_settings
from sidecar.live import LIVE

CHAT = orjson.dumps({"model": "openai/gpt-4o-mini",
                     "messages": [{"role": "user", "content": "hi"}]})


def full_config(upstream: str, state: str, attempts: int = 2) -> dict[str, Any]:
    """Every section set, as a large real configuration would be."""
    provider = {"base_url": upstream, "api_key": "sk-bench", "models": ["*"]}
    return {
        "listen": {"host": "127.0.0.1", "port": 4141, "max_body_bytes": 33554432,
                   "shutdown_grace_s": 20},
        "admin": {"host": "127.0.0.1", "port": None, "token": None},
        "upstream": {"url": upstream, "headers": {"HTTP-Referer": "https://example.com",
                                                  "X-Title": "bench"},
                     "connect_timeout_s": 5, "read_timeout_s": 600},
        "providers": [{**provider, "name": "openai", "models": ["openai/*"]},
                      {**provider, "name": "pool-a", "weight": 2},
                      {**provider, "name": "pool-b", "weight": 1}],
        "routes": {"fast": ["openai/gpt-4o-mini", "meta/llama-3.1-8b"]},
        "retry": {"attempts": attempts, "backoff_s": 0.2, "deadline_s": 60},
        "breaker": {"failures": 5, "open_s": 30},
        "auth": {"required": True, "keys": [
            {"name": f"team-{i}", "token": f"tok-{i}", "tags": ["batch"],
             "allowed_models": ["*"]} for i in range(20)]},
        "cache": {"backend": "memory", "ttl_s": 3600},
        "spend": {"fetch_prices": False,
                  "prices": {"openai/*": {"prompt": 1e-6, "completion": 2e-6},
                             "*": {"prompt": 1e-6, "completion": 2e-6}},
                  "budgets": [{"name": "day", "limit_usd": 100},
                              {"name": "per-key", "scope": "key", "window": "month",
                               "limit_usd": 50}],
                  "rate_limits": [{"scope": "key", "rpm": 100_000, "tpm": 10_000_000}]},
        "privacy": {"redact": {"mode": "mask"}},
        "telemetry": {"service_name": "bench", "prometheus": True},
        "reload": {"watch": False},
        "state_dir": state,
    }


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


async def measure(runs: int, reloads: int, clients: int) -> None:
    upstream = web.AppRunner(create_upstream(chunks=5, pacing_s=0), access_log=None)
    await upstream.setup()
    site = web.TCPSite(upstream, "127.0.0.1", 0)
    await site.start()
    upstream_url = f"http://127.0.0.1:{upstream.addresses[0][1]}"
    with tempfile.TemporaryDirectory() as state:
        path = Path(state) / "sidecar.yaml"
        path.write_text(yaml.safe_dump(full_config(upstream_url, state)))
        load = partial(load_settings, path)

        parse = []
        for _ in range(runs):
            started = time.perf_counter()
            load()
            parse.append(time.perf_counter() - started)
        print(f"parse and validate ({path.stat().st_size} bytes of YAML): "
              f"{percentiles(parse)}")

        app = create_app(load(), load=load)
        runner = make_runner(app, shutdown_timeout=2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
        reloader = app[LIVE].reloader
        assert reloader is not None
        try:
            swap = []
            for i in range(runs):
                path.write_text(yaml.safe_dump(full_config(upstream_url, state, 1 + i % 3)))
                result = await reloader.reload("bench")
                assert result.applied, result.error
                swap.append(result.seconds)
            print(f"reload (read, validate, rebuild, swap): {percentiles(swap)}")

            stop = asyncio.Event()
            outcomes = {"ok": 0, "failed": 0}

            async def client(session: aiohttp.ClientSession, n: int) -> None:
                headers = {"Authorization": f"Bearer tok-{n}",
                           "Content-Type": "application/json", "Cache-Control": "no-store"}
                while not stop.is_set():
                    async with session.post(url, data=CHAT, headers=headers) as response:
                        await response.read()
                        outcomes["ok" if response.status == 200 else "failed"] += 1

            async with aiohttp.ClientSession() as session:
                workers = [asyncio.ensure_future(client(session, n)) for n in range(clients)]
                under = []
                for i in range(reloads):
                    path.write_text(yaml.safe_dump(full_config(upstream_url, state,
                                                               1 + i % 3)))
                    result = await reloader.reload("bench")
                    assert result.applied, result.error
                    under.append(result.seconds)
                    await asyncio.sleep(0.01)
                stop.set()
                await asyncio.gather(*workers)
            print(f"{reloads} reloads under load ({clients} clients): {percentiles(under)}; "
                  f"requests served {outcomes['ok']}, failed {outcomes['failed']}")
        finally:
            await runner.cleanup()
            await upstream.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reload", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--reloads", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    asyncio.run(measure(args.runs, args.reloads, args.clients))
    return 0


if __name__ == "__main__":
    sys.exit(main())
