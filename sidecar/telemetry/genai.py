"""GenAI semantic conventions (v1.41): the attribute names, and their values from a Call.

Every `gen_ai.*` key the sidecar emits is spelt here, so the move to the new conventions
repository (which renames some of them) is a change to this module only. Values come from the
request body the client sent (after redaction, when privacy is on) and the answer record the
answer stage fills (`call.answer`); nothing is parsed twice. Client-supplied values are taken only
when they have the type the conventions give them, so a malformed body can never produce an
attribute of the wrong type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sidecar.call import Usage
from sidecar.endpoints import ENDPOINTS

__all__ = ["OPERATIONS", "Upstream", "Upstreams", "request_attributes", "usage_attributes"]

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
STREAM = "gen_ai.request.stream"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
INPUT_MESSAGES = "gen_ai.input.messages"  # opt-in: telemetry.capture_content
OUTPUT_MESSAGES = "gen_ai.output.messages"  # opt-in
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"  # opt-in
CONTENT_KEYS = (INPUT_MESSAGES, OUTPUT_MESSAGES, SYSTEM_INSTRUCTIONS)

OPERATIONS = {path: endpoint.operation for path, endpoint in ENDPOINTS.items()}

# gen_ai.provider.name by the upstream's host (well-known values of the conventions, plus
# OpenRouter's own name); any other upstream is named by its `providers[].name`.
_HOSTS = {
    "api.openai.com": "openai", "openrouter.ai": "openrouter",
    "api.anthropic.com": "anthropic", "api.groq.com": "groq", "api.mistral.ai": "mistral_ai",
    "api.deepseek.com": "deepseek", "api.x.ai": "x_ai", "api.perplexity.ai": "perplexity",
    "api.cohere.com": "cohere", "api.cohere.ai": "cohere",
    "generativelanguage.googleapis.com": "gcp.gemini", "api.moonshot.ai": "moonshot_ai",
}
_HOST_SUFFIXES = ((".openai.azure.com", "azure.ai.openai"),
                  (".services.ai.azure.com", "azure.ai.inference"))

# Request parameters: body key -> (attribute, accepted types). Bools are never numbers here.
_FLOAT_PARAMS = {"temperature": "gen_ai.request.temperature", "top_p": "gen_ai.request.top_p",
                 "frequency_penalty": "gen_ai.request.frequency_penalty",
                 "presence_penalty": "gen_ai.request.presence_penalty",
                 "top_k": "gen_ai.request.top_k"}
_MAX_TOKENS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


@dataclass(frozen=True, slots=True)
class Upstream:
    address: str
    port: int
    provider: str  # gen_ai.provider.name


class Upstreams:
    """Provider name (as on an Attempt) -> where it is and how the conventions name it."""

    def __init__(self, base_urls: Mapping[str, str]) -> None:
        self._by_name = {name: _upstream(name, url) for name, url in base_urls.items()}

    def get(self, name: str) -> Upstream | None:
        return self._by_name.get(name)


def _upstream(name: str, base_url: str) -> Upstream:
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    provider = _HOSTS.get(host)
    if provider is None:
        provider = next((p for suffix, p in _HOST_SUFFIXES if host.endswith(suffix)), name)
    return Upstream(host, port, provider)


def request_attributes(body: Mapping[str, Any] | None, overrides: Mapping[str, Any],
                       stream: bool) -> dict[str, Any]:
    """gen_ai.request.* from the body as sent (overrides such as a spend cap win)."""
    out: dict[str, Any] = {}
    if stream:
        out[STREAM] = True
    if not body:
        return out
    get = overrides.get if overrides else None
    for key, attribute in _FLOAT_PARAMS.items():
        value = get(key, body.get(key)) if get else body.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[attribute] = float(value)
    for key in _MAX_TOKENS:
        value = get(key, body.get(key)) if get else body.get(key)
        if type(value) is int:
            out["gen_ai.request.max_tokens"] = value
            break
    seed = body.get("seed")
    if type(seed) is int:
        out["gen_ai.request.seed"] = seed
    n = body.get("n")
    if type(n) is int and n != 1:
        out["gen_ai.request.choice.count"] = n
    stop = body.get("stop")
    if isinstance(stop, str):
        out["gen_ai.request.stop_sequences"] = (stop,)
    elif isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
        out["gen_ai.request.stop_sequences"] = tuple(stop)
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and isinstance(response_format.get("type"), str):
        out["gen_ai.output.type"] = "text" if response_format["type"] == "text" else "json"
    return out


def usage_attributes(usage: Usage) -> dict[str, Any]:
    """gen_ai.usage.*: input includes cached tokens, output includes reasoning (as OpenAI's)."""
    out: dict[str, Any] = {"gen_ai.usage.input_tokens": usage.prompt_tokens,
                           "gen_ai.usage.output_tokens": usage.completion_tokens}
    if usage.cached_tokens:
        out["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
    if usage.cache_write_tokens:
        out["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        out["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    return out
