"""`python -m bench.spend`: what spend guardrails cost, measured in-process.

1. CPU per request of the spend stage: pricing, the worst-case bound, admission (holds against
   budgets and a rate limit), settling, the ledger row (queued, then written by the ledger's
   thread: counted, process CPU time covers every thread) and the answer stage (present only
   when a stage reads the answer). The same requests through the bare terminal give the
   baseline; the difference is spend's cost. Scenarios: no budgets, two budgets and a rate
   limit, and a 20-chunk stream with the meter (usage chunk stripped).
   An image generation (priced per image by spend/media.py) with two budgets shows the media
   endpoints' admission.
2. Ledger start-up with N rows (default 1,000,000): the time from `start()` to ready, i.e.
   opening the file and rebuilding six budgets (every scope, every window) from it, and one
   all-time usage report.

3. Issue 18's figures (bench/spend_burst.py): a 50-request burst's share of its cap spent and
   its overshoot, and the event loop's cost of a cancelled call read in the background.

    python -m bench.spend                 # ~1 minute: 20,000 requests a scenario, 1M rows
    python -m bench.spend --quick         # seconds: a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from bench.spend_burst import figures
from sidecar.call import Call, Reply
from sidecar.config import Settings
from sidecar.pipeline import compose
from sidecar.pipeline.answer import ReadAnswer
from sidecar.pipeline.spend import Spend
from sidecar.spend.ledger import Row
from sidecar.spend.ledger_sqlite import SqliteLedger
from sidecar.spend.price_book import PriceBook
from sidecar.spend.sqlite_store import Store
from sidecar.telemetry.metrics import Metrics
from sidecar.upstream.client import UpstreamClient

MODEL = "openai/gpt-4o-mini"
BODY = orjson.dumps({"model": MODEL, "max_tokens": 200, "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Summarise the benefits of a sidecar proxy in one line."}]})
ANSWER = orjson.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": MODEL,
                       "choices": [{"index": 0, "message": {"role": "assistant",
                                                            "content": "It is close by."},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 30, "completion_tokens": 6,
                                 "total_tokens": 36}})
CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
EVENTS = [b"data: " + orjson.dumps({**CHUNK, "choices": [
    {"index": 0, "delta": {"content": "tok "}, "finish_reason": None}]}) + b"\n\n"] * 20 + [
    b"data: " + orjson.dumps({**CHUNK, "choices": [], "usage": {
        "prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}}) + b"\n\n",
    b"data: [DONE]\n\n"]
BUDGETS = [{"name": "day", "window": "day", "limit_usd": 1e9},
           {"name": "per-key", "scope": "key", "window": "month", "limit_usd": 1e9}]
RATE = [{"scope": "global", "rpm": 10**9, "tpm": 10**12}]
HEADERS = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))


IMAGE = orjson.dumps({"model": "dall-e-3", "prompt": "A red fox in the snow", "n": 1,
                      "size": "1024x1024", "quality": "hd"})
IMAGE_ANSWER = orjson.dumps({"created": 1, "data": [{"url": "https://x.example/1.png"}]})


def new_call(stream: bool, image: bool = False) -> Call:
    if image:
        return Call(request_id=f"{random.getrandbits(64):x}", method="POST",
                    path="/images/generations", endpoint="images/generations",
                    headers=HEADERS, started=time.monotonic(), raw_body=IMAGE,
                    body=orjson.loads(IMAGE), model="dall-e-3", requested_model="dall-e-3",
                    key_name="team-a")
    body = orjson.loads(BODY)
    body["stream"] = stream
    return Call(request_id=f"{random.getrandbits(64):x}", method="POST",
                path="/chat/completions", endpoint="chat/completions", headers=HEADERS,
                started=time.monotonic(), raw_body=BODY, body=body, model=MODEL,
                requested_model=MODEL, stream=stream, key_name="team-a")


async def body_terminal(call: Call) -> Reply:
    answer = IMAGE_ANSWER if call.endpoint == "images/generations" else ANSWER
    return Reply(200, CIMultiDict({"Content-Type": "application/json"}), body=answer)


async def stream_terminal(call: Call) -> Reply:
    async def events() -> AsyncIterator[bytes]:
        for event in EVENTS:
            yield event
    return Reply(200, CIMultiDict({"Content-Type": "text/event-stream"}), chunks=events(),
                 sse=True)


async def drive(handler: Callable[[Call], Awaitable[Reply]], count: int, stream: bool,
                ledger: SqliteLedger | None, image: bool = False) -> float:
    """Process CPU µs per request (all threads, the ledger's writer included)."""
    started = time.process_time()
    for _ in range(count):
        call = new_call(stream, image)
        reply = await handler(call)
        if reply.chunks is not None:
            async for _chunk in reply.chunks:
                pass
        call.status = 200
        call.finish()
    if ledger is not None:
        await ledger.flush()
    return (time.process_time() - started) / count * 1e6


async def scenario(name: str, spend: dict[str, Any], stream: bool, count: int,
                   state: Path, image: bool = False) -> dict[str, Any]:
    settings = Settings.model_validate({"state_dir": str(state / name), "spend": {
        "fetch_prices": False, "flush_interval_s": 0.05, **spend}})
    metrics = Metrics()
    book = PriceBook(settings, UpstreamClient(settings.upstream))
    ledger = SqliteLedger(settings, metrics, state / name / "ledger.db")
    await book.start()
    await ledger.start()
    try:
        terminal = stream_terminal if stream else body_terminal
        bare = compose([], terminal)
        metered = compose([Spend(settings.spend, book, ledger, metrics), ReadAnswer()],
                          terminal)
        await drive(bare, count // 10, stream, None, image)  # warm-up
        await drive(metered, count // 10, stream, ledger, image)
        base, with_spend = [], []
        for _ in range(3):  # interleaved rounds; the best of each is the least disturbed
            base.append(await drive(bare, count, stream, None, image))
            with_spend.append(await drive(metered, count, stream, ledger, image))
    finally:
        await ledger.close()
    return {"scenario": name, "baseline_us": round(min(base), 2),
            "with_spend_us": round(min(with_spend), 2),
            "spend_us": round(min(with_spend) - min(base), 2)}


def fill(path: Path, count: int) -> float:
    """Write `count` rows over the last 60 days in the writer's batches; seconds taken."""
    store = Store(path)
    store.open()
    rng = random.Random(1)
    now = time.time()
    started = time.monotonic()
    batch: list[Row] = []
    for i in range(count):
        batch.append(Row(
            ts=now - rng.random() * 60 * 86_400, request_id=f"{i:032x}",
            endpoint="chat/completions", key_name=f"key-{rng.randrange(20)}",
            user=f"user-{rng.randrange(500)}", tags=(f"tag-{rng.randrange(5)}",),
            model=f"model-{rng.randrange(30)}", requested_model="m", provider="upstream",
            prompt_tokens=rng.randrange(2000), completion_tokens=rng.randrange(500),
            cost=rng.randrange(10**6), status=200))
        if len(batch) == 10_000:
            store.write(batch)
            batch = []
    if batch:
        store.write(batch)
    store.close()
    return time.monotonic() - started


async def startup(path: Path) -> dict[str, Any]:
    budgets = [{"name": "g-minute", "window": "minute", "limit_usd": 1e6},
               {"name": "tag-hour", "scope": "tag", "window": "hour", "limit_usd": 1e6},
               {"name": "g-day", "window": "day", "limit_usd": 1e6},
               {"name": "user-week", "scope": "user", "window": "week", "limit_usd": 1e6},
               {"name": "key-month", "scope": "key", "window": "month", "limit_usd": 1e6},
               {"name": "model-total", "scope": "model", "window": "total", "limit_usd": 1e6}]
    settings = Settings.model_validate({"spend": {"ledger": f"sqlite:///{path}",
                                                  "budgets": budgets}})
    ledger = SqliteLedger(settings, Metrics(), path)
    began = time.monotonic()
    await ledger.start()
    ready = time.monotonic() - began
    began = time.monotonic()
    report = await ledger.usage("all", "model")
    reported = time.monotonic() - began
    await ledger.close()
    return {"startup_ms": round(ready * 1000, 1), "usage_all_by_model_ms":
            round(reported * 1000, 1), "rows_reported": report["total_requests"]}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    count = 1_000 if args.quick else args.requests
    rows = 20_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        cpu = [await scenario("no_budgets", {}, False, count, state),
               await scenario("budgets_and_rate_limit", {"budgets": BUDGETS,
                                                         "rate_limits": RATE}, False, count,
                              state),
               await scenario("stream_20_chunks", {"budgets": BUDGETS}, True, count, state),
               await scenario("image_with_budgets", {"budgets": BUDGETS}, False, count, state,
                              image=True)]
        issue18 = await figures(state, count // 10 if args.quick else 2_000)
        ledger = Path(args.ledger) if args.ledger else state / "big.db"
        filled = None
        if not ledger.exists():
            filled = round(fill(ledger, rows), 1)
        start = await startup(ledger)
    return {"cpu_per_request": cpu, "ledger": {"rows": rows, "fill_s": filled, **start},
            **issue18}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Spend's CPU per request and ledger start-up.")
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds")
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the big ledger")
    parser.add_argument("--ledger", help="reuse (or create) this ledger file")
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result, indent=2))
