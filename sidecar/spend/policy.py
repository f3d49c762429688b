"""Which budgets and rate limits apply to a call, and what an admission asks and answers.

A scoped budget or limit applies to each value of its scope separately (`scope: key` gives every
key its own 300 USD a month), optionally only to values matching `match` globs. Scope values:
global: "" · key: the local key's name · user: `x-sidecar-user` or the body's `user` · model:
the model being priced · tag: each of the call's tags. A call without a key or a user counts
under the value "" (one shared anonymous value, so leaving the identity out never escapes a
limit); a call without tags is under no tag budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sidecar.call import Call
from sidecar.config.spend import Budget, RateLimit, Scope, SpendSettings
from sidecar.globs import Globs
from sidecar.spend.pricing import to_nano
from sidecar.spend.windows import Window


@dataclass(frozen=True, slots=True)
class BudgetRule:
    name: str
    scope: Scope
    window: Window
    limit: int  # nano-dollars
    block: bool
    match: Globs | None

    @classmethod
    def of(cls, budget: Budget) -> BudgetRule:
        return cls(budget.name, budget.scope, budget.window, to_nano(budget.limit_usd),
                   budget.action == "block", _globs(budget.match))


@dataclass(frozen=True, slots=True)
class LimitRule:
    name: str  # "rate_limits[0]": the config path, stable across restarts
    scope: Scope
    rpm: int | None
    tpm: int | None
    match: Globs | None

    @classmethod
    def of(cls, index: int, limit: RateLimit) -> LimitRule:
        return cls(f"rate_limits[{index}]", limit.scope, limit.rpm, limit.tpm,
                   _globs(limit.match))


def _globs(patterns: list[str] | None) -> Globs | None:
    return None if patterns is None else Globs(patterns)


def scope_values(scope: Scope, call: Call) -> tuple[str, ...]:
    if scope == "global":
        return ("",)
    if scope == "key":
        return (call.key_name or "",)
    if scope == "user":
        return (call.user or "",)
    if scope == "model":
        return (call.model or "",)
    return tuple(dict.fromkeys(call.tags))


class Policy:
    def __init__(self, spend: SpendSettings) -> None:
        self.budgets = [BudgetRule.of(b) for b in spend.budgets]
        self.limits = [LimitRule.of(i, r) for i, r in enumerate(spend.rate_limits)]

    def applicable(self, call: Call) -> tuple[list[tuple[BudgetRule, str]],
                                              list[tuple[LimitRule, str]]]:
        if not (self.budgets or self.limits):
            return [], []
        budgets = [(rule, value) for rule in self.budgets
                   for value in scope_values(rule.scope, call)
                   if rule.match is None or rule.scope == "global" or rule.match(value)]
        limits = [(rule, value) for rule in self.limits
                  for value in scope_values(rule.scope, call)
                  if rule.match is None or rule.scope == "global" or rule.match(value)]
        return budgets, limits


@dataclass(slots=True)
class Ask:
    """What one admission asks for: reserve `fixed + per_token * tokens` nano-dollars against
    every applicable budget, with `tokens` as large as the blocking budgets allow, up to `want`
    (at least 1 when `want` > 0), and take one request and the tokens from each rate limit."""

    budgets: list[tuple[BudgetRule, str]]
    limits: list[tuple[LimitRule, str]]
    fixed: float  # nano-dollars whatever the answer: the prompt bound and the request fee
    per_token: float  # nano-dollars per completion token allowed (all choices together)
    want: int  # completion tokens per choice the request allows
    prompt_tokens: int  # the prompt's bound, for tokens-per-minute limits
    choices: int
    now: float  # Unix time


@dataclass(slots=True)
class Grant:
    tokens: int  # completion tokens per choice the budgets can pay for (<= want)
    cost: int  # nano-dollars reserved
    capped: bool  # tokens < want: a blocking budget lowered the request's limit
    warned: list[str] = field(default_factory=list)  # warn budgets this request goes over
    remaining: int | None = None  # nano-dollars left in the tightest budget after reserving
    holds: list[object] = field(default_factory=list)  # the backend's handles to settle
    tpm_taken: int = 0  # tokens taken from tokens-per-minute limits


@dataclass(slots=True)
class Refusal:
    kind: Literal["budget", "rate"]
    rule: str
    scope: Scope
    value: str
    window: str  # a budget's window; "minute" for rate limits
    limit: float  # USD for budgets, rpm/tpm for rate limits
    spent: float  # USD spent in the window; requests/tokens used for rate limits
    resets_at: float | None = None  # Unix time the budget's window ends
    retry_after: float = 0.0  # seconds until the rate limit has room
    unit: str = "usd"  # usd | requests | tokens
    held: float = 0.0  # USD held by requests in flight in the window
    # The budget has room for the request once the holds in flight settle (what is spent
    # alone leaves room): retryable (429 budget_held), not exhausted (402 budget_exceeded).
    held_only: bool = False
