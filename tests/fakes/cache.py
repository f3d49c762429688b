"""Helpers for the cache tests: answers with tool calls, folding SDK results into one
comparable shape, and an injectable wall clock."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.fakes.upstream import Event


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


BASE = {"id": "chatcmpl-tools", "created": 1700000001, "model": "m-answered",
        "system_fingerprint": "fp_1"}
TOOL_CALLS = [
    {"id": "call_a", "type": "function",
     "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
    {"id": "call_b", "type": "function",
     "function": {"name": "get_time", "arguments": "{\"tz\": \"CET\"}"}},
]
USAGE = {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42, "cost": 0.0021}


def tool_answer() -> dict[str, Any]:
    """A chat.completion whose answer is two tool calls (and a little text)."""
    return {**BASE, "object": "chat.completion", "choices": [{
        "index": 0, "logprobs": None, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": "Let me check.", "refusal": None,
                    "tool_calls": TOOL_CALLS}}], "usage": USAGE}


def tool_chunks() -> list[Event]:
    """The same answer as a stream: arguments split over deltas, as providers send them."""
    base = {**BASE, "object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": finish}]}

    events: list[Event] = [chunk({"role": "assistant", "content": ""}),
                           chunk({"content": "Let me"}), chunk({"content": " check."})]
    for i, call in enumerate(TOOL_CALLS):
        args = call["function"]["arguments"]
        events.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"],
                                                          "arguments": ""}}]}))
        events += [chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]})
                   for part in (args[:5], args[5:])]
    events.append(chunk({}, "tool_calls"))
    events.append({**base, "choices": [], "usage": USAGE})
    return events


def from_completion(answer: ChatCompletion) -> dict[str, Any]:
    """What an application reads from a non-streamed answer."""
    choice = answer.choices[0]
    message = choice.message
    return {
        "id": answer.id, "model": answer.model, "content": message.content,
        "finish_reason": choice.finish_reason,
        "tool_calls": [(c.id, c.function.name, c.function.arguments)
                       for c in message.tool_calls or []],
        "usage": (answer.usage.prompt_tokens, answer.usage.completion_tokens)
        if answer.usage else None,
    }


def from_chunks(chunks: Iterable[ChatCompletionChunk]) -> dict[str, Any]:
    """What an application assembles from a stream (the same fields)."""
    out: dict[str, Any] = {"id": None, "model": None, "content": None, "finish_reason": None,
                           "tool_calls": [], "usage": None}
    calls: dict[int, list[str]] = {}
    for chunk in chunks:
        out["id"], out["model"] = chunk.id, chunk.model
        if chunk.usage is not None:
            out["usage"] = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content is not None:
                out["content"] = (out["content"] or "") + delta.content
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, ["", "", ""])
                if call.id:
                    entry[0] = call.id
                if call.function and call.function.name:
                    entry[1] += call.function.name
                if call.function and call.function.arguments:
                    entry[2] += call.function.arguments
            if choice.finish_reason is not None:
                out["finish_reason"] = choice.finish_reason
    out["tool_calls"] = [tuple(calls[i]) for i in sorted(calls)]
    return out
