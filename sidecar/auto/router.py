"""One configured router, compiled: its tiers, the context-window check, the cheaper and the
next tier, its baseline, each priced from the price book.

`choose` is the whole decision for one request without a session: classify (classify.py), pick
the tier (tiers.py), take the nearest tier the router has, then make sure the prompt fits:

Context-window escalation. A request's bound is its estimated prompt tokens, `IMAGE_TOKENS`
per image, and the completion tokens the client allows. A tier's models whose context window
(the price book's: the upstream's /models or the bundled table) is below the bound are dropped
from its list; when none of a tier's models fits, the request goes to the smallest tier, going
up from the chosen one (then down), that has one. A model with no known window is assumed to
fit: the upstream has the last word (and with `cascade: true`, a context error goes one tier
up).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sidecar.auto.classify import Features
from sidecar.auto.tiers import Decision, decide, nearest, rank
from sidecar.config.auto import TIERS, RouterSettings, Tier
from sidecar.spend.price_book import Lookup
from sidecar.spend.pricing import ModelPrice

__all__ = ["IMAGE_TOKENS", "Pick", "Router"]

# What one image adds to a prompt for the window check: OpenAI counts a 1024x1024 high-detail
# image as 765 tokens; Anthropic about 1,600 for its largest unscaled image.
IMAGE_TOKENS = 1_600


@dataclass(frozen=True, slots=True)
class Pick:
    tier: Tier
    models: tuple[str, ...]  # the candidates, in order
    reasons: tuple[str, ...]
    decision: Decision  # what the classifier alone said


class Router:
    __slots__ = ("_lookup", "_window", "baseline", "name", "offered", "settings", "tiers")

    def __init__(self, name: str, settings: RouterSettings, lookup: Lookup,
                 window: Callable[[str], int | None] | None = None) -> None:
        """`lookup`: the price book's prices; `window`: its context windows (default: the
        prices' own)."""
        self.name = name
        self.settings = settings
        self.tiers = settings.tiers.configured()
        self.offered = tuple(self.tiers)
        self.baseline = settings.baseline_model()
        self._lookup = lookup
        self._window = window or self._price_window

    # -- the decision -------------------------------------------------------------------------

    def choose(self, f: Features, floor: Tier | None = None) -> Pick:
        """The tier and candidates for these features; `floor`: a session's pinned tier."""
        prefer = self.settings.prefer
        decision = decide(f, prefer)
        tier = nearest(decision.tier, self.offered, prefer)
        reasons = list(decision.reasons)
        if floor is not None and rank(floor) > rank(tier):
            tier = nearest(floor, self.offered)
            reasons.insert(0, f"pinned={tier}")
        tier, models, note = self.fit(tier, bound(f))
        if note:
            reasons.insert(0, note)
        return Pick(tier, models, tuple(reasons), decision)

    def fit(self, tier: Tier, tokens: int) -> tuple[Tier, tuple[str, ...], str | None]:
        """The tier and models whose context window holds `tokens`, and why it moved (None:
        the tier's own list fits whole)."""
        models = self.tiers[tier]
        fits = self._fitting(models, tokens)
        if fits == models:
            return tier, models, None
        if fits:
            return tier, fits, f"context~{_k(tokens)}"
        at = rank(tier)
        order = [t for t in TIERS[at + 1:] if t in self.tiers] + [
            t for t in reversed(TIERS[:at]) if t in self.tiers]
        for other in order:
            if found := self._fitting(self.tiers[other], tokens):
                return other, found, f"context~{_k(tokens)}>{tier}"
        return tier, models, f"context~{_k(tokens)}:none_fits"

    def fitting(self, tier: Tier, tokens: int) -> tuple[str, ...]:
        """The tier's models whose window holds `tokens` (those with no known window too)."""
        return self._fitting(self.tiers[tier], tokens)

    def _fitting(self, models: tuple[str, ...], tokens: int) -> tuple[str, ...]:
        out = []
        for model in models:
            window = self._window(model)
            if window is None or window >= tokens:
                out.append(model)
        return tuple(out)

    def _price_window(self, model: str) -> int | None:
        price = self._lookup(model)
        return price.context_length if price is not None else None

    # -- after a run --------------------------------------------------------------------------

    def cheaper(self, tier: Tier) -> list[Tier]:
        """The tiers below `tier`, nearest first, whose first model is not dearer than its
        (a reasoning tier may cost less than complex: skipping complex saves a refusal)."""
        mine = self._rate(self.tiers[tier][0])
        out = []
        for other in reversed(TIERS[:rank(tier)]):
            if other in self.tiers:
                rate = self._rate(self.tiers[other][0])
                if mine is None or rate is None or rate < mine:
                    out.append(other)
        return out

    def above(self, tier: Tier) -> Tier | None:
        """The next tier up the router has (the cascade's), or None at the top."""
        return next((t for t in TIERS[rank(tier) + 1:] if t in self.tiers), None)

    def _rate(self, model: str) -> float | None:
        price = self._lookup(model)
        if price is None:
            return None
        rates = price.rates
        return rates.prompt + rates.completion

    # -- delegation and the baseline ----------------------------------------------------------

    @property
    def models(self) -> list[str]:
        """Every model of every tier, once, in tier order."""
        return list(dict.fromkeys(m for models in self.tiers.values() for m in models))

    def tier_of(self, model: str | None) -> Tier | None:
        """The lowest tier listing `model` (an answer's model, when OpenRouter chose), or one of
        its dated versions (`openai/gpt-4o-2024-08-06` for `openai/gpt-4o`)."""
        if model is None:
            return None
        for tier, models in self.tiers.items():
            if model in models:
                return tier
        for tier, models in self.tiers.items():
            for listed in models:
                rest = model[len(listed) + 1:] if model.startswith(listed + "-") else ""
                if rest[:1].isdigit():
                    return tier
        return None

    def dearest(self) -> str:
        """The router's dearest model: what a delegated request is held at."""
        priced = [(rate, model) for model in self.models
                  if (rate := self._rate(model)) is not None]
        return max(priced)[1] if priced else self.models[0]

    def baseline_price(self) -> ModelPrice | None:
        return self._lookup(self.baseline)


def bound(f: Features) -> int:
    """The tokens a request needs of a context window (see the module docstring)."""
    return f.tokens + f.images * IMAGE_TOKENS + (f.max_output or 0)


def _k(tokens: int) -> str:
    return f"{tokens // 1000}k" if tokens >= 1000 else str(tokens)
