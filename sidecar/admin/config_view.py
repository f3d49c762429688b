"""The effective configuration as shown by GET /sidecar/config: every secret as `***`.

Secrets are the `SecretStr` fields (API keys, tokens), header values, and credentials inside
URLs (redis://user:password@host, https://token@host). Header values are masked unless the
header is known to carry none (`X-Title`, `HTTP-Referer`...): credentials hide under names no
pattern foresees (Honeycomb's `x-honeycomb-team`, Uptrace's `uptrace-dsn`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from sidecar.config.schema import Settings

MASK = "***"
_PLAIN_HEADERS = frozenset((  # shown as they are; every other header value is masked
    "http-referer", "referer", "x-title", "user-agent", "accept", "accept-language",
    "content-type", "anthropic-version", "anthropic-beta", "openai-beta", "x-scope-orgid"))
_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", re.IGNORECASE)
_URL_USER_ONLY = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@:]+@", re.IGNORECASE)


def public_config(settings: Settings) -> dict[str, Any]:
    view = _mask(settings.model_dump(mode="python"), parent="")
    assert isinstance(view, dict)
    return view


def _mask(value: Any, parent: str) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, dict):
        if parent == "headers":
            return {k: _mask(v, k) if k.lower() in _PLAIN_HEADERS else MASK
                    for k, v in value.items()}
        return {k: _mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, parent) for v in value]
    if isinstance(value, str):
        return _URL_USER_ONLY.sub(rf"\1{MASK}@", _URL_PASSWORD.sub(rf"\1:{MASK}@", value))
    if isinstance(value, Path):
        return str(value)
    return value
