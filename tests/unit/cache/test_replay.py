"""cache/replay.py: folding a stream into one answer and unfolding an answer into chunks."""

from __future__ import annotations

from typing import Any

import orjson

from sidecar import sse
from sidecar.cache.entry import Entry
from sidecar.cache.replay import can_serve, fold, hit_reply, unfold, without_usage_chunk
from tests.fakes.cache import tool_answer, tool_chunks


def events(items: list[Any]) -> bytes:
    return b"".join(i if isinstance(i, bytes) else sse.encode(i) for i in items) + sse.DONE


def test_fold_merges_content_and_tool_call_deltas() -> None:
    """The streamed tool-call answer folds into exactly the JSON answer it stands for."""
    folded = fold("chat/completions", events(tool_chunks()))
    expected = tool_answer()
    assert folded["choices"][0]["message"]["tool_calls"] == expected["choices"][0]["message"][
        "tool_calls"]
    assert folded["choices"][0]["message"]["content"] == "Let me check."
    assert folded["choices"][0]["finish_reason"] == "tool_calls"
    assert {k: folded[k] for k in ("id", "created", "model", "system_fingerprint", "usage")} == {
        k: expected[k] for k in ("id", "created", "model", "system_fingerprint", "usage")}
    assert folded["object"] == "chat.completion"


def test_unfold_then_fold_gives_the_answer_back() -> None:
    """JSON → chunks → JSON keeps every choice (n=2), refusal, reasoning and logprobs."""
    answer = {"id": "x", "object": "chat.completion", "created": 5, "model": "m",
              "choices": [
                  {"index": 0, "finish_reason": "stop",
                   "logprobs": {"content": [{"token": "a", "logprob": -0.1}], "refusal": None},
                   "message": {"role": "assistant", "content": "a", "reasoning": "think"}},
                  {"index": 1, "finish_reason": "content_filter", "logprobs": None,
                   "message": {"role": "assistant", "content": None, "refusal": "no"}}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    chunks = unfold("chat/completions", answer, include_usage=True)
    for event in sse.split_events(chunks):
        assert sse.event_json(event)["object"] == "chat.completion.chunk"
    folded = fold("chat/completions", chunks)
    assert folded["choices"][0] == answer["choices"][0]
    assert folded["choices"][1]["message"]["refusal"] == "no"
    assert folded["choices"][1]["finish_reason"] == "content_filter"
    assert folded["usage"] == answer["usage"]


def test_the_usage_chunk_goes_out_only_when_asked() -> None:
    """unfold adds the usage-only chunk only with include_usage; without_usage_chunk removes a
    stored one and keeps [DONE]."""
    plain = unfold("chat/completions", tool_answer(), include_usage=False)
    assert b'"choices":[]' not in plain
    stored = events(tool_chunks())
    stripped = without_usage_chunk(stored)
    assert b'"choices":[]' not in stripped and stripped.endswith(sse.DONE)
    assert len(sse.split_events(stripped)) == len(sse.split_events(stored)) - 1
    assert without_usage_chunk(stripped) == stripped


def test_legacy_completions_convert_both_ways() -> None:
    """text_completion chunks fold into one text; the answer unfolds into chunks again."""
    answer = {"id": "c", "object": "text_completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "text": "Once upon", "logprobs": None,
                           "finish_reason": "length"}]}
    assert fold("completions", unfold("completions", answer, False))["choices"] == answer[
        "choices"]


def test_hit_reply_shapes() -> None:
    """A JSON entry answers a stream with SSE ending in [DONE]; an SSE entry answers JSON; the
    Responses API is never converted."""
    entry = Entry("json", orjson.dumps(tool_answer()), "m", 0, 1)
    streamed = hit_reply(entry, "chat/completions", stream=True, include_usage=False)
    assert streamed.sse and streamed.headers["Content-Type"] == "text/event-stream"
    assert streamed.body is None
    folded = hit_reply(Entry("sse", events(tool_chunks()), "m", 0, 1), "chat/completions",
                       stream=False, include_usage=False)
    assert orjson.loads(folded.body or b"")["object"] == "chat.completion"
    assert not can_serve(Entry("json", b"{}", "m", 0, 1), "responses", stream=True)
    assert can_serve(Entry("sse", b"", "m", 0, 1), "responses", stream=True)
