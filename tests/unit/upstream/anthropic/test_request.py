"""OpenAI chat requests → Anthropic Messages requests: golden pairs, and the 400s for what
Anthropic cannot do."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.errors import InvalidRequest
from sidecar.upstream.anthropic.request import JSON_TOOL, Plan, translate_request

HI = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {
    "name": "weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
WEATHER = {"name": "weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
PNG = "iVBORw0KGgo="
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def req(**fields: Any) -> dict[str, Any]:
    """The expected Anthropic request: the defaults of a one-message chat, plus `fields`."""
    return {"model": "claude-x", "messages": HI, "max_tokens": 4096, **fields}


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("minimal", {"messages": HI}, req()),
    ("system prompts in order, parts and cache_control kept", {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [
            {"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "More"}]},
        {"role": "system", "content": ""}]},
     req(system=[{"type": "text", "text": "Be brief."},
                 {"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}},
                 {"type": "text", "text": "More"}])),
    ("multi-turn", {"messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": [{"type": "text", "text": "again"}]}]},
     req(messages=[{"role": "user", "content": "hi"},
                   {"role": "assistant", "content": "Hello!"},
                   {"role": "user", "content": [{"type": "text", "text": "again"}]}])),
    ("images: data URL and https URL", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}",
                                            "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]},
     req(messages=[{"role": "user", "content": [
         {"type": "text", "text": "compare"},
         {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                      "data": PNG}},
         {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]}])),
    ("pdf file part", {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;"
                                                                   "base64,JVBERi0="}}]}]},
     req(messages=[{"role": "user", "content": [{"type": "document", "source": {
         "type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}]}])),
    ("tool calls and consecutive tool results merged", {"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function",
             "function": {"name": "weather", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
        {"role": "user", "content": "thanks"}], "tools": [TOOL]},
     req(messages=[
         {"role": "user", "content": "weather?"},
         {"role": "assistant", "content": [
             {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
             {"type": "tool_use", "id": "call_2", "name": "weather", "input": {}}]},
         {"role": "user", "content": [
             {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
             {"type": "tool_result", "tool_use_id": "call_2",
              "content": [{"type": "text", "text": "rain"}]}]},
         {"role": "user", "content": "thanks"}], tools=[WEATHER])),
    ("assistant text with tool call, empty assistant dropped", {"messages": [
        *HI, {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"},
        {"role": "assistant", "content": ""}], "tools": [TOOL]},
     req(messages=[*HI, {"role": "assistant", "content": [
         {"type": "text", "text": "Let me check."},
         {"type": "tool_use", "id": "c", "name": "weather", "input": {}}]},
         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c",
                                       "content": "ok"}]}], tools=[WEATHER])),
    ("thinking sent back before the tool call", {"messages": [*HI, {
        "role": "assistant", "content": None, "reasoning": "hmm",
        "reasoning_details": [{"type": "reasoning.text", "signature": "s1"},
                              {"type": "reasoning.encrypted", "data": "xyz"}],
        "tool_calls": [{"id": "c", "type": "function",
                        "function": {"name": "weather", "arguments": "{}"}}]}]},
     req(messages=[*HI, {"role": "assistant", "content": [
         {"type": "thinking", "thinking": "hmm", "signature": "s1"},
         {"type": "redacted_thinking", "data": "xyz"},
         {"type": "tool_use", "id": "c", "name": "weather", "input": {}}]}])),
    ("sampling, stop, limits, user", {
        "messages": HI, "max_completion_tokens": 100, "max_tokens": 50, "temperature": 0.2,
        "top_p": 0.9, "top_k": 40, "stop": "END", "user": "u-42", "seed": 7,
        "frequency_penalty": 0.5, "presence_penalty": 0, "n": 1, "logprobs": False,
        "store": False, "metadata": {"a": "b"}, "models": ["x"], "provider": {"order": ["y"]}},
     req(max_tokens=100, temperature=0.2, top_p=0.9, top_k=40, stop_sequences=["END"],
         metadata={"user_id": "u-42"})),
    ("stop list, safety_identifier as user", {
        "messages": HI, "stop": ["a", "", "b"], "safety_identifier": "s-1"},
     req(stop_sequences=["a", "b"], metadata={"user_id": "s-1"})),
    ("unknown fields pass through", {"messages": HI, "context_management": {"edits": []}},
     req(context_management={"edits": []})),
    ("tool_choice auto", {"messages": HI, "tools": [TOOL], "tool_choice": "auto"},
     req(tools=[WEATHER], tool_choice={"type": "auto"})),
    ("tool_choice none", {"messages": HI, "tools": [TOOL], "tool_choice": "none",
                          "parallel_tool_calls": False},
     req(tools=[WEATHER], tool_choice={"type": "none"})),
    ("tool_choice required", {"messages": HI, "tools": [TOOL], "tool_choice": "required"},
     req(tools=[WEATHER], tool_choice={"type": "any"})),
    ("tool_choice named", {"messages": HI, "tools": [TOOL], "tool_choice": {
        "type": "function", "function": {"name": "weather"}}},
     req(tools=[WEATHER], tool_choice={"type": "tool", "name": "weather"})),
    ("parallel_tool_calls false", {"messages": HI, "tools": [TOOL],
                                   "parallel_tool_calls": False},
     req(tools=[WEATHER], tool_choice={"type": "auto", "disable_parallel_tool_use": True})),
    ("tool_choice without tools", {"messages": HI, "tool_choice": "none"}, req()),
    ("reasoning effort high", {"messages": HI, "reasoning": {"effort": "high"}},
     req(max_tokens=4096 + 3276, thinking={"type": "enabled", "budget_tokens": 3276})),
    ("reasoning max_tokens with max_tokens", {"messages": HI, "max_tokens": 9000,
                                              "reasoning": {"max_tokens": 2000}},
     req(max_tokens=9000, thinking={"type": "enabled", "budget_tokens": 2000})),
    ("reasoning_effort low, minimum budget", {"messages": HI, "reasoning_effort": "low",
                                              "max_tokens": 2000},
     req(max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024})),
    ("reasoning off", {"messages": HI, "reasoning": {"enabled": False}}, req()),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_request_translation(body: dict[str, Any], expected: dict[str, Any]) -> None:
    """Each OpenAI request becomes exactly this Anthropic request."""
    out, _ = translate_request({"model": "anthropic/claude-x", **body}, "claude-x")
    assert out == expected


JSON_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("json_object", {"response_format": {"type": "json_object"}}, {
        "tools": [{"name": JSON_TOOL, "input_schema": {"type": "object"},
                   "description": "Give your answer as a JSON object: call this tool with it."}],
        "tool_choice": {"type": "tool", "name": JSON_TOOL}}),
    ("json_schema", {"response_format": {"type": "json_schema", "json_schema": {
        "name": "count", "description": "a count", "strict": True, "schema": SCHEMA}}}, {
        "tools": [{"name": JSON_TOOL, "input_schema": SCHEMA,
                   "description": "Give your answer as JSON matching the schema 'count' "
                                  "(a count): call this tool with it."}],
        "tool_choice": {"type": "tool", "name": JSON_TOOL}}),
    ("json_schema with tools: any tool", {"tools": [TOOL], "response_format": {
        "type": "json_schema", "json_schema": {"name": "count", "schema": SCHEMA}}}, {
        "tools": [WEATHER, {"name": JSON_TOOL, "input_schema": SCHEMA,
                            "description": "Give your answer as JSON matching the schema "
                                           "'count': call this tool with it."}],
        "tool_choice": {"type": "any"}}),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in JSON_CASES],
                         ids=[c[0] for c in JSON_CASES])
def test_response_format_is_a_forced_tool(body: dict[str, Any],
                                          expected: dict[str, Any]) -> None:
    """response_format becomes the answer tool, forced (or any tool when the client's may run)."""
    out, plan = translate_request({"model": "m", "messages": HI, **body}, "claude-x")
    assert {k: out[k] for k in ("tools", "tool_choice")} == expected
    assert plan.json_tool == JSON_TOOL


def test_response_format_with_a_named_tool_choice_leaves_the_answer_tool_out() -> None:
    """A forced client tool wins: no answer tool, so the content is not replaced."""
    out, plan = translate_request({"model": "m", "messages": HI, "tools": [TOOL],
                                   "tool_choice": "required",
                                   "response_format": {"type": "json_object"}}, "claude-x")
    assert out["tools"] == [WEATHER] and out["tool_choice"] == {"type": "any"}
    assert plan.json_tool is None


@pytest.mark.parametrize(("body", "plan"), [
    ({"stream": True}, Plan(stream=True)),
    ({"stream": True, "stream_options": {"include_usage": True}},
     Plan(stream=True, include_usage=True)),
    ({"stream_options": {"include_usage": True}}, Plan()),
    ({"reasoning": {"effort": "low", "exclude": True}}, Plan(reasoning=False)),
], ids=["stream", "stream-with-usage", "usage-without-stream", "reasoning-excluded"])
def test_plan(body: dict[str, Any], plan: Plan) -> None:
    """The plan says what the answer's translation must do; stream_options never go upstream."""
    out, got = translate_request({"model": "m", "messages": HI, **body}, "claude-x")
    assert got == plan
    assert "stream_options" not in out and out.get("stream") is (True if plan.stream else None)


@pytest.mark.parametrize(("body", "param"), [
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"modalities": ["text", "audio"]}, "audio"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {}}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-1"}}]}]}, "messages[0].content[0].file"),
    ({"messages": [{"role": "system", "content": [
        {"type": "image_url", "image_url": {"url": "https://x"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"tools": [{"type": "code_interpreter"}]}, "tools[0]"),
    ({"tools": {"type": "function"}}, "tools"),
    ({"tool_choice": "sometimes", "tools": [TOOL]}, "tool_choice"),
    ({"stop": 5}, "stop"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "a", "schema": {"type": "array"}}}}, "response_format.json_schema.schema"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"response_format": "json_object"}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": "x"}}, "response_format"),
    ({"reasoning": {"max_tokens": "x"}}, "reasoning.max_tokens"),
    ({"reasoning": {"max_tokens": [1]}}, "reasoning.max_tokens"),
    ({"reasoning": {"max_tokens": 0}}, "reasoning.max_tokens"),
    ({"response_format": {"type": "json_object"}, "reasoning": {"effort": "low"}},
     "response_format"),
    ({"response_format": {"type": "json_object"}, "thinking": {"type": "enabled",
                                                               "budget_tokens": 2000}},
     "response_format"),
    ({"response_format": {"type": "json_object"},
      "tools": [{"type": "function", "function": {"name": JSON_TOOL}}]}, "tools"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_what_anthropic_cannot_do_is_a_400_naming_the_field(body: dict[str, Any],
                                                            param: str) -> None:
    """Each unsupported or malformed field is an invalid_request naming where it is."""
    with pytest.raises(InvalidRequest) as caught:
        translate_request({"model": "m", "messages": HI, **body}, "claude-x")
    assert caught.value.param == param
    assert caught.value.status == 400 and caught.value.message
