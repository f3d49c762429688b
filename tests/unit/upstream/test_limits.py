"""The completion cap goes out in the field the provider takes: max_completion_tokens for
OpenAI's own API and its reasoning models, max_tokens elsewhere; the client's own field wins."""

from __future__ import annotations

import pytest

from sidecar.upstream.limits import completion_field, renamed_cap
from tests.fakes.calls import make_call


@pytest.mark.parametrize(("base_url", "model", "field"), [
    ("https://api.openai.com/v1", "gpt-4o-mini", "max_completion_tokens"),
    ("https://me.openai.azure.com/openai", "gpt-4o", "max_completion_tokens"),
    ("https://openrouter.ai/api/v1", "openai/o3-mini", "max_tokens"),
    ("http://vllm.local:8000/v1", "o3-mini", "max_completion_tokens"),
    ("http://vllm.local:8000/v1", "openai/gpt-5-mini", "max_completion_tokens"),
    ("http://localhost:11434/v1", "llama3.1:8b", "max_tokens"),
    ("https://api.groq.com/openai/v1", "openai/gpt-oss-120b", "max_tokens"),
])
def test_the_field_by_provider_and_model(base_url: str, model: str, field: str) -> None:
    """OpenAI's API and reasoning models take max_completion_tokens; the rest max_tokens."""
    assert completion_field(base_url, model) == field


def test_only_the_sidecars_own_cap_is_renamed() -> None:
    """The cap spend added moves to max_completion_tokens; a limit the client set, another
    endpoint, or the field max_tokens itself leave the overrides as they are."""
    call = make_call()
    call.overrides = {"max_tokens": 64, "stream_options": {"include_usage": True}}
    assert renamed_cap(call, "max_completion_tokens") == {
        "max_completion_tokens": 64, "stream_options": {"include_usage": True}}
    assert renamed_cap(call, "max_tokens") is None
    assert call.body is not None
    chosen = make_call(body={**call.body, "max_tokens": 100}, overrides={"max_tokens": 64})
    assert renamed_cap(chosen, "max_completion_tokens") is None
    other = make_call(overrides={"max_tokens": 64})
    other.endpoint = "completions"
    assert renamed_cap(other, "max_completion_tokens") is None
