"""Opt-in content capture: prompts and completions as GenAI span attributes.

Only used when `telemetry.capture_content: true` (never in zero-retention mode: the config
refuses that combination). The shapes follow the conventions' JSON schemas
(gen-ai-input-messages.json, gen-ai-output-messages.json, gen-ai-system-instructions.json),
as JSON strings because span attributes cannot hold structured values: messages are
`{"role", "parts": [{"type": "text", "content"}...]}`, tool calls and their results are parts of
type `tool_call` / `tool_call_response`. The input is the body as it went upstream (so after
redaction when privacy is on); the output is the answer the client received.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from sidecar.sse import event_json, split_events

OUTPUT = "gen_ai.output.messages"

__all__ = ["StreamText", "input_attributes", "output_attribute"]


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                kind = part.get("type")
                text = part.get("text")
                if isinstance(text, str):
                    parts.append({"type": "text", "content": text})
                elif isinstance(kind, str):
                    parts.append({"type": kind})  # images, audio, files: the kind, not the data
    return parts


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    parts = _parts(message.get("content"))
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict) and isinstance(function := call.get("function"), dict):
            parts.append({"type": "tool_call", "id": call.get("id"),
                          "name": function.get("name"), "arguments": function.get("arguments")})
    if role == "tool":
        return {"role": "tool", "parts": [{"type": "tool_call_response",
                                           "id": message.get("tool_call_id"),
                                           "response": message.get("content")}]}
    return {"role": role if isinstance(role, str) else "user", "parts": parts}


def input_attributes(body: Mapping[str, Any] | None) -> dict[str, str]:
    """gen_ai.system_instructions and gen_ai.input.messages from a request body."""
    if not body:
        return {}
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    raw = body.get("messages")
    if raw is None:
        raw = body.get("input", body.get("prompt"))  # Responses API, completions
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    if isinstance(raw, list):
        for message in raw:
            if isinstance(message, str):
                messages.append({"role": "user", "parts": _parts(message)})
            elif isinstance(message, dict):
                if message.get("role") in ("system", "developer"):
                    system += _parts(message.get("content"))
                else:
                    messages.append(_message(message))
    if isinstance(instructions := body.get("instructions"), str):
        system += _parts(instructions)
    if isinstance(anthropic_system := body.get("system"), (str, list)):  # Messages API
        system += _parts(anthropic_system)
    out: dict[str, str] = {}
    if system:
        out["gen_ai.system_instructions"] = orjson.dumps(system).decode()
    if messages:
        out["gen_ai.input.messages"] = orjson.dumps(messages).decode()
    return out


def output_attribute(body: bytes | None, stream: StreamText | None,
                     finish_reason: str | None) -> dict[str, str]:
    """gen_ai.output.messages from a JSON answer or the text a stream carried."""
    messages: list[dict[str, Any]] = []
    if stream is not None:
        messages.append({"role": "assistant", "parts": _parts(stream.text()),
                         "finish_reason": finish_reason or "stop"})
    elif body:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return {}
        if isinstance(data, dict) and data.get("type") == "message":  # Anthropic's
            messages.append({"role": "assistant", "parts": _parts(data.get("content")),
                             "finish_reason": finish_reason or "stop"})
        choices = data.get("choices") if isinstance(data, dict) else None
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            part = _message(message) if isinstance(message, dict) else {
                "role": "assistant", "parts": _parts(choice.get("text"))}
            part["finish_reason"] = choice.get("finish_reason") or "stop"
            messages.append(part)
    return {OUTPUT: orjson.dumps(messages).decode()} if messages else {}


class StreamText:
    """Collects the text deltas of a streamed answer (only when capture is on)."""

    __slots__ = ("_pieces",)

    def __init__(self) -> None:
        self._pieces: list[str] = []

    def feed(self, chunk: bytes) -> None:
        for event in split_events(chunk):
            data = event_json(event)
            if not isinstance(data, dict):
                continue
            for choice in data.get("choices") or ():
                if isinstance(choice, dict):
                    delta = choice.get("delta")
                    text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
                    if isinstance(text, str):
                        self._pieces.append(text)
            delta_text = data.get("delta")
            if isinstance(delta_text, str):  # Responses API text delta
                self._pieces.append(delta_text)
            elif isinstance(delta_text, dict) and delta_text.get("type") == "text_delta" and (
                    isinstance(piece := delta_text.get("text"), str)):  # Anthropic's
                self._pieces.append(piece)

    def text(self) -> str:
        return "".join(self._pieces)
