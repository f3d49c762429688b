"""Settings for the automatic model choice: `auto` (issue 20; docs/auto.md).

    auto:
      routers:
        sidecar/auto:                 # the name clients send as `model`
          tiers:
            simple:    [openai/gpt-4o-mini]
            medium:    [openai/gpt-4.1-mini, openai/gpt-4o-mini]
            complex:   [openai/gpt-4o]
            reasoning: [openai/o3-mini]
          baseline: openai/gpt-4o     # what savings are measured against
          prefer: balanced            # cheap | balanced | quality: shifts the tier thresholds

A tier is a list of models, tried in order by the fallback stage. At least one tier per router;
a request classified into a tier the router lacks goes to the nearest one it has (up, unless
`prefer: cheap`). Rules across sections (a router name that is also a `routes` alias, a delegate
without OpenRouter) are checked by `check_auto`, called from `Settings._across_sections`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from sidecar.config.base import PositiveSeconds, Section

Tier = Literal["simple", "medium", "complex", "reasoning"]
TIERS: tuple[Tier, ...] = ("simple", "medium", "complex", "reasoning")
Prefer = Literal["cheap", "balanced", "quality"]
ModelName = Annotated[str, Field(min_length=1)]
ModelList = Annotated[list[ModelName], Field(min_length=1)]


class TierModels(Section):
    """Each tier's models, in the order they are tried; an unset tier is not offered."""

    simple: ModelList | None = None
    medium: ModelList | None = None
    complex: ModelList | None = None
    reasoning: ModelList | None = None

    def configured(self) -> dict[Tier, tuple[str, ...]]:
        """The tiers that have models, in tier order."""
        return {tier: tuple(models) for tier in TIERS
                if (models := getattr(self, tier)) is not None}

    @model_validator(mode="after")
    def _some(self) -> TierModels:
        if not self.configured():
            raise ValueError("list the models of at least one tier (simple, medium, complex, "
                             "reasoning)")
        return self


class RouterSettings(Section):
    tiers: TierModels
    # What savings are measured against; null: the first model of the complex tier (else of
    # the highest tier the router has), the model an application would otherwise hard-code.
    baseline: ModelName | None = None
    prefer: Prefer = "balanced"
    # Retry a whole answer one tier up when it ends with `length` before any content, fails
    # upstream, or is a refusal (billed as both calls). Never a stream that has started.
    cascade: bool = False
    # Serve a cheaper tier when a blocking budget cannot pay the chosen one (instead of 402).
    downgrade_on_budget: bool = True
    session_idle_s: PositiveSeconds = 1800.0  # a session's pin expires after this long idle
    # openrouter: send `openrouter/auto` limited to this router's models; OpenRouter chooses.
    delegate: Literal["openrouter"] | None = None

    def baseline_model(self) -> str:
        if self.baseline is not None:
            return self.baseline
        tiers = self.tiers.configured()
        if "complex" in tiers:
            return tiers["complex"][0]
        return tiers[max(tiers, key=TIERS.index)][0]


class AutoSettings(Section):
    routers: dict[Annotated[str, Field(min_length=1)], RouterSettings] = Field(
        default_factory=dict)
    # Sessions pinned at once, across routers; the least recently seen is forgotten first.
    max_sessions: Annotated[int, Field(gt=0, le=10_000_000)] = 100_000

    @field_validator("routers")
    @classmethod
    def _names(cls, routers: dict[str, RouterSettings]) -> dict[str, RouterSettings]:
        for name, router in routers.items():
            if name.strip() != name or any(ch in name for ch in ",\n\r"):
                raise ValueError(f"'{name}': a router name has no surrounding spaces, commas "
                                 "or line breaks (it is sent as a model name)")
            inner = {m for models in router.tiers.configured().values() for m in models}
            if (loops := sorted(inner & set(routers))):
                raise ValueError(f"'{name}': a tier cannot name a router ({', '.join(loops)})")
        return routers


def check_auto(auto: AutoSettings, routes: dict[str, list[str]], openrouter: bool) -> None:
    """Rules across sections. `openrouter`: the model `openrouter/auto` would be sent to an
    OpenRouter provider (the lone upstream, or the provider whose globs take it)."""
    for name, router in auto.routers.items():
        if name in routes:
            raise ValueError(f"auto.routers.{name}: the name is also a routes alias; "
                             "a model name means one thing")
        if router.delegate == "openrouter" and not openrouter:
            raise ValueError(f"auto.routers.{name}.delegate: openrouter needs OpenRouter as "
                             "the provider of 'openrouter/auto' (upstream.url on openrouter.ai, "
                             "or a provider there whose models match it)")
