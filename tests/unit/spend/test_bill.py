"""A spend run and the request's bill: candidates add up, streams without usage are estimated,
hits save instead of cost, and the owner writes the one ledger row even when settling fails."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.call import Answer, Call, Usage
from sidecar.spend.bill import Books, Run
from sidecar.spend.estimate import Estimate
from sidecar.spend.ledger import Row
from sidecar.spend.policy import Grant
from sidecar.spend.pricing import ModelPrice, rates_from_usd
from sidecar.spend.stream import StreamMeter
from sidecar.telemetry.metrics import Metrics
from tests.fakes.calls import make_call

PRICE = ModelPrice(rates_from_usd(prompt=1e-6, completion=2e-6), "config")  # 1000 / 2000 nano


class Ledger:
    """The part of the Ledger protocol a run uses: settle, charge, record."""

    def __init__(self, fail_settle: bool = False) -> None:
        self.fail_settle = fail_settle
        self.settled: list[tuple[int, int]] = []
        self.rows: list[Row] = []

    def settle(self, grant: Grant, cost: int, tokens: int) -> int | None:
        if self.fail_settle:
            raise RuntimeError("the ledger broke")
        self.settled.append((cost, tokens))
        return 1_000_000 - cost

    def charge(self, budgets: Any, ts: float, cost: int) -> None:
        raise AssertionError("no budget is unguarded here")

    def record(self, row: Row) -> None:
        self.rows.append(row)


def books(ledger: Ledger) -> Books:
    return Books(ledger, Metrics(), lambda *args, **fields: None)  # type: ignore[arg-type]


def estimate(asked: int | None = 100) -> Estimate:
    return Estimate(prompt_tokens=50, want=asked or 4096, field="max_tokens", asked=asked,
                    choices=1)


def run(ledger: Ledger, call: Call, grant: Grant | None = None) -> Run:
    return Run(books(ledger), call, 1_700_000_000.0, PRICE, estimate(), grant)


def test_candidates_add_to_one_bill_and_the_owner_writes_one_row() -> None:
    """A failed first candidate costs 0, the second its usage; the first run owns the bill and
    writes one row, after both settled, with the answer's usage and the total cost."""
    ledger = Ledger()
    call = make_call(model="a/first")
    first = run(ledger, call, Grant(100, 5_000, False))
    first.settle(call, None, answered=False)
    call.model = "b/second"
    second = run(ledger, call, Grant(100, 5_000, False))
    call.answer = Answer(Usage(10, 5))
    second.settle(call, call.answer.usage, answered=False)
    second.finish(call)  # innermost first, as Call.finish runs them
    assert ledger.rows == []
    first.finish(call)
    (row,) = ledger.rows
    assert (row.model, row.cost, row.prompt_tokens, row.completion_tokens) == (
        "b/second", 20_000, 10, 5)
    assert call.bill is not None and call.bill.remaining == 1_000_000 - 20_000
    assert ledger.settled == [(0, 0), (20_000, 15)]


def test_a_stream_without_usage_is_billed_from_what_was_seen() -> None:
    """A stream that ended without usage: the prompt's bound plus the output bytes seen, at most
    the limit the upstream was told, and the row is marked estimated."""
    ledger = Ledger()
    call = make_call()
    spend = run(ledger, call, Grant(100, 500_000, False))
    spend.meter = StreamMeter(limit=None, strip_usage=True, add_cost=False,
                              cost=lambda: 0.0, ending_usage=dict, completions=False)
    spend.meter.text_bytes = 1_000  # more than the 100 tokens it was told
    spend.finish(call)
    (row,) = ledger.rows
    assert (row.prompt_tokens, row.completion_tokens, row.estimated) == (50, 100, True)
    assert row.cost == 50 * 1_000 + 100 * 2_000


def test_a_cache_hit_saves_what_the_answer_would_have_cost() -> None:
    """On a hit the cost is 0 and the saving is the answer's price."""
    ledger = Ledger()
    call = make_call()
    spend = run(ledger, call)
    spend.hit = True
    spend.settle(call, Usage(10, 5), answered=False)
    spend.finish(call)
    assert call.bill is not None
    assert (call.bill.cost, call.bill.saved, call.bill.saved_usd) == (0, 20_000, 2e-5)
    assert ledger.rows[0].cache_hit


def test_the_row_is_written_even_when_settling_fails() -> None:
    """A ledger that raises while settling still gets the request's row (nothing is lost), and
    the error reaches the finisher's caller (Call.finish logs it)."""
    ledger = Ledger(fail_settle=True)
    call = make_call()
    spend = run(ledger, call, Grant(100, 5_000, False))
    with pytest.raises(RuntimeError, match="the ledger broke"):
        spend.finish(call)
    assert len(ledger.rows) == 1 and ledger.rows[0].request_id == call.request_id
