"""Shared pieces of the /v1/messages tests: an Anthropic-format and an OpenAI-format provider,
the official Anthropic SDK as the client, and OpenAI answers to script."""

from __future__ import annotations

from typing import Any

import anthropic as sdk
import orjson

from tests.conftest import RunningSidecar
from tests.fakes.upstream import Event

CLAUDE = "anthropic/claude-test-1"  # served natively by the Anthropic-format provider
GPT = "chat/model-1"  # served by the OpenAI-format provider, translated
ANTHROPIC_KEY = "sk-ant-provider"
CHAT_KEY = "sk-chat-provider"
HI = [{"role": "user", "content": "hi"}]
WEATHER = {"name": "weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def providers(anthropic_url: str, openai_url: str) -> dict[str, Any]:
    return {"providers": [
        {"name": "claude", "base_url": anthropic_url, "format": "anthropic",
         "api_key": ANTHROPIC_KEY, "models": ["anthropic/*"], "strip_prefix": True},
        {"name": "chat", "base_url": openai_url, "api_key": CHAT_KEY, "models": ["chat/*"]}]}


def client_for(sidecar: RunningSidecar, key: str = "sk-client", *, bearer: bool = False
               ) -> sdk.AsyncAnthropic:
    """The official async SDK pointed at the sidecar, as ANTHROPIC_BASE_URL would. Its key
    goes in `x-api-key`, as Claude Code sends it (this SDK's own default is a bearer token,
    which `bearer` keeps)."""
    if bearer:
        return sdk.AsyncAnthropic(base_url=sidecar.url, api_key=key, max_retries=0)
    return sdk.AsyncAnthropic(base_url=sidecar.url, api_key=None, max_retries=0,
                              default_headers={"x-api-key": key})


def completion(message: dict[str, Any], finish: str | None = "stop",
               usage: dict[str, Any] | None = None, **choice: Any) -> dict[str, Any]:
    """A chat.completion holding `message`."""
    return {"id": "chatcmpl-x1", "object": "chat.completion", "created": 1700000000,
            "model": "chat/model-1",
            "choices": [{"index": 0, "message": {"role": "assistant", **message},
                         "finish_reason": finish, **choice}],
            "usage": usage or {"prompt_tokens": 20, "completion_tokens": 8,
                               "total_tokens": 28}}


def tool_call(id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": id, "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}


def chunks(*deltas: dict[str, Any], finish: str | None = "stop",
           usage: dict[str, Any] | None = None, **choice: Any) -> list[Event]:
    """chat.completion.chunk events: one per delta, the finish, the usage chunk."""
    base = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "chat/model-1"}
    events: list[Event] = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                         "content": ""},
                                                 "finish_reason": None}]}]
    events += [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
               for d in deltas]
    if finish is not None:
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish,
                                            **choice}]})
    events.append({**base, "choices": [], "usage": usage or {
        "prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}})
    return events


def tool_deltas(id: str, name: str, arguments: str, index: int = 0) -> list[dict[str, Any]]:
    """A streamed tool call: its id and name, then its arguments in two pieces."""
    half = len(arguments) // 2
    return [{"tool_calls": [{"index": index, "id": id, "type": "function",
                             "function": {"name": name, "arguments": ""}}]},
            {"tool_calls": [{"index": index, "function": {"arguments": arguments[:half]}}]},
            {"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]}]


def events_of(raw: bytes) -> list[dict[str, Any]]:
    """The JSON of each event of an Anthropic stream, with its `event:` name checked."""
    out = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        lines = block.split(b"\n")
        name = next(line[7:] for line in lines if line.startswith(b"event: "))
        data = orjson.loads(next(line[6:] for line in lines if line.startswith(b"data: ")))
        assert data["type"] == name.decode(), block
        out.append(data)
    return out
