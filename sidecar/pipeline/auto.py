"""The auto stage: `model: "sidecar/auto"` (any configured router's name) becomes the models of
one tier, chosen from what the request is (docs/auto.md).

Placed after privacy (the classifier reads the redacted text the upstream will see, and
redaction runs once) and before fallback: it sets `call.candidates` to the tier's models and
fallback tries them in order, each a run of the rest of the list, so spend, the cache, routing,
retries, breakers and telemetry all see the real model. Present only when routers are
configured; a request for any other model passes with one dict lookup.

For a router's request:
1. read the body by its endpoint's shape (auto/shapes.py), classify (auto/classify.py), pick
   the tier (auto/tiers.py), never below the session's pin (auto/pins.py), and make sure the
   prompt fits the models' context windows (auto/router.py);
2. run the tier's models;
3. `downgrade_on_budget`: a 402 budget_exceeded or 429 budget_held (the spend stage below could
   not hold the tier's model) runs the next cheaper tier instead, until one is paid for or none
   is left;
4. `cascade`: a whole answer at fault (auto/faults.py: an upstream error, `length` before any
   content, a refusal) runs the next tier up, once; the Bill adds both runs into the one ledger
   row. A cascade never makes the answer worse: when the tier up fails or is refused, the
   first answer stands. A stream that has started is never cascaded: its first bytes are the
   client's already;
5. say so: `x-sidecar-auto-tier` and `x-sidecar-auto-reason` (the deciding features, then what
   moved the tier: `pinned=`, `context~`, `budget:a->b`, `cascade:why`), and `call.auto` for
   the ledger row and the inspector.

`delegate: openrouter` skips 1-4: the request goes as `openrouter/auto` with OpenRouter's
auto-router plugin limited to the router's models, held at the dearest of them and priced as
the model OpenRouter's answer names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sidecar.auto.choice import AutoChoice
from sidecar.auto.classify import Features, features
from sidecar.auto.faults import fault
from sidecar.auto.pins import PinKey, Pins
from sidecar.auto.router import Router, bound
from sidecar.auto.shapes import READERS, read
from sidecar.call import Call, Next, Reply
from sidecar.errors import (
    BudgetExceeded,
    BudgetHeld,
    InvalidRequest,
    NoProviderAvailable,
    UpstreamError,
)
from sidecar.headers import COST_HEADER
from sidecar.spend.pricing import usd_text
from sidecar.upstream.conversation import session_id

__all__ = ["OPENROUTER_AUTO", "Auto"]

OPENROUTER_AUTO = "openrouter/auto"
_PLUGIN = "auto-router"
# OpenRouter's cost_quality_tradeoff: 0 pure quality .. 10 cheapest; 7 is its default.
_TRADEOFF = {"cheap": 10, "balanced": 7, "quality": 0}
# Spent money leaves no room (402), or money held by requests in flight leaves none now (429):
# either way a cheaper tier may fit.
_REFUSED_BY_BUDGET = (BudgetExceeded, BudgetHeld)


class Auto:
    name = "auto"

    def __init__(self, routers: Mapping[str, Router], pins: Pins) -> None:
        self._routers = dict(routers)
        self._pins = pins
        # the cascade reads the answer's finish reason
        self.reads_answer = any(r.settings.cascade for r in self._routers.values())

    async def __call__(self, call: Call, next: Next) -> Reply:
        router = self._routers.get(call.model or "")
        if router is None:
            return await next(call)
        body = call.body
        assert body is not None
        if router.settings.delegate == "openrouter":
            return await self._delegate(call, next, router, body)
        shape = read(call.endpoint, body)
        if shape is None:
            return Reply.from_error(InvalidRequest(
                f"Model '{router.name}' is an automatic router: it routes "
                f"{', '.join('/v1/' + e for e in READERS)} requests, not /v1/{call.endpoint}. "
                "Name a model for this endpoint.", param="model"))
        f = features(shape)
        settings = router.settings
        session = session_id(call)  # the one the sticky pools read (upstream/conversation.py)
        key: PinKey | None = (router.name, call.key_name, session) if session else None
        floor = self._pins.floor(key, settings.session_idle_s) if key else None
        pick = router.choose(f, floor)
        if key:
            self._pins.pin(key, pick.tier, settings.session_idle_s)
        call.auto = choice = AutoChoice(router.name, pick.tier, list(pick.reasons),
                                        router.baseline, router.baseline_price())
        reply = await _run(call, next, pick.models)
        if settings.downgrade_on_budget and isinstance(reply.error, _REFUSED_BY_BUDGET):
            reply = await self._downgrade(call, next, router, choice, f, reply)
        if settings.cascade:
            reply = await self._cascade(call, next, router, choice, f, reply, key)
        call.response_headers.update(choice.headers(call))
        return reply

    async def _downgrade(self, call: Call, next: Next, router: Router, choice: AutoChoice,
                         f: Features, reply: Reply) -> Reply:
        """The next cheaper tiers, nearest first, until a budget pays for one."""
        assert choice.tier is not None
        refused = choice.tier
        for lower in router.cheaper(refused):
            models = router.fitting(lower, bound(f))
            if not models:
                continue
            again = await _run(call, next, models)
            await reply.discard()
            reply = again
            if not isinstance(again.error, _REFUSED_BY_BUDGET):
                choice.tier = lower
                choice.reasons.insert(0, f"budget:{refused}->{lower}")
                break
        return reply

    async def _cascade(self, call: Call, next: Next, router: Router, choice: AutoChoice,
                       f: Features, reply: Reply, key: PinKey | None) -> Reply:
        """One tier up, once, for a whole answer at fault; the better of the two stands."""
        assert choice.tier is not None
        why = fault(reply, call.answer)
        up = router.above(choice.tier) if why is not None else None
        if up is None:
            return reply
        first = (call.model, call.answer, call.cache_status, dict(call.response_headers))
        again = await _run(call, next, router.fitting(up, bound(f)) or router.tiers[up])
        refused = again.error is not None and not isinstance(
            again.error, (UpstreamError, NoProviderAvailable))
        if refused or (reply.status < 400 <= again.status):
            # The sidecar refused the tier up (a budget, a rate limit), or it failed where the
            # first answered: the first answer, with what it said, stands.
            await again.discard()
            call.model, call.answer, call.cache_status, headers = first
            call.response_headers.clear()
            call.response_headers.update(headers)
            if call.bill is not None:  # whatever the second run cost is in the bill
                # restated: the cascade was undone
                call.response_headers[COST_HEADER] = usd_text(call.bill.cost)
            choice.reasons.insert(0, f"cascade:{why}:kept")
            return reply
        await reply.discard()
        choice.tier = up
        choice.reasons.insert(0, f"cascade:{why}")
        if key:
            self._pins.pin(key, up, router.settings.session_idle_s)
        return again

    async def _delegate(self, call: Call, next: Next, router: Router,
                        body: dict[str, Any]) -> Reply:
        """OpenRouter chooses, among this router's models (its auto-router plugin)."""
        plugins = body.get("plugins")
        kept = [p for p in plugins if not (isinstance(p, dict) and p.get("id") == _PLUGIN)
                ] if isinstance(plugins, list) else []
        call.body = {**body, "plugins": [*kept, {
            "id": _PLUGIN, "allowed_models": router.models,
            "cost_quality_tradeoff": _TRADEOFF[router.settings.prefer]}]}
        call.body_changed = True
        call.priced_as = router.dearest()
        call.auto = choice = AutoChoice(
            router.name, None, ["delegate=openrouter"], router.baseline,
            router.baseline_price(), delegated=True, tier_of=router.tier_of)
        reply = await _run(call, next, (OPENROUTER_AUTO,))
        call.response_headers.update(choice.headers(call))
        return reply


async def _run(call: Call, next: Next, models: tuple[str, ...]) -> Reply:
    """One run of the rest of the list with these candidates (fallback tries them in order)."""
    call.candidates = models
    return await next(call)
