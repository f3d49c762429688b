"""`AutoChoice`: what the auto router decided for one request, kept on the Call (`call.auto`).

Written by the auto stage (pipeline/auto.py), read where a request is said out loud: the
response headers, the ledger row (spend/bill.py: the tier, the baseline's cost, and for a
delegated request the model OpenRouter chose) and the inspector's record.

The baseline's cost is what the router's baseline model would have cost for the same tokens as
the answer the client got (its prompt, completion, cached and reasoning tokens, at the
baseline's price-book rates; never the upstream's reported cost, which is the real model's).
A cache hit, or a request that got no answer, has a baseline cost of 0: the baseline would have
been a hit, or unanswered, too. Saved vs baseline = baseline cost - what the request cost; a
cascade's cost is both calls, so it can be negative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sidecar.call import Bill, Call
from sidecar.config.auto import Tier
from sidecar.spend.pricing import ModelPrice

__all__ = ["DELEGATED", "AutoChoice"]

DELEGATED = "delegated"  # the tier said while OpenRouter's choice is not known yet
TIER_HEADER = "x-sidecar-auto-tier"
REASON_HEADER = "x-sidecar-auto-reason"


@dataclass(slots=True)
class AutoChoice:
    router: str  # the router's name, as the client sent it in `model`
    tier: Tier | None  # the tier served (None while a delegated request's is unknown)
    reasons: list[str] = field(default_factory=list)  # the deciding features, in order
    baseline: str = ""  # the model savings are measured against
    baseline_price: ModelPrice | None = None  # None: not in the price book (no savings)
    # delegate: OpenRouter picked the model; `tier_of` maps its answer's model to a tier
    delegated: bool = False
    tier_of: Callable[[str | None], Tier | None] | None = None

    @property
    def reason(self) -> str:
        return ",".join(self.reasons)

    def headers(self, call: Call) -> dict[str, str]:
        return {TIER_HEADER: self.served_tier(call), REASON_HEADER: self.reason}

    def served_model(self, call: Call) -> str | None:
        """The model that ran: the candidate routed to, or the one OpenRouter chose."""
        if self.delegated:
            return call.answer.model or call.model
        return call.model

    def served_tier(self, call: Call) -> str:
        if self.tier is not None:
            return self.tier
        found = self.tier_of(call.answer.model) if self.tier_of is not None else None
        return found or DELEGATED

    def baseline_cost(self, bill: Bill | None) -> int | None:
        """Nano-dollars the baseline would have cost for the answer's tokens (see above);
        None when the baseline has no price."""
        price = self.baseline_price
        if price is None:
            return None
        if bill is None or bill.hit or bill.usage is None:
            return 0
        return price.cost(replace(bill.usage, cost_usd=None))

    def saved(self, bill: Bill | None) -> int | None:
        """Nano-dollars saved against the baseline (negative: it cost more)."""
        baseline = self.baseline_cost(bill)
        if baseline is None:
            return None
        return baseline - (bill.cost if bill is not None else 0)
