"""One spend run (a fallback candidate) and how it adds to the request's bill.

The fallback stage may run spend once per candidate model. Each `Run` prices, holds and settles
its own candidate as the model it really is: a candidate that failed costs what its upstream
reported, else 0; a cache hit costs 0 and saves what the answer would have cost. All runs add to
the request's `Bill` (`call.bill`, call.py); the first run creates it and, being the first to
register its finisher (so the last to run it), writes the request's one ledger row after every
run has settled, even if settling failed.

A run settles into `Books` (the ledger, the metrics, the one-line-per-name log) given by the
spend stage: nothing here reaches back into the stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidecar.call import Bill, Call, Usage
from sidecar.spend.estimate import Estimate
from sidecar.spend.ledger import Ledger, Row
from sidecar.spend.policy import BudgetRule, Grant
from sidecar.spend.pricing import ModelPrice, to_usd
from sidecar.spend.stream import StreamMeter
from sidecar.telemetry.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Books:
    """Where a run settles: the ledger (holds and rows), the spend metrics, and a log line
    written once per name (`note(event, name, level, **fields)`)."""

    ledger: Ledger
    metrics: Metrics
    note: Callable[..., None]


class Run:
    __slots__ = ("bill", "books", "est", "grant", "hit", "meter", "model", "owner", "price",
                 "settled", "told", "unguarded")

    def __init__(self, books: Books, call: Call, now: float, price: ModelPrice, est: Estimate,
                 grant: Grant | None, unguarded: list[tuple[BudgetRule, str]] | None = None
                 ) -> None:
        self.books = books
        self.model = call.model or ""
        self.price = price
        self.est = est
        self.grant = grant
        self.owner = call.bill is None
        if call.bill is None:
            call.bill = Bill(now)
        self.bill = call.bill
        self.meter: StreamMeter | None = None
        self.hit = False
        self.settled = False
        self.told: int | None = est.asked  # the completion limit the upstream was sent
        # The budgets a request served while the ledger was down (fail_open) still counts in.
        self.unguarded = unguarded

    def estimated_usage(self) -> Usage:
        """What a stream that ended without usage is billed for: the prompt's bound and the
        output seen (its UTF-8 bytes, at most the completion limit the upstream was sent)."""
        meter = self.meter
        seen = meter.text_bytes if meter is not None else 0
        if self.told is not None:
            seen = min(seen, self.told * self.est.choices)
        prompt = self.est.prompt_tokens
        if meter is not None and meter.prompt_tokens is not None:
            prompt = meter.prompt_tokens  # the stream said it before it ended (Anthropic's)
        return Usage(prompt_tokens=prompt, completion_tokens=seen)

    def ending_usage(self) -> dict[str, Any]:
        usage = self.estimated_usage()
        return {"prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                "cost": 0.0 if self.hit else to_usd(self.price.cost(usage))}

    def answer_cost_usd(self, call: Call) -> float:
        """usage.cost for a client that asked for usage (the upstream's usage is on the call)."""
        usage = call.answer.usage
        if self.hit or usage is None:
            return 0.0
        return to_usd(self.price.cost(usage))

    def settle(self, call: Call, usage: Usage | None, answered: bool) -> None:
        """Turn the hold into the real cost, once. `answered`: the upstream started an answer
        (a stream that then ended without usage is billed from what was seen)."""
        if self.settled:
            return
        self.settled = True
        bill, estimated = self.bill, False
        if usage is None and answered and not self.hit:
            usage, estimated = self.estimated_usage(), True
        cost = saved = 0
        if usage is not None:
            if self.hit:
                saved = self.price.cost(usage)
            else:
                cost = self.price.cost(usage)
        capped = (self.grant is not None and self.grant.capped) or bool(
            self.meter and self.meter.cut)
        tokens = usage.prompt_tokens + usage.completion_tokens if usage else 0
        books = self.books
        if self.grant is not None:
            remaining = books.ledger.settle(self.grant, cost, tokens)
            bill.remaining = remaining if remaining is not None else bill.remaining
        elif self.unguarded and cost > 0:
            books.ledger.charge(self.unguarded, bill.ts, cost)
        if cost > 0:
            books.metrics.spent(self.model, to_usd(cost))
            if self.grant is not None and cost > self.grant.cost:
                # The upstream billed more than the worst case held: the price book is off.
                books.note("spend_over_reservation", self.model, "warning",
                           cost_usd=to_usd(cost), held_usd=to_usd(self.grant.cost),
                           request_id=call.request_id)
        bill.cost += cost
        bill.saved += saved
        bill.hit |= self.hit
        bill.estimated |= estimated
        bill.capped |= capped
        if usage is not None:
            bill.usage = usage

    def finish(self, call: Call) -> None:
        """The finisher: settle what the response side could not (streams, cancellations), and
        the owner writes the row, whatever settling did."""
        try:
            if not self.settled:
                # a stream: usage as the answer stage read it (a usage chunk, or the Responses
                # API's `response.completed`); else cancelled or failed before an answer came
                # back: nothing to bill
                meter = self.meter
                self.settle(call, None if meter is None else meter.billable(call.answer),
                            answered=meter is not None)
        finally:
            if self.owner:
                self.books.ledger.record(make_row(call, self.bill))


def make_row(call: Call, bill: Bill) -> Row:
    usage = bill.usage or Usage()
    return Row(
        ts=bill.ts, request_id=call.request_id, endpoint=call.endpoint or "",
        key_name=call.key_name, user=call.user, tags=call.tags,
        model=call.model or call.answer.model,  # a stored prompt's: the model that answered
        requested_model=call.requested_model, provider=call.provider,
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens, cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens, cost=bill.cost, saved=bill.saved,
        estimated=bill.estimated, capped=bill.capped, cache_hit=bill.hit, status=call.status,
        outcome=call.outcome, latency_ms=(time.monotonic() - call.started) * 1000)
