"""chat.completion.chunk events → Anthropic's events, one upstream chunk at a time."""

from __future__ import annotations

from typing import Any

import orjson

from sidecar.upstream.messages.request import Plan
from sidecar.upstream.messages.stream import EventTranslator

HEAD = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "m1"}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
          ) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + orjson.dumps({**HEAD, "choices": choices, **extra}) + b"\n\n"


def events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.split(b"\n\n"):
        if block:
            name, data = block.split(b"\n")
            payload = orjson.loads(data[6:])
            assert name == b"event: " + payload["type"].encode()
            out.append(payload)
    return out


def run(*raw: bytes) -> tuple[EventTranslator, list[dict[str, Any]]]:
    translator = EventTranslator(Plan("asked"), "p")
    out = b"".join(translator.feed(r) for r in raw)
    return translator, events(out)


def test_text_stream() -> None:
    """Role chunk → message_start; content → one text block; finish and usage → the end."""
    _, got = run(chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}),
                 chunk({"content": " there"}), chunk({}, "stop"),
                 chunk(usage={"prompt_tokens": 5, "completion_tokens": 2}), b"data: [DONE]\n\n")
    assert [e["type"] for e in got] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]
    assert got[0]["message"]["id"] == "chatcmpl-9" and got[0]["message"]["model"] == "m1"
    assert got[3]["delta"] == {"type": "text_delta", "text": " there"}
    assert got[5]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert got[5]["usage"]["input_tokens"] == 5 and got[5]["usage"]["output_tokens"] == 2


def test_kinds_switch_blocks_and_indexes_count_up() -> None:
    """Thinking (with its signature), text, then two tool calls: four blocks, one at a time,
    indexed in order; tools end the turn with tool_use although the upstream said stop."""
    _, got = run(
        chunk({"reasoning": "hm", "reasoning_details": [{"type": "reasoning.text",
                                                          "text": "hm"}]}),
        chunk({"reasoning_details": [{"type": "reasoning.text", "signature": "s1"}]}),
        chunk({"content": "ok"}),
        chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f",
                                                                    "arguments": '{"x"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g",
                                                                    "arguments": "{}"}}]}),
        chunk({}, "stop"), b"data: [DONE]\n\n")
    starts = [(e["index"], e["content_block"]["type"]) for e in got
              if e["type"] == "content_block_start"]
    assert starts == [(0, "thinking"), (1, "text"), (2, "tool_use"), (3, "tool_use")]
    stops = [e["index"] for e in got if e["type"] == "content_block_stop"]
    assert stops == [0, 1, 2, 3]
    deltas = [(e["index"], e["delta"]) for e in got if e["type"] == "content_block_delta"]
    assert (0, {"type": "signature_delta", "signature": "s1"}) in deltas
    assert [d["partial_json"] for i, d in deltas if i == 2] == ['{"x"', ": 1}"]
    assert got[-2]["delta"]["stop_reason"] == "tool_use"


def test_done_without_finish_still_says_why() -> None:
    """[DONE] with no finish reason before it still ends with a stop reason."""
    translator, got = run(chunk({"content": "x"}), b"data: [DONE]\n\n")
    assert translator.done and got[-2]["delta"]["stop_reason"] == "end_turn"


def test_comments_start_the_message_and_become_pings() -> None:
    """A keep-alive before the first chunk starts the message (the client's first byte) and
    is a ping; the model is then the one asked for."""
    _, got = run(b": OPENROUTER PROCESSING\n\n")
    assert [e["type"] for e in got] == ["message_start", "ping"]
    assert got[0]["message"]["model"] == "asked"


def test_error_event_after_content() -> None:
    """An error event stops the translation: what came before it is returned, the error kept
    to be raised (as Anthropic's error event) once that went out."""
    translator = EventTranslator(Plan("m"), "p")
    out = translator.feed(chunk({"content": "so"}) + b'data: {"error": {"code": 502, '
                          b'"message": "gone"}}\n\n')
    assert [e["type"] for e in events(out)][-1] == "content_block_delta"
    assert translator.error is not None
    assert translator.error.anthropic_payload()["error"] == {
        "type": "api_error", "message": "gone",
        "details": {"provider": "p", "upstream_status": 502}}


def test_encrypted_reasoning_is_a_whole_block() -> None:
    """OpenRouter's encrypted reasoning becomes a redacted_thinking block, started and
    stopped at once."""
    _, got = run(chunk({"reasoning_details": [{"type": "reasoning.encrypted", "data": "e"}]}))
    assert got[1] == {"type": "content_block_start", "index": 0,
                      "content_block": {"type": "redacted_thinking", "data": "e"}}
    assert got[2] == {"type": "content_block_stop", "index": 0}
