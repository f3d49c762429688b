"""In-memory admission: holds are atomic and never let spent + held pass a blocking limit,
capping, warn budgets, window resets, settling, token buckets, forgetting old counters, and
what a live reload keeps."""

from __future__ import annotations

import pytest

from sidecar.config.spend import Budget, RateLimit, SpendSettings
from sidecar.spend.policy import Ask, BudgetRule, Grant, LimitRule, Policy, Refusal
from sidecar.spend.reservations import Reservations

NOW = 1_795_000_000.0  # 2026-11-18


def rule(limit_nano: int, action: str = "block", window: str = "day") -> BudgetRule:
    return BudgetRule.of(Budget(name=f"b{limit_nano}{action}", limit_usd=limit_nano / 1e9,
                                action=action, window=window))  # type: ignore[arg-type]


def ask(*budgets: BudgetRule, fixed: float = 100, per_token: float = 10, want: int = 50,
        limits: tuple[LimitRule, ...] = (), now: float = NOW, prompt: int = 100) -> Ask:
    return Ask([(b, "") for b in budgets], [(limit, "") for limit in limits], fixed,
               per_token, want, prompt, 1, now)


def test_holds_never_pass_the_limit() -> None:
    """Without settling, admissions stop exactly where the next worst case would not fit; the
    last one admitted is capped to what is left; then 'not even the prompt' is refused."""
    book = Reservations()
    budget = rule(2_000)  # worst case 100 + 50 x 10 = 600: three fit, then 200 is left
    grants = [book.admit(ask(budget)) for _ in range(5)]
    assert [type(g).__name__ for g in grants] == ["Grant"] * 4 + ["Refusal"]
    assert [g.tokens for g in grants if isinstance(g, Grant)] == [50, 50, 50, 10]
    assert grants[3].capped  # type: ignore[union-attr]
    counter = book.counters[budget.name][""]
    assert counter.spent + counter.reserved == 2_000
    refusal = grants[4]
    assert isinstance(refusal, Refusal) and refusal.spent == 0
    assert refusal.held == pytest.approx(2e-6) and refusal.held_only


def test_a_refusal_says_whether_spent_money_or_holds_refuse_it() -> None:
    """Refused while spent alone leaves room: held_only (the request may wait, 429); once
    the holds settle as spent and leave no room: not held_only (402). A budget exhausted by
    spending refuses for good even when another one is only held."""
    book = Reservations()
    budget = rule(700)  # one worst case of 600 fits
    first = book.admit(ask(budget))
    assert isinstance(first, Grant)
    held = book.admit(ask(budget))
    assert isinstance(held, Refusal) and held.held_only and held.spent == 0
    book.settle(first, 600, 0)
    spent = book.admit(ask(budget))
    assert isinstance(spent, Refusal) and not spent.held_only
    assert spent.spent == pytest.approx(600e-9) and spent.held == 0
    other = rule(650)
    holder = book.admit(ask(other))  # 600 held: 50 left, less than the prompt's 100
    assert isinstance(holder, Grant)
    both = book.admit(ask(other, budget))
    assert isinstance(both, Refusal) and both.rule == budget.name and not both.held_only


def test_the_tightest_blocking_budget_decides() -> None:
    """Every applicable blocking budget is checked; the grant fits the smallest room, and a
    refusal names the budget that refused."""
    book = Reservations()
    wide, tight = rule(1_000_000), rule(400)
    grant = book.admit(ask(wide, tight))
    assert isinstance(grant, Grant) and grant.tokens == 30 and grant.remaining == 0
    refusal = book.admit(ask(wide, tight))
    assert isinstance(refusal, Refusal) and refusal.rule == tight.name


def test_warn_budgets_never_refuse_but_say_so() -> None:
    """A warn budget holds like any other, lets requests past its limit, and names itself."""
    book = Reservations()
    soft = rule(700, action="warn")
    first, second = book.admit(ask(soft)), book.admit(ask(soft))
    assert isinstance(first, Grant) and first.warned == [] and first.tokens == 50
    assert isinstance(second, Grant) and second.warned == [soft.name]
    assert second.remaining == 700 - 1200


def test_settle_replaces_the_hold_with_the_cost() -> None:
    """Settling swaps the worst case for the real cost (0 releases it) and reports the room."""
    book = Reservations()
    budget = rule(1_000)
    grant = book.admit(ask(budget))
    assert isinstance(grant, Grant)
    assert book.settle(grant, 250, 120) == 750
    assert book.settle(grant, 250, 120) is None  # settled once: its holds are gone
    released = book.admit(ask(budget))
    assert isinstance(released, Grant)
    assert book.settle(released, 0, 0) == 750


