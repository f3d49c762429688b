"""An Anthropic message → an OpenAI chat.completion; usage and stop reasons, shared with
stream.py.

Content blocks: text is joined into `message.content`; each `tool_use` becomes a `tool_calls`
entry (input serialized as the arguments string), except the response_format answer tool,
whose input becomes the content (and text blocks are then dropped, so the content parses as
JSON); thinking becomes `reasoning` and `reasoning_content` (the names OpenRouter and
DeepSeek-style clients read) plus OpenRouter's `reasoning_details` with the signatures, which a
client sends back on its next turn; server-tool and citation blocks have no OpenAI place.

Usage: OpenAI's prompt_tokens counts every prompt token, Anthropic's input_tokens only those
neither read from nor written to the prompt cache, so prompt_tokens = input_tokens +
cache_read_input_tokens + cache_creation_input_tokens; the two cache counts go to
`prompt_tokens_details.cached_tokens` / `cache_write_tokens` (OpenRouter's names).
"""

from __future__ import annotations

from typing import Any

import orjson

from sidecar.upstream.anthropic.content import REASONING_FORMAT
from sidecar.upstream.anthropic.request import Plan

FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}


def finish_reason(stop_reason: Any, *, called_tools: bool) -> str | None:
    """OpenAI's finish_reason; a turn that only "called" the answer tool simply stopped."""
    if not isinstance(stop_reason, str):
        return None
    if stop_reason == "tool_use" and not called_tools:
        return "stop"
    return FINISH_REASONS.get(stop_reason, "stop")


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    fresh = _count(usage, "input_tokens")
    read = _count(usage, "cache_read_input_tokens")
    written = _count(usage, "cache_creation_input_tokens")
    output = _count(usage, "output_tokens")
    prompt = fresh + read + written
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output,
            "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written}}


def _count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and value > 0 else 0


def translate_message(message: dict[str, Any], plan: Plan, created: int) -> dict[str, Any]:
    """The chat.completion for one Anthropic message."""
    texts: list[str] = []
    answer: list[str] = []
    calls: list[dict[str, Any]] = []
    thoughts: list[str] = []
    details: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if block.get("name") == plan.json_tool:
                answer.append(arguments)
            else:
                calls.append({"id": block.get("id"), "type": "function",
                              "function": {"name": block.get("name"), "arguments": arguments}})
        elif kind == "thinking":
            thoughts.append(str(block.get("thinking") or ""))
            details.append({"type": "reasoning.text", "text": block.get("thinking"),
                            "signature": block.get("signature"),
                            "format": REASONING_FORMAT, "index": len(details)})
        elif kind == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": block.get("data"),
                            "format": REASONING_FORMAT, "index": len(details)})
    parts = answer if plan.json_tool is not None else texts
    out: dict[str, Any] = {"role": "assistant", "content": "".join(parts) if parts else None,
                           "refusal": None}
    if calls:
        out["tool_calls"] = calls
    if details and plan.reasoning:
        out["reasoning"] = out["reasoning_content"] = "".join(thoughts)
        out["reasoning_details"] = details
    usage = message.get("usage")
    return {
        "id": message.get("id"), "object": "chat.completion", "created": created,
        "model": message.get("model"),
        "choices": [{"index": 0, "message": out, "logprobs": None,
                     "finish_reason": finish_reason(message.get("stop_reason"),
                                                    called_tools=bool(calls))}],
        "usage": openai_usage(usage if isinstance(usage, dict) else {}),
    }


def translate_body(raw: bytes, plan: Plan, created: int) -> bytes | None:
    """The chat.completion bytes for an Anthropic message body; None if it is not one."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("type") != "message":
        return None
    return orjson.dumps(translate_message(message, plan, created))
