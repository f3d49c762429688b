"""GenAI attribute values from a request body and usage, and the opt-in content shapes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sidecar.call import Usage
from sidecar.telemetry import content
from sidecar.telemetry.genai import Upstreams, request_attributes, usage_attributes


@pytest.mark.parametrize(("url", "provider", "address", "port"), [
    ("https://openrouter.ai/api/v1", "openrouter", "openrouter.ai", 443),
    ("https://api.openai.com/v1", "openai", "api.openai.com", 443),
    ("https://my-res.openai.azure.com/openai", "azure.ai.openai", "my-res.openai.azure.com", 443),
    ("http://127.0.0.1:8000/v1", "vllm-local", "127.0.0.1", 8000),
    ("http://ollama/v1", "vllm-local", "ollama", 80),
])
def test_provider_names_and_addresses(url: str, provider: str, address: str,
                                      port: int) -> None:
    """Known hosts get the conventions' provider name; others keep the configured name."""
    upstream = Upstreams({"vllm-local": url}).get("vllm-local")
    assert upstream is not None
    assert (upstream.provider, upstream.address, upstream.port) == (provider, address, port)


@pytest.mark.parametrize(("body", "expected"), [
    ({"temperature": 0, "top_p": 0.9, "max_tokens": 10, "seed": 3, "n": 2, "stop": "\n"},
     {"gen_ai.request.temperature": 0.0, "gen_ai.request.top_p": 0.9,
      "gen_ai.request.max_tokens": 10, "gen_ai.request.seed": 3,
      "gen_ai.request.choice.count": 2, "gen_ai.request.stop_sequences": ("\n",)}),
    ({"max_completion_tokens": 5, "max_tokens": 9, "n": 1, "stop": ["a", "b"]},
     {"gen_ai.request.max_tokens": 5, "gen_ai.request.stop_sequences": ("a", "b")}),
    ({"max_output_tokens": 7, "response_format": {"type": "json_schema"}},
     {"gen_ai.request.max_tokens": 7, "gen_ai.output.type": "json"}),
    ({"temperature": "hot", "top_p": True, "max_tokens": 1.5, "seed": "x", "stop": [1],
      "frequency_penalty": None, "response_format": "json"}, {}),
])
def test_request_parameters_are_taken_only_with_the_right_type(
        body: dict[str, Any], expected: dict[str, Any]) -> None:
    """Well-typed parameters become gen_ai.request.*; anything malformed is left out."""
    assert request_attributes({"model": "m", **body}, {}, stream=False) == expected


def test_overrides_win_and_stream_is_flagged() -> None:
    """A per-model override (spend's max_tokens cap) is what went upstream, so it is reported."""
    got = request_attributes({"max_tokens": 4000}, {"max_tokens": 256}, stream=True)
    assert got == {"gen_ai.request.max_tokens": 256, "gen_ai.request.stream": True}


def test_usage_attributes_report_details_only_when_present() -> None:
    """Input includes cached tokens and output reasoning ones (OpenAI's counting); zero
    details are left out."""
    assert usage_attributes(Usage(prompt_tokens=3, completion_tokens=4)) == {
        "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4}
    full = usage_attributes(Usage(10, 8, cached_tokens=6, cache_write_tokens=2,
                                  reasoning_tokens=5))
    assert full["gen_ai.usage.cache_read.input_tokens"] == 6
    assert full["gen_ai.usage.cache_creation.input_tokens"] == 2
    assert full["gen_ai.usage.reasoning.output_tokens"] == 5


def test_input_messages_follow_the_conventions_schema() -> None:
    """System prompts become gen_ai.system_instructions; other messages role + parts, tool
    calls and tool results as their own part types, images by kind only."""
    got = content.input_attributes({"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:..."}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]})
    assert orjson.loads(got["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "be brief"}]
    assert orjson.loads(got["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "look"}, {"type": "image_url"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "f",
                                         "arguments": "{\"a\":1}"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1",
                                    "response": "42"}]},
    ]
    prompt = content.input_attributes({"prompt": "Once"})
    assert orjson.loads(prompt["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Once"}]}]


def test_output_messages_from_a_body_or_a_stream() -> None:
    """A JSON answer's choices, or the text deltas of a stream, as assistant messages."""
    body = orjson.dumps({"choices": [{"message": {"role": "assistant", "content": "Hi"},
                                      "finish_reason": "length"}]})
    assert orjson.loads(content.output_attribute(body, None, None)[
        "gen_ai.output.messages"]) == [{"role": "assistant", "finish_reason": "length",
                                        "parts": [{"type": "text", "content": "Hi"}]}]
    stream = content.StreamText()
    for piece in ("Hel", "lo"):
        stream.feed(b"data: " + orjson.dumps({"choices": [{"delta": {"content": piece}}]})
                    + b"\n\n")
    stream.feed(b"data: [DONE]\n\n")
    out = orjson.loads(content.output_attribute(None, stream, "stop")["gen_ai.output.messages"])
    assert out == [{"role": "assistant", "finish_reason": "stop",
                    "parts": [{"type": "text", "content": "Hello"}]}]
    assert content.output_attribute(b"not json", None, None) == {}
