"""Anthropic's model list → OpenAI's `GET /v1/models` shape.

Anthropic: `{"data": [{"type": "model", "id", "display_name", "created_at": RFC 3339}],
"has_more", "first_id", "last_id"}`, 20 models a page unless `limit` (up to 1000) says more.
OpenAI: `{"object": "list", "data": [{"id", "object": "model", "created": epoch seconds,
"owned_by"}]}`, unpaged. `prefix` is put before each id, so a provider configured with
strip_prefix lists names a client can send back ("anthropic/claude-..."), OpenRouter's way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

PAGE_LIMIT = 1000  # Anthropic's largest page: one request lists every model


def openai_model(model: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": prefix + str(model.get("id")), "object": "model",
                           "created": _epoch(model.get("created_at")), "owned_by": "anthropic"}
    if isinstance(name := model.get("display_name"), str):
        out["name"] = name
    return out


def translate_models(raw: bytes, prefix: str) -> bytes | None:
    """A model list or a single model, translated; None if the body is neither."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("type") == "model":
        return orjson.dumps(openai_model(data, prefix))
    models = data.get("data")
    if not isinstance(models, list):
        return None
    return orjson.dumps({"object": "list", "data": [
        openai_model(model, prefix) for model in models if isinstance(model, dict)]})


def _epoch(created_at: Any) -> int:
    if not isinstance(created_at, str):
        return 0
    try:
        return int(datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0
