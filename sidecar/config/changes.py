"""What a new configuration changes, and which of those changes need a restart.

Live reload applies a new configuration without a restart, except for the settings below: a
listener cannot move while it serves, the state directory and the ledger or cache backend hold
the state a reload keeps, and a few settings shape things built once at start (the admin routes
and their guard, the log format, the cache's memory bounds). When a new file changes one of them,
the reload keeps the running value, applies everything else, and names the setting in its
answer and its log line (`restart_required`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from sidecar.config.schema import Settings

__all__ = ["RESTART_ONLY", "changed_sections", "keep_restart_only"]

# Dotted paths (a section, or one key of it) that only a restart applies.
RESTART_ONLY: tuple[str, ...] = (
    "listen.host", "listen.port",
    "admin",  # the listener, the routes registered on it, and their guard
    "state_dir",
    "spend.ledger", "spend.flush_interval_s", "spend.redis_timeout_s",
    "spend.reservation_ttl_s", "spend.max_pending_rows",
    "cache.backend", "cache.redis_url", "cache.redis_password", "cache.max_bytes",
    "cache.max_entries", "cache.max_entry_bytes",
    "upstream.max_connections",
    "privacy.zdr", "privacy.zdr_allow_memory_cache",  # they also shape logging at start
    "telemetry.logs", "telemetry.prometheus",  # the log format; /metrics is a route
)


def _get(model: Any, path: str) -> Any:
    for part in path.split("."):
        model = getattr(model, part)
    return model


def _with(model: BaseModel, path: str, value: Any) -> BaseModel:
    """`model` with the value at the dotted `path` replaced (frozen models: copies)."""
    head, _, rest = path.partition(".")
    if not rest:
        return model.model_copy(update={head: value})
    inner = getattr(model, head)
    return model.model_copy(update={head: _with(inner, rest, value)})


def keep_restart_only(running: Settings, new: Settings) -> tuple[Settings, list[str]]:
    """The settings a reload applies: `new`, with the running value of every restart-only
    setting it changes; and the dotted paths of those settings."""
    kept: list[str] = []
    out: BaseModel = new
    for path in RESTART_ONLY:
        if _get(running, path) != _get(new, path):
            kept.append(path)
            out = _with(out, path, _get(running, path))
    assert isinstance(out, Settings)
    return out, kept


def changed_sections(running: Settings, new: Settings) -> list[str]:
    """The top-level sections whose value differs."""
    return [name for name in type(running).model_fields
            if getattr(running, name) != getattr(new, name)]
