"""Budgets and rate limits of one process, in memory: atomic reserve, settle, release.

Why it never overshoots: `admit` checks every applicable budget and rate limit and commits the
reservation in one synchronous step, with no `await` in between, so on the one event loop no
other request can see the counters half-updated: the check and the hold are one atomic action,
without a lock. A blocking budget admits a request only when `spent + reserved + worst case <=
limit`; the worst case bounds what the answer can cost (estimate.py), the upstream is told the
granted completion limit, and settling replaces the hold by the real cost, which is never more.
So at every moment `spent + reserved <= limit`, however many requests race. A refusal says
whether what is spent alone leaves room (`held_only`: the holds in flight are what refuse it,
and it may wait for them to settle) or not.

Windows roll on the UTC calendar (windows.py). A request belongs to the window in which it was
admitted (the ledger row carries that time, so totals rebuild the same way): a hold from the
previous window is settled into nothing when it ends after a reset, and the new window starts
at zero. Rate limits are token buckets (capacity rpm or tpm, refilled continuously over a
minute): `Retry-After` is the time until the bucket holds what the request needs. A request
larger than the whole tpm waits for a full bucket instead of being refused for ever. A
tokens-per-minute hold is the prompt's bound plus the granted completion limit; settling gives
back what the answer did not use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sidecar.spend.policy import Ask, BudgetRule, Grant, LimitRule, Policy, Refusal
from sidecar.spend.pricing import to_usd
from sidecar.spend.windows import window_end, window_start


@dataclass(slots=True)
class Counter:
    start: int
    end: int | None
    spent: int = 0
    reserved: int = 0


@dataclass(slots=True)
class Bucket:
    capacity: float
    rate: float  # per second
    level: float
    at: float

    def refill(self, now: float) -> float:
        if now > self.at:
            self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
            self.at = now
        return self.level


@dataclass(slots=True)
class Hold:
    counter: Counter
    start: int  # the window it was taken in
    limit: int


@dataclass(slots=True)
class TokenHold:
    bucket: Bucket  # a tokens-per-minute bucket: settling gives back what was not used (of
    # what was taken: the request's tokens, at most the bucket's capacity)


def affordable(ask: Ask, room: float) -> int:
    """Completion tokens per choice `room` nano-dollars pay for (-1: not even the prompt)."""
    if math.ceil(ask.fixed) > room:
        return -1
    if ask.want <= 0 or ask.per_token <= 0:
        return ask.want
    tokens = min(ask.want, int((room - ask.fixed) // ask.per_token))
    while tokens > 0 and math.ceil(ask.fixed + ask.per_token * tokens) > room:
        tokens -= 1  # float rounding at the edge
    return tokens if tokens > 0 else -1


def reservation(ask: Ask, tokens: int) -> int:
    return math.ceil(ask.fixed + ask.per_token * tokens)


class Reservations:
    def __init__(self, policy: Policy | None = None) -> None:
        self.counters: dict[str, dict[str, Counter]] = {}  # budget name -> scope value -> ...
        self.buckets: dict[tuple[str, str, str], Bucket] = {}
        # the rules the counters and buckets were made for (a reload compares against them)
        self.budgets: list[BudgetRule] = list(policy.budgets) if policy else []
        self.scopes: dict[str, str] = {r.name: r.scope for r in policy.limits} if policy else {}

    def counter(self, rule: BudgetRule, value: str, now: float) -> Counter:
        values = self.counters.get(rule.name)
        if values is None:
            values = self.counters[rule.name] = {}
        counter = values.get(value)
        if counter is None:
            start = window_start(rule.window, now)
            counter = values[value] = Counter(start, window_end(rule.window, start))
        elif counter.end is not None and now >= counter.end:
            counter.start = window_start(rule.window, now)
            counter.end = window_end(rule.window, counter.start)
            counter.spent = counter.reserved = 0
        return counter

    def admit(self, ask: Ask) -> Grant | Refusal:
        now = ask.now
        counters = [(rule, value, self.counter(rule, value, now)) for rule, value in ask.budgets]
        tokens = ask.want
        held: Refusal | None = None
        for rule, value, c in counters:
            if rule.block:
                fits = affordable(ask, rule.limit - c.spent - c.reserved)
                if fits < 0:
                    # refused: for good when what is spent leaves no room, else only until
                    # the holds in flight settle (reported when no budget refuses for good)
                    held_only = affordable(ask, rule.limit - c.spent) >= 0
                    refusal = Refusal("budget", rule.name, rule.scope, value, rule.window,
                                      to_usd(rule.limit), to_usd(c.spent), c.end,
                                      held=to_usd(c.reserved), held_only=held_only)
                    if not held_only:
                        return refusal
                    held = held or refusal
                    continue
                tokens = min(tokens, fits)
        if held is not None:
            return held
        tpm_need: float = ask.prompt_tokens + tokens * ask.choices
        takes: list[tuple[Bucket, float, bool]] = []
        for limit, value in ask.limits:
            for kind, per_minute, need in (("rpm", limit.rpm, 1), ("tpm", limit.tpm, tpm_need)):
                if per_minute is None:
                    continue
                bucket = self._bucket(limit, value, kind, per_minute, now)
                need = min(need, per_minute)
                if bucket.refill(now) < need:
                    return Refusal("rate", limit.name, limit.scope, value, "minute",
                                   per_minute, per_minute - bucket.level,
                                   retry_after=(need - bucket.level) / bucket.rate,
                                   unit="requests" if kind == "rpm" else "tokens")
                takes.append((bucket, need, kind == "tpm"))
        cost = reservation(ask, tokens)
        grant = Grant(tokens, cost, tokens < ask.want, tpm_taken=int(tpm_need))
        for bucket, need, tokens_bucket in takes:
            bucket.level -= need
            if tokens_bucket:
                grant.holds.append(TokenHold(bucket))
        for rule, _, c in counters:
            c.reserved += cost
            grant.holds.append(Hold(c, c.start, rule.limit))
            left = rule.limit - c.spent - c.reserved
            if not rule.block and left < 0:
                grant.warned.append(rule.name)
            if grant.remaining is None or left < grant.remaining:
                grant.remaining = left
        return grant

    def settle(self, grant: Grant, cost: int, tokens: int) -> int | None:
        """Replace the grant's holds by what the answer cost (0: a release) and give back the
        tokens it did not use. Returns the tightest budget's room left now."""
        remaining: int | None = None
        for hold in grant.holds:
            if isinstance(hold, Hold):
                c = hold.counter
                if c.start == hold.start:  # else the window reset since: see the docstring
                    c.reserved -= grant.cost
                    c.spent += cost
                room = hold.limit - c.spent - c.reserved
                remaining = room if remaining is None else min(remaining, room)
            elif isinstance(hold, TokenHold):
                bucket = hold.bucket
                back = max(0, min(grant.tpm_taken, int(bucket.capacity)) - tokens)
                bucket.level = min(bucket.capacity, bucket.level + back)
        grant.holds = []
        return remaining

    def _bucket(self, rule: LimitRule, value: str, kind: str, per_minute: int,
                now: float) -> Bucket:
        key = (rule.name, value, kind)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(per_minute, per_minute / 60.0, per_minute, now)
        return bucket

    def reconfigure(self, policy: Policy) -> list[BudgetRule]:
        """Live reload: forget the counters of budgets that are gone or defined anew (another
        scope, window or match) and return those, which the ledger totals again; resize the
        buckets of rate limits whose rpm or tpm changed, forget those of limits gone or moved
        to another scope. Holds in flight settle into the counter they hold, or into nothing."""
        old = {rule.name: rule for rule in self.budgets}
        fresh = []
        for rule in policy.budgets:
            was = old.get(rule.name)
            if was is None or (was.scope, was.window, was.match) != (
                    rule.scope, rule.window, rule.match):
                self.counters.pop(rule.name, None)
                fresh.append(rule)
        for name in set(old) - {rule.name for rule in policy.budgets}:
            self.counters.pop(name, None)
        limits = {rule.name: rule for rule in policy.limits}
        for key, bucket in list(self.buckets.items()):
            name, _, kind = key
            limit = limits.get(name)
            per_minute = None if limit is None else limit.rpm if kind == "rpm" else limit.tpm
            if limit is None or per_minute is None or limit.scope != self.scopes.get(name):
                del self.buckets[key]
            elif per_minute != bucket.capacity:
                bucket.capacity, bucket.rate = per_minute, per_minute / 60.0
                bucket.level = min(bucket.level, bucket.capacity)
        self.budgets = list(policy.budgets)
        self.scopes = {rule.name: rule.scope for rule in policy.limits}
        return fresh

    def add_spent(self, rule: BudgetRule, value: str, now: float, amount: int) -> None:
        """Count spend already in the ledger (the rebuild at start)."""
        self.counter(rule, value, now).spent += amount

    def entries(self, rule: BudgetRule, now: float) -> list[tuple[str, Counter]]:
        """The values of `rule` with a counter in the current window."""
        out = [(value, self.counter(rule, value, now))
               for value in list(self.counters.get(rule.name, ()))]
        if not out and rule.scope == "global":
            out.append(("", self.counter(rule, "", now)))
        return out

    def sweep(self, now: float) -> None:
        """Forget counters of past windows and full buckets (a full bucket and a missing one
        are the same), so a million distinct users do not stay in memory. A hold still open on
        a forgotten counter belongs to a past window and settles into nothing anyway."""
        for values in self.counters.values():
            for value, counter in list(values.items()):
                if counter.end is not None and now >= counter.end:
                    del values[value]
        for bkey, bucket in list(self.buckets.items()):
            if bucket.refill(now) >= bucket.capacity:
                del self.buckets[bkey]
