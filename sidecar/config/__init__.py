"""One validated, frozen configuration: `load_settings()` builds it, `Settings` is its type."""

from sidecar.config.loader import ENV_OVERRIDES, ConfigError, load_settings
from sidecar.config.schema import Settings

__all__ = ["ENV_OVERRIDES", "ConfigError", "Settings", "load_settings"]
