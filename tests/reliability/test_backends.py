"""The sidecar's own backends failing, with every feature on: the telemetry backend down,
black-holed or refusing, then back; Redis (cache and shared ledger) killed under load, flapping,
and back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from sidecar.cache.redis_store import RETRY_AFTER_S, RedisStore
from sidecar.spend.ledger_redis import RedisLedger
from tests.fakes.otlp import BlackHole
from tests.fakes.ports import free_port
from tests.fakes.redis import RedisServer
from tests.fakes.upstream import Script, chat_answer, chat_chunks
from tests.fakes.waits import wait_until
from tests.reliability.conftest import StartFull
from tests.reliability.harness import (
    MODEL,
    NANO,
    Full,
    Seen,
    chat_body,
    cost_nusd,
)

JSON_COST, STREAM_COST = cost_nusd(7, 6), cost_nusd(7, 3)  # the fake's default answers


class WallClock:
    """Wall-clock seconds plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


async def mixed(full: Full, count: int, repeated: dict[str, Any]) -> list[Seen]:
    """`count` requests at once: JSON and streams, fresh ones and one asked before."""
    bodies = [repeated] + [chat_body(stream=i % 2 == 1) for i in range(count - 1)]
    return list(await asyncio.gather(*(full.post(body) for body in bodies)))


def expected_cost(seen: Seen) -> int:
    if seen.headers.get("x-sidecar-cache") == "HIT" or seen.status != 200:
        return 0
    stream = seen.headers["Content-Type"].startswith("text/event-stream")
    return STREAM_COST if stream else JSON_COST


@pytest.mark.parametrize("fault", ["down", "black_hole", "refusing_then_back"])
async def test_telemetry_backend_failing(start_full: StartFull, fault: str) -> None:
    """An OTLP backend that refuses connections (gRPC), accepts and never answers (HTTP), or
    answers 503 for a while: every request is served and billed as usual; once the backend
    answers again, the spans of new requests arrive."""
    hole = BlackHole()
    try:
        extra: dict[str, Any] = {}
        if fault == "down":
            extra = {"exporters": [{"protocol": "grpc", "timeout_s": 1,
                                    "endpoint": f"http://127.0.0.1:{free_port()}"}]}
        elif fault == "black_hole":
            extra = {"exporters": [{"protocol": "http", "endpoint": hole.endpoint,
                                    "timeout_s": 1}]}
        full = await start_full(**({"telemetry": extra} if extra else {}))
        full.receiver.status = 503
        repeated = chat_body()
        first = await mixed(full, 12, repeated)
        second = await mixed(full, 12, repeated)
        assert [s.status for s in first + second] == [200] * 24
        assert second[0].headers["x-sidecar-cache"] == "HIT"
        rows = await full.settled(spans=False)
        assert [rows[s.request_id]["cost_nusd"] for s in full.seen] == [
            expected_cost(s) for s in full.seen]
        await full.still_serving()
        if fault == "refusing_then_back":
            full.receiver.status = 200
            full.seen.clear()
            await mixed(full, 6, chat_body())
            await full.settled()  # with spans: each of these has its SERVER span
    finally:
        hole.close()


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server whose data survives a kill (append-only file, synced each write)."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(persist_dir=directory)
    server.start()
    yield server
    server.stop()


def gated(count: int, gate: asyncio.Event) -> list[Script]:
    """Answers held until `gate` is set: JSON and streams alternating, like `mixed` sends."""
    return [Script(sse=chat_chunks(MODEL, ["Hello", " from", " fake."]), hold=gate)
            if i % 2 else Script(json=chat_answer(MODEL, "Hello from the fake upstream."),
                                 hold=gate) for i in range(count)]


