"""Anthropic answers → OpenAI shapes: messages, usage, stop reasons, errors and model lists."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sidecar.answer import parse_usage
from sidecar.call import Usage
from sidecar.upstream.anthropic.errors import AnthropicStreamError, translate_error
from sidecar.upstream.anthropic.models import translate_models
from sidecar.upstream.anthropic.request import JSON_TOOL, Plan
from sidecar.upstream.anthropic.response import finish_reason, openai_usage, translate_body
from tests.fakes.anthropic import message, text, thinking, tool_use

USAGE = {"input_tokens": 12, "output_tokens": 5, "cache_creation_input_tokens": 0,
         "cache_read_input_tokens": 0}
OPENAI_USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}}


def completion(msg: dict[str, Any], plan: Plan | None = None) -> dict[str, Any]:
    raw = translate_body(orjson.dumps(msg), plan or Plan(), 1700000000)
    assert raw is not None
    result: dict[str, Any] = orjson.loads(raw)
    return result


def test_text_message() -> None:
    """A text answer becomes a whole chat.completion, id, model and usage included."""
    assert completion(message(text("Hello"), text(" there"))) == {
        "id": "msg_01Test", "object": "chat.completion", "created": 1700000000,
        "model": "claude-test-1",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hello there",
                                 "refusal": None}}],
        "usage": OPENAI_USAGE}


def test_tool_calls() -> None:
    """tool_use blocks become tool_calls with the input as a JSON arguments string."""
    out = completion(message(text("Checking."), tool_use("toolu_1", "weather", {"city": "Oslo"}),
                             tool_use("toolu_2", "time", {}), stop_reason="tool_use"))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    assert choice["message"]["tool_calls"] == [
        {"id": "toolu_1", "type": "function",
         "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
        {"id": "toolu_2", "type": "function", "function": {"name": "time", "arguments": "{}"}}]


def test_json_answer_tool_becomes_the_content() -> None:
    """With response_format, the answer tool's input is the content and the turn stopped."""
    out = completion(message(text("Sure:"), tool_use("toolu_1", JSON_TOOL, {"n": 3}),
                             stop_reason="tool_use"), Plan(json_tool=JSON_TOOL))
    choice = out["choices"][0]
    assert choice["message"]["content"] == "{\"n\":3}"
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"


def test_thinking_becomes_reasoning() -> None:
    """Thinking is reasoning / reasoning_content, with signed reasoning_details to send back."""
    msg = message(thinking("Let me think.", "sig-9"), {"type": "redacted_thinking", "data": "e"},
                  text("42"))
    out = completion(msg)["choices"][0]["message"]
    assert out["content"] == "42"
    assert out["reasoning"] == out["reasoning_content"] == "Let me think."
    assert out["reasoning_details"] == [
        {"type": "reasoning.text", "text": "Let me think.", "signature": "sig-9",
         "format": "anthropic-claude-v1", "index": 0},
        {"type": "reasoning.encrypted", "data": "e", "format": "anthropic-claude-v1",
         "index": 1}]
    hidden = completion(msg, Plan(reasoning=False))["choices"][0]["message"]
    assert "reasoning" not in hidden and "reasoning_details" not in hidden


@pytest.mark.parametrize(("stop_reason", "called", "expected"), [
    ("end_turn", False, "stop"), ("stop_sequence", False, "stop"), ("max_tokens", False, "length"),
    ("tool_use", True, "tool_calls"), ("tool_use", False, "stop"),
    ("refusal", False, "content_filter"), ("pause_turn", False, "stop"),
    ("model_context_window_exceeded", False, "length"), ("something_new", False, "stop"),
    (None, False, None),
])
def test_finish_reasons(stop_reason: str | None, called: bool, expected: str | None) -> None:
    """Each Anthropic stop_reason maps to OpenAI's finish_reason."""
    assert finish_reason(stop_reason, called_tools=called) == expected


