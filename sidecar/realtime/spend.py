"""The spend stage of a WebSocket session: priced and held at the handshake, metered after.

Present when spend is (a ledger and a price book). At the handshake: the model (the URL's
`?model=`) is priced (prices.py); a model with no price under a blocking budget follows
`spend.unknown_model_price` as a request does (block: 403 model_not_allowed, before any 101;
else priced at its default, every token kind alike); the first response's worst case is held
against every budget and rate limit (402 budget_exceeded, 429 rate_limit_exceeded with
Retry-After, 503 ledger_unavailable when the ledger is down and spend fails closed). Once the
upstream accepted, the session's `Meter` (meter.py) watches its events until it ends.
"""

from __future__ import annotations

from sidecar.call import Call, Next, Reply
from sidecar.config.spend import SpendSettings
from sidecar.errors import BudgetExceeded, LedgerUnavailable, ModelNotAllowed
from sidecar.realtime.meter import Meter
from sidecar.realtime.prices import (
    DEFAULT_CONTEXT,
    DEFAULT_MAX_OUTPUT,
    RealtimePrice,
    realtime_price,
)
from sidecar.realtime.relay import Session
from sidecar.spend.ledger import Ledger
from sidecar.spend.policy import BudgetRule, Refusal
from sidecar.spend.price_book import PriceBook
from sidecar.spend.pricing import rates_from_usd, to_usd, usd_text
from sidecar.spend.refusals import rate_limited, whose
from sidecar.spend.windows import iso
from sidecar.telemetry.metrics import Metrics

__all__ = ["RealtimeSpend"]

REMAINING_HEADER = "x-sidecar-budget-remaining-usd"
WARNING_HEADER = "x-sidecar-budget-warning"


class RealtimeSpend:
    name = "realtime_spend"
    reads_answer = False

    def __init__(self, spend: SpendSettings, prices: PriceBook, ledger: Ledger,
                 metrics: Metrics) -> None:
        self._prices = prices
        self._ledger = ledger
        self._metrics = metrics
        self._fail_closed = spend.on_ledger_error == "fail_closed"
        unknown = spend.unknown_model_price
        if unknown == "block":
            self._default: RealtimePrice | None = None
        else:
            r = rates_from_usd() if unknown == "free" else rates_from_usd(**unknown.model_dump())
            text = (r.prompt, r.cache_read, r.completion)
            self._default = RealtimePrice(text, text, (r.prompt, r.cache_read), DEFAULT_CONTEXT,
                                          DEFAULT_MAX_OUTPUT, "default")

    async def __call__(self, call: Call, next: Next) -> Reply:
        model = call.model or ""
        budgets, limits = self._ledger.policy.applicable(call)
        blocking = any(rule.block for rule, _ in budgets)
        price = realtime_price(model, self._prices.lookup(model) if model else None)
        if price is None:
            price = self._default
            if price is None and blocking:
                return Reply.from_error(_unpriced(model, budgets))
            if price is None:
                price = RealtimePrice((0.0,) * 3, (0.0,) * 3, (0.0, 0.0), DEFAULT_CONTEXT,
                                      DEFAULT_MAX_OUTPUT, "default")
        meter = Meter(call, price, ledger=self._ledger, prices=self._prices,
                      metrics=self._metrics, budgets=budgets, limits=limits,
                      fail_closed=self._fail_closed)
        if self._fail_closed and not self._ledger.healthy and (budgets or limits):
            return _unavailable()
        call.finishers.append(meter.finish)  # before next: holds released on every path
        if budgets or limits:
            held = await meter.take(limits=True)
            if isinstance(held, Refusal):
                return _refused(held, price)
            if isinstance(held, LedgerUnavailable):
                return _unavailable()
            meter.free.append(held)
            if (grant := held.grant) is not None:
                if grant.remaining is not None:
                    call.response_headers[REMAINING_HEADER] = usd_text(grant.remaining)
                if grant.warned:
                    call.response_headers[WARNING_HEADER] = ",".join(grant.warned)
        reply = await next(call)
        if isinstance(reply.upgrade, Session):
            reply.upgrade.watch(meter)
        return reply


def _unpriced(model: str, budgets: list[tuple[BudgetRule, str]]) -> ModelNotAllowed:
    budget = next(rule.name for rule, _ in budgets if rule.block)
    return ModelNotAllowed(
        f"Realtime model '{model}' has no known price (not in spend.prices, the upstream's "
        f"/models or the Realtime table) and budget '{budget}' applies, so a response's cost "
        "cannot be held against it (spend.unknown_model_price: block). Name a priced model in "
        "the URL (?model=...), add it to spend.prices, or set spend.unknown_model_price."
        if model else
        f"This session names no model (?model=...), so its responses cannot be priced, and "
        f"budget '{budget}' applies (spend.unknown_model_price: block).", param="model")


def _refused(refusal: Refusal, price: RealtimePrice) -> Reply:
    if refusal.kind == "rate":
        return rate_limited(refusal, "session")
    who = whose(refusal)
    resets = iso(refusal.resets_at)
    return Reply.from_error(BudgetExceeded(
        f"Budget '{refusal.rule}' ({who}, {refusal.window} window) cannot pay for one response "
        f"of this session: limit {refusal.limit:.4f} USD, {refusal.spent:.6f} USD spent or "
        f"held, and one response can cost up to {to_usd(price.worst()):.6f} USD (its whole "
        f"context window and its most output tokens at the dearest rates). "
        + (f"It resets at {resets}." if resets else "It is a total budget: it never resets."),
        metadata={"budget": refusal.rule, "scope": refusal.scope,
                  "scope_value": refusal.value, "window": refusal.window,
                  "limit_usd": refusal.limit, "spent_usd": refusal.spent,
                  "resets_at": resets, "response_worst_usd": to_usd(price.worst())}))


def _unavailable() -> Reply:
    return Reply.from_error(LedgerUnavailable(
        "The spend ledger cannot record spend right now, and spend.on_ledger_error is "
        "fail_closed, so sessions are refused until it can (the sidecar's log says why)."),
        headers={"Retry-After": "1"})
