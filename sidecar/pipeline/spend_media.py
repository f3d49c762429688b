"""The spend stage's way with the endpoints not priced per token: images, speech,
transcriptions and translations, moderations (endpoints.py's `meter`).

The same steps as a chat request (pipeline/spend.py), with spend/media.py's tariff in place of
the token estimate: price the model (`spend.media_prices`, the upstream's /models, the bundled
table); a model with no such price under a blocking budget is refused when
`spend.unknown_model_price` is not `free` (403 model_not_allowed: its cost could not be held),
else served at 0 and logged once; hold the request's worst case against every budget and rate
limit in one step (402, 429, as for chat); then bill what the answer says, or the hold when it
says nothing (a binary speech answer is priced by its characters, exactly; a text transcription
by the hold, marked estimated). Moderations are free: held and billed 0, still recorded and
still rate limited. Nothing here caps the answer: a media request has no completion limit.
"""

from __future__ import annotations

from typing import Any, Protocol

from sidecar.call import Call, Next, Reply, Usage
from sidecar.config.spend import SpendSettings
from sidecar.endpoints import Meter
from sidecar.errors import ModelNotAllowed
from sidecar.headers import COST_HEADER, REMAINING_HEADER
from sidecar.spend.bill import Books, Run, Tariff
from sidecar.spend.estimate import Estimate
from sidecar.spend.ledger import Ledger
from sidecar.spend.media import MediaPrice, MediaTariff, tariff
from sidecar.spend.policy import Ask, BudgetRule, Policy
from sidecar.spend.price_book import PriceBook
from sidecar.spend.pricing import usd_text

_FREE = MediaPrice("default")


class SpendStage(Protocol):
    """What this takes from the spend stage (pipeline/spend.py)."""

    ledger: Ledger
    policy: Policy
    prices: PriceBook
    settings: SpendSettings
    fail_closed: bool
    books: Books

    async def hold(self, call: Call, ask: Ask, tariff: Tariff, est: Estimate) -> Run | Reply: ...

    def note(self, event: str, name: str, level: str = "info", **fields: Any) -> None: ...

    def unavailable(self) -> Reply: ...


async def spend_media(stage: SpendStage, meter: Meter, call: Call, next: Next) -> Reply:
    ledger = stage.ledger
    model = call.model or ""
    budgets, limits = stage.policy.applicable(call)
    settings = stage.settings
    assert call.body is not None
    price = _FREE if meter == "free" else stage.prices.media.lookup(model)
    found = None if price is None else tariff(meter, price, call.body, call.form, settings)
    if found is None:
        blocking = blocking_budget(budgets)
        if blocking is not None and settings.unknown_model_price != "free":
            return Reply.from_error(_unpriced(model, call.endpoint or "", blocking))
        stage.note("model_price_unknown", model)
        found = MediaTariff(meter, _FREE, 0, 0)
    if stage.fail_closed and not ledger.healthy:
        return stage.unavailable()
    ask = Ask(budgets, limits, float(found.hold), 0.0, 0, found.text_tokens, 1, ledger.clock())
    run = await stage.hold(call, ask, found, Estimate(found.text_tokens, 0, None, None, 1))
    if isinstance(run, Reply):
        return run
    grant = run.grant

    reply = await next(call)

    headers = call.response_headers
    if reply.chunks is not None:
        # a stream (speech or transcription events): billed by the finisher, from the usage of
        # its last event, else the hold (Run.unsettled)
        if grant is not None and grant.remaining is not None:
            headers[REMAINING_HEADER] = usd_text(grant.remaining)
        return reply
    usage = call.answer.usage
    if reply.status < 400 and not found.measured(usage):
        # the answer says nothing of its cost (text transcription): billed the hold
        run.settle(call, usage or Usage(), answered=False, estimated=True)
    else:
        run.settle(call, usage or (Usage() if reply.status < 400 else None), answered=False)
    bill = run.bill
    headers[COST_HEADER] = usd_text(bill.cost)
    if bill.remaining is not None:
        headers[REMAINING_HEADER] = usd_text(bill.remaining)
    return reply


def blocking_budget(budgets: list[tuple[BudgetRule, str]]) -> str | None:
    """The name of the first blocking budget that applies, if any."""
    for rule, _ in budgets:
        if rule.block:
            return rule.name
    return None


def _unpriced(model: str, endpoint: str, budget: str) -> ModelNotAllowed:
    return ModelNotAllowed(
        f"Model '{model}' has no known price for /v1/{endpoint} (not in spend.media_prices, the "
        f"upstream's /models or the bundled media table) and budget '{budget}' applies, so its "
        "cost cannot be held against it. Add the model to spend.media_prices (per image, per "
        "million characters or per minute), or set spend.unknown_model_price to free.",
        param="model")
