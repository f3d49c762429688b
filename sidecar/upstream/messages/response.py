"""An OpenAI chat.completion → an Anthropic message; stop reasons and usage.

    reasoning / reasoning_content  → a thinking block first (its signature from OpenRouter's
                                     reasoning_details when there is one, else "");
                                     reasoning.encrypted details → redacted_thinking blocks
    content                        → a text block
    refusal                        → a text block, and stop_reason refusal
    tool_calls                     → tool_use blocks, arguments parsed (`{}` when they are not
                                     a JSON object: a cut answer's half-written arguments)

stop_reason, from the finish reason and what the answer holds, so an agent is never told a
turn ended when it called tools, nor left without a reason:

    tool calls in the answer (whatever the finish reason but length)   → tool_use
    length                                                             → max_tokens
    content_filter, or a refusal                                       → refusal
    stop, when a stop sequence matched (vLLM's `stop_reason`, OpenRouter's
      `native_finish_reason: stop_sequence`)                           → stop_sequence
    stop, missing, anything else                                       → end_turn

Usage: Anthropic counts cache reads and writes apart from `input_tokens`, OpenAI inside
`prompt_tokens`; OpenRouter's `usage.cost` is kept (`usage.cost`), so spend bills what OpenRouter
charged, as it does on the OpenAI wire.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from sidecar.errors import UpstreamUnavailable
from sidecar.upstream.messages.request import Plan

Block = dict[str, Any]


def stop_reason(finish: Any, *, tools: bool, refused: bool, stop_match: Any,
                plan: Plan) -> tuple[str, str | None]:
    """Anthropic's (stop_reason, stop_sequence) for a choice."""
    if finish == "length":
        return "max_tokens", None
    if tools:
        return "tool_use", None
    if finish == "content_filter" or refused:
        return "refusal", None
    if isinstance(stop_match, str) and stop_match in plan.stop_sequences:
        return "stop_sequence", stop_match
    if stop_match is True:  # matched, but the upstream did not say which
        return "stop_sequence", None
    return "end_turn", None


def stop_match(choice: dict[str, Any]) -> Any:
    """Which stop sequence ended a choice, when the upstream says: vLLM's `stop_reason` (the
    string), or True for OpenRouter's native `stop_sequence`."""
    matched = choice.get("stop_reason")
    if isinstance(matched, str):
        return matched
    return choice.get("native_finish_reason") == "stop_sequence" or None


def anthropic_usage(usage: Any) -> dict[str, Any]:
    """Anthropic's usage object for OpenAI's (zeros when the upstream reported none)."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = _count(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    read = write = 0
    if isinstance(details, dict):
        read = _count(details.get("cached_tokens"))
        write = _count(details.get("cache_write_tokens"))
    out: dict[str, Any] = {"input_tokens": max(0, prompt - read - write),
                           "cache_creation_input_tokens": write,
                           "cache_read_input_tokens": read,
                           "output_tokens": _count(usage.get("completion_tokens"))}
    cost: Any = usage.get("cost")
    if type(cost) in (int, float) and cost >= 0:
        out["cost"] = cost
    return out


def _count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


def message_id(upstream_id: Any) -> str:
    """The answer's id: the upstream's, so both logs name the same answer."""
    if isinstance(upstream_id, str) and upstream_id:
        return upstream_id
    return f"msg_{random.getrandbits(96):024x}"


def thinking_blocks(message: dict[str, Any]) -> list[Block]:
    """The thinking blocks of an OpenAI message (reasoning text, OpenRouter's details)."""
    text = message.get("reasoning")
    if not isinstance(text, str):
        text = message.get("reasoning_content")
    details = message.get("reasoning_details")
    blocks: list[Block] = []
    signature = ""
    if isinstance(details, list):
        for detail in details:
            if not isinstance(detail, dict):
                continue
            if detail.get("type") == "reasoning.encrypted" and isinstance(
                    data := detail.get("data"), str):
                blocks.append({"type": "redacted_thinking", "data": data})
            elif detail.get("type") == "reasoning.text":
                if isinstance(sig := detail.get("signature"), str):
                    signature = sig
                if not isinstance(text, str) and isinstance(detail.get("text"), str):
                    text = detail["text"]
    if isinstance(text, str) and text:
        blocks.insert(0, {"type": "thinking", "thinking": text, "signature": signature})
    return blocks


def tool_input(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def translate_completion(answer: dict[str, Any], plan: Plan) -> dict[str, Any] | None:
    """The Anthropic message for a chat.completion; None when it is not one."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        return None
    if choice.get("finish_reason") == "error":  # OpenRouter: the generation failed mid-way
        raise UpstreamUnavailable("The upstream ended its answer with finish_reason 'error': "
                                  "the answer is incomplete.")
    content: list[Block] = thinking_blocks(message)
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{len(content)}",
                        "name": function.get("name") or "",
                        "input": tool_input(function.get("arguments"))})
    reason, sequence = stop_reason(
        choice.get("finish_reason"), tools=any(b["type"] == "tool_use" for b in content),
        refused=isinstance(refusal, str) and bool(refusal), stop_match=stop_match(choice),
        plan=plan)
    if not content:
        content.append({"type": "text", "text": ""})  # clients read content[0]
    model = answer.get("model")
    return {"id": message_id(answer.get("id")), "type": "message", "role": "assistant",
            "model": model if isinstance(model, str) and model else plan.model,
            "content": content, "stop_reason": reason, "stop_sequence": sequence,
            "usage": anthropic_usage(answer.get("usage"))}


def translate_body(raw: bytes, plan: Plan) -> bytes | None:
    """The Anthropic message bytes for a chat.completion body; None if it is not one."""
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict):
        return None
    message = translate_completion(answer, plan)
    return None if message is None else orjson.dumps(message)
