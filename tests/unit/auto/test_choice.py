"""What the router's choice says: the served tier and model (OpenRouter's for a delegated
request) and the baseline's cost for the same tokens."""

from __future__ import annotations

from sidecar.auto.choice import DELEGATED, AutoChoice
from sidecar.call import Answer, Bill, Usage
from sidecar.spend.pricing import ModelPrice, rates_from_usd
from tests.fakes.calls import make_call

BASELINE = ModelPrice(rates_from_usd(prompt=2.5e-6, completion=1e-5, input_cache_read=1.25e-6),
                      "config")


def test_baseline_cost_is_the_baseline_price_of_the_same_tokens() -> None:
    """Cached and plain prompt tokens, completion tokens, at the baseline's rates; the real
    model's reported cost is ignored; a hit or no answer is 0; no price, None."""
    choice = AutoChoice("sidecar/auto", "simple", baseline="c", baseline_price=BASELINE)
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400, cost_usd=0.5)
    bill = Bill(0.0, cost=200_000, usage=usage)
    expected = 600 * 2500 + 400 * 1250 + 100 * 10_000
    assert choice.baseline_cost(bill) == expected
    assert choice.saved(bill) == expected - 200_000
    assert choice.baseline_cost(Bill(0.0, usage=usage, hit=True)) == 0
    assert choice.baseline_cost(Bill(0.0)) == 0 and choice.baseline_cost(None) == 0
    assert AutoChoice("x", "simple").baseline_cost(bill) is None
    assert AutoChoice("x", "simple").saved(bill) is None


def test_served_tier_and_model() -> None:
    """A routed request served its candidate; a delegated one, the answer's model and its tier
    (or `delegated` while it is unknown)."""
    call = make_call(model="openai/gpt-4o-mini")
    choice = AutoChoice("sidecar/auto", "simple", ["short~3", "pinned=simple"])
    assert (choice.served_model(call), choice.served_tier(call)) == ("openai/gpt-4o-mini",
                                                                      "simple")
    assert choice.headers(call) == {"x-sidecar-auto-tier": "simple",
                                    "x-sidecar-auto-reason": "short~3,pinned=simple"}
    delegated = AutoChoice("sidecar/auto", None, delegated=True,
                           tier_of=lambda m: "complex" if m == "openai/gpt-4o" else None)
    call = make_call(model="openrouter/auto")
    assert delegated.served_tier(call) == DELEGATED
    call.answer = Answer(model="openai/gpt-4o")
    assert (delegated.served_model(call), delegated.served_tier(call)) == ("openai/gpt-4o",
                                                                            "complex")
    call.answer = Answer(model="some/other")
    assert delegated.served_tier(call) == DELEGATED
