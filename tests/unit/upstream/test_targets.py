"""The router: tiers by pattern, weighted order, preferences, sorts and their edges (ties, no
sample, stale samples, unknown prices)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from sidecar.config import Settings
from sidecar.errors import NoProviderAvailable
from sidecar.upstream.averages import STALE_S
from sidecar.upstream.preferences import Preferences
from sidecar.upstream.routing import Routing
from sidecar.upstream.targets import Router
from tests.fakes.clock import FakeClock


def router(*providers: dict[str, Any], clock: FakeClock | None = None) -> Router:
    settings = Settings.model_validate({"providers": [
        {"base_url": f"http://{p['name']}.example", **p} for p in providers]})
    return Routing.build(settings, clock or FakeClock(), environ={}).router


def names(targets: Any) -> list[str]:
    return [t.name for t in targets]


def test_tiers_follow_the_selection_rule() -> None:
    """First match is primary; same pattern joins its pool; broader matches are fallbacks,
    grouped by pattern, in config order."""
    r = router({"name": "direct", "models": ["anthropic/*"]},
               {"name": "other", "models": ["openai/*"]},
               {"name": "twin", "models": ["x/*", "anthropic/*"]},
               {"name": "or1", "models": ["*"]},
               {"name": "claude", "models": ["anthropic/claude-*"]},
               {"name": "or2", "models": ["*"]})
    tiers = r.tiers("anthropic/claude-x")
    assert [names(t) for t in tiers] == [["direct", "twin"], ["or1", "or2"], ["claude"]]
    assert [names(t) for t in r.tiers("openai/gpt-4o")] == [["other"], ["or1", "or2"]]
    assert r.tiers("anthropic/claude-x") is tiers  # computed once per model


def test_unknown_model_is_no_provider_available() -> None:
    """No glob matching is a 400 that names each provider and its globs."""
    r = router({"name": "a", "models": ["openai/*"]})
    with pytest.raises(NoProviderAvailable, match=r"'mistral/x' .*a: openai/\*"):
        r.candidates("mistral/x", None)


def test_weights_share_a_pool() -> None:
    """Weights 3:1 give the first place about 75 % / 25 % over many draws (±2 %)."""
    r = router({"name": "a", "weight": 3}, {"name": "b", "weight": 1}, clock=FakeClock(3))
    firsts = Counter(r.candidates("m", None)[0].name for _ in range(10_000))
    assert abs(firsts["a"] - 7500) < 200
    assert sorted(names(r.candidates("m", None))) == ["a", "b"]  # both listed, always


def test_pool_then_fallbacks_order() -> None:
    """The pool comes first in weighted order, then each fallback tier."""
    r = router({"name": "a", "models": ["m"]}, {"name": "b", "models": ["m"]},
               {"name": "z", "models": ["*"]})
    seen = {tuple(names(r.candidates("m", None))) for _ in range(50)}
    assert seen == {("a", "b", "z"), ("b", "a", "z")}


@pytest.mark.parametrize(("prefs", "expected"), [
    (Preferences(order=("z",)), ["z", "a", "b"]),
    (Preferences(order=("z",), allow_fallbacks=False), ["z"]),
    (Preferences(order=("nobody",), allow_fallbacks=False), ["a", "b"]),
    (Preferences(only=frozenset({"b", "z"})), ["b", "z"]),
    (Preferences(ignore=frozenset({"a"})), ["b", "z"]),
    (Preferences(allow_fallbacks=False), ["a", "b"]),
    (Preferences(sort="price", allow_fallbacks=False), ["z"]),
    (Preferences(sort="price"), ["z", "b", "a"]),
])
def test_preferences_reshape_the_list(prefs: Preferences, expected: list[str]) -> None:
    """order / only / ignore / allow_fallbacks / sort=price, each on its own."""
    r = router({"name": "a", "models": ["m"], "weight": 1000,
                "prices": {"m": {"prompt": 3e-6, "completion": 3e-6}}},
               {"name": "b", "models": ["m"], "weight": 0.001,
                "prices": {"m": {"prompt": 2e-6, "completion": 2e-6}}},
               {"name": "z", "models": ["*"],
                "prices": {"*": {"prompt": 1e-6, "completion": 1e-6}}})
    assert names(r.candidates("m", prefs)) == expected


def test_price_ties_share_traffic_by_weight() -> None:
    """Equal prices are a tie broken at random by weight, not always the first listed."""
    price = {"m": {"prompt": 1e-6, "completion": 1e-6}}
    r = router({"name": "a", "prices": price}, {"name": "b", "prices": price},
               {"name": "unpriced"})
    firsts = Counter(r.candidates("m", Preferences(sort="price"))[0].name for _ in range(1000))
    assert firsts["unpriced"] == 0  # an unknown price never wins a price sort
    assert 400 < firsts["a"] < 600


def test_latency_sort_without_samples_spreads_traffic() -> None:
    """With no sample anywhere every provider ties: traffic spreads instead of piling up."""
    r = router({"name": "a"}, {"name": "b"})
    firsts = Counter(r.candidates("m", Preferences(sort="latency"))[0].name
                     for _ in range(1000))
    assert 400 < firsts["a"] < 600


def test_unmeasured_and_stale_providers_rank_with_the_best() -> None:
    """A provider with no sample (or a stale one) ties with the best known, so it is measured
    instead of starved; measured ones keep their order."""
    clock = FakeClock()
    r = router({"name": "fast"}, {"name": "slow"}, {"name": "new"}, clock=clock)
    by_name = {t.name: t for t in r.targets}
    now = clock.now()
    by_name["fast"].stats.first_byte("m", 0.1, now)
    by_name["slow"].stats.first_byte("m", 0.9, now)
    orders = Counter(tuple(names(r.candidates("m", Preferences(sort="latency"))))
                     for _ in range(400))
    assert set(orders) == {("fast", "new", "slow"), ("new", "fast", "slow")}
    clock.advance(STALE_S + 1)  # everything is stale: all tie again
    by_name["fast"].stats.first_byte("m", 0.1, clock.now())
    firsts = Counter(r.candidates("m", Preferences(sort="latency"))[0].name
                     for _ in range(600))
    assert firsts["slow"] > 0


def test_throughput_sort_prefers_the_faster() -> None:
    """sort=throughput puts the highest tokens per second first."""
    clock = FakeClock()
    r = router({"name": "a"}, {"name": "b"}, clock=clock)
    a, b = r.targets
    a.stats.throughput("m", 100, 10.0, clock.now())
    b.stats.throughput("m", 100, 1.0, clock.now())
    assert names(r.candidates("m", Preferences(sort="throughput"))) == ["b", "a"]


def test_max_price_without_any_known_price_says_so() -> None:
    """max_price with no priced provider names the fix (providers[].prices)."""
    r = router({"name": "a"})
    with pytest.raises(NoProviderAvailable, match=r"no provider of it has a known price"):
        r.candidates("m", Preferences(max_prompt=1e-6))


def test_only_that_leaves_nobody_is_no_provider_available() -> None:
    """A filter that removes every candidate is a 400 naming who would have served it."""
    r = router({"name": "a"})
    with pytest.raises(NoProviderAvailable, match=r"served by 'a'"):
        r.candidates("m", Preferences(only=frozenset({"b"})))
