"""What one provider does about its prompt cache for one request: breakpoints (and the minimum
length they need) and a `prompt_cache_key`. Built once per provider (routing.py); asked by the
provider as it renders each attempt's body, never touching `call.body`.

    mode   where it comes from                   what it does
    auto   providers[].prompt_cache (default)    breakpoints for an Anthropic-format provider and
                                                 for Anthropic models (anthropic/*, claude) on
                                                 OpenRouter; prompt_cache_key for OpenAI models
                                                 (any on api.openai.com, openai/* on OpenRouter)
    on                                           breakpoints on every chat request too (for a
                                                 gateway in front of Anthropic that passes
                                                 cache_control on), the key as auto
    off                                          neither: the body goes as the client sent it

`prompt_cache.models` (model or `routes` alias globs) wins over the provider's mode: the
first glob matching the model the client asked for, else the model being tried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from sidecar.call import Call
from sidecar.config.prompt_cache import PromptCacheMode
from sidecar.globs import Globs
from sidecar.upstream.conversation import conversation_key
from sidecar.upstream.openrouter import is_openrouter
from sidecar.upstream.prompt_cache import is_anthropic_family, minimum_tokens

Kind = Literal["anthropic", "openrouter", "openai", "other"]
# Breakpoints: chat, and Anthropic's own messages (native, or translated to a chat for an
# OpenAI-format provider); a cache key wherever OpenAI takes one.
_MARKED_ENDPOINTS = frozenset(("chat/completions", "messages"))
_KEYED_ENDPOINTS = frozenset(("chat/completions", "responses", "messages"))


def provider_kind(format: str, base_url: str) -> Kind:
    if format == "anthropic":
        return "anthropic"
    if is_openrouter(base_url):
        return "openrouter"
    return "openai" if urlsplit(base_url).hostname == "api.openai.com" else "other"


@dataclass(frozen=True, slots=True)
class PromptCachePolicy:
    mode: PromptCacheMode
    kind: Kind
    overrides: tuple[tuple[Globs, PromptCacheMode], ...] = ()

    @classmethod
    def build(cls, mode: PromptCacheMode, kind: Kind,
              models: Mapping[str, PromptCacheMode]) -> PromptCachePolicy | None:
        """The policy; None when nothing can ever be done (so the provider skips asking)."""
        overrides = tuple((Globs([glob]), value) for glob, value in models.items())
        if mode == "off" and all(value == "off" for _, value in overrides):
            return None
        if mode == "auto" and kind == "other" and all(value != "on" for _, value in overrides):
            return None  # auto does nothing for a provider that is neither
        return cls(mode, kind, overrides)

    def mode_for(self, call: Call) -> PromptCacheMode:
        if self.overrides:
            asked, tried = call.requested_model or "", call.model or ""
            for globs, mode in self.overrides:
                if globs.match(asked) or globs.match(tried):
                    return mode
        return self.mode

    def breakpoints(self, call: Call, model: str) -> int | None:
        """The minimum cacheable length (tokens) when this request gets breakpoints for `model`
        (the name as routed, e.g. anthropic/claude-sonnet-4.5), else None."""
        if call.endpoint not in _MARKED_ENDPOINTS:
            return None
        mode = self.mode_for(call)
        if mode == "off":
            return None
        if mode == "on" or self.kind == "anthropic" or (
                self.kind == "openrouter" and is_anthropic_family(model)):
            return minimum_tokens(model)
        return None

    def cache_key(self, call: Call, model: str) -> str | None:
        """The `prompt_cache_key` to add for `model`, when the client sent none."""
        if call.endpoint not in _KEYED_ENDPOINTS or call.body is None:
            return None
        if not (self.kind == "openai" or (self.kind == "openrouter"
                                          and model.startswith("openai/"))):
            return None
        if "prompt_cache_key" in call.body or self.mode_for(call) == "off":
            return None
        return conversation_key(call)