def test_a_window_reset_frees_the_budget_and_old_holds_settle_into_nothing() -> None:
    """In a new window spend starts at zero; a hold taken before the reset settles without
    touching the new window (its request counts in the window it was admitted in)."""
    book = Reservations()
    budget = rule(600, window="minute")
    old = book.admit(ask(budget, now=NOW))
    assert isinstance(old, Grant) and isinstance(book.admit(ask(budget, now=NOW)), Refusal)
    fresh = book.admit(ask(budget, now=NOW + 60))
    assert isinstance(fresh, Grant)
    book.settle(old, 600, 0)
    counter = book.counters[budget.name][""]
    assert (counter.spent, counter.reserved) == (0, 600)


def test_zero_priced_completions_and_embeddings() -> None:
    """With free completions every wanted token fits once the prompt does; with nothing to
    generate (embeddings) only the prompt is held."""
    book = Reservations()
    budget = rule(100)
    assert book.admit(ask(budget, fixed=100, per_token=0)).tokens == 50  # type: ignore[union-attr]
    assert isinstance(book.admit(ask(budget, fixed=1, per_token=0, want=0)), Refusal)


def limit(rpm: int | None = None, tpm: int | None = None) -> LimitRule:
    return LimitRule.of(0, RateLimit(scope="global", rpm=rpm, tpm=tpm))


def test_token_buckets_refill_continuously() -> None:
    """rpm 60 allows a burst of 60, then one a second; Retry-After is the wait for room."""
    book = Reservations()
    per_minute = limit(rpm=60)
    for _ in range(60):
        assert isinstance(book.admit(ask(limits=(per_minute,))), Grant)
    refusal = book.admit(ask(limits=(per_minute,), now=NOW + 0.25))
    assert isinstance(refusal, Refusal) and refusal.retry_after == pytest.approx(0.75)
    assert refusal.unit == "requests"
    assert isinstance(book.admit(ask(limits=(per_minute,), now=NOW + 1)), Grant)


def test_tokens_per_minute_take_the_worst_case_and_give_back_the_rest() -> None:
    """A tpm hold is prompt bound + granted completion; unused tokens return at settle; a
    request larger than the whole minute waits for a full bucket instead of never passing."""
    book = Reservations()
    tokens = limit(tpm=1_000)
    grant = book.admit(ask(limits=(tokens,), prompt=400, want=500))
    assert isinstance(grant, Grant) and grant.tpm_taken == 900
    assert isinstance(book.admit(ask(limits=(tokens,), prompt=400, want=500)), Refusal)
    book.settle(grant, 0, 300)  # used 300 of 900
    assert isinstance(book.admit(ask(limits=(tokens,), prompt=400, want=300)), Grant)
    huge = Reservations()
    assert isinstance(huge.admit(ask(limits=(tokens,), prompt=5_000, want=5_000)), Grant)


def test_sweep_forgets_past_windows_and_full_buckets() -> None:
    """Counters of ended windows and refilled buckets are dropped (a million users do not stay
    in memory); current ones stay."""
    book = Reservations()
    budget, per_minute = rule(10_000, window="minute"), limit(rpm=10)
    book.admit(ask(budget, limits=(per_minute,)))
    book.sweep(NOW + 1)
    assert len(book.counters[budget.name]) == 1 and len(book.buckets) == 1
    book.sweep(NOW + 120)
    assert book.counters[budget.name] == {} and book.buckets == {}


def test_a_reload_keeps_what_budgets_spent_and_resizes_rate_limits() -> None:
    """Live reload: a budget kept by name keeps its counters under a new limit; one redefined
    (another window) or new is returned to be totalled again and starts empty; a rate limit's
    buckets take the new rpm; a limit moved to another scope loses its buckets."""
    spend = SpendSettings(budgets=[Budget(name="day", limit_usd=1e-6),
                                   Budget(name="week", window="week", limit_usd=1e-6)],
                          rate_limits=[RateLimit(scope="global", rpm=60),
                                       RateLimit(scope="global", rpm=10)])
    policy = Policy(spend)
    book = Reservations(policy)
    day, week = policy.budgets
    book.admit(Ask([(day, ""), (week, "")], [(limit, "") for limit in policy.limits], 100, 0,
                   0, 1, 1, NOW))
    assert book.counters["day"][""].reserved == 100
    bucket = book.buckets[("rate_limits[0]", "", "rpm")]
    assert bucket.level == 59
    changed = SpendSettings(
        budgets=[Budget(name="day", limit_usd=2e-6),  # the limit only: kept
                 Budget(name="week", window="month", limit_usd=1e-6),  # redefined
                 Budget(name="new", limit_usd=1e-6)],
        rate_limits=[RateLimit(scope="global", rpm=30), RateLimit(scope="key", rpm=10)])
    fresh = book.reconfigure(Policy(changed))
    assert [rule.name for rule in fresh] == ["week", "new"]
    assert book.counters["day"][""].reserved == 100 and "week" not in book.counters
    assert (bucket.capacity, bucket.level) == (30, 30)
    assert ("rate_limits[1]", "", "rpm") not in book.buckets
