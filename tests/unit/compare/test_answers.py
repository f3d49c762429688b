"""Answers read for comparison: the JSON object (a stream folded), its text, its error."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sidecar import sse
from sidecar.compare.answers import answer_object, answer_text, error_object
from sidecar.compare.consume import Consumed
from sidecar.errors import BudgetExceeded
from tests.fakes.upstream import chat_answer, chat_chunks


def events(*items: dict[str, Any]) -> bytes:
    return b"".join(sse.encode(item) for item in items) + sse.DONE


@pytest.mark.parametrize(("answer", "text"), [
    (chat_answer("m", "Hello."), "Hello."),
    ({"choices": [{"text": "Once", "index": 0}]}, "Once"),
    ({"choices": [{"message": {"content": [{"type": "text", "text": "A"},
                                           {"type": "image_url"}]}}]}, "A"),
    ({"output_text": "from responses"}, "from responses"),
    ({"output": [{"type": "reasoning"}, {"type": "message", "content": [
        {"type": "output_text", "text": "B"}, {"type": "output_text", "text": "C"}]}]}, "BC"),
    ({"content": [{"type": "text", "text": "claude"}], "type": "message"}, "claude"),
    ({"object": "list", "data": [{"embedding": [0.1]}]}, None),
    ({"choices": [{"message": {"content": None, "tool_calls": []}}]}, None),
], ids=["chat", "completions", "chat-parts", "output_text", "responses-output", "messages",
        "embeddings", "tool-call"])
def test_the_text_of_each_shape(answer: dict[str, Any], text: str | None) -> None:
    """Chat, completions, the Responses API and Anthropic's Messages give their text;
    embeddings and a tool call have none."""
    assert answer_text(answer) == text


def test_a_streamed_chat_answer_is_folded() -> None:
    """A chat stream becomes the JSON answer a non-streaming request would have got."""
    consumed = Consumed(200, events(*chat_chunks("m", ["Hel", "lo"])), streamed=True)
    answer = answer_object("chat/completions", consumed)
    assert answer is not None and answer["object"] == "chat.completion"
    assert answer_text(answer) == "Hello" and answer["usage"]["completion_tokens"] == 2


def test_a_streamed_responses_answer_is_its_completed_event() -> None:
    """A Responses API stream's object is the `response` of its last event."""
    body = events({"type": "response.created", "response": {"status": "in_progress"}},
                  {"type": "response.output_text.delta", "delta": "x"},
                  {"type": "response.completed", "response": {"status": "completed",
                                                              "output_text": "x"}})
    answer = answer_object("responses", Consumed(200, body, streamed=True))
    assert answer == {"status": "completed", "output_text": "x"}


def test_errors_in_openai_shape() -> None:
    """The sidecar's own error, the provider's `error` object, a bare string, a body that is
    not JSON, and an error event inside a stream that started with 200."""
    refused = BudgetExceeded("no money")
    assert error_object(Consumed(402, b"", error=refused))["code"] == "budget_exceeded"
    provider = orjson.dumps({"error": {"message": "bad", "code": "x"}})
    assert error_object(Consumed(400, provider)) == {"message": "bad", "code": "x"}
    assert error_object(Consumed(503, b'{"error": "busy"}'))["message"] == "busy"
    plain = error_object(Consumed(502, b"<html>gateway</html>"))
    assert plain is not None and plain["code"] == 502 and "gateway" in plain["message"]
    broken = events({"error": {"message": "overloaded", "code": 529}})
    assert error_object(Consumed(200, broken, streamed=True)) == {"message": "overloaded",
                                                                  "code": 529}
    assert error_object(Consumed(200, orjson.dumps(chat_answer("m")))) is None


def test_a_responses_stream_without_output_in_its_last_event_keeps_the_deltas() -> None:
    """When the final event's object lists no output, the text is the deltas'."""
    body = events({"type": "response.output_text.delta", "delta": "a"},
                  {"type": "response.output_text.delta", "delta": "b"},
                  {"type": "response.completed", "response": {"status": "completed",
                                                              "output": []}})
    answer = answer_object("responses", Consumed(200, body, streamed=True))
    assert answer_text(answer) == "ab" and answer is not None and answer["output"] == []
