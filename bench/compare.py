"""`python -m bench.compare`: what comparing models costs the sidecar (docs/compare.md).

1. The shadow stage alone, CPU per request, in-process with an instant terminal: the match and
   the draw (percent 0), and at percent 100 the shadow machinery per copy (keeping the answer,
   the fork, its run through an instant pipeline, the pair's scores), upstream excluded.
2. Shadow rules, CPU per primary request, in-process: the real app (`create_app`, its
   resources started; the defaults on: the memory cache (bypassed with no-store, so every
   primary is a miss a rule may copy), spend with the SQLite ledger, Prometheus metrics, the
   inspector) against the fast fake upstream (`bench.upstream`, its own process: not counted).
   Each primary goes through the model pipeline exactly as a compare's model call does (the
   in-process consumer plays the handler's part; no socket on the client side, so the figure
   is the sidecar's work). Three apps, interleaved rounds, the least disturbed round of each:
   no rule; a rule at percent 0 (the match and the draw only); a rule at percent 100 (every
   primary copied to a candidate: the copy's whole call counted, the runner drained at the
   end of each round). Process CPU time: every thread (the ledger's writer) included.
3. A compare of three models whose upstream answers after 50, 100 and 200 ms (a delaying fake
   in its own process), over a real socket: the compare's wall time against the slowest
   model's own latency through the same sidecar (`POST /v1/chat/completions`), interleaved,
   p50 and p95 of each, and the overhead (p50 minus p50).

    .venv/bin/python -m bench.compare            # about a minute
    .venv/bin/python -m bench.compare --quick    # seconds: a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from bench.processes import free_port, wait_for_port
from bench.serving import serve
from sidecar.app import create_app, make_runner
from sidecar.call import Call, Next, Reply, new_request_id
from sidecar.compare.consume import Consumed, consume
from sidecar.compare.shadow_plan import ShadowPlan
from sidecar.compare.shadow_runner import ShadowRunner
from sidecar.config import Settings
from sidecar.config.compare import ShadowRule
from sidecar.deps import DEPS
from sidecar.live import LIVE
from sidecar.pipeline import compose
from sidecar.pipeline.shadow import Shadow

MODEL = "openai/gpt-4o-mini"
BODY = orjson.dumps({"model": MODEL, "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Summarise the benefits of a sidecar proxy in one line."}]})
HEADERS = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json",
                                        "Cache-Control": "no-store"}))
PRICES = {"*": {"prompt": 0.15e-6, "completion": 0.6e-6}}
RULE = {"name": "bench", "match": {"model": "openai/*"}, "candidate": "cand/model",
        "budget_usd": 1e6, "max_in_flight": 10_000}
DELAYS_MS = (50, 100, 200)


def settings(state: Path, upstream: str, rule: dict[str, Any] | None) -> Settings:
    return Settings.model_validate({
        "upstream": {"url": upstream}, "state_dir": str(state),
        "spend": {"fetch_prices": False, "prices": PRICES, "flush_interval_s": 0.05},
        "telemetry": {"prometheus": True, "logs": {"level": "warning"}},
        "shadow": [rule] if rule else []})


async def primaries(app: web.Application, count: int) -> float:
    """Process CPU µs per primary, its copies (if any) included."""
    pipeline = app[LIVE].pipelines.model
    shadow = app[DEPS].shadow
    started = time.process_time()
    for _ in range(count):
        call = Call(request_id=new_request_id(), method="POST", path="/chat/completions",
                    endpoint="chat/completions", headers=HEADERS, started=time.monotonic(),
                    raw_body=BODY)
        await consume(pipeline, call, Consumed())
    if shadow is not None:
        await shadow.settled(shadow.offers)
    ledger = app[DEPS].ledger
    assert ledger is not None
    await ledger.flush()
    return (time.process_time() - started) / count * 1e6


async def shadow_cpu(upstream: str, count: int, rounds: int, state: Path) -> dict[str, Any]:
    variants = {"no rule": None, "percent 0": {**RULE, "percent": 0},
                "percent 100": {**RULE, "percent": 100}}
    runners = {}
    for name, rule in variants.items():
        runner = web.AppRunner(create_app(settings(state / name, upstream, rule)))
        await runner.setup()  # opens the resources: ledger, upstream pool, shadow runner
        runners[name] = runner
    try:
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for runner in runners.values():  # warm-up
            await primaries(runner.app, max(count // 10, 10))
        for _ in range(rounds):
            for name, runner in runners.items():
                samples[name].append(await primaries(runner.app, count))
        copied = {name: (runner.app[DEPS].shadow.stats["bench"].launched
                         if runner.app[DEPS].shadow is not None else 0)
                  for name, runner in runners.items()}
    finally:
        for runner in runners.values():
            await runner.cleanup()
    base = min(samples["no rule"])
    return {name: {"cpu_us_per_primary": round(min(values), 1),
                   "added_us": round(min(values) - base, 1), "copies": copied[name]}
            for name, values in samples.items()}


async def stage_alone(count: int, rounds: int) -> dict[str, Any]:
    """The shadow stage's own CPU per request, with a terminal that answers at once (no
    upstream, no other stage): the match and the draw (percent 0); and at percent 100 also
    keeping the answer, the finisher's offer, and the copy's fork, run and pair scoring
    through a pipeline that is the same instant terminal (so: the shadow machinery per copy,
    its upstream call and stages excluded)."""
    answer = Reply(200, CIMultiDict({"Content-Type": "application/json"}),
                   body=orjson.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                                   "message": {"content": "It is close by."}}]}))

    async def terminal(call: Call) -> Reply:
        return Reply(answer.status, answer.headers, body=answer.body)

    rules = {name: ShadowRule.model_validate({**RULE, "percent": percent})
             for name, percent in (("percent 0", 0), ("percent 100", 100))}
    handlers: dict[str, Next] = {"no stage": compose([], terminal)}
    runners: dict[str, ShadowRunner] = {}
    for name, rule in rules.items():
        runners[name] = ShadowRunner([rule])
        handlers[name] = compose([Shadow([ShadowPlan.of(rule, terminal)], runners[name],
                                         random.Random(1).random)], terminal)
    body = orjson.loads(BODY)

    async def drive(name: str, n: int) -> float:
        handler, runner = handlers[name], runners.get(name)
        started = time.process_time()
        for _ in range(n):
            call = Call(request_id=new_request_id(), method="POST", path="/chat/completions",
                        endpoint="chat/completions", headers=HEADERS,
                        started=time.monotonic(), raw_body=BODY, body=body, model=MODEL,
                        requested_model=MODEL)
            await handler(call)
            call.status = 200
            call.finish()
        if runner is not None:
            await runner.settled(runner.offers)
        return (time.process_time() - started) / n * 1e6

    samples: dict[str, list[float]] = {name: [] for name in handlers}
    for name in handlers:
        await drive(name, max(count // 10, 10))
    for _ in range(rounds):
        for name in handlers:
            samples[name].append(await drive(name, count))
    base = min(samples["no stage"])
    return {name: {"cpu_us_per_request": round(min(values), 2),
                   "added_us": round(min(values) - base, 2)}
            for name, values in samples.items()}


def delayed_upstream() -> web.Application:
    """Chat completions answered after the model's delay: `delay/<ms>`."""
    async def answer(request: web.Request) -> web.Response:
        body = await request.json()
        model = body["model"]
        await asyncio.sleep(int(model.rsplit("/", 1)[1]) / 1000)
        return web.json_response({
            "id": "c", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": f"{model} answers."}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24}})

    app = web.Application()
    app.router.add_post("/chat/completions", answer)
    return app


async def compare_latency(upstream: str, rounds: int, state: Path) -> dict[str, Any]:
    app = create_app(settings(state / "compare", upstream, None))
    runner = make_runner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    models = [f"delay/{ms}" for ms in DELAYS_MS]
    request = {"messages": [{"role": "user", "content": "hello"}]}
    walls, singles, reported = [], [], []
    try:
        async with aiohttp.ClientSession() as http:
            for i in range(rounds + 1):  # the first round warms the connections up
                began = time.monotonic()
                async with http.post(url + "/sidecar/compare", json={
                        "models": models, "request": request},
                        headers={"Cache-Control": "no-cache"}) as response:
                    answer = await response.json()
                wall = (time.monotonic() - began) * 1000
                assert response.status == 200 and answer["summary"]["succeeded"] == 3, answer
                began = time.monotonic()
                async with http.post(url + "/v1/chat/completions", json={
                        **request, "model": models[-1]},
                        headers={"Cache-Control": "no-store"}) as response:
                    await response.read()
                single = (time.monotonic() - began) * 1000
                if i:
                    walls.append(wall)
                    singles.append(single)
                    reported.append(answer["summary"]["wall_ms"])
    finally:
        await runner.cleanup()
    p50_wall, p50_single = statistics.median(walls), statistics.median(singles)
    return {"models_ms": list(DELAYS_MS), "rounds": rounds,
            "compare_wall_p50_ms": round(p50_wall, 2),
            "compare_wall_p95_ms": round(_p95(walls), 2),
            "slowest_alone_p50_ms": round(p50_single, 2),
            "slowest_alone_p95_ms": round(_p95(singles), 2),
            "overhead_p50_ms": round(p50_wall - p50_single, 2),
            "sum_of_models_ms": sum(DELAYS_MS),
            "summary_wall_p50_ms": round(statistics.median(reported), 2)}


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]


def spawn(argv: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, argv[2])
    return process


async def run(args: argparse.Namespace) -> dict[str, Any]:
    count, rounds = (300, 1) if args.quick else (args.requests, args.rounds)
    fast_port, slow_port = free_port(), free_port()
    fast = spawn([sys.executable, "-m", "bench.upstream", "--port", str(fast_port)], fast_port)
    slow = spawn([sys.executable, "-m", "bench.compare", "--delayed-upstream",
                  str(slow_port)], slow_port)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
            state = Path(tmp)
            alone = await stage_alone(count * 10, rounds)
            shadow = await shadow_cpu(f"http://127.0.0.1:{fast_port}", count, rounds, state)
            compare = await compare_latency(f"http://127.0.0.1:{slow_port}",
                                            10 if args.quick else args.compares, state)
    finally:
        for process in (fast, slow):
            process.terminate()
            process.wait(timeout=10)
    return {"shadow_stage_alone": alone, "shadow_cpu_per_primary": shadow,
            "compare_three_models": compare}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds")
    parser.add_argument("--requests", type=int, default=3000, help="primaries per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compares", type=int, default=60, help="compare rounds")
    parser.add_argument("--delayed-upstream", type=int, metavar="PORT",
                        help=argparse.SUPPRESS)  # the delaying fake, run as a child process
    args = parser.parse_args(argv)
    if args.delayed_upstream:
        return serve(delayed_upstream(), "127.0.0.1", args.delayed_upstream)
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
