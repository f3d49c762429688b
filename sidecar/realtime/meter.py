"""A session's spend, response by response: held before it can start, billed when it is done.

The meter watches a session's events (relay.py's `Watcher`) and keeps the invariant spend keeps
for HTTP calls, that a blocking budget is never passed: a response can start only while one
response's worst case (prices.py: its context window and most output tokens at the dearest
rates) is held for it.

- The handshake holds one worst case (spend.py), or the client gets its 402/429 before any 101.
- A client's `response.create` is forwarded only once a worst case is held for it (so two at
  once, out-of-band responses included, hold two); when the budget cannot pay, it is not sent
  and the session ends (4402).
- `response.created` takes the hold it will be billed against. The server starts responses by
  itself too (voice activity detection); a free hold is always kept for one, so such a response
  is held before it starts. Only a second response the server starts by itself while one is
  already going finds none: one is taken then, and if the budget cannot pay, that response is
  cancelled at once and the session ends; the overshoot is what it cost up to its cancel, at
  most one response's worst case.
- `response.done` carries the usage: priced (audio, text, image, cached), the hold settled to
  it, one ledger row written (per response, at the time its hold was taken, so each response
  counts in the budget window it was admitted in, as a request does), and a new hold taken for
  the next response; if the budget cannot pay for it, the session ends with an `error` event
  (code budget_exceeded) and the close code 4402 "budget '<name>' exhausted".
- A response still going when the session ends is cancelled and given a few seconds to report
  its usage (relay.py); one that never does is billed its hold, marked `estimated`.

Without a budget or rate limit nothing is held; every response is still priced and recorded.
Rate limits count a session as one request (its handshake) and its first response's worst case
as tokens; the holds after the first ask budgets only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson

from sidecar.call import Bill, Call, Usage
from sidecar.errors import BudgetExceeded, LedgerUnavailable
from sidecar.realtime.prices import RealtimePrice, realtime_price
from sidecar.realtime.relay import Control
from sidecar.realtime.stats import SessionStats
from sidecar.spend.ledger import Ledger, LedgerDown, Row
from sidecar.spend.policy import Ask, BudgetRule, Grant, LimitRule, Refusal
from sidecar.spend.price_book import PriceBook
from sidecar.spend.pricing import to_usd
from sidecar.telemetry.metrics import Metrics

__all__ = ["BUDGET_CLOSE", "LEDGER_CLOSE", "Meter"]

BUDGET_CLOSE = 4402  # the close code of a session whose budget cannot pay its next response
LEDGER_CLOSE = 1013  # "try again later": the ledger is down and spend fails closed


@dataclass(slots=True)
class Held:
    grant: Grant | None  # None: nothing held (no budget, or the ledger was down: fail_open)
    ts: float  # Unix time it was taken: the response counts in that time's budget windows
    started: float  # monotonic


class Meter:
    client_markers: tuple[bytes, ...] = (b'"response.create"',)
    upstream_markers: tuple[bytes, ...] = (b'"response.created"', b'"response.done"',
                                           b'"session.created"', b'"error"')

    def __init__(self, call: Call, price: RealtimePrice, *, ledger: Ledger, prices: PriceBook,
                 metrics: Metrics, budgets: list[tuple[BudgetRule, str]],
                 limits: list[tuple[LimitRule, str]], fail_closed: bool) -> None:
        self.call = call
        self.price = price
        self.model = call.model or ""
        self._ledger = ledger
        self._prices = prices
        self._metrics = metrics
        self._budgets = budgets
        self._limits = limits
        self._fail_closed = fail_closed
        self._unguarded: list[tuple[BudgetRule, str]] | None = None
        self.free: list[Held] = []
        self.active: dict[str, Held] = {}
        self._pending = 0  # response.create events forwarded, not yet announced
        self.idle = asyncio.Event()
        self.idle.set()
        self._session: Control | None = None
        self._ended = False
        call.bill = self.bill = Bill(ledger.clock())

    @property
    def guarded(self) -> bool:
        return bool(self._budgets or self._limits) and self._unguarded is None

    def bind(self, session: Control) -> None:
        self._session = session

    def ask(self, *, limits: bool) -> Ask:
        price = self.price
        return Ask(self._budgets, self._limits if limits else [], float(price.worst()), 0.0, 0,
                   price.context + price.max_output, 1, self._ledger.clock())

    async def take(self, *, limits: bool = False) -> Held | Refusal | LedgerUnavailable:
        """One response's worst case, held (or nothing, when nothing is to be held)."""
        now = self._ledger.clock()
        if not self.guarded:
            return Held(None, now, time.monotonic())
        try:
            decision = await self._ledger.admit(self.ask(limits=limits))
        except LedgerDown:
            if self._fail_closed:
                return LedgerUnavailable("The spend ledger cannot record spend right now and "
                                         "spend.on_ledger_error is fail_closed.")
            self._unguarded = self._budgets  # fail_open: served, and charged once it is back
            return Held(None, now, time.monotonic())
        if isinstance(decision, Refusal):
            self._metrics.budget_decision("rate_limited" if decision.kind == "rate"
                                          else "blocked")
            return decision
        if decision.warned:
            self._metrics.budget_decision("warned")
        return Held(decision, now, time.monotonic())

    # ---- the watcher ---------------------------------------------------------------------

    async def from_client(self, event: dict[str, Any]) -> bool:
        if event.get("type") != "response.create":
            return True
        while len(self.free) < self._pending + 1 and not self._ended:
            held = await self.take()
            if not isinstance(held, Held):
                self._exhausted(held)
                return False
            self.free.append(held)
        if self._ended:
            return False
        self._pending += 1
        return True

    async def from_upstream(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "response.done":
            await self._done(event)
        elif kind == "response.created":
            await self._created(event)
        elif kind == "session.created":
            self._named(event)
        elif kind == "error":
            self._pending = max(0, self._pending - 1)  # a response.create the server refused

    async def _created(self, event: dict[str, Any]) -> None:
        response = event.get("response")
        rid = str(response.get("id")) if isinstance(response, dict) else ""
        self._pending = max(0, self._pending - 1)
        self.idle.clear()
        if self.free:
            self.active[rid] = self.free.pop()
            return
        held = await self.take()  # a second response the server started by itself
        if isinstance(held, Held):
            self.active[rid] = held
            return
        self.active[rid] = Held(None, self._ledger.clock(), time.monotonic())
        if self._session is not None:
            await self._session.send_upstream(orjson.dumps(
                {"type": "response.cancel", "response_id": rid}))
        self._exhausted(held)

    async def _done(self, event: dict[str, Any]) -> None:
        response = event.get("response")
        response = response if isinstance(response, dict) else {}
        rid = str(response.get("id"))
        held = self.active.pop(rid, None)
        if held is None:  # its response.created was not seen: bill it against a free hold
            held = self.free.pop() if self.free else Held(None, self._ledger.clock(),
                                                          time.monotonic())
        usage = response.get("usage")
        self._bill(held, usage if isinstance(usage, dict) else None,
                   str(response.get("status") or ""))
        if not self.active:
            self.idle.set()
        if self.guarded and not self.free and not self._ended:
            refill = await self.take()  # the next response's hold, before it can start
            if isinstance(refill, Held):
                self.free.append(refill)
            else:
                self._exhausted(refill)

    def _named(self, event: dict[str, Any]) -> None:
        """session.created names the model: it prices a session whose URL named none."""
        session = event.get("session")
        model = session.get("model") if isinstance(session, dict) else None
        if self.model or not isinstance(model, str) or not model:
            return
        price = realtime_price(model, self._prices.lookup(model))
        if price is not None:
            self.model, self.price = model, price

    def _exhausted(self, why: Refusal | LedgerUnavailable) -> None:
        """End the session: the budget cannot pay for another response (or no ledger)."""
        self._ended = True
        if self._session is None:
            return
        if isinstance(why, LedgerUnavailable):
            self._session.end(LEDGER_CLOSE, "spend ledger unavailable",
                              _notice(why.payload()["error"]))
            return
        error = BudgetExceeded(
            f"Budget '{why.rule}' ({why.window} window) cannot pay for another response of "
            f"this session: limit {why.limit:.4f} USD, {why.spent:.6f} USD spent or held, and "
            f"one response of {self.model or 'this model'} can cost up to "
            f"{to_usd(self.price.worst()):.6f} USD. The session is closed.",
            metadata={"budget": why.rule, "scope": why.scope, "scope_value": why.value,
                      "window": why.window, "limit_usd": why.limit, "spent_usd": why.spent})
        self._session.end(BUDGET_CLOSE, f"budget '{why.rule}' exhausted",
                          _notice(error.payload()["error"]))

    # ---- billing -------------------------------------------------------------------------

    def _bill(self, held: Held, usage: dict[str, Any] | None, status: str,
              estimated: bool = False) -> None:
        price, call, bill = self.price, self.call, self.bill
        if usage is not None:
            cost, counted = price.cost(usage)
        elif estimated:
            cost, counted = price.worst(), Usage(prompt_tokens=price.context,
                                                 completion_tokens=price.max_output)
        else:
            cost, counted = 0, Usage()
        tokens = counted.prompt_tokens + counted.completion_tokens
        if held.grant is not None:
            remaining = self._ledger.settle(held.grant, cost, tokens)
            bill.remaining = remaining if remaining is not None else bill.remaining
        elif self._unguarded and cost > 0:
            self._ledger.charge(self._unguarded, held.ts, cost)
        if cost > 0:
            self._metrics.spent(self.model, to_usd(cost))
        bill.cost += cost
        bill.estimated |= estimated
        total = call.answer.usage or Usage()
        total.prompt_tokens += counted.prompt_tokens
        total.completion_tokens += counted.completion_tokens
        total.cached_tokens += counted.cached_tokens
        call.answer.usage = bill.usage = total
        if isinstance(call.session, SessionStats):
            call.session.responses += 1
        self._ledger.record(Row(
            ts=held.ts, request_id=call.request_id, endpoint="realtime",
            key_name=call.key_name, user=call.user, tags=call.tags, model=self.model or None,
            requested_model=call.requested_model, provider=call.provider,
            prompt_tokens=counted.prompt_tokens, completion_tokens=counted.completion_tokens,
            cached_tokens=counted.cached_tokens, cost=cost, estimated=estimated,
            status=call.status, outcome="upstream_broke" if status == "failed" else "ok",
            latency_ms=(time.monotonic() - held.started) * 1000))

    def finish(self, call: Call) -> None:
        """The finisher: responses that never reported are billed their hold; free holds are
        released."""
        self._ended = True
        for held in self.active.values():
            self._bill(held, None, "", estimated=True)
        self.active.clear()
        for held in self.free:
            if held.grant is not None:
                self._ledger.settle(held.grant, 0, 0)
        self.free.clear()
        self.idle.set()


def _notice(error: dict[str, Any]) -> bytes:
    """A Realtime `error` server event carrying the sidecar's error."""
    return orjson.dumps({"type": "error", "event_id": "event_sidecar",
                         "error": {**error, "event_id": None}})
