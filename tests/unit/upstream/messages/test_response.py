"""chat.completion → Anthropic message: blocks, usage with cache and cost, and the errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sidecar.errors import UpstreamUnavailable
from sidecar.upstream.messages.errors import translate_error
from sidecar.upstream.messages.request import Plan
from sidecar.upstream.messages.response import translate_body, translate_completion

PLAN = Plan("asked/model", stop_sequences=("##",))


def answer(message: dict[str, Any], finish: str | None = "stop", **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "model": "served/model", "choices": [
        {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        **extra}


def test_blocks_in_order_and_usage() -> None:
    """Reasoning, text and tool calls become thinking, text and tool_use blocks; usage splits
    cache reads and writes out of input_tokens and keeps OpenRouter's cost."""
    message = translate_completion(answer(
        {"content": "Let me check.", "reasoning": "think", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w",
                                                          "arguments": '{"a": 1}'}},
            {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{oops"}}]},
        finish="tool_calls",
        usage={"prompt_tokens": 100, "completion_tokens": 9, "cost": 0.002,
               "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 10}}), PLAN)
    assert message is not None
    assert message["content"] == [
        {"type": "thinking", "thinking": "think", "signature": ""},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "c1", "name": "w", "input": {"a": 1}},
        {"type": "tool_use", "id": "c2", "name": "w", "input": {}}]
    assert message["stop_reason"] == "tool_use" and message["model"] == "served/model"
    assert message["usage"] == {"input_tokens": 30, "cache_read_input_tokens": 60,
                                "cache_creation_input_tokens": 10, "output_tokens": 9,
                                "cost": 0.002}


def test_empty_answer_still_has_a_block() -> None:
    """An answer with nothing in it is one empty text block (clients read content[0])."""
    message = translate_completion(answer({"content": ""}), PLAN)
    assert message is not None and message["content"] == [{"type": "text", "text": ""}]
    assert message["usage"] == {"input_tokens": 0, "output_tokens": 0}


def test_not_a_completion_and_a_failed_one() -> None:
    """A body that is no chat.completion is None (the provider answers 502); OpenRouter's
    finish_reason error is an upstream failure, not an answer."""
    assert translate_body(b'{"object": "list"}', PLAN) is None
    assert translate_body(b"<html>", PLAN) is None
    with pytest.raises(UpstreamUnavailable):
        translate_completion(answer({"content": "par"}, finish="error"), PLAN)


@pytest.mark.parametrize(("status", "body", "kind", "code"), [
    (429, {"error": {"message": "slow", "type": "rate_limit_error", "code": "rl"}},
     "rate_limit_error", "rl"),
    (429, {"error": {"message": "pay", "type": "insufficient_quota"}}, "billing_error",
     "insufficient_quota"),
    (400, {"error": {"message": "bad", "type": "invalid_request_error", "param": "x"}},
     "invalid_request_error", "invalid_request_error"),
    (503, None, "api_error", None),
    (529, None, "overloaded_error", None),
])
def test_errors(status: int, body: Any, kind: str, code: str | None) -> None:
    """OpenAI error bodies (or none) become Anthropic's, typed by status, code in details."""
    raw = b"<html>oops</html>" if body is None else orjson.dumps(body)
    out = orjson.loads(translate_error(status, raw, "chat"))
    assert out["type"] == "error" and out["error"]["type"] == kind
    assert out["error"]["details"].get("error_code") == code
    assert out["error"]["details"]["upstream_status"] == status
    assert out["error"]["message"]
