"""One spend run (a fallback candidate) and how it adds to the request's bill.

The fallback stage may run spend once per candidate model. Each `Run` prices, holds and settles
its own candidate as the model it really is: a candidate that failed costs what its upstream
reported, else 0; a cache hit costs 0 and saves what the answer would have cost. All runs add to
the request's `Bill` (`call.bill`, call.py); the first run creates it and, being the first to
register its finisher (so the last to run it), writes the request's one ledger row after every
run has settled, even if settling failed.

A run settles into `Books` (the ledger, the metrics, the one-line-per-name log) given by the
spend stage: nothing here reaches back into the stage.

A run the response side did not settle (a stream, a call whose client left) is settled by its
finisher from what is known then (`Run.unsettled`): a stream's usage, or what was seen of it; an
answer read after its client left (pipeline/detach.py) at its usage; and an upstream call that
was sent but whose answer was never read (the read was cut: shutdown, its time bound) at the
worst case it held, marked estimated: the provider bills it whether or not anyone reads it, so
cancelling can never pass a budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sidecar.call import Bill, Call, Usage
from sidecar.spend.estimate import Estimate
from sidecar.spend.ledger import Ledger, Row
from sidecar.spend.media import MediaTariff
from sidecar.spend.policy import BudgetRule, Grant
from sidecar.spend.pricing import ModelPrice, to_usd
from sidecar.spend.stream import StreamMeter
from sidecar.telemetry.metrics import Metrics


class Tariff(Protocol):
    """What prices an answer's usage: a model's per-token `ModelPrice`, or a media request's
    `MediaTariff` (media.py)."""

    def cost(self, usage: Usage) -> int: ...


@dataclass(frozen=True, slots=True)
class Books:
    """Where a run settles: the ledger (holds and rows), the spend metrics, a log line
    written once per name (`note(event, name, level, **fields)`), and the price book's lookup
    (a call held at a stand-in's price, `call.priced_as`, settles at the answering model's)."""

    ledger: Ledger
    metrics: Metrics
    note: Callable[..., None]
    prices: Callable[[str], ModelPrice | None] | None = None


class Run:
    __slots__ = ("bill", "books", "est", "grant", "hit", "media", "meter", "model", "owner",
                 "price", "settled", "told", "unguarded")

    def __init__(self, books: Books, call: Call, now: float, price: Tariff,
                 est: Estimate, grant: Grant | None,
                 unguarded: list[tuple[BudgetRule, str]] | None = None) -> None:
        self.books = books
        self.model = call.model or ""
        self.price: Tariff = price
        self.media = price if isinstance(price, MediaTariff) else None
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
        if call.priced_as is not None:
            self._reprice(call)
        return to_usd(self.price.cost(usage))

    def settle(self, call: Call, usage: Usage | None, answered: bool,
               estimated: bool = False) -> None:
        """Turn the hold into the real cost, once. `answered`: the upstream started an answer
        (a stream that then ended without usage is billed from what was seen); `estimated`:
        `usage` is the sidecar's bound, not the upstream's figures."""
        if self.settled:
            return
        self.settled = True
        bill = self.bill
        if usage is None and answered and not self.hit:
            usage, estimated = self.estimated_usage(), True
        cost = saved = 0
        if call.priced_as is not None and usage is not None:
            self._reprice(call)
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

    def _reprice(self, call: Call) -> None:
        """Held at a stand-in's price (auto's delegate: `openrouter/auto` at the dearest model
        it may pick): the answer names the model that ran, and that is the price it pays."""
        lookup, ran = self.books.prices, call.answer.model
        if lookup is not None and ran is not None and (price := lookup(ran)) is not None:
            self.price = price
            self.model = ran

    def finish(self, call: Call) -> None:
        """The finisher: settle what the response side could not (streams, cancellations), and
        the owner writes the row, whatever settling did."""
        try:
            if not self.settled:
                usage, estimated = self.unsettled(call)
                self.settle(call, usage, answered=self.meter is not None, estimated=estimated)
        finally:
            if self.owner:
                self.books.ledger.record(make_row(call, self.bill))

    def unsettled(self, call: Call) -> tuple[Usage | None, bool]:
        """What a run the response side did not settle is billed, and whether it is the
        sidecar's estimate (see the module docstring)."""
        usage = call.answer.usage
        if self.hit:
            return usage, False
        media = self.media
        if media is not None:  # a media stream, or a media call whose client left
            if media.measured(usage):
                return usage, False
            return (usage or Usage(), True) if self.meter is not None or _unread(call) else (
                None, False)
        if self.meter is not None:
            # a stream: its final usage (a usage chunk, the Responses API's
            # `response.completed`, Anthropic's message_delta); None: the meter bills what was
            # seen
            return self.meter.billable(call.answer), False
        if usage is not None:  # an answer read after its client left
            return usage, False
        if _unread(call):
            est = self.est
            told = self.told if self.told is not None else est.want
            return Usage(prompt_tokens=est.prompt_tokens,
                         completion_tokens=told * est.choices), True
        return None, False  # refused or failed before the upstream was asked: nothing


def _unread(call: Call) -> bool:
    """The upstream was sent this call and its answer was never read to the end (the read was
    cut): the provider bills it all the same."""
    attempts = call.attempts
    if not attempts:
        return False
    last = attempts[-1]
    return last.ended is None and last.error is None and last.status < 400


def make_row(call: Call, bill: Bill) -> Row:
    usage = bill.usage or Usage()
    auto = call.auto  # an auto router's request: its tier, its baseline, the model that ran
    return Row(
        # a passthrough path is named by its path (spend_paths.py: batches, unpriced paths)
        ts=bill.ts, request_id=call.request_id,
        endpoint=call.endpoint or call.path.partition("?")[0].strip("/"),
        key_name=call.key_name, user=call.user, tags=call.tags,
        model=call.model if auto is None else auto.served_model(call),
        requested_model=call.requested_model, provider=call.provider,
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens, cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens, cost=bill.cost, saved=bill.saved,
        estimated=bill.estimated, capped=bill.capped, cache_hit=bill.hit, status=call.status,
        outcome=call.outcome, latency_ms=(time.monotonic() - call.started) * 1000,
        tier=None if auto is None else auto.served_tier(call),
        baseline_cost=None if auto is None else auto.baseline_cost(bill))
