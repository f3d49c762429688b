"""Which providers may serve a model, in which order (INTERFACE.md §2 and §5).

The rule: every provider with a matching glob is a candidate, in config order. The first match
is the primary; providers whose matching glob is the same pattern as the primary's form its pool
and share load by weight; later, broader matches are fallbacks, grouped the same way by pattern.
So `anthropic/*` on a direct Anthropic provider listed before `*` on OpenRouter sends Claude
models direct, with OpenRouter as the fallback. The tiers of a model are computed once and kept
(a request pays a dict lookup); the weighted order is drawn per request.

Preferences (the body's `provider`, `:floor`/`:nitro`) reshape the list: `only`/`ignore` and
`max_price` filter, `order` puts named providers first, `sort` orders every candidate by price,
latency or throughput (ties, and averages not measured yet, are broken at random by weight, so
equal providers share traffic instead of one taking it all), and `allow_fallbacks: false` keeps
only the ordered providers, the best sorted one, or the primary pool. Open breakers are skipped
later, at the moment a provider would be tried (route.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sidecar.config.spend import Price
from sidecar.errors import NoProviderAvailable
from sidecar.globs import Globs, first_match
from sidecar.upstream.averages import ProviderStats
from sidecar.upstream.breaker import Breaker
from sidecar.upstream.clock import Clock
from sidecar.upstream.preferences import PER_MILLION, Preferences
from sidecar.upstream.providers import Provider

MAX_CACHED_MODELS = 4096  # tier plans kept; model names come from clients


@dataclass(eq=False, slots=True)
class Target:
    """A provider as the router sees it: its globs, weight, prices, breaker and averages."""

    provider: Provider
    patterns: tuple[tuple[str, Globs], ...]  # each glob on its own, in config order
    weight: float
    prices: tuple[tuple[Globs, Price], ...]
    breaker: Breaker
    stats: ProviderStats = field(default_factory=ProviderStats)
    proxy: str | None = None
    strip_prefix: bool = False  # the provider lists and takes bare model names

    @property
    def name(self) -> str:
        return self.provider.name

    def price(self, model: str) -> Price | None:
        return first_match(model, self.prices)

    def matching(self, model: str) -> list[str]:
        return [pattern for pattern, globs in self.patterns if globs.match(model)]


Tiers = tuple[tuple[Target, ...], ...]


class Router:
    def __init__(self, targets: Sequence[Target], clock: Clock) -> None:
        self.targets = tuple(targets)
        self._clock = clock
        self._tiers: dict[str, Tiers] = {}

    def tiers(self, model: str) -> Tiers:
        """The primary pool first, then the fallbacks grouped by pattern (cached by model)."""
        tiers = self._tiers.get(model)
        if tiers is None:
            if len(self._tiers) >= MAX_CACHED_MODELS:
                self._tiers.clear()
            tiers = self._tiers[model] = _plan(self.targets, model)
        return tiers

    def candidates(self, model: str, prefs: Preferences | None) -> Sequence[Target]:
        """The providers to try for `model`, best first; raises NoProviderAvailable."""
        tiers = self.tiers(model)
        if not tiers:
            raise NoProviderAvailable(
                f"No configured provider serves model '{model}' (providers and their models: "
                f"{_describe(self.targets)}).", param="model")
        if prefs is None:
            if len(tiers) == 1 and len(tiers[0]) == 1:
                return tiers[0]
            return [t for tier in tiers for t in self._weighted(tier)]
        return self._preferred(model, tiers, prefs)

    def _preferred(self, model: str, tiers: Tiers, prefs: Preferences) -> list[Target]:
        kept: list[Sequence[Target]]
        kept = list(tiers)
        if prefs.only is not None or prefs.ignore:
            kept = [tier for tier in ([t for t in tier if _allowed(t, prefs)] for tier in tiers)
                    if tier]
        if not kept:
            raise NoProviderAvailable(
                f"No provider for model '{model}' passes provider.only/provider.ignore "
                f"(it is served by {_names(t for tier in tiers for t in tier)}).",
                param="provider")
        if prefs.max_prompt is not None or prefs.max_completion is not None:
            kept = _within_price(model, kept, prefs)
        flat = [t for tier in kept for t in tier]
        first = [t for name in prefs.order for t in flat if t.name.lower() == name]
        rest = [t for t in flat if t not in first]
        if prefs.sort is not None:
            rest = self._sorted(model, rest, prefs.sort)
        else:
            rest = [t for tier in kept for t in self._weighted(tier) if t not in first]
        if prefs.allow_fallbacks:
            return first + rest
        if first:
            return first
        if prefs.sort is not None:
            return rest[:1]
        return [t for t in rest if t in kept[0]]

    def _weighted(self, tier: Sequence[Target]) -> list[Target]:
        """A weighted random order: each place is drawn by weight among those left."""
        if len(tier) == 1:
            return [tier[0]]
        if len(tier) == 2:  # the usual pool: one draw
            a, b = tier
            return [a, b] if self._clock.random() * (a.weight + b.weight) < a.weight else [b, a]
        left = list(tier)
        out = []
        random = self._clock.random
        while len(left) > 1:
            x = random() * sum(t.weight for t in left)
            index = len(left) - 1
            for i, target in enumerate(left):
                x -= target.weight
                if x < 0:
                    index = i
                    break
            out.append(left.pop(index))
        out.append(left[0])
        return out

    def _sorted(self, model: str, targets: list[Target], sort: str) -> list[Target]:
        now = self._clock.now()
        keys: list[float | None]
        if sort == "price":
            prices = [t.price(model) for t in targets]
            keys = [None if p is None else p.prompt + p.completion for p in prices]
            unknown = float("inf")  # an unknown price cannot win a price sort
        else:
            if sort == "latency":
                keys = [t.stats.latency(model, now) for t in targets]
            else:  # throughput: higher is better
                keys = [None if (s := t.stats.speed(model, now)) is None else -s
                        for t in targets]
            known = [k for k in keys if k is not None]
            # Not measured yet (or stale): ranked as good as the best known, so it is tried
            # and measured instead of starved; with no sample at all, everyone ties.
            unknown = min(known) if known else 0.0
        random = self._clock.random
        # Efraimidis-Spirakis: u ** (1 / weight) breaks ties as a weighted random draw.
        ranked = sorted(((unknown if k is None else k, -(random() ** (1.0 / t.weight)), i)
                         for i, (t, k) in enumerate(zip(targets, keys, strict=True))))
        return [targets[i] for _, _, i in ranked]


def _plan(targets: Iterable[Target], model: str) -> Tiers:
    groups: dict[str, list[Target]] = {}
    primary: str | None = None
    for target in targets:
        matching = target.matching(model)
        if not matching:
            continue
        if primary is None:
            primary = matching[0]
        groups.setdefault(primary if primary in matching else matching[0], []).append(target)
    return tuple(tuple(group) for group in groups.values())


def _allowed(target: Target, prefs: Preferences) -> bool:
    name = target.name.lower()
    return (prefs.only is None or name in prefs.only) and name not in prefs.ignore


def _within_price(model: str, tiers: list[Sequence[Target]], prefs: Preferences
                  ) -> list[Sequence[Target]]:
    def fits(target: Target) -> bool:
        price = target.price(model)
        return price is not None and (
            (prefs.max_prompt is None or price.prompt <= prefs.max_prompt)
            and (prefs.max_completion is None or price.completion <= prefs.max_completion))

    kept: list[Sequence[Target]] = [
        tier for tier in (tuple(filter(fits, tier)) for tier in tiers) if tier]
    if kept:
        return kept
    limit = ", ".join(f"{name} ≤ ${value * PER_MILLION:g}/M" for name, value in
                      (("prompt", prefs.max_prompt), ("completion", prefs.max_completion))
                      if value is not None)
    priced = [(p, t) for tier in tiers for t in tier if (p := t.price(model)) is not None]
    if not priced:
        cheapest = (f"no provider of it has a known price (set providers[].prices for "
                    f"'{model}')")
    else:
        price, target = min(priced, key=lambda pt: pt[0].prompt + pt[0].completion)
        cheapest = (f"the cheapest known is '{target.name}' at ${price.prompt * PER_MILLION:g}/M "
                    f"prompt, ${price.completion * PER_MILLION:g}/M completion")
    raise NoProviderAvailable(f"No provider for model '{model}' is within provider.max_price "
                              f"({limit}); {cheapest}.", param="provider.max_price")


def _names(targets: Iterable[Target]) -> str:
    return ", ".join(f"'{t.name}'" for t in targets)


def _describe(targets: Iterable[Target]) -> str:
    return "; ".join(f"{t.name}: {', '.join(p for p, _ in t.patterns)}" for t in targets)

