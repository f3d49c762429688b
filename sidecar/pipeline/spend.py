"""The spend stage: price the call, hold its worst case against every budget and rate limit in
one atomic step, cap what it may generate to what the budgets can pay, then bill what it cost.

Placed after privacy and the fallback stage and before cache: it runs once per candidate model
(each is priced, held and billed as the model it really is), a blocked budget is never bypassed
by a cache hit, and a hit is billed 0 and counted as saved. On the way in:

1. price the model (price_book.py); a model with no price under a blocking budget is refused
   when `spend.unknown_model_price` is `block` (403 model_not_allowed: its cost could not be
   held), else priced 0 or at the configured default;
2. bound the request (estimate.py; a completion limit of 0 where the endpoint's API refuses 0
   is a 400 under a blocking budget, estimate.ZERO_LIMIT_REFUSED; a call without a model, a
   stored prompt's, is priced once its answer names the model) and ask the ledger to admit it
   (402 budget_exceeded, 429
   rate_limit_exceeded with Retry-After, 503 ledger_unavailable when the ledger is down and
   `on_ledger_error` is fail_closed);
3. under a blocking budget, tell the upstream the granted completion limit (`call.overrides`:
   the field the client used, else `max_tokens` / `max_output_tokens`): the client's own limit
   when the budget can pay for it, less when it cannot (`capped`), `spend.reserve_max_tokens`
   when the client set none;
4. on a stream, ask the upstream for usage when the client did not (the meter removes it).
The finisher is registered before `next`, so the hold is settled or released on every path.
On the way out a whole answer is settled at once (`x-sidecar-cost-usd`,
`x-sidecar-budget-remaining-usd`); a stream is metered (stream.py) and settled by the finisher.
"""

from __future__ import annotations

import math
import time
from functools import partial

import orjson
import structlog

from sidecar.call import Call, Next, Reply
from sidecar.config.spend import SpendSettings
from sidecar.endpoints import ENDPOINTS
from sidecar.errors import (
    BudgetExceeded,
    BudgetHeld,
    InvalidRequest,
    LedgerUnavailable,
    ModelNotAllowed,
)
from sidecar.headers import COST_HEADER, REMAINING_HEADER
from sidecar.messages.meter import MessagesMeter
from sidecar.pipeline.spend_media import spend_media
from sidecar.spend.bill import Books, Run, Tariff
from sidecar.spend.estimate import ZERO_LIMIT_REFUSED, Estimate, estimate
from sidecar.spend.ledger import Ledger, LedgerDown
from sidecar.spend.policy import Ask, BudgetRule, Grant, Policy, Refusal
from sidecar.spend.price_book import PriceBook
from sidecar.spend.pricing import ModelPrice, Rates, rates_from_usd, to_usd, usd_text
from sidecar.spend.refusals import rate_limited, whose
from sidecar.spend.stream import StreamMeter
from sidecar.spend.windows import iso
from sidecar.telemetry.metrics import Metrics

Unguarded = list[tuple[BudgetRule, str]] | None  # budgets a request served unguarded counts in
WARNING_HEADER = "x-sidecar-budget-warning"
_FREE = ModelPrice(Rates(), "default")
_log = structlog.get_logger("sidecar.spend")
_NOTED_LIMIT = 1_000  # distinct names remembered for one-time log lines