@pytest.mark.parametrize(("usage", "expected"), [
    (USAGE, Usage(12, 5)),
    ({"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 1000,
      "cache_creation_input_tokens": 200}, Usage(1210, 7, cached_tokens=1000,
                                                 cache_write_tokens=200)),
    ({"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": None}, Usage(3, 1)),
], ids=["plain", "cache-read-and-write", "null-cache-counts"])
def test_usage_as_every_feature_reads_it(usage: dict[str, Any], expected: Usage) -> None:
    """prompt_tokens counts cache reads and writes; answer.parse_usage reads the details."""
    translated = openai_usage(usage)
    assert translated["total_tokens"] == expected.prompt_tokens + expected.completion_tokens
    assert parse_usage(translated) == expected


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"type": "error"}'])
def test_a_body_that_is_not_a_message(raw: bytes) -> None:
    """A 200 body that is not an Anthropic message is not translated (the provider says so)."""
    assert translate_body(raw, Plan(), 0) is None


ERRORS = [
    (400, "invalid_request_error", 400, "invalid_request_error"),
    (401, "authentication_error", 401, "authentication_error"),
    (403, "permission_error", 403, "permission_error"),
    (404, "not_found_error", 404, "not_found_error"),
    (413, "request_too_large", 413, "invalid_request_error"),
    (429, "rate_limit_error", 429, "rate_limit_error"),
    (500, "api_error", 500, "server_error"),
    (529, "overloaded_error", 503, "server_error"),
]


@pytest.mark.parametrize(("status", "kind", "out_status", "out_type"), ERRORS,
                         ids=[e[1] for e in ERRORS])
def test_errors(status: int, kind: str, out_status: int, out_type: str) -> None:
    """Each Anthropic error gets OpenAI's shape and status; Anthropic's type is the code."""
    raw = orjson.dumps({"type": "error", "error": {"type": kind, "message": "Went wrong"},
                        "request_id": "req_1"})
    got_status, body = translate_error(status, raw, "claude")
    assert got_status == out_status
    assert orjson.loads(body) == {"error": {
        "message": "Went wrong", "type": out_type, "code": kind, "param": None,
        "metadata": {"provider": "claude", "upstream_status": status,
                     "upstream_request_id": "req_1"}}}


@pytest.mark.parametrize(("status", "code"), [(413, "request_too_large"), (502, "api_error"),
                                              (418, "invalid_request_error")])
def test_error_bodies_not_from_anthropic(status: int, code: str) -> None:
    """An HTML error page (a proxy's, Cloudflare's 413) still gets a clear OpenAI error."""
    _, body = translate_error(status, b"<html>Request Entity Too Large</html>", "claude")
    error = orjson.loads(body)["error"]
    assert error["code"] == code
    assert error["message"] == f"Anthropic provider 'claude' answered with an error ({code})."


def test_stream_error_payload() -> None:
    """A mid-stream error event is an upstream error whose payload is the translated error."""
    exc = AnthropicStreamError({"type": "error", "error": {"type": "overloaded_error",
                                                           "message": "Overloaded"}}, "claude")
    assert exc.payload() == {"error": {"message": "Overloaded", "type": "server_error",
                                       "code": "overloaded_error", "param": None,
                                       "metadata": {"provider": "claude"}}}


def test_model_list_and_single_model() -> None:
    """Anthropic's model list and model objects become OpenAI's, ids prefixed when asked."""
    listing = orjson.dumps({"data": [{"type": "model", "id": "claude-a", "display_name": "A",
                                      "created_at": "2025-02-19T00:00:00Z"}],
                            "has_more": False})
    assert orjson.loads(translate_models(listing, "anthropic/") or b"") == {
        "object": "list", "data": [{"id": "anthropic/claude-a", "object": "model",
                                    "created": 1739923200, "owned_by": "anthropic",
                                    "name": "A"}]}
    single = orjson.dumps({"type": "model", "id": "claude-b", "created_at": "junk"})
    assert orjson.loads(translate_models(single, "") or b"") == {
        "id": "claude-b", "object": "model", "created": 0, "owned_by": "anthropic"}
    assert translate_models(b"{}", "") is None and translate_models(b"nope", "") is None
