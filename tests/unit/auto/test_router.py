"""A compiled router: context-window escalation, the cheaper and next tiers, the tier of an
answer's model, the dearest model and the baseline's price."""

from __future__ import annotations

from sidecar.auto.classify import Features
from sidecar.auto.router import IMAGE_TOKENS, Router, bound
from sidecar.config.auto import RouterSettings, TierModels
from sidecar.spend.pricing import ModelPrice, rates_from_usd

# model -> (USD per prompt token, USD per completion token, context window)
BOOK = {"s": (1e-7, 4e-7, 1_000), "s2": (2e-7, 8e-7, 8_000), "m": (4e-7, 1.6e-6, 16_000),
        "c": (2.5e-6, 1e-5, 128_000), "r": (1.1e-6, 4.4e-6, 200_000)}


def lookup(model: str) -> ModelPrice | None:
    found = BOOK.get(model)
    if found is None:
        return None
    return ModelPrice(rates_from_usd(prompt=found[0], completion=found[1]), "config", found[2])


def router(**tiers: list[str]) -> Router:
    settings = RouterSettings(tiers=TierModels(**tiers))
    return Router("sidecar/auto", settings, lookup)


FULL = {"simple": ["s", "s2"], "medium": ["m"], "complex": ["c"], "reasoning": ["r"]}


def test_a_short_request_takes_its_tier_whole() -> None:
    """Nothing to escalate: the tier's whole list, no context reason."""
    pick = router(**FULL).choose(Features(tokens=10))
    assert (pick.tier, pick.models, pick.reasons) == ("simple", ("s", "s2"), ("short~10",))


def test_models_too_small_for_the_prompt_are_dropped_from_the_tier() -> None:
    """A prompt over s's window but within s2's: the tier keeps s2 only."""
    pick = router(**FULL).choose(Features(tokens=5_000))
    assert (pick.tier, pick.models) == ("medium", ("m",))  # 5k tokens is medium anyway
    tier, models, note = router(**FULL).fit("simple", 5_000)
    assert (tier, models, note) == ("simple", ("s2",), "context~5k")


def test_a_prompt_no_model_of_the_tier_holds_goes_to_the_smallest_that_does() -> None:
    """Over every simple and medium window: complex (the next up whose window fits)."""
    tier, models, note = router(**FULL).fit("simple", 20_000)
    assert (tier, models, note) == ("complex", ("c",), "context~20k>simple")
    assert router(**FULL).fit("complex", 150_000)[:2] == ("reasoning", ("r",))


def test_when_nothing_above_fits_a_lower_tier_with_a_bigger_window_does() -> None:
    """Going up first, then down: a reasoning tier with a small window falls back to complex."""
    small = router(medium=["m"], complex=["c"], reasoning=["s"])
    assert small.fit("reasoning", 50_000)[:2] == ("complex", ("c",))


def test_unknown_windows_are_assumed_to_fit_and_nothing_fitting_keeps_the_tier() -> None:
    """A model with no known window fits; when none fits, the tier stays (the upstream says)."""
    assert router(simple=["unknown-model"]).fit("simple", 10**9)[:2] == (
        "simple", ("unknown-model",))
    assert router(simple=["s"]).fit("simple", 10**6) == ("simple", ("s",),
                                                          "context~1000k:none_fits")


def test_the_bound_counts_images_and_the_completion_limit() -> None:
    """The window check needs the prompt, the images and the answer the client allows."""
    assert bound(Features(tokens=100, images=2, max_output=500)) == 600 + 2 * IMAGE_TOKENS


def test_a_pinned_floor_raises_the_tier_and_says_so() -> None:
    """A session pinned at complex gets complex for a short request."""
    pick = router(**FULL).choose(Features(tokens=10), floor="complex")
    assert (pick.tier, pick.reasons[0]) == ("complex", "pinned=complex")


def test_cheaper_skips_tiers_that_are_not_cheaper() -> None:
    """From reasoning (r), complex (c) is dearer: only medium and simple are cheaper."""
    assert router(**FULL).cheaper("reasoning") == ["medium", "simple"]
    assert router(**FULL).cheaper("complex") == ["medium", "simple"]
    assert router(**FULL).cheaper("simple") == []


def test_above_is_the_next_tier_the_router_has() -> None:
    """The cascade's next tier skips tiers the router lacks and stops at the top."""
    assert router(simple=["s"], complex=["c"]).above("simple") == "complex"
    assert router(**FULL).above("reasoning") is None


def test_tier_of_an_answer_model_and_the_dearest_model() -> None:
    """A dated version maps to its model's tier, a longer name does not; the dearest model
    holds a delegated request; the baseline defaults to complex's first model."""
    r = router(simple=["openai/gpt-4o-mini"], complex=["openai/gpt-4o", "c"])
    assert r.tier_of("openai/gpt-4o-2024-08-06") == "complex"
    assert r.tier_of("openai/gpt-4o-mini") == "simple"
    assert r.tier_of("openai/gpt-4o-mini-2024-07-18") == "simple"
    assert r.tier_of("openai/gpt-4o-audio") is None and r.tier_of(None) is None
    assert router(**FULL).dearest() == "c"
    assert router(**FULL).baseline == "c" and router(**FULL).baseline_price() == lookup("c")
