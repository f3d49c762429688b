"""Settings for the providers' own prompt caches: `prompt_cache` and `providers[].prompt_cache`
(issue 21; the rule is in sidecar/upstream/prompt_cache.py, the docs in docs/prompt-cache.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from sidecar.config.base import Section

# auto: breakpoints where the provider needs them (Anthropic-format providers, Anthropic models
#       on OpenRouter) and prompt_cache_key for OpenAI models; on: breakpoints on every chat
#       request of the provider too (a gateway that passes cache_control on); off: the body
#       goes as the client sent it.
PromptCacheMode = Literal["auto", "on", "off"]


def yaml_mode(value: object) -> object:
    """YAML 1.1 reads bare `on` / `off` as booleans; both are documented values here."""
    if value is True:
        return "on"
    if value is False:
        return "off"
    return value


class PromptCacheSettings(Section):
    # model or `routes` alias glob -> mode; the first match wins over providers[].prompt_cache
    models: dict[str, PromptCacheMode] = Field(default_factory=dict)
    # a conversation stays on the provider that holds its cache for this long after its last
    # request (Anthropic's cache lives 5 minutes from its last read; OpenRouter pins for 10)
    sticky_idle_s: Annotated[float, Field(ge=0)] = 600.0
    sticky_max_conversations: Annotated[int, Field(gt=0)] = 10_000  # LRU bound

    @field_validator("models", mode="before")
    @classmethod
    def _modes(cls, value: object) -> object:
        if isinstance(value, dict):
            return {key: yaml_mode(mode) for key, mode in value.items()}
        return value
