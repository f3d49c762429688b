"""Which provider adds breakpoints or a prompt_cache_key for which model, by mode."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.upstream.cache_policy import PromptCachePolicy, provider_kind
from sidecar.upstream.prompt_cache import DEFAULT_MINIMUM
from tests.fakes.calls import make_call

CLAUDE, GPT, LLAMA = "anthropic/claude-sonnet-4.5", "openai/gpt-4o", "meta/llama-3"


@pytest.mark.parametrize(("fmt", "url", "kind"), [
    ("anthropic", "https://api.anthropic.com/v1", "anthropic"),
    ("openai", "https://openrouter.ai/api/v1", "openrouter"),
    ("openai", "https://eu.openrouter.ai/api/v1", "openrouter"),
    ("openai", "https://api.openai.com/v1", "openai"),
    ("openai", "http://localhost:8000/v1", "other")])
def test_provider_kind(fmt: str, url: str, kind: str) -> None:
    """The kind follows the format, then the host."""
    assert provider_kind(fmt, url) == kind


@pytest.mark.parametrize(("mode", "kind", "model", "breakpoints", "keyed"), [
    ("auto", "anthropic", "claude-x", True, False),
    ("auto", "openrouter", CLAUDE, True, False),
    ("auto", "openrouter", GPT, False, True),
    ("auto", "openrouter", LLAMA, False, False),
    ("auto", "openai", "gpt-4o", False, True),
    ("on", "other", LLAMA, True, False),
    ("on", "openrouter", GPT, True, True),
    ("off", "openrouter", CLAUDE, False, False),
    ("off", "openai", "gpt-4o", False, False),
])
def test_what_each_mode_does(mode: Any, kind: Any, model: str, breakpoints: bool,
                             keyed: bool) -> None:
    """auto: breakpoints for Anthropic-format providers and Anthropic models on OpenRouter,
    a key for OpenAI models; on: breakpoints everywhere; off: nothing."""
    policy = PromptCachePolicy(mode, kind)
    call = make_call(model=model)
    assert (policy.breakpoints(call, model) is not None) is breakpoints
    assert (policy.cache_key(call, model) is not None) is keyed


def test_nothing_to_do_builds_no_policy() -> None:
    """off, or auto on a provider that is neither Anthropic, OpenRouter nor OpenAI: None, so
    the provider never asks (unless a model override turns it on)."""
    assert PromptCachePolicy.build("off", "openrouter", {}) is None
    assert PromptCachePolicy.build("auto", "other", {}) is None
    assert PromptCachePolicy.build("auto", "other", {"fast": "on"}) is not None


def test_model_overrides_win_by_alias_or_model() -> None:
    """prompt_cache.models: the alias the client asked for, or the model tried, first match."""
    policy = PromptCachePolicy.build("auto", "anthropic", {"fast": "off", "*haiku*": "off"})
    assert policy is not None
    by_alias = make_call(model="claude-sonnet")
    by_alias.requested_model = "fast"
    assert policy.breakpoints(by_alias, "claude-sonnet") is None
    assert policy.breakpoints(make_call(model="claude-3-haiku"), "claude-3-haiku") is None
    assert policy.breakpoints(make_call(model="claude-x"), "claude-x") == DEFAULT_MINIMUM


def test_a_client_key_is_kept_and_endpoints_without_turns_get_none() -> None:
    """The client's own prompt_cache_key wins; embeddings get no key."""
    policy = PromptCachePolicy("auto", "openai")
    own = make_call(body={"model": "gpt-4o", "prompt_cache_key": "mine", "messages": []})
    assert policy.cache_key(own, "gpt-4o") is None
    embedding = make_call(body={"model": "text-embedding-3-small", "input": "x"})
    embedding.endpoint = "embeddings"
    assert policy.cache_key(embedding, "text-embedding-3-small") is None
    assert policy.breakpoints(embedding, "claude-x") is None


def test_anthropic_messages_get_breakpoints_and_keys_too() -> None:
    """/v1/messages: breakpoints for Anthropic models (natively or on OpenRouter), a key for
    OpenAI models on OpenRouter; count_tokens gets neither."""
    call = make_call(body={"model": CLAUDE, "max_tokens": 9, "messages": [
        {"role": "user", "content": "hi"}]})
    call.endpoint = "messages"
    assert PromptCachePolicy("auto", "anthropic").breakpoints(call, "claude-x") is not None
    assert PromptCachePolicy("auto", "openrouter").breakpoints(call, CLAUDE) is not None
    assert PromptCachePolicy("auto", "openrouter").cache_key(call, GPT) is not None
    call.endpoint = "messages/count_tokens"
    assert PromptCachePolicy("auto", "anthropic").breakpoints(call, "claude-x") is None
