"""Which replies the cascade takes one tier up, in each answer shape."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from sidecar.answer import observe
from sidecar.auto.faults import fault
from sidecar.call import Answer, Reply
from sidecar.errors import BudgetExceeded, InvalidRequest, UpstreamUnavailable


def reply(data: Any, status: int = 200) -> tuple[Reply, Answer]:
    answer = Answer()
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    return observe(answer, Reply(status, CIMultiDict(), body=body)), answer


def chat(content: Any, finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content, **message}}]}


@pytest.mark.parametrize(("data", "why"), [
    (chat("Paris."), None),
    (chat("", "length"), "length"),
    (chat(None, "length"), "length"),
    (chat("It was the best of times", "length"), None),
    (chat(None, "length", tool_calls=[{"id": "1"}]), None),
    (chat(None, "stop", refusal="I can't help with that."), "refusal"),
    (chat("Here you go", "stop", refusal=None), None),
    (chat("", "content_filter"), "refusal"),
    (chat("I'm sorry, but I can't help with that request."), "refusal"),
    (chat("I can\u2019t assist with that."), "refusal"),
    (chat("I can't believe how simple this is: " + "x" * 400), None),
    ({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]}, "length"),
    ({"status": "incomplete", "output": [{"type": "reasoning", "summary": []}]}, "length"),
    ({"status": "completed", "output": [{"type": "message", "content": [
        {"type": "refusal", "refusal": "No."}]}]}, "refusal"),
    ({"status": "completed", "output": [{"type": "message", "content": [
        {"type": "output_text", "text": "Fine."}]}]}, None),
    ({"type": "message", "stop_reason": "max_tokens", "content": [
        {"type": "thinking", "thinking": "hmm"}]}, "length"),
    ({"type": "message", "stop_reason": "refusal", "content": []}, "refusal"),
    ({"type": "message", "stop_reason": "end_turn", "content": [
        {"type": "text", "text": "Hi"}]}, None),
], ids=["ok", "length_empty", "length_null", "length_with_text", "length_tool_call",
        "refusal_field", "null_refusal", "content_filter", "textual_refusal",
        "curly_apostrophe", "long_answer_starting_so", "completions_length",
        "responses_incomplete", "responses_refusal", "responses_ok", "messages_max_tokens",
        "messages_refusal", "messages_ok"])
def test_whole_answers(data: dict[str, Any], why: str | None) -> None:
    """Length before any content, refusals, and good answers, in every shape."""
    assert fault(*reply(data)) == why


@pytest.mark.parametrize(("status", "body", "why"), [
    (500, b'{"error":{"message":"boom"}}', "error"),
    (503, b"", "error"),
    (429, b'{"error":{"message":"slow down"}}', "error"),
    (400, b'{"error":{"message":"This model\'s maximum context length is 8192 tokens"}}',
     "context"),
    (400, b'{"error":{"code":"context_length_exceeded"}}', "context"),
    (400, b'{"error":{"message":"bad temperature"}}', None),
    (401, b'{"error":{"message":"bad key"}}', None),
])
def test_upstream_error_answers(status: int, body: bytes, why: str | None) -> None:
    """Server errors, timeouts and rate limits after retries, and context errors go up; other
    client errors would fail a bigger model the same."""
    assert fault(*reply(body, status)) == why


def test_the_sidecars_own_errors() -> None:
    """No provider answering goes up; the sidecar's refusals (budget, bad request) do not."""
    answer = Answer()
    assert fault(Reply.from_error(UpstreamUnavailable("down")), answer) == "error"
    assert fault(Reply.from_error(BudgetExceeded("no money")), answer) is None
    assert fault(Reply.from_error(InvalidRequest("bad")), answer) is None


def test_a_started_stream_is_never_cascaded() -> None:
    """Its first bytes are the client's already."""
    async def chunks() -> Any:
        yield b"data: {}\n\n"
    streamed = Reply(200, CIMultiDict(), chunks=chunks(), sse=True)
    assert fault(streamed, Answer(finish_reason="length")) is None
