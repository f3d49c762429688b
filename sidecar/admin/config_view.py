"""The effective configuration as shown by GET /sidecar/config: every secret as `***`.

Secrets are the `SecretStr` fields (API keys, tokens), header values whose name says they carry
credentials, and passwords inside URLs (redis://:password@host).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from sidecar.config.schema import Settings

MASK = "***"
_SENSITIVE_HEADER = re.compile(r"auth|key|token|secret|password|cookie|session", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", re.IGNORECASE)


def public_config(settings: Settings) -> dict[str, Any]:
    view = _mask(settings.model_dump(mode="python"), parent="")
    assert isinstance(view, dict)
    return view


def _mask(value: Any, parent: str) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, dict):
        if parent == "headers":
            return {k: MASK if _SENSITIVE_HEADER.search(k) else _mask(v, k)
                    for k, v in value.items()}
        return {k: _mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, parent) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\1:{MASK}@", value)
    if isinstance(value, Path):
        return str(value)
    return value