class Spend:
    name = "spend"
    reads_answer = True  # the answer's usage is what it bills

    def __init__(self, spend: SpendSettings, prices: PriceBook, ledger: Ledger,
                 metrics: Metrics, policy: Policy | None = None) -> None:
        """`policy`: the budgets and limits this stage applies; the ledger's unless given (a
        shadow rule's pipeline applies its own budget only, pipeline/shadow.py)."""
        self.ledger = ledger
        self.metrics = metrics
        self.policy = ledger.policy if policy is None else policy
        self.prices = prices
        self.settings = spend
        unknown = spend.unknown_model_price
        self._default: ModelPrice | None = (
            None if unknown == "block" else _FREE if unknown == "free"
            else ModelPrice(rates_from_usd(**unknown.model_dump()), "default"))
        self.fail_closed = spend.on_ledger_error == "fail_closed"
        self._hold_wait = spend.hold_wait_s
        # a held budget frees up as requests settle; SDKs wait this long before they retry
        self._retry_after = max(1, math.ceil(spend.flush_interval_s))
        self.noted: set[tuple[str, ...]] = set()
        self.books = Books(ledger, metrics, self.note, prices.lookup)

    async def __call__(self, call: Call, next: Next) -> Reply:
        row = ENDPOINTS.get(call.endpoint or "")
        if row is not None and row.meter != "tokens":
            return await spend_media(self, row.meter, call, next)
        ledger = self.ledger
        model = call.model or ""
        budgets, limits = self.policy.applicable(call)
        blocking = any(rule.block for rule, _ in budgets)
        # a delegated openrouter/auto is held at the dearest model OpenRouter may pick
        price = self.prices.lookup(call.priced_as or model) or self._default
        if price is None:
            if blocking:
                return Reply.from_error(self._unpriced(model, budgets))
            self.note("model_price_unknown", model)
            price = _FREE
        if self.fail_closed and not ledger.healthy:
            return self.unavailable()
        assert call.body is not None and call.endpoint is not None
        raw = orjson.dumps(call.body) if call.body_changed else call.raw_body or b""
        est = estimate(call.endpoint, raw, call.body,
                       default_tokens=self.settings.reserve_max_tokens,
                       image_tokens=self.settings.image_tokens,
                       context_length=price.context_length, model=call.model)
        if blocking and est.asked == 0 and call.endpoint in ZERO_LIMIT_REFUSED:
            return Reply.from_error(_zero_limit(call.endpoint, est, budgets))
        per_prompt, per_completion, per_request = price.worst(est.prompt_tokens)
        ask = Ask(budgets, limits, est.prompt_tokens * per_prompt + per_request,
                  per_completion * est.choices, est.want, est.prompt_tokens, est.choices,
                  ledger.clock())
        run = await self.hold(call, ask, price, est)
        if isinstance(run, Reply):
            return run
        grant = run.grant
        if grant is not None:
            self._cap(call, est, grant, blocking)
            if est.field is not None:
                run.told = call.overrides.get(est.field, est.asked)
        endpoint = call.endpoint
        options = call.body.get("stream_options")
        asked_usage = isinstance(options, dict) and options.get("include_usage") is True
        streamed_usage = call.stream and ENDPOINTS[endpoint].stream_usage
        if streamed_usage and not asked_usage:
            call.overrides["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                                "include_usage": True}

        reply = await next(call)

        if not model:  # no model asked (a stored prompt): priced as the model that answered
            call.finishers.append(partial(self._reprice, run))  # runs before run.finish
            self._reprice(run, call)
        run.hit = call.cache_status == "HIT"
        headers = call.response_headers
        if reply.chunks is None:
            # the answer stage read this candidate's usage (a failure's too: it costs what
            # the upstream said), or the cache took the entry's
            run.settle(call, call.answer.usage, answered=False)
            bill = run.bill
            headers[COST_HEADER] = usd_text(bill.cost)
            if bill.remaining is not None:
                headers[REMAINING_HEADER] = usd_text(bill.remaining)
            return reply
        if reply.sse and reply.status < 400 and ENDPOINTS[endpoint].wire == "anthropic":
            run.meter = MessagesMeter(  # Anthropic's events always carry their usage
                limit=grant.tokens if grant is not None and blocking and not run.hit else None,
                ending_usage=run.ending_usage, hit=run.hit)
            reply.chunks = run.meter.watch(reply.chunks)
        elif reply.sse and reply.status < 400:
            limit = grant.tokens * est.choices if (
                grant is not None and blocking and streamed_usage and not run.hit) else None
            run.meter = StreamMeter(
                limit=limit, strip_usage=streamed_usage and not asked_usage,
                add_cost=streamed_usage and asked_usage, cost=partial(run.answer_cost_usd, call),
                ending_usage=run.ending_usage, completions=endpoint == "completions",
                hit=run.hit)
            reply.chunks = run.meter.watch(reply.chunks)
        if grant is not None and grant.remaining is not None:
            headers[REMAINING_HEADER] = usd_text(grant.remaining)
        return reply

    async def admit(self, ask: Ask) -> tuple[Grant | None, Unguarded] | Reply:
        """Hold `ask` against its budgets and rate limits: (the grant, None); (None, the
        budgets) when the ledger is down under fail_open (served unguarded, still counted); or
        the refusal's Reply. A request refused only because money is held by requests in
        flight waits up to `spend.hold_wait_s` for them to settle, trying again at each
        settlement, before it is told 429 budget_held."""
        if not (ask.budgets or ask.limits):
            return None, None
        ledger = self.ledger
        deadline: float | None = None
        while True:
            try:
                decision = await ledger.admit(ask)
            except LedgerDown:  # logged once per outage by the ledger
                if self.fail_closed:
                    return self.unavailable()
                return None, ask.budgets
            if not isinstance(decision, Refusal):
                return decision, None
            if decision.kind == "budget" and decision.held_only and self._hold_wait > 0:
                now = time.monotonic()
                deadline = now + self._hold_wait if deadline is None else deadline
                if now < deadline:
                    await ledger.wait_for_room(deadline - now)
                    ask.now = ledger.clock()
                    continue
            return self._refuse(decision, ask)

    async def hold(self, call: Call, ask: Ask, tariff: Tariff, est: Estimate) -> Run | Reply:
        """Admit `ask`, and the Run that settles it, its finisher registered (before `next`:
        settled or released on every path); the refusal's Reply otherwise. Every call that
        spends holds through here (tokens, media, paths): a warning budget is told on each."""
        admitted = await self.admit(ask)
        if isinstance(admitted, Reply):
            return admitted
        grant, unguarded = admitted
        run = Run(self.books, call, ask.now, tariff, est, grant, unguarded)
        call.finishers.append(run.finish)
        if grant is not None:
            self._warn(call, grant)
        return run

    def _cap(self, call: Call, est: Estimate, grant: Grant, blocking: bool) -> None:
        """The completion limit a blocking budget grants, in the field the client used."""
        if blocking and est.field is not None and (est.asked is None
                                                   or grant.tokens < est.asked):
            call.overrides[est.field] = grant.tokens
        if grant.capped:
            self.metrics.budget_decision("capped")

    def _warn(self, call: Call, grant: Grant) -> None:
        if grant.warned:
            self.metrics.budget_decision("warned")
            call.response_headers[WARNING_HEADER] = ",".join(grant.warned)
            for name in grant.warned:
                self.note("budget_warning", name, level="warning")

    def _refuse(self, refusal: Refusal, ask: Ask) -> Reply:
        if refusal.kind == "rate":
            self.metrics.budget_decision("rate_limited")
            return rate_limited(refusal, "request")
        who = whose(refusal)
        resets = iso(refusal.resets_at)
        need = to_usd(math.ceil(ask.fixed + (ask.per_token if ask.want else 0)))
        metadata = {"budget": refusal.rule, "scope": refusal.scope, "scope_value": refusal.value,
                    "window": refusal.window, "limit_usd": refusal.limit,
                    "spent_usd": refusal.spent, "held_usd": refusal.held, "needed_usd": need,
                    "resets_at": resets}
        at_least = (f"this request needs at least {need:.6f} USD (its prompt at most and one "
                    "completion token)" if ask.want else f"this request needs {need:.6f} USD")
        if refusal.held_only:
            self.metrics.budget_decision("held")
            wait = self._retry_after
            return Reply.from_error(BudgetHeld(
                f"Budget '{refusal.rule}' ({who}, {refusal.window} window) has room for this "
                f"request only once requests in flight settle: limit {refusal.limit:.4f} USD, "
                f"{refusal.spent:.6f} USD spent, {refusal.held:.6f} USD held by requests in "
                f"flight, and {at_least}. Retry in {wait} s.",
                metadata={**metadata, "retry_after_s": wait}),
                headers={"Retry-After": str(wait)})
        self.metrics.budget_decision("blocked")
        return Reply.from_error(BudgetExceeded(
            f"Budget '{refusal.rule}' ({who}, {refusal.window} window) cannot pay for this "
            f"request: limit {refusal.limit:.4f} USD, {refusal.spent:.6f} USD spent "
            f"({refusal.held:.6f} USD more held by requests in flight), and {at_least}. "
            + (f"It resets at {resets}." if resets else "It is a total budget: it never resets."),
            metadata=metadata))

    def _reprice(self, run: Run, call: Call) -> None:
        """A call without a model, once its answer named one: its price, if the book has it
        (else the price it was held at: `unknown_model_price`'s)."""
        answered = call.answer.model
        if answered and (price := self.prices.lookup(answered)) is not None:
            run.price, run.model = price, answered

    def _unpriced(self, model: str, budgets: list[tuple[BudgetRule, str]]) -> ModelNotAllowed:
        budget = next(rule.name for rule, _ in budgets if rule.block)
        if not model:
            return ModelNotAllowed(
                f"This request names no model (a stored prompt does), so its cost cannot be "
                f"known before it is answered, and budget '{budget}' applies "
                "(spend.unknown_model_price: block). Name the model in the request, or set "
                "spend.unknown_model_price to free or a default price.", param="model")
        return ModelNotAllowed(
            f"Model '{model}' has no known price (not in spend.prices, the upstream's /models "
            f"or the bundled table) and budget '{budget}' applies, so its cost cannot be held "
            "against it (spend.unknown_model_price: block). Add the model to spend.prices, or "
            "set spend.unknown_model_price to free or a default price.", param="model")

    def unavailable(self) -> Reply:
        return Reply.from_error(LedgerUnavailable(
            "The spend ledger cannot record spend right now, and spend.on_ledger_error is "
            "fail_closed, so requests are refused until it can (the sidecar's log says why)."),
            headers={"Retry-After": "1"})

    def note(self, event: str, name: str, level: str = "info", **fields: object) -> None:
        """Log `event` once per name (bounded), not once per request."""
        key = (event, name)
        if key in self.noted:
            return
        if len(self.noted) >= _NOTED_LIMIT:
            self.noted.clear()
        self.noted.add(key)
        getattr(_log, level)(event, name=name, **fields)



def _zero_limit(endpoint: str, est: Estimate, budgets: list[tuple[BudgetRule, str]]
                ) -> InvalidRequest:
    budget = next(rule.name for rule, _ in budgets if rule.block)
    return InvalidRequest(
        f"'{est.field}' is 0, which /v1/{endpoint} does not take (its API answers 400 to a "
        f"limit of 0), and under budget '{budget}' the sidecar sends no limit a provider could "
        "read as none. Send 1 or more, or leave it out to get spend.reserve_max_tokens.",
        param=est.field)