@pytest.mark.parametrize("mode", ["fail_open", "fail_closed"])
async def test_redis_killed_under_load_flapping_and_back(
        persistent_redis: RedisServer, start_full: StartFull, mode: str) -> None:
    """Redis holds the cache and the shared ledger. It is killed while 8 admitted requests
    wait on the upstream, then restarted and killed three times more with requests in
    between. Meanwhile the cache is skipped (served from upstream, never an error) and the
    ledger answers as configured: fail_open serves, fail_closed refuses with 503
    ledger_unavailable. Once Redis is back for good: every served request has exactly one
    row, billed right; every hold taken before the kill is settled (reserved 0); the entry
    stored before the outage is a hit again."""
    url = persistent_redis.url
    full = await start_full(
        # A killed Redis refuses at once; the timeouts only bound a slow one, and a loaded CI
        # machine can stall this event loop for longer than the defaults (0.05 s, 0.5 s).
        cache={"backend": "redis", "redis_url": url, "redis_timeout_s": 2.0},
        spend={"ledger": url, "on_ledger_error": mode, "redis_timeout_s": 2.0})
    store = full.deps.cache
    assert isinstance(store, RedisStore)
    clock = WallClock()  # after an error the cache skips Redis for RETRY_AFTER_S: moved by hand
    store.clock = clock
    # Redis is killed and started off the event loop: the sidecar keeps serving meanwhile, as
    # it would beside a real Redis (start() waits for the port, which takes a while under load).
    redis_server = persistent_redis
    repeated = chat_body()
    assert [s.status for s in await mixed(full, 6, chat_body())] == [200] * 6
    stored = await full.post(repeated)
    assert (await full.post(repeated)).headers["x-sidecar-cache"] == "HIT"

    gate = asyncio.Event()  # 8 requests admitted (held in Redis), then Redis dies
    full.primary.script("/chat/completions", *gated(8, gate))
    in_flight = asyncio.ensure_future(mixed(full, 8, chat_body()))
    await wait_until(lambda: len(full.primary.requests) >= 6 + 1 + 8, "8 requests upstream")
    await asyncio.to_thread(redis_server.stop)
    gate.set()
    assert [s.status for s in await in_flight] == [200] * 8

    refused = 0
    for _ in range(3):  # flapping: down, requests, up, requests
        for seen in await mixed(full, 4, repeated):
            if mode == "fail_open":
                assert seen.status == 200
                assert seen.headers["x-sidecar-cache"] in ("OFF", "HIT")
            else:
                assert seen.status == 503 and seen.refused_by_spend, seen.body
                assert seen.headers["Retry-After"] == "1"
                refused += 1
        await asyncio.to_thread(redis_server.start)
        await wait_until(lambda: full.deps.ledger is not None and full.deps.ledger.healthy,
                         "the ledger sees Redis again")
        assert {s.status for s in await mixed(full, 4, chat_body())} == {200}
        await asyncio.to_thread(redis_server.stop)
    await asyncio.to_thread(redis_server.start)
    await wait_until(lambda: full.deps.ledger is not None and full.deps.ledger.healthy,
                     "the ledger sees Redis again")
    clock.advance(RETRY_AFTER_S)
    hit = await full.post(repeated)
    assert hit.headers["x-sidecar-cache"] == "HIT" and hit.text() == stored.text()
    rows = await full.settled()
    assert refused == (12 if mode == "fail_closed" else 0)
    assert [rows[s.request_id]["cost_nusd"] for s in full.seen if not s.refused_by_spend] == [
        expected_cost(s) for s in full.seen if not s.refused_by_spend]
    assert await full.spent_nusd() == sum(row["cost_nusd"] for row in rows.values())
    await full.still_serving()


async def test_redis_too_slow_to_answer_never_duplicates_a_row(
        persistent_redis: RedisServer, start_full: StartFull) -> None:
    """Redis stalls (DEBUG SLEEP) longer than spend.redis_timeout_s while the ledger sends a
    batch of rows: the ledger gives up waiting, yet Redis applies the batch once it wakes
    (as when the sidecar's own event loop lags under CPU starvation past the timeout). When
    the ledger sends it again it must not apply it twice: one row per request, and the usage
    sums count each request once. (No budget here: a batch without settlements has no script
    to check first, so it goes out at once.)"""
    url = persistent_redis.url
    full = await start_full(
        cache={"backend": "redis", "redis_url": url},
        spend={"ledger": url, "redis_timeout_s": 0.2, "flush_interval_s": 1.0,
               "budgets": []})
    ledger = full.deps.ledger
    assert isinstance(ledger, RedisLedger)
    while True:  # until a batch was pending when Redis stalled (the ticker may flush first)
        assert {s.status for s in await mixed(full, 6, chat_body())} == {200}
        stall = asyncio.ensure_future(asyncio.to_thread(sleep_redis, url, 1.0))
        await wait_until(lambda: asyncio.to_thread(stalled, url), "Redis stalls")
        pending = bool(ledger._rows)
        await ledger.flush()  # sent while Redis sleeps: times out, applied when it wakes
        await stall
        if pending:
            break
    assert not ledger.healthy
    await wait_until(lambda: ledger.healthy, "the ledger sees Redis again")
    rows = await full.settled()
    async with full.http.get(f"{full.sidecar.admin_url}/sidecar/usage?window=day") as answer:
        usage = orjson.loads(await answer.read())
    assert usage["total_requests"] == len(rows)
    assert round(usage["total_cost_usd"] * NANO) == sum(row["cost_nusd"] for row in rows.values())


def sleep_redis(url: str, seconds: float) -> None:
    """Block the Redis server itself for `seconds` (it answers nobody meanwhile)."""
    client = redis.Redis.from_url(url)
    try:
        client.execute_command("DEBUG", "SLEEP", seconds)
    finally:
        client.close()


def stalled(url: str) -> bool:
    """Redis does not answer a PING within 50 ms."""
    client = redis.Redis.from_url(url, socket_timeout=0.05)
    try:
        client.ping()
    except redis.TimeoutError:
        return True
    finally:
        client.close()
    return False
