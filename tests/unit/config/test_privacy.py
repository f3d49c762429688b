"""privacy settings, and the zero-retention rules that span sections (Settings._across_sections)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.config import ConfigError, load_settings
from sidecar.config.schema import Settings


def problems(tmp_path: Path, raw: dict[str, Any], env: dict[str, str] | None = None
             ) -> list[str]:
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(raw))
    try:
        load_settings(path, env=env or {})
    except ConfigError as exc:
        return exc.problems
    return []


@pytest.mark.parametrize(("raw", "env", "needle"), [
    ({"privacy": {"zdr": True}, "telemetry": {"capture_content": True}}, {},
     "privacy.zdr is on, so telemetry.capture_content must be false"),
    ({"privacy": {"zdr": True}, "cache": {"backend": "redis", "redis_url": "redis://x"}}, {},
     "cache.backend cannot be redis"),
    ({"cache": {"backend": "redis", "redis_url": "redis://x"}}, {"SIDECAR_ZDR": "1"},
     "cache.backend cannot be redis"),
    ({"privacy": {"zdr": True}, "cache": {"backend": "memory"}}, {},
     "set privacy.zdr_allow_memory_cache: true to allow that, or cache.backend: off"),
])
def test_contradictory_settings_are_refused_with_the_keys_named(
        tmp_path: Path, raw: dict[str, Any], env: dict[str, str], needle: str) -> None:
    """ZDR with content capture, a Redis cache or an explicit memory cache fails at start."""
    found = problems(tmp_path, raw, env)
    assert len(found) == 1 and needle in found[0], found


@pytest.mark.parametrize(("raw", "backend"), [
    ({"privacy": {"zdr": True}}, "off"),  # the default memory cache: switched off
    ({"privacy": {"zdr": True, "zdr_allow_memory_cache": True}}, "memory"),
    ({"privacy": {"zdr": True, "zdr_allow_memory_cache": True}, "cache": {"backend": "memory"}},
     "memory"),
    ({"privacy": {"zdr": True}, "cache": {"backend": "off"}}, "off"),
    ({}, "memory"),
])
def test_zdr_keeps_the_memory_cache_only_when_allowed(raw: dict[str, Any], backend: str) -> None:
    """The effective cache backend under ZDR: memory only with zdr_allow_memory_cache."""
    assert Settings.model_validate(raw).cache.backend == backend


@pytest.mark.parametrize(("redact", "needle"), [
    ({"mode": "hide"}, "privacy.redact.mode"),
    ({"entities": ["EMAIL", "NAME"]}, "privacy.redact.entities[1]"),
    ({"custom": [{"name": "EMAIL", "pattern": "x"}]}, "EMAIL is a built-in entity"),
    ({"custom": [{"name": "bad name", "pattern": "x"}]}, "must be a letter"),
    ({"custom": [{"name": "A", "pattern": "("}]}, "not a valid regular expression"),
    ({"custom": [{"name": "A", "pattern": "x*"}]}, "matches the empty string"),
    ({"custom": [{"name": "A", "pattern": "x"}, {"name": "a", "pattern": "y"}]}, "unique"),
    ({"phone_regions": ["US", "XX"]}, "unknown region code(s) XX"),
])
def test_bad_redaction_settings_name_the_key(tmp_path: Path, redact: dict[str, Any],
                                             needle: str) -> None:
    """Each bad value is reported with its dotted key."""
    found = problems(tmp_path, {"privacy": {"redact": redact}})
    assert any(needle in line for line in found), found


def test_off_is_read_as_off_even_unquoted(tmp_path: Path) -> None:
    """`mode: off` (YAML's false) means off."""
    path = tmp_path / "sidecar.yaml"
    path.write_text("privacy: {redact: {mode: off}}\n")
    settings = load_settings(path, env={})
    assert settings.privacy.redact.mode == "off"
