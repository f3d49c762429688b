"""OpenRouter, as the sidecar treats it: recognised by its host, and asked for zero data retention.

In ZDR mode (`privacy.zdr`) OpenRouter is asked to route only to providers that keep nothing
(`provider.zdr`, `provider.data_collection: deny`), merged into the client's own `provider`
object; a lone OpenRouter provider also applies `models` and `provider` itself (routing.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson

from sidecar.call import Call

OPENROUTER_POLICY = {"data_collection": "deny", "zdr": True}


def is_openrouter(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


def openrouter_body(call: Call, model: str) -> bytes | None:
    """The request body for OpenRouter with its retention policy merged into `provider`:
    what the client set there is kept, except that ZDR cannot be turned off."""
    if call.body is None:
        return call.raw_body
    body = {**call.body, **call.overrides, "model": model}
    retain_nothing(body)
    return orjson.dumps(body)


def retain_nothing(body: dict[str, Any]) -> None:
    """Merge the retention policy into the `provider` of a body the caller owns."""
    provider = body.get("provider")
    body["provider"] = {**(provider if isinstance(provider, dict) else {}), **OPENROUTER_POLICY}
