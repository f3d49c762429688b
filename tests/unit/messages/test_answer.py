"""The answer record from Anthropic's messages and events."""

from __future__ import annotations

from sidecar.call import Answer, Usage
from sidecar.messages.answer import note_message


def test_message() -> None:
    """A message gives id, model, stop reason (OpenAI's word) and usage with the cache."""
    answer = Answer()
    note_message(answer, {"type": "message", "id": "msg_1", "model": "c", "stop_reason":
                          "tool_use", "usage": {"input_tokens": 10, "output_tokens": 4,
                                                "cache_read_input_tokens": 100,
                                                "cache_creation_input_tokens": 20}})
    assert (answer.id, answer.model, answer.finish_reason) == ("msg_1", "c", "tool_calls")
    assert answer.usage == Usage(prompt_tokens=130, completion_tokens=4, cached_tokens=100,
                                 cache_write_tokens=20)


def test_stream_events_merge_their_counts() -> None:
    """message_start's input counts stay when message_delta gives only the output; counts
    it repeats overwrite; zeros are no report; an error event marks the answer failed."""
    answer = Answer()
    note_message(answer, {"type": "message_start", "message": {
        "id": "m", "model": "c", "usage": {"input_tokens": 0, "output_tokens": 0}}})
    assert answer.usage is None
    note_message(answer, {"type": "message_start", "message": {
        "id": "m", "model": "c", "usage": {"input_tokens": 7, "cache_read_input_tokens": 3,
                                          "output_tokens": 1}}})
    note_message(answer, {"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
                          "usage": {"output_tokens": 40, "cost": 0.5}})
    assert answer.usage == Usage(prompt_tokens=10, completion_tokens=40, cached_tokens=3,
                                 cost_usd=0.5)
    assert answer.finish_reason == "length"
    note_message(answer, {"type": "error", "error": {"type": "overloaded_error"}})
    assert answer.finish_reason == "error"
