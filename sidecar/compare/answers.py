"""An answer as people and programs compare it: the provider's JSON object (a stream folded into
the answer a non-streaming request would have got), its text, and its error, by endpoint.

Shapes read: chat completions and completions (`choices`), the Responses API (`output_text`, or
the `output_text` parts of `output`; streamed, its `response.completed` event carries the
object), Anthropic's Messages (`content` text blocks; a stream folded as the cache folds it)
and embeddings (no text). An error is the
sidecar's own (`SidecarError.payload`), the provider's `error` object, or, for a body that is
neither, a generic one naming the status.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidecar import sse
from sidecar.cache.replay import CONVERTIBLE, fold
from sidecar.compare.consume import Consumed
from sidecar.endpoints import ENDPOINTS
from sidecar.messages.replay import fold as fold_messages


def answer_object(endpoint: str, consumed: Consumed) -> dict[str, Any] | None:
    """The answer as one JSON object (OpenAI format), or None when there is none."""
    body = consumed.body
    if not body:
        return None
    if not consumed.streamed:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None
    if ENDPOINTS[endpoint].wire == "anthropic":
        return fold_messages(body)
    if endpoint in CONVERTIBLE:
        return fold(endpoint, body)
    # The Responses API: the last event's `response` (`response.completed` carries the whole
    # object); its text from the deltas when that object lists no output.
    found: dict[str, Any] | None = None
    deltas: list[str] = []
    for event in sse.split_events(body):
        data = sse.event_json(event)
        if not isinstance(data, dict):
            continue
        if isinstance(response := data.get("response"), dict):
            found = response
        elif data.get("type") == "response.output_text.delta" and isinstance(
                delta := data.get("delta"), str):
            deltas.append(delta)
    if found is not None and deltas and not answer_text(found):
        found = {**found, "output_text": "".join(deltas)}
    return found


def answer_text(answer: dict[str, Any] | None) -> str | None:
    """The answer's text (the first choice's), or None when it has none (embeddings)."""
    if answer is None:
        return None
    choices = answer.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = choices[0]
        message = first.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            return content if isinstance(content, str) else _parts(content)
        text = first.get("text")
        return text if isinstance(text, str) else None
    if isinstance(text := answer.get("output_text"), str):
        return text
    output = answer.get("output")
    if isinstance(output, list):
        return "".join(_parts(item.get("content")) or "" for item in output
                       if isinstance(item, dict) and item.get("type") == "message")
    content = answer.get("content")
    return _parts(content) if isinstance(content, list) else None


def _parts(content: object) -> str | None:
    """Text of content parts: OpenAI's `text`/`output_text`, Anthropic's `text` blocks."""
    if not isinstance(content, list):
        return None
    return "".join(part["text"] for part in content if isinstance(part, dict)
                   and part.get("type") in ("text", "output_text")
                   and isinstance(part.get("text"), str))


def stream_error(consumed: Consumed) -> dict[str, Any] | None:
    """An error event a provider sent inside a stream that had started with 200."""
    if not consumed.streamed or b'"error"' not in consumed.body:
        return None
    for event in sse.split_events(consumed.body):
        data = sse.event_json(event)
        if isinstance(data, dict) and isinstance(error := data.get("error"), dict):
            return error
    return None


def error_object(consumed: Consumed) -> dict[str, Any] | None:
    """The OpenAI-shaped `error` object of a failed answer; None for a success."""
    if consumed.error is not None:
        error: dict[str, Any] = consumed.error.payload()["error"]
        return error
    if consumed.status < 400:
        return stream_error(consumed)
    try:
        data = orjson.loads(consumed.body) if consumed.body else None
    except orjson.JSONDecodeError:
        data = None
    found = data.get("error") if isinstance(data, dict) else None
    if isinstance(found, dict):
        return found
    message = found if isinstance(found, str) else (
        f"The provider answered HTTP {consumed.status}"
        + (f": {consumed.body[:200].decode(errors='replace')}" if consumed.body else "."))
    return {"message": message, "type": "upstream_error", "code": consumed.status,
            "param": None}
