"""The body of POST /sidecar/compare, checked field by field; each problem is a 400 naming it.

    {"models": ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"],   required, 1 to max_models
     "request": {"messages": [...], "max_tokens": 300},                 required, an object
     "endpoint": "chat/completions",                                    a model endpoint
     "stream": false}                                                   SSE answer when true
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from sidecar.endpoints import ENDPOINTS
from sidecar.errors import InvalidJSON, InvalidRequest
from sidecar.failures import too_deep

FIELDS = ("models", "request", "endpoint", "stream")
# The model endpoints whose answers are worth comparing side by side: the billed ones priced
# per token, with a JSON body (a free one, such as messages/count_tokens, answers a count; the
# image and audio endpoints answer media, and some take a form with files).
COMPARED = tuple(name for name, row in ENDPOINTS.items()
                 if row.billed and row.meter == "tokens" and row.body == "json")
DEFAULT_ENDPOINT = "chat/completions"


@dataclass(frozen=True, slots=True)
class CompareRequest:
    models: tuple[str, ...]
    request: dict[str, Any]
    endpoint: str
    stream: bool  # the compare answers with server-sent events

    def body_for(self, model: str) -> dict[str, Any]:
        """What one model is sent: the request as the client wrote it, with that model. A
        streamed compare streams every model that can stream (an endpoint whose answer has a
        length is generated token by token), so its chunks can be relayed as they come."""
        body = {**self.request, "model": model}
        if self.stream and ENDPOINTS[self.endpoint].limit_fields:
            body["stream"] = True
        return body


def parse_compare(raw: bytes, max_models: int) -> CompareRequest:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"The compare body is not valid JSON ({exc}). Send a JSON object "
                          "with 'models' and 'request'.") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"The compare body must be a JSON object, not a JSON "
                             f"{type(data).__name__}.")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InvalidRequest(f"Unknown field '{unknown[0]}' in the compare body; it takes "
                             f"{', '.join(FIELDS)}.", param=unknown[0])
    return CompareRequest(_models(data.get("models"), max_models), _request(data.get("request")),
                          _endpoint(data.get("endpoint", DEFAULT_ENDPOINT)),
                          _stream(data.get("stream", False)))


def _models(value: object, max_models: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidRequest("'models' must be a list of model names, e.g. [\"openai/gpt-4o-mini"
                             "\", \"anthropic/claude-3-5-haiku\"].", param="models")
    if not value:
        raise InvalidRequest("'models' is empty: name at least one model.", param="models")
    if len(value) > max_models:
        raise InvalidRequest(f"'models' names {len(value)} models; this sidecar compares at "
                             f"most {max_models} at once (compare.max_models).", param="models")
    for index, model in enumerate(value):
        if not isinstance(model, str) or not model:
            raise InvalidRequest(f"'models[{index}]' must be a non-empty model name.",
                                 param=f"models[{index}]")
    return tuple(value)


def _request(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest("'request' must be a JSON object: the body each model is sent "
                             "(its 'model' is set per model), e.g. {\"messages\": [...]}.",
                             param="request")
    if (error := too_deep(value)) is not None:  # each model's body is written back as JSON
        raise error
    return value


def _endpoint(value: object) -> str:
    name = value.removeprefix("/").removeprefix("v1/") if isinstance(value, str) else None
    if name is None or name not in COMPARED:
        raise InvalidRequest(f"'endpoint' must be one of {', '.join(COMPARED)} (default "
                             f"{DEFAULT_ENDPOINT}).", param="endpoint")
    return name


def _stream(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest("'stream' must be true or false.", param="stream")
    return value
