"""Settings for routing: `providers`, `routes`, `retry`, `breaker` (INTERFACE.md §2, issue 7)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator

from sidecar.config.base import (
    PositiveSeconds,
    Section,
    check_http_url,
    check_provider_url,
    empty_is_none,
)
from sidecar.config.spend import Price


class ProviderSettings(Section):
    name: Annotated[str, Field(min_length=1)]
    base_url: str
    # a list rotates: the first is used, the next when the upstream refuses it (keys.py)
    api_key: SecretStr | list[SecretStr] | None = None
    format: Literal["openai", "anthropic"] = "openai"
    models: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] = Field(
        default_factory=lambda: ["*"])
    strip_prefix: bool = False
    weight: Annotated[float, Field(gt=0)] = 1.0
    headers: dict[str, str] = Field(default_factory=dict)
    prices: dict[str, Price] = Field(default_factory=dict)
    proxy: str | None = None  # egress proxy URL for this provider; default: HTTPS_PROXY etc.

    _url = field_validator("base_url")(check_provider_url)
    _key = field_validator("api_key", mode="before")(empty_is_none)
    _proxy = field_validator("proxy", mode="before")(empty_is_none)

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


class RetrySettings(Section):
    attempts: Annotated[int, Field(ge=1)] = 3
    backoff_s: Annotated[float, Field(ge=0)] = 0.2
    max_backoff_s: Annotated[float, Field(ge=0)] = 5.0
    on_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        # 529: Anthropic's overloaded_error, which /v1/messages passes on as it came
        default_factory=lambda: [408, 429, 500, 502, 503, 504, 529]
    )
    deadline_s: PositiveSeconds = 120.0


class BreakerSettings(Section):
    failures: Annotated[int, Field(ge=1)] = 5
    open_s: PositiveSeconds = 30.0


def check_providers(providers: list[ProviderSettings] | None,
                    routes: dict[str, list[str]]) -> None:
    """Rules across providers and routes (called by Settings._across_sections)."""
    names = [p.name.lower() for p in providers or ()]
    if len(set(names)) != len(names):
        raise ValueError("providers: names must be unique (case-insensitive)")
    if providers is not None and not providers:
        raise ValueError("providers: list at least one provider, or remove the key to use "
                         "upstream")
    for alias, candidates in routes.items():
        if not candidates or not all(isinstance(c, str) and c for c in candidates):
            raise ValueError(f"routes.{alias}: list one or more model names")
        if alias in candidates:
            raise ValueError(f"routes.{alias}: an alias cannot list itself")
