"""Messages request → chat completions request: each field, each block, the target's dialect,
and the 400s for what an OpenAI-format provider cannot do."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.errors import InvalidRequest
from sidecar.upstream.messages.request import Plan, Target, translate_request

OPENROUTER = Target(openrouter=True)


PLAIN = Target()


def translate(target: Target = PLAIN, **body: Any) -> tuple[dict[str, Any], Plan]:
    return translate_request({"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
                              **body}, "m", target)


def test_system_blocks_become_one_system_message_first() -> None:
    """System text blocks join into the first message (kept as parts, cache_control and all,
    for OpenRouter)."""
    system = [{"type": "text", "text": "A."}, {"type": "text", "text": "B.",
                                               "cache_control": {"type": "ephemeral"}}]
    plain, _ = translate(system=system)
    assert plain["messages"][0] == {"role": "system", "content": "A.\n\nB."}
    routed, _ = translate(OPENROUTER, system=system)
    assert routed["messages"][0]["content"][1] == {
        "type": "text", "text": "B.", "cache_control": {"type": "ephemeral"}}


def test_user_blocks() -> None:
    """Text, base64 and URL images, PDF and plain-text documents become OpenAI parts."""
    out, _ = translate(messages=[{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "AAA="}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": "JVB="}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "notes"}}]}])
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA="}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
        {"type": "file", "file": {"filename": "document.pdf",
                                  "file_data": "data:application/pdf;base64,JVB="}},
        {"type": "text", "text": "notes"}]}]


def test_tool_results_come_first_and_carry_their_images_after() -> None:
    """Tool results become tool messages right after the call; a result's image and the
    turn's other blocks follow in one user message."""
    image = {"type": "image", "source": {"type": "url", "url": "https://x.test/s.png"}}
    out, _ = translate(messages=[
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "text", "text": "Calling."},
                                          {"type": "tool_use", "id": "t1", "name": "shot",
                                           "input": {"w": 1}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "and?"},
            {"type": "tool_result", "tool_use_id": "t1", "is_error": False,
             "content": [{"type": "text", "text": "done"}, image]}]}])
    assert out["messages"][1] == {"role": "assistant", "content": "Calling.", "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "shot", "arguments": '{"w":1}'}}]}
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "done"}
    assert out["messages"][3] == {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x.test/s.png"}},
        {"type": "text", "text": "and?"}]}


def test_thinking_goes_back_only_where_the_target_takes_it() -> None:
    """Thinking blocks sent back become OpenRouter's reasoning_details (signature kept);
    other targets get none (DeepSeek refuses reasoning sent back)."""
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "redacted_thinking", "data": "enc"}, {"type": "text", "text": "a"}]},
        {"role": "user", "content": "more"}]
    routed, _ = translate(OPENROUTER, messages=messages,
                          thinking={"type": "enabled", "budget_tokens": 2048})
    turn = routed["messages"][1]
    assert turn["reasoning"] == "hmm" and [d["type"] for d in turn["reasoning_details"]] == [
        "reasoning.text", "reasoning.encrypted"]
    assert turn["reasoning_details"][0]["signature"] == "sig"
    assert routed["reasoning"] == {"max_tokens": 2048}
    plain, _ = translate(messages=messages, thinking={"type": "enabled", "budget_tokens": 2048})
    assert plain["messages"][1] == {"role": "assistant", "content": "a"}
    assert "reasoning" not in plain


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "w"}, {"type": "function", "function": {"name": "w"}}),
])
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    """Each of Anthropic's tool_choice types has its OpenAI counterpart."""
    out, _ = translate(tools=[{"name": "w", "input_schema": {"type": "object"}}],
                       tool_choice=choice)
    assert out["tool_choice"] == expected
    assert out["tools"] == [{"type": "function", "function": {
        "name": "w", "parameters": {"type": "object"}}}]


def test_fields_and_dialects() -> None:
    """max_tokens in the field the target takes, sampling, stops, user, streamed usage;
    top_k only where it exists (OpenRouter); output_format as response_format."""
    schema = {"type": "object", "properties": {}}
    out, plan = translate(Target(openai=True), temperature=0.5, top_p=0.9, top_k=5,
                          stop_sequences=["END"], metadata={"user_id": "u1"}, stream=True,
                          output_format={"type": "json_schema", "schema": schema},
                          service_tier="auto")
    assert out == {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                   "max_completion_tokens": 10, "temperature": 0.5, "top_p": 0.9,
                   "stop": ["END"], "user": "u1", "stream": True,
                   "stream_options": {"include_usage": True},
                   "response_format": {"type": "json_schema", "json_schema": {
                       "name": "output", "schema": schema, "strict": True}}}
    assert plan == Plan("m", stream=True, stop_sequences=("END",))
    routed, _ = translate(OPENROUTER, top_k=5)
    assert routed["top_k"] == 5 and routed["max_tokens"] == 10


def test_zero_retention_asks_openrouter() -> None:
    """In ZDR mode OpenRouter is told to route only to providers that retain nothing."""
    out, _ = translate_request({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]},
                               "m", OPENROUTER, zdr=True)
    assert out["provider"] == {"data_collection": "deny", "zdr": True}


@pytest.mark.parametrize(("body", "param"), [
    ({"max_tokens": 0}, "max_tokens"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
    ({"mcp_servers": [{"url": "https://x"}]}, "mcp_servers"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "server_tool_use"}]}]},
     "messages[0].content[0]"),
    ({"tool_choice": {"type": "sometimes"}, "tools": [{"name": "w"}]}, "tool_choice"),
    ({"thinking": {"type": "enabled", "budget_tokens": "lots"}}, "thinking.budget_tokens"),
])
def test_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    """What an OpenAI-format provider cannot do is a 400 naming where it is."""
    with pytest.raises(InvalidRequest) as caught:
        translate(OPENROUTER, **body)
    assert caught.value.param == param
