"""Settings for spend guardrails: `spend` (INTERFACE.md §2, issue 9)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from sidecar.config.base import PositiveSeconds, Section, UsdPerToken


class Price(Section):
    """USD per token (per request for `request`), OpenRouter's /models `pricing` shape."""

    prompt: UsdPerToken = 0.0
    completion: UsdPerToken = 0.0
    request: UsdPerToken = 0.0
    input_cache_read: UsdPerToken | None = None
    input_cache_write: UsdPerToken | None = None
    internal_reasoning: UsdPerToken | None = None


Window = Literal["minute", "hour", "day", "week", "month", "total"]


class Budget(Section):
    name: str
    scope: Literal["global", "key", "user", "tag", "model"] = "global"
    window: Window = "day"
    limit_usd: Annotated[float, Field(ge=0)]
    action: Literal["block", "warn"] = "block"


class RateLimit(Section):
    scope: Literal["global", "key", "user", "tag", "model"] = "key"
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None


class SpendSettings(Section):
    ledger: str | None = None  # None: sqlite:///<state_dir>/ledger.db
    flush_interval_s: PositiveSeconds = 1.0
    on_ledger_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    prices: dict[str, Price] = Field(default_factory=dict)
    unknown_model_price: Literal["block", "free"] | Price = "block"
    reserve_max_tokens: Annotated[int, Field(gt=0)] = 4096
    budgets: list[Budget] = Field(default_factory=list)
    rate_limits: list[RateLimit] = Field(default_factory=list)

    @field_validator("ledger")
    @classmethod
    def _ledger_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite:///", "redis://", "rediss://")):
            raise ValueError("must be sqlite:///path or redis://host:port/db")
        return value
