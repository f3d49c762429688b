"""The spend stage with a real ledger file, driven by stub stages around it: fallback
candidates each priced as their own model and billed into one row, cache hits costing 0 and
saving, and holds released on every path (cancelled, stream never read)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from sidecar.call import Call, Next, Reply, Usage
from sidecar.config import Settings
from sidecar.errors import UpstreamUnavailable
from sidecar.pipeline import compose
from sidecar.pipeline.spend import Spend
from sidecar.spend.ledger_sqlite import SqliteLedger
from sidecar.spend.price_book import PriceBook
from sidecar.telemetry.metrics import Metrics
from sidecar.upstream.client import UpstreamClient
from tests.fakes.calls import make_call
from tests.fakes.spend import rows

PRICES = {"a/*": {"prompt": 1e-6, "completion": 1e-6}, "b/*": {"prompt": 2e-6,
                                                               "completion": 4e-6}}


@pytest.fixture
async def stage(tmp_path: Path) -> AsyncIterator[Spend]:
    settings = Settings.model_validate({"state_dir": str(tmp_path), "spend": {
        "fetch_prices": False, "prices": PRICES,
        "budgets": [{"name": "cap", "limit_usd": 1}]}})
    metrics = Metrics()
    book = PriceBook(settings, UpstreamClient(settings.upstream))
    ledger = SqliteLedger(settings, metrics, tmp_path / "ledger.db")
    await book.start()
    await ledger.start()
    yield Spend(settings.spend, book, ledger, metrics)
    await ledger.close()


def held(stage: Spend) -> int:
    counters = stage.ledger.reservations.counters  # type: ignore[attr-defined]
    return sum(c.reserved for values in counters.values() for c in values.values())


def answer(usage: Usage) -> Any:
    async def terminal(call: Call) -> Reply:
        call.answer.usage = usage
        return Reply(200, CIMultiDict(), body=b"{}")
    return terminal


class Fallback:
    """Like the routing fallback stage: the rest of the pipeline once per candidate model."""

    name = "fallback"
    reads_answer = False

    def __init__(self, *models: str) -> None:
        self.models = models

    async def __call__(self, call: Call, next: Next) -> Reply:
        reply = None
        for model in self.models:
            call.model, call.overrides = model, {}
            reply = await next(call)
            if reply.status < 400:
                return reply
        assert reply is not None
        return reply


async def test_fallback_candidates_are_billed_as_their_own_models(stage: Spend,
                                                                   tmp_path: Path) -> None:
    """A failed candidate costs 0 and releases its hold; the one that answers is priced as the
    model it is; the request is one ledger row, for the model that answered."""
    async def terminal(call: Call) -> Reply:
        if call.model == "a/first":
            return Reply.from_error(UpstreamUnavailable("down"))
        call.answer.usage = Usage(prompt_tokens=10, completion_tokens=5)
        return Reply(200, CIMultiDict(), body=b"{}")

    call = make_call(model="a/first")
    reply = await compose([Fallback("a/first", "b/second"), stage], terminal)(call)
    assert reply.status == 200
    assert call.response_headers["x-sidecar-cost-usd"] == "0.00004"  # 10 x 2 + 5 x 4 micro
    call.finish()
    await stage.ledger.flush()
    (row,) = rows(tmp_path / "ledger.db")
    assert (row["model"], row["cost_nusd"], row["requested_model"]) == ("b/second", 40_000,
                                                                        "a/first")
    assert held(stage) == 0 and call.bill is not None and call.bill.cost == 40_000


async def test_cache_hit_costs_nothing_and_counts_what_it_saved(stage: Spend,
                                                                tmp_path: Path) -> None:
    """On a hit (cache_status HIT, usage = the tokens not spent) the cost is 0, the hold is
    released and the saving is the answer's price."""
    async def hit(call: Call) -> Reply:
        call.cache_status = "HIT"
        call.answer.usage = Usage(prompt_tokens=10, completion_tokens=5)
        return Reply(200, CIMultiDict(), body=b"{}")

    call = make_call(model="a/model")
    await compose([stage], hit)(call)
    assert call.bill is not None
    assert (call.response_headers["x-sidecar-cost-usd"], call.bill.cost_usd,
            call.bill.saved_usd) == ("0", 0.0, pytest.approx(15e-6))
    call.finish()
    await stage.ledger.flush()
    (row,) = rows(tmp_path / "ledger.db")
    assert (row["cache_hit"], row["cost_nusd"], row["saved_nusd"]) == (1, 0, 15_000)
    assert held(stage) == 0


async def test_a_cancelled_request_releases_its_hold(stage: Spend, tmp_path: Path) -> None:
    """Cancelled while waiting on the upstream: the finisher releases the hold, bills 0."""
    entered = asyncio.Event()

    async def slow(call: Call) -> Reply:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    call = make_call(model="a/model")
    task = asyncio.ensure_future(compose([stage], slow)(call))
    await entered.wait()
    assert held(stage) > 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    call.outcome, call.status = "client_disconnected", 499
    call.finish()
    await stage.ledger.flush()
    (row,) = rows(tmp_path / "ledger.db")
    assert (row["status"], row["cost_nusd"], row["estimated"]) == (499, 0, 0)
    assert held(stage) == 0


async def test_a_stream_never_read_is_billed_its_prompt_and_released(stage: Spend,
                                                                     tmp_path: Path) -> None:
    """A stream the client never read (it left after the headers): the upstream took the
    prompt, so the row is the prompt's bound, estimated; the hold is gone."""
    async def events() -> AsyncIterator[bytes]:
        yield b"data: {}\n\n"

    async def streamed(call: Call) -> Reply:
        return Reply(200, CIMultiDict(), chunks=events(), sse=True)

    call = make_call(model="a/model", body={"model": "a/model", "stream": True,
                                            "messages": []})
    call.raw_body = b'{"model":"a/model","stream":true,"messages":[]}'
    call.stream = True
    reply = await compose([stage], streamed)(call)
    assert reply.chunks is not None
    call.finish()
    await stage.ledger.flush()
    (row,) = rows(tmp_path / "ledger.db")
    assert (row["estimated"], row["completion_tokens"]) == (1, 0)
    assert row["cost_nusd"] == row["prompt_tokens"] * 1_000 > 0
    assert held(stage) == 0
