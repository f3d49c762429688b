"""The prompt cache's settings: YAML's bare on/off are the modes, anything else is an error
naming the key; the defaults are auto, ten minutes and 10,000 conversations."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import load_settings
from sidecar.config.loader import ConfigError


def test_bare_on_and_off_are_modes(tmp_path: Path) -> None:
    """`prompt_cache: off` and `{fast: on}` read as the modes, not as booleans."""
    config = tmp_path / "c.yaml"
    config.write_text("providers:\n  - {name: a, base_url: 'http://a.example', "
                      "prompt_cache: off}\n"
                      "prompt_cache:\n  models: {fast: on, '*haiku*': off}\n"
                      "  sticky_idle_s: 0\n")
    settings = load_settings(config, env={})
    assert settings.providers is not None
    assert settings.providers[0].prompt_cache == "off"
    assert settings.prompt_cache.models == {"fast": "on", "*haiku*": "off"}
    assert settings.prompt_cache.sticky_idle_s == 0


def test_defaults() -> None:
    """auto for every provider, a 600 s idle pin, 10,000 conversations."""
    settings = load_settings(None, env={})
    assert settings.prompt_cache.models == {}
    assert (settings.prompt_cache.sticky_idle_s,
            settings.prompt_cache.sticky_max_conversations) == (600, 10_000)


@pytest.mark.parametrize(("text", "where"), [
    ("providers:\n  - {name: a, base_url: 'http://a.example', prompt_cache: sometimes}\n",
     r"providers\[0\]\.prompt_cache: Input should be .auto., .on. or .off."),
    ("prompt_cache: {models: {fast: maybe}}\n", r"prompt_cache\.models\.fast"),
    ("prompt_cache: {sticky_idle_s: -1}\n", r"prompt_cache\.sticky_idle_s"),
    ("prompt_cache: {sticky_max_conversations: 0}\n", r"prompt_cache\.sticky_max_conversations"),
    ("prompt_cache: {ttl: 1h}\n", r"prompt_cache\.ttl"),
])
def test_bad_values_name_their_key(tmp_path: Path, text: str, where: str) -> None:
    """A mode that is none of auto/on/off, a negative idle time, no room for pins, an unknown
    key: a config error with the dotted path."""
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=where):
        load_settings(config, env={})
