"""The cache's settings: the Redis URL is required and checked; the password comes apart from
it (file or SIDECAR_REDIS_PASSWORD) and is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.admin.config_view import public_config
from sidecar.config import load_settings
from sidecar.config.loader import ConfigError


def test_redis_backend_needs_a_url(tmp_path: Path) -> None:
    """backend: redis without redis_url, or with another scheme, is a config error."""
    config = tmp_path / "c.yaml"
    config.write_text("cache: {backend: redis}\n")
    with pytest.raises(ConfigError, match="redis_url is not set"):
        load_settings(config, env={})
    config.write_text("cache: {backend: redis, redis_url: 'http://x'}\n")
    with pytest.raises(ConfigError, match=r"cache\.redis_url: must be a redis://"):
        load_settings(config, env={})


def test_the_password_comes_from_the_environment_with_any_character(tmp_path: Path) -> None:
    """SIDECAR_REDIS_PASSWORD (or ${VAR} in the file) sets cache.redis_password verbatim;
    /sidecar/config shows it as ***."""
    password = "p@ss:w/rd#?%40"
    settings = load_settings(None, env={"SIDECAR_CACHE": "redis",
                                        "SIDECAR_REDIS_URL": "redis://r:6379/0",
                                        "SIDECAR_REDIS_PASSWORD": password})
    assert settings.cache.redis_password is not None
    assert settings.cache.redis_password.get_secret_value() == password
    assert public_config(settings)["cache"]["redis_password"] == "***"
    config = tmp_path / "c.yaml"
    config.write_text("cache:\n  backend: redis\n  redis_url: redis://r:6379/0\n"
                      "  redis_password: ${LLM_SIDECAR_REDIS_PASSWORD}\n")
    settings = load_settings(config, env={"LLM_SIDECAR_REDIS_PASSWORD": password})
    assert settings.cache.redis_password is not None
    assert settings.cache.redis_password.get_secret_value() == password
