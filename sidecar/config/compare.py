"""Settings for comparing models: `compare` (POST /sidecar/compare) and `shadow` (background
copies of live requests to a candidate model, each rule under its own budget). Issue 19."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from sidecar.config.base import PositiveSeconds, Section
from sidecar.config.spend import Budget

# A rule's name becomes the tag `shadow:<name>` of its ledger rows and its budget's name: the
# ledger keeps tags comma-separated and budgets match tags by glob, so no comma, space or glob
# character may appear in it.
RULE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
SHADOW_TAG_PREFIX = "shadow:"
COMPARE_TAG = "compare"  # every model call of a compare carries it (never shadowed)


class CompareSettings(Section):
    max_models: Annotated[int, Field(ge=1, le=64)] = 8  # models one compare request may name
    timeout_s: PositiveSeconds = 120.0  # then an unfinished model's result is upstream_timeout


def _one_or_many(value: object) -> object:
    """`model: "openai/*"` is `model: ["openai/*"]`."""
    return [value] if isinstance(value, str) else value


class ShadowMatch(Section):
    """Globs on the primary request; every one given must match (null: any)."""

    model: list[str] | None = None  # the model the client asked for
    key: list[str] | None = None  # the local key's name
    user: list[str] | None = None  # x-sidecar-user or the body's `user`
    tag: list[str] | None = None  # any of the request's tags

    _lists = field_validator("model", "key", "user", "tag", mode="before")(_one_or_many)


class JudgeSettings(Section):
    model: Annotated[str, Field(min_length=1)]  # scores each pair 0-1; paid from the rule's budget


class ShadowRule(Section):
    name: Annotated[str, Field(pattern=RULE_NAME)]
    match: ShadowMatch = Field(default_factory=ShadowMatch)
    candidate: Annotated[str, Field(min_length=1)]
    percent: Annotated[float, Field(ge=0, le=100)] = 10.0  # of the matching requests
    budget_usd: Annotated[float, Field(ge=0)]
    window: Literal["total", "day", "week", "month"] = "total"
    judge: JudgeSettings | None = None
    on_cache_hit: bool = False  # also copy requests the cache answered
    max_in_flight: Annotated[int, Field(ge=1, le=10_000)] = 8  # copies running at once

    @property
    def tag(self) -> str:
        return SHADOW_TAG_PREFIX + self.name

    @property
    def budget(self) -> Budget:
        """The rule's budget: a real, blocking, tag-scoped budget in the ledger's policy, so it
        is admitted atomically, rebuilt from the ledger's rows at start and listed by
        /sidecar/budgets like any other. Only the rule's own calls carry its tag (clients'
        `shadow:` tags are dropped), so nothing else spends from it."""
        return Budget(name=self.tag, scope="tag", window=self.window,
                      limit_usd=self.budget_usd, action="block", match=[self.tag])


def shadow_budgets(rules: list[ShadowRule]) -> list[Budget]:
    return [rule.budget for rule in rules]


def check_shadow_rules(rules: list[ShadowRule]) -> list[ShadowRule]:
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ValueError("shadow rule names must be unique")
    return rules
