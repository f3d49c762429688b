"""An Anthropic answer's facts for the answer record: usage, stop reason, model and id.

A message (`{"type": "message", "id", "model", "stop_reason", "usage"}`) is read whole; a
stream event by event: `message_start` carries the id, the model and the input counts,
`message_delta` the stop reason and the running output count (newer models repeat the input
counts there: the latest value of each wins), an `error` event marks the answer failed (the
cache never stores it). Usage is kept in OpenAI's terms, as every stage reads it: prompt tokens
are Anthropic's input tokens plus its cache reads and cache writes (which Anthropic counts
apart), so pricing bills each at its own rate. A `cost` in the usage (OpenRouter's, which the
translation from an OpenAI-format upstream keeps) is the answer's cost, as on the OpenAI wire.
"""

from __future__ import annotations

from typing import Any

from sidecar.call import Answer, Usage

# Anthropic's stop_reason → OpenAI's finish_reason (Answer.finish_reason's vocabulary).
FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}
_MAX_TOKENS = 2**31  # a figure beyond this is an upstream's bug, read as missing (answer.py)


def note_message(answer: Answer, data: dict[str, Any]) -> None:
    """Take the facts of one Anthropic message or stream event."""
    kind = data.get("type")
    if kind == "message_start":
        message = data.get("message")
        if isinstance(message, dict):
            _identity(answer, message)
            if isinstance(usage := message.get("usage"), dict):
                answer.usage = merged_usage(answer.usage, usage)
    elif kind == "message_delta":
        delta = data.get("delta")
        if isinstance(delta, dict):
            _stop(answer, delta.get("stop_reason"))
        if isinstance(usage := data.get("usage"), dict):
            answer.usage = merged_usage(answer.usage, usage)
    elif kind == "message":
        _identity(answer, data)
        _stop(answer, data.get("stop_reason"))
        if isinstance(usage := data.get("usage"), dict):
            answer.usage = merged_usage(None, usage)
    elif kind == "error":
        answer.finish_reason = "error"


def _identity(answer: Answer, message: dict[str, Any]) -> None:
    if isinstance(model := message.get("model"), str):
        answer.model = model
    if isinstance(answer_id := message.get("id"), str):
        answer.id = answer_id


def _stop(answer: Answer, reason: Any) -> None:
    if isinstance(reason, str):
        answer.finish_reason = FINISH_REASONS.get(reason, "stop")


def merged_usage(into: Usage | None, usage: dict[str, Any]) -> Usage | None:
    """`into` with the counts `usage` carries (a count it lacks keeps its value). A usage of
    zeros is no report (`into` is kept): Anthropic counts at least one input and one output
    token, and a translated stream starts with zeros until the upstream's usage arrives (a
    stream that never gets it is then billed as estimated, not as free)."""
    if not any(type(v) is int and v > 0 for v in usage.values()):
        return into
    base = into or Usage()
    read = _count(usage, "cache_read_input_tokens", base.cached_tokens)
    write = _count(usage, "cache_creation_input_tokens", base.cache_write_tokens)
    fresh = _count(usage, "input_tokens",
                   base.prompt_tokens - base.cached_tokens - base.cache_write_tokens)
    output = _count(usage, "output_tokens", base.completion_tokens)
    cost: Any = usage.get("cost", base.cost_usd)  # OpenRouter's, kept by the translation
    return Usage(prompt_tokens=fresh + read + write, completion_tokens=output,
                 cached_tokens=read, cache_write_tokens=write,
                 cost_usd=float(cost) if type(cost) in (int, float) and 0 <= cost < 1e6
                 else None)


def _count(usage: dict[str, Any], name: str, default: int) -> int:
    value = usage.get(name)
    if type(value) is int:
        return value if 0 <= value < _MAX_TOKENS else 0
    return default


def anthropic_usage(usage: Usage) -> dict[str, int]:
    """A Usage as Anthropic spells it (input tokens without the cache's)."""
    return {"input_tokens": max(0, usage.prompt_tokens - usage.cached_tokens
                                - usage.cache_write_tokens),
            "cache_creation_input_tokens": usage.cache_write_tokens,
            "cache_read_input_tokens": usage.cached_tokens,
            "output_tokens": usage.completion_tokens}
