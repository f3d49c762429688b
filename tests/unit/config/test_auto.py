"""The auto section's checks, each reported as one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import ConfigError, load_settings

ROUTER = "auto: {routers: {sidecar/auto: {tiers: {simple: [m-small], complex: [m-big]}%s}}}"


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    return caught.value.problems


@pytest.mark.parametrize(("text", "problem"), [
    ("auto: {routers: {sidecar/auto: {tiers: {}}}}",
     "auto.routers.sidecar/auto.tiers: list the models of at least one tier"),
    ("auto: {routers: {sidecar/auto: {tiers: {simpel: [m]}}}}",
     "auto.routers.sidecar/auto.tiers.simpel: unknown key"),
    ("auto: {routers: {sidecar/auto: {tiers: {simple: []}}}}",
     "auto.routers.sidecar/auto.tiers.simple: List should have at least 1 item"),
    (ROUTER % ", prefer: cheapest",
     "auto.routers.sidecar/auto.prefer: Input should be 'cheap', 'balanced' or 'quality'"),
    (ROUTER % ", session_idle_s: 0",
     "auto.routers.sidecar/auto.session_idle_s: Input should be greater than 0"),
    (ROUTER % ", delegate: litellm",
     "auto.routers.sidecar/auto.delegate: Input should be 'openrouter'"),
    (ROUTER % ", cascade: sometimes",
     "auto.routers.sidecar/auto.cascade: Input should be a valid boolean"),
    ("auto: {routers: {a: {tiers: {simple: [b]}}, b: {tiers: {simple: [m]}}}}",
     "auto.routers: 'a': a tier cannot name a router (b)"),
    ("auto: {max_sessions: 0}", "auto.max_sessions: Input should be greater than 0"),
    ("routes: {sidecar/auto: [m]}\n" + ROUTER % "",
     "auto.routers.sidecar/auto: the name is also a routes alias"),
    ("upstream: {url: 'http://localhost:9'}\n" + ROUTER % ", delegate: openrouter",
     "auto.routers.sidecar/auto.delegate: openrouter needs OpenRouter as the provider"),
], ids=["no_tier", "unknown_tier", "empty_tier", "prefer", "idle", "delegate_value", "cascade",
        "router_in_tier", "max_sessions", "alias_clash", "delegate_without_openrouter"])
def test_auto_problems_name_their_key(tmp_path: Path, text: str, problem: str) -> None:
    """Each mistake in `auto` is reported with the dotted key it is about."""
    found = problems(tmp_path, text)
    assert any(problem in line for line in found), found


def test_a_router_defaults_and_its_baseline(tmp_path: Path) -> None:
    """A router needs only its tiers; the baseline defaults to the complex tier's first model
    (else the highest tier's), and delegation is accepted when OpenRouter serves it."""
    path = tmp_path / "c.yaml"
    path.write_text("upstream: {url: 'https://openrouter.ai/api/v1'}\n"
                    "auto: {routers: {sidecar/auto: {tiers: {simple: [s], complex: [c, d]}},\n"
                    "       sidecar/auto-code: {tiers: {simple: [s], medium: [m]},"
                    " delegate: openrouter}}}")
    settings = load_settings(path, env={})
    auto, code = (settings.auto.routers[n] for n in ("sidecar/auto", "sidecar/auto-code"))
    assert (auto.prefer, auto.cascade, auto.downgrade_on_budget, auto.session_idle_s,
            auto.delegate) == ("balanced", False, True, 1800.0, None)
    assert auto.baseline_model() == "c" and code.baseline_model() == "m"
    assert code.delegate == "openrouter"
    assert settings.auto.max_sessions == 100_000


def test_delegate_takes_an_openrouter_provider(tmp_path: Path) -> None:
    """With providers, delegation needs the provider whose globs take openrouter/auto to be on
    openrouter.ai; another provider taking it is refused."""
    path = tmp_path / "c.yaml"
    base = ("providers: [{name: local, base_url: 'http://localhost:9', models: ['local/*']},"
            " {name: or, base_url: 'https://openrouter.ai/api/v1', models: [%s]}]\n"
            "auto: {routers: {x: {tiers: {simple: [s]}, delegate: openrouter}}}")
    path.write_text(base % "'*'")
    assert load_settings(path, env={}).auto.routers["x"].delegate == "openrouter"
    path.write_text(base % "'anthropic/*'")
    with pytest.raises(ConfigError):
        load_settings(path, env={})
