"""Each endpoint's body is read into the same Shape: texts, the task, depth, tools, tool
results, images, schemas, an explicit reasoning effort and the output limit."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.auto.shapes import Shape, read

IMAGE = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}


def shape(endpoint: str, body: dict[str, Any]) -> Shape:
    found = read(endpoint, body)
    assert found is not None
    return found


def test_chat_completions() -> None:
    """Chat: system apart, the last user message is the task, tool results and calls counted,
    image parts counted, response_format's schema sized, reasoning_effort and the limit read."""
    s = shape("chat/completions", {
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "look"}, IMAGE]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "1", "content": "42"},
            {"role": "user", "content": "and now?"}],
        "tools": [{"type": "function"}] * 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": {
            "type": "object", "properties": {"a": {}, "b": {}}}}},
        "reasoning_effort": "high", "max_completion_tokens": 900})
    assert (s.system, s.task, s.messages, s.tool_results, s.tools, s.images) == (
        "Be terse.", "and now?", 4, 1, 3, 1)
    assert (s.schema, s.schema_fields, s.reasoning, s.max_output) == ("json_schema", 2, "high",
                                                                       900)
    assert s.texts == ["Be terse.", "look", "{}", "42", "and now?"]


@pytest.mark.parametrize(("reasoning", "effort"), [
    ({"effort": "low"}, "low"), ({"enabled": True}, "medium"), ({"enabled": False}, "none"),
    ({"max_tokens": 2000}, "budget"), ({"effort": "bogus"}, None), ("high", None)])
def test_openrouter_reasoning_object(reasoning: Any, effort: str | None) -> None:
    """OpenRouter's `reasoning` object becomes one effort word; a malformed one is ignored."""
    assert shape("chat/completions", {"messages": [], "reasoning": reasoning}).reasoning == effort


def test_completions() -> None:
    """Completions: the prompt (a string or strings) is the task; token-id prompts are no text."""
    s = shape("completions", {"prompt": ["a", "bc", [1, 2]], "max_tokens": 5})
    assert (s.texts, s.task, s.messages, s.max_output) == (["a", "bc"], "bc", 1, 5)


def test_responses() -> None:
    """Responses: instructions are the system, input items counted, function outputs are tool
    results, text.format's schema and reasoning.effort read."""
    s = shape("responses", {
        "instructions": "sys", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "q"},
                                         {"type": "input_image", "image_url": "u"}]},
            {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{\"x\":1}"},
            {"type": "function_call_output", "call_id": "a", "output": "out"}],
        "tools": [{"type": "function", "name": "f"}], "reasoning": {"effort": "medium"},
        "text": {"format": {"type": "json_schema", "name": "o", "schema": {
            "properties": {"a": {}}}}}, "max_output_tokens": 77})
    assert (s.system, s.task, s.messages, s.tool_results, s.tools, s.images) == (
        "sys", "q", 3, 1, 1, 1)
    assert (s.schema, s.schema_fields, s.reasoning, s.max_output) == ("json_schema", 1,
                                                                       "medium", 77)
    assert shape("responses", {"input": "just text"}).task == "just text"


def test_anthropic_messages() -> None:
    """Messages: system blocks, tool_use and tool_result blocks (a user turn carrying only a
    tool result is no new task), images, thinking as a budget, output_format."""
    s = shape("messages", {
        "system": [{"type": "text", "text": "sys"}], "max_tokens": 1024,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "tools": [{"name": "bash", "input_schema": {}}],
        "output_format": {"type": "json_schema", "schema": {"properties": {"a": {}}}},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "run it"},
                                         {"type": "image", "source": {}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "bash",
                                               "input": {"cmd": "ls"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                          "content": "a.txt"}]}]})
    assert (s.system, s.task, s.messages, s.tool_results, s.tools, s.images) == (
        "sys", "run it", 3, 1, 1, 1)
    assert (s.reasoning, s.schema, s.max_output) == ("budget", "json_schema", 1024)


@pytest.mark.parametrize("endpoint", ["embeddings", "images/generations", None])
def test_endpoints_without_a_reader(endpoint: str | None) -> None:
    """Endpoints a tier cannot serve have no reader: the stage refuses them by name."""
    assert read(endpoint, {"input": "x"}) is None


@pytest.mark.parametrize("body", [
    {"messages": "nope"}, {"messages": [1, None, {"role": "user", "content": 5}]},
    {"input": 3}, {"tools": "x", "response_format": "json"}, {}])
def test_malformed_fields_are_skipped(body: dict[str, Any]) -> None:
    """A malformed body is read as far as it goes, never raised on (the upstream judges it)."""
    for endpoint in ("chat/completions", "responses", "messages", "completions"):
        assert read(endpoint, body) is not None
