"""make_provider picks the provider class by format; the Anthropic provider names models as
configured."""

from __future__ import annotations

import pytest

from sidecar.config.providers import ProviderSettings
from sidecar.upstream.providers import OpenAIProvider, make_provider
from sidecar.upstream.providers.anthropic import AnthropicProvider


@pytest.mark.parametrize(("fmt", "cls"), [("openai", OpenAIProvider),
                                          ("anthropic", AnthropicProvider)])
def test_make_provider_by_format(fmt: str, cls: type) -> None:
    """Each format gets its provider, with the entry's name, URL and model naming."""
    settings = ProviderSettings.model_validate({
        "name": "p", "base_url": "https://api.example.com/v1/", "format": fmt,
        "api_key": "k", "strip_prefix": True})
    provider = make_provider(settings, local_auth=False)
    assert isinstance(provider, cls)
    assert (provider.name, provider.base_url) == ("p", "https://api.example.com/v1")
    assert provider.upstream_model("anthropic/claude-x") == "claude-x"


@pytest.mark.parametrize(("strip", "model", "expected"), [
    (True, "anthropic/claude-x", "claude-x"), (True, "claude-x", "claude-x"),
    (False, "anthropic/claude-x", "anthropic/claude-x"),
])
def test_upstream_model(strip: bool, model: str, expected: str) -> None:
    """strip_prefix removes the first path segment of the model name, when there is one."""
    provider = AnthropicProvider("c", "http://x/v1", keys=None, strip_prefix=strip)
    assert provider.upstream_model(model) == expected
