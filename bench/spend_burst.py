"""Issue 18's figures, in-process (bench/spend.py runs them; `--burst-only` alone):

1. The burst: 50 concurrent chat requests against a day cap their real cost fills 40.3 times,
   through the real spend stage and SQLite ledger, to a terminal that answers after yielding
   to the event loop (every request is in flight before the first answers) with a known
   usage. Reported: the share of the cap spent, the overshoot (nano-dollars past the cap),
   and the answers by status. Run against an older checkout it measures the "before".
2. What a cancelled call costs the event loop: N non-streamed calls through spend, the detach
   stage and the answer stage, each cancelled (its client left) while the upstream holds its
   answer, then answered: CPU µs per call from the cancellation to its ledger row (the
   background read, the deferred finishers), and the extra CPU µs the detach stage costs a
   call that is not cancelled (its own task).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.call import Call, Reply, Stage
from sidecar.config import Settings
from sidecar.pipeline import compose
from sidecar.pipeline.answer import ReadAnswer
from sidecar.pipeline.spend import Spend
from sidecar.spend.ledger_sqlite import SqliteLedger
from sidecar.spend.price_book import PriceBook
from sidecar.telemetry.metrics import Metrics
from sidecar.upstream.client import UpstreamClient

MODEL = "bench/model"
PROMPT_NANO, COMPLETION_NANO = 1_000, 2_000
PROMPT_TOKENS, ANSWER_TOKENS, MAX_TOKENS = 60, 120, 200
COST = PROMPT_TOKENS * PROMPT_NANO + ANSWER_TOKENS * COMPLETION_NANO
LIMIT = 40 * COST + COST // 3
REQUESTS = 50
BODY = {"model": MODEL, "max_tokens": MAX_TOKENS, "messages": [
    {"role": "system", "content": "You are a helpful assistant. Answer in one short paragraph "
                                  "and cite nothing."},
    {"role": "user", "content": "Explain in plain words why the sky looks blue on a clear "
                                "day, and why sunsets are red instead, for a curious ten year "
                                "old."}]}
HEADERS = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))


def new_call() -> Call:
    raw = orjson.dumps(BODY)
    return Call(request_id=f"{random.getrandbits(64):x}", method="POST",
                path="/chat/completions", endpoint="chat/completions", headers=HEADERS,
                started=time.monotonic(), raw_body=raw, body=orjson.loads(raw), model=MODEL,
                requested_model=MODEL)


def answer(call: Call) -> Reply:
    """What the upstream bills: its own answer length, at most the limit it was sent."""
    body = {**(call.body or {}), **call.overrides}
    completion = min(int(body.get("max_tokens", MAX_TOKENS)), ANSWER_TOKENS)
    data = orjson.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": MODEL,
                         "choices": [{"index": 0, "finish_reason": "stop", "message": {
                             "role": "assistant", "content": "blue"}}],
                         "usage": {"prompt_tokens": PROMPT_TOKENS,
                                   "completion_tokens": completion,
                                   "total_tokens": PROMPT_TOKENS + completion}})
    return Reply(200, CIMultiDict({"Content-Type": "application/json"}), body=data)


async def setup(state: Path, name: str, spend: dict[str, Any]
                ) -> tuple[Settings, PriceBook, SqliteLedger, Metrics]:
    settings = Settings.model_validate({"state_dir": str(state / name), "spend": {
        "fetch_prices": False, "flush_interval_s": 0.05,
        "prices": {MODEL: {"prompt": PROMPT_NANO / 1e9, "completion": COMPLETION_NANO / 1e9}},
        **spend}})
    metrics = Metrics()
    book = PriceBook(settings, UpstreamClient(settings.upstream))
    ledger = SqliteLedger(settings, metrics, state / name / "ledger.db")
    await book.start()
    await ledger.start()
    return settings, book, ledger, metrics


async def burst(state: Path, wait_s: float | None) -> dict[str, Any]:
    """`wait_s`: spend.hold_wait_s (None: a sidecar that has no such setting)."""
    spend: dict[str, Any] = {"budgets": [{"name": "cap", "limit_usd": LIMIT / 1e9}]}
    if wait_s is not None:
        spend["hold_wait_s"] = wait_s
    settings, book, ledger, metrics = await setup(state, f"burst-{wait_s}", spend)

    async def upstream(call: Call) -> Reply:
        await asyncio.sleep(0)  # every request is admitted (or refused) before any answers
        return answer(call)

    handler = compose([Spend(settings.spend, book, ledger, metrics), ReadAnswer()], upstream)

    async def one() -> int:
        call = new_call()
        try:
            reply = await handler(call)
            call.status = reply.status
            return reply.status
        finally:
            call.finish()

    try:
        statuses = await asyncio.gather(*(one() for _ in range(REQUESTS)))
        await ledger.flush()
        spent = sum(c.spent for values in ledger.reservations.counters.values()
                    for c in values.values())
    finally:
        await ledger.close()
    return {"hold_wait_s": wait_s, "cap_used_pct": round(100 * spent / LIMIT, 1),
            "overshoot_nano_usd": max(0, spent - LIMIT),
            "answers": {str(s): statuses.count(s) for s in sorted(set(statuses))}}


async def cancelled(state: Path, count: int) -> dict[str, Any]:
    """CPU of the background read of cancelled calls, and of the detach stage itself."""
    from sidecar.background import BackgroundReads
    from sidecar.pipeline.detach import Detach

    settings, book, ledger, metrics = await setup(state, "cancelled", {
        "budgets": [{"name": "cap", "limit_usd": 1e9}]})
    reads = BackgroundReads(limit=count, read_s=60, drain_s=5)
    await reads.start()
    gate, all_in = asyncio.Event(), asyncio.Event()
    arrived = 0

    async def held(call: Call) -> Reply:
        nonlocal arrived
        arrived += 1
        if arrived == count:
            all_in.set()
        await gate.wait()
        return answer(call)

    async def direct(call: Call) -> Reply:
        return answer(call)

    spend = Spend(settings.spend, book, ledger, metrics)
    stages: list[Stage] = [spend, Detach(reads), ReadAnswer()]
    try:
        calls = [new_call() for _ in range(count)]
        handler = compose(stages, held)
        tasks = [asyncio.ensure_future(run(handler, call)) for call in calls]
        await all_in.wait()
        began = time.process_time()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        gate.set()
        await reads.wait_idle()
        await ledger.flush()
        per_cancelled = (time.process_time() - began) / count * 1e6
        plain = await cpu(compose([spend, ReadAnswer()], direct), count)
        detached = await cpu(compose(stages, direct), count)
    finally:
        await reads.close()
        await ledger.close()
    return {"calls": count, "adopted": reads.adopted,
            "cancelled_call_us": round(per_cancelled, 1),
            "detach_stage_us": round(detached - plain, 1)}


async def run(handler: Callable[[Call], Awaitable[Reply]], call: Call) -> None:
    try:
        reply = await handler(call)
        call.status = reply.status
    except asyncio.CancelledError:
        call.outcome, call.status = "client_disconnected", 499
        raise
    finally:
        call.finish()


async def cpu(handler: Callable[[Call], Awaitable[Reply]], count: int) -> float:
    best = float("inf")
    for _ in range(3):
        began = time.process_time()
        for _ in range(count):
            await run(handler, new_call())
        best = min(best, (time.process_time() - began) / count * 1e6)
    return best


async def figures(state: Path, count: int, new: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"burst": [await burst(state, 0.0 if new else None)]}
    if new:
        out["burst"].append(await burst(state, 5.0))
        out["cancelled"] = await cancelled(state, count)
    return out


if __name__ == "__main__":
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--before", action="store_true",
                        help="the burst only, for a checkout without hold_wait_s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(figures(Path(tmp), args.calls, not args.before)),
                         indent=2))
