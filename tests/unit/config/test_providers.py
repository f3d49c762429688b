"""Routing settings: providers, routes and the rules across them, with errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import ConfigError, load_settings
from sidecar.config.providers import ProviderSettings
from sidecar.upstream.providers import OpenAIProvider, make_provider


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "sidecar.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    return caught.value.problems


@pytest.mark.parametrize(("text", "problem"), [
    ("providers: [{name: a, base_url: 'http://a'}, {name: A, base_url: 'http://b'}]",
     "providers: names must be unique (case-insensitive)"),
    ("providers: []", "list at least one provider"),
    ("providers: [{name: a, base_url: 'http://a', models: []}]",
     "providers[0].models: List should have at least 1 item"),
    ("providers: [{name: a, base_url: 'http://a', weight: 0}]",
     "providers[0].weight: Input should be greater than 0"),
    ("providers: [{name: a, base_url: 'http://a', proxy: 'socks5://p:1'}]",
     "providers[0].proxy: must be an http:// or https:// URL"),
    ("routes: {fast: []}", "routes.fast: list one or more model names"),
    ("routes: {fast: [fast, m]}", "routes.fast: an alias cannot list itself"),
])
def test_invalid_routing_config(tmp_path: Path, text: str, problem: str) -> None:
    """Each routing mistake is reported at start-up, naming its key."""
    assert any(problem in line for line in problems(tmp_path, text + "\n"))


def test_anthropic_format_builds_the_anthropic_provider(tmp_path: Path) -> None:
    """format: anthropic validates and make_provider gives the Anthropic translation."""
    path = tmp_path / "ok.yaml"
    path.write_text("providers: [{name: a, base_url: 'https://api.anthropic.com/v1', "
                    "format: anthropic}]\n")
    settings = load_settings(path, env={})
    assert settings.providers is not None
    built = make_provider(settings.providers[0], local_auth=False, proxy=None)
    assert type(built).__name__ == "AnthropicProvider"


def test_make_provider_builds_the_format() -> None:
    """make_provider turns settings into a provider: name, URL, model names, proxy."""
    settings = ProviderSettings.model_validate({
        "name": "direct", "base_url": "https://api.example/v1/", "api_key": "sk",
        "strip_prefix": True})
    built = make_provider(settings, local_auth=False, proxy="http://proxy:1")
    assert isinstance(built, OpenAIProvider)
    assert (built.name, built.base_url) == ("direct", "https://api.example/v1")
    assert built.upstream_model("anthropic/claude-x") == "claude-x"
