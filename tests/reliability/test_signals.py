"""Signals under load, on the real `llm-sidecar serve` process with every feature on.

SIGTERM: 38 requests in flight (JSON answers waiting on the upstream, streams half sent, and
five requests following a sixth's upstream call): every one completes whole, the process
exits 0, the ledger holds every row (written by the shutdown flush alone) and the telemetry
backend every SERVER span.

SIGKILL: under a steady mixed load, then a restart on the same state directory: the ledger file
passes `PRAGMA integrity_check`, its per-day sums agree with its rows, every row that was in the
file before the kill is still there, what is missing is only what had not been flushed yet, and
the restarted process rebuilds its budget from the file and serves.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import aiohttp
import orjson

from tests.fakes.otlp import HttpReceiver, attributes
from tests.fakes.telemetry import SERVER
from tests.fakes.upstream import FakeUpstream
from tests.fakes.waits import wait_until
from tests.reliability.harness import EMAIL, NANO, Seen, chat_body, cost_nusd, full_config
from tests.reliability.processes import Serve, consistency, ledger_rows

JSON_COST, STREAM_COST = cost_nusd(7, 6), cost_nusd(7, 3)  # the fake's default answers


def config(upstream: FakeUpstream, backup: FakeUpstream, receiver: HttpReceiver,
           **spend: Any) -> dict[str, Any]:
    made = full_config(upstream.url, backup.url, receiver.endpoint)
    made["spend"].update(spend)
    return made


async def test_sigterm_under_load_drains_and_loses_nothing(
        serve: Serve, upstream: FakeUpstream, backup: FakeUpstream,
        receiver: HttpReceiver) -> None:
    """SIGTERM with 38 requests in flight: all complete whole, exit 0, 38 rows billed right
    (flush_interval_s is 60: only the shutdown flush writes them), 38 SERVER spans exported."""
    process = await serve(config(upstream, backup, receiver, flush_interval_s=60))
    upstream.gate = asyncio.Event()
    shared = chat_body(stream=True, text=f"one question for all, {EMAIL}")
    bodies = ([chat_body() for _ in range(16)] + [chat_body(stream=True) for _ in range(16)]
              + [shared] * 6)
    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.ensure_future(process.post(session, body)) for body in bodies]
        async def all_in_flight() -> bool:
            return len(upstream.requests) >= 33 and await process.metric(
                session, "llm_sidecar_in_flight_requests") >= 38

        await wait_until(all_in_flight, "33 requests upstream and 38 in flight", 30)
        os.kill(process.proc.pid, signal.SIGTERM)
        draining = await process.logged("draining")
        assert draining["in_flight"] == 38
        upstream.gate.set()
        seen: list[Seen] = await asyncio.gather(*tasks)
    assert await process.exit_code() == 0
    assert [s.status for s in seen] == [200] * 38
    for s, body in zip(seen, bodies, strict=True):
        if body.get("stream"):
            assert s.body.endswith(b"data: [DONE]\n\n")
        else:
            assert orjson.loads(s.body)["choices"][0]["message"]["content"]
    assert consistency(process.ledger) == ("ok", True)
    rows = {row["request_id"]: row for row in ledger_rows(process.ledger)}
    assert set(rows) == {s.request_id for s in seen}
    hits = [s for s in seen if s.headers["x-sidecar-cache"] == "HIT"]
    assert len(hits) == 5  # the shared question: one upstream call, five followers
    assert sum(row["cost_nusd"] for row in rows.values()) == (
        16 * JSON_COST + 17 * STREAM_COST)
    exported = {attributes(span.attributes).get("llm_sidecar.request_id")
                for _, span in receiver.spans() if span.kind == SERVER}
    assert exported >= set(rows)


async def test_sigkill_under_load_then_restart(serve: Serve, upstream: FakeUpstream,
                                               backup: FakeUpstream,
                                               receiver: HttpReceiver) -> None:
    """SIGKILL while a mixed load runs, then a restart: the file is intact and consistent;
    rows committed before the kill all survive; the loss is only the unflushed tail (the
    requests that ended after the last commit); the budget is rebuilt from the file."""
    settings = config(upstream, backup, receiver, flush_interval_s=0.2)
    process = await serve(settings)
    completed: dict[str, float] = {}  # request id -> when its answer was complete
    stop = asyncio.Event()

    async def client(session: aiohttp.ClientSession, index: int) -> None:
        repeated = chat_body(text=f"asked by client {index} again and again")
        turn = 0
        while not stop.is_set():
            turn += 1
            body = repeated if turn % 3 == 0 else chat_body(stream=turn % 2 == 0)
            try:
                seen = await process.post(session, body)
            except (aiohttp.ClientError, KeyError):
                return  # the process is gone
            if seen.status == 200:
                completed[seen.request_id] = time.monotonic()

    async with aiohttp.ClientSession() as session:
        clients = [asyncio.ensure_future(client(session, i)) for i in range(6)]
        await wait_until(lambda: bool(ledger_rows(process.ledger)), "a first commit", 60)
        ended = set(completed)  # answered by the time a first commit is seen ...
        await wait_until(  # ... all in the file at a later one, load going on
            lambda: ended <= {row["request_id"] for row in ledger_rows(process.ledger)},
            "the requests answered before the first commit are committed", 60)
        before_kill = {row["request_id"] for row in ledger_rows(process.ledger)}
        killed_at = time.monotonic()
        process.proc.kill()
        await process.exit_code()
        stop.set()
        await asyncio.gather(*clients)

    assert consistency(process.ledger) == ("ok", True)
    rows = {row["request_id"]: row for row in ledger_rows(process.ledger)}
    assert before_kill <= set(rows), "a committed row was lost"
    lost = set(completed) - set(rows)
    assert not lost & before_kill
    # What is lost ended after the last commit the test saw: within the flush interval.
    ages_ms = sorted(round((killed_at - completed[i]) * 1000) for i in lost)
    print(f"\nSIGKILL: {len(completed)} requests answered, {len(rows)} rows kept, "
          f"{len(lost)} lost, ended {ages_ms[:1]}..{ages_ms[-1:]} ms before the kill")

    restarted = await serve(settings)
    async with aiohttp.ClientSession() as session:
        budgets = await restarted.get_json(session, "/sidecar/budgets")
        spent = round(budgets["budgets"][0]["spent_usd"] * NANO)
        assert spent == sum(row["cost_nusd"] for row in rows.values())
        usage = await restarted.get_json(session, "/sidecar/usage?window=all")
        assert usage["total_requests"] == len(rows)
        again = await restarted.post(session, chat_body())
        assert again.status == 200
