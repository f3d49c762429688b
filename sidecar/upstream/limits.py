"""The field a provider takes the sidecar's completion limit in.

Under a blocking budget, spend caps a chat request that set no limit of its own (spend.py puts
the cap in `call.overrides["max_tokens"]`). Not every provider takes `max_tokens`:

- OpenAI's own API (api.openai.com, Azure OpenAI's *.openai.azure.com) deprecated it for chat
  completions in favour of `max_completion_tokens`, and its reasoning models (o1, o3, o4-mini,
  the gpt-5 family) refuse `max_tokens` outright (400 unsupported_parameter);
- the same reasoning models served elsewhere by an OpenAI-compatible host take OpenAI's
  parameters, so they get `max_completion_tokens` too;
- OpenRouter, vLLM, Ollama, Groq and the other OpenAI-compatible servers take `max_tokens`
  (OpenRouter maps it for reasoning models itself; older servers know no other name).

A limit the client set itself goes out in the field the client chose: only the sidecar's own
cap is renamed.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from sidecar.call import Call
from sidecar.upstream.openrouter import is_openrouter

__all__ = ["completion_field", "renamed_cap"]

_REASONING = re.compile(r"^(o\d|gpt-5)")  # OpenAI's reasoning families, by bare model name


def completion_field(base_url: str, model: str) -> str:
    """`max_completion_tokens` or `max_tokens`: what this provider takes for this model."""
    host = urlsplit(base_url).hostname or ""
    if host == "api.openai.com" or host.endswith(".openai.azure.com"):
        return "max_completion_tokens"
    if is_openrouter(base_url):
        return "max_tokens"
    if _REASONING.match(model.rpartition("/")[2]):
        return "max_completion_tokens"
    return "max_tokens"


def renamed_cap(call: Call, field: str) -> dict[str, Any] | None:
    """The call's overrides with the sidecar's cap moved to `field`, or None when nothing is
    to be renamed (another field, a limit the client set, not a chat request)."""
    overrides = call.overrides
    if field == "max_tokens" or "max_tokens" not in overrides or call.endpoint != (
            "chat/completions"):
        return None
    body = call.body or {}
    if "max_tokens" in body or "max_completion_tokens" in body:
        return None  # the client chose its field
    out = dict(overrides)
    out[field] = out.pop("max_tokens")
    return out
