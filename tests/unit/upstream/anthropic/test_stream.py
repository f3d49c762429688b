"""Anthropic stream events → OpenAI chunks, event by event (golden sequences), and the stream's
ends: clean, cut before message_stop, an error event, a client that leaves."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
import pytest

from sidecar.errors import UpstreamUnavailable
from sidecar.sse import split_events
from sidecar.upstream.anthropic.errors import AnthropicStreamError
from sidecar.upstream.anthropic.request import JSON_TOOL, Plan
from sidecar.upstream.anthropic.stream import StreamTranslator, translate_stream
from tests.fakes.anthropic import (
    encode_event,
    message,
    stream_events,
    text,
    thinking,
    tool_use,
)

HEAD = {"id": "msg_01Test", "object": "chat.completion.chunk", "created": 1700000000,
        "model": "claude-test-1"}
USAGE = {"input_tokens": 20, "output_tokens": 9, "cache_read_input_tokens": 100,
         "cache_creation_input_tokens": 30}


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


ROLE = chunk({"role": "assistant", "content": ""})
ROLE_BYTES = (b'data: {"id":"msg_01Test","object":"chat.completion.chunk","created":0,'
              b'"model":"claude-test-1","choices":[{"index":0,"delta":{"role":"assistant",'
              b'"content":""},"finish_reason":null}]}\n\n')
CONTENT_PARTIAL = ROLE_BYTES.replace(b'{"role":"assistant","content":""}',
                                     b'{"content":"partial"}')


def translate(events: list[Any], plan: Plan) -> list[Any]:
    """Feed each event as its own chunk; the client's view: JSON payloads and "[DONE]"."""
    translator = StreamTranslator(plan, 1700000000, "claude")
    out: list[Any] = []
    for event in events:
        for sent in split_events(translator.feed(encode_event(event))):
            data = sent.removeprefix(b"data: ").removesuffix(b"\n\n")
            out.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return out


CASES: list[tuple[str, dict[str, Any], Plan, list[Any]]] = [
    ("text", message(text("Hello")), Plan(stream=True),
     [ROLE, chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk({}, "stop"), "[DONE]"]),
    ("text with usage chunk", message(text("Hi"), usage=USAGE, stop_reason="max_tokens"),
     Plan(stream=True, include_usage=True),
     [ROLE, chunk({"content": "H"}), chunk({"content": "i"}), chunk({}, "length"),
      {**HEAD, "choices": [], "usage": {
          "prompt_tokens": 150, "completion_tokens": 9, "total_tokens": 159,
          "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 30}}},
      "[DONE]"]),
    ("tool calls", message(text("Ok"), tool_use("toolu_1", "weather", {"c": 1}),
                           tool_use("toolu_2", "time", {}), stop_reason="tool_use"),
     Plan(stream=True),
     [ROLE, chunk({"content": "O"}), chunk({"content": "k"}),
      chunk({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function",
                             "function": {"name": "weather", "arguments": ""}}]}),
      chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"c\""}}]}),
      chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
      chunk({"tool_calls": [{"index": 1, "id": "toolu_2", "type": "function",
                             "function": {"name": "time", "arguments": ""}}]}),
      chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{"}}]}),
      chunk({"tool_calls": [{"index": 1, "function": {"arguments": "}"}}]}),
      chunk({}, "tool_calls"), "[DONE]"]),
    ("json answer tool streams as content", message(
        text("Sure"), tool_use("toolu_1", JSON_TOOL, {"n": 3}), stop_reason="tool_use"),
     Plan(stream=True, json_tool=JSON_TOOL),
     [ROLE, chunk({"content": "{\"n\""}), chunk({"content": ":3}"}), chunk({}, "stop"),
      "[DONE]"]),
    ("thinking", message(thinking("Hmm, ok", "sig-1"), text("42")), Plan(stream=True),
     [ROLE, chunk({"reasoning": "Hmm,", "reasoning_content": "Hmm,"}),
      chunk({"reasoning": " ok", "reasoning_content": " ok"}),
      chunk({"reasoning_details": [{"type": "reasoning.text", "signature": "sig-1",
                                    "format": "anthropic-claude-v1", "index": 0}]}),
      chunk({"content": "4"}), chunk({"content": "2"}), chunk({}, "stop"), "[DONE]"]),
    ("thinking excluded", message(thinking("Hmm, ok"), text("42")),
     Plan(stream=True, reasoning=False),
     [ROLE, chunk({"content": "4"}), chunk({"content": "2"}), chunk({}, "stop"), "[DONE]"]),
    ("redacted thinking", message({"type": "redacted_thinking", "data": "enc"}, text("A")),
     Plan(stream=True),
     [ROLE, chunk({"reasoning_details": [{"type": "reasoning.encrypted", "data": "enc",
                                          "format": "anthropic-claude-v1", "index": 0}]}),
      chunk({"content": "A"}), chunk({}, "stop"), "[DONE]"]),
]


@pytest.mark.parametrize(("msg", "plan", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_stream_translation(msg: dict[str, Any], plan: Plan, expected: list[Any]) -> None:
    """Anthropic's documented event sequence for a message becomes exactly these chunks."""
    assert translate(stream_events(msg), plan) == expected


def test_pings_and_unknown_events_send_nothing() -> None:
    """ping, content_block_stop, citations and event types added later produce no chunk."""
    translator = StreamTranslator(Plan(stream=True), 0, "claude")
    for event in ({"type": "ping"}, {"type": "content_block_stop", "index": 0},
                  {"type": "brand_new_event"}, {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "citations_delta"}}):
        assert translator.feed(encode_event(event)) == b""
    assert translator.feed(b": comment\n\n") == b""


def test_other_sse_spellings_are_read_too() -> None:
    """CRLF line ends, id lines and split data lines parse like Anthropic's usual spelling."""
    translator = StreamTranslator(Plan(stream=True), 0, "claude")
    translator.feed(encode_event(stream_events(message(text("x")))[0]))
    crlf = (b"event: content_block_delta\r\nid: 4\r\ndata: {\"type\":\"content_block_delta\","
            b"\r\ndata: \"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\r\n\r\n")
    assert b'"delta":{"content":"ok"}' in translator.feed(crlf)
    bare = (b'data: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":"go"}}\n\n: keep-alive\n\n'
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":"on"}}\n\n')
    out = translator.feed(bare)
    assert b'"delta":{"content":"go"}' in out and b'"delta":{"content":"on"}' in out
    assert translator.feed(b"event: content_block_delta\ndata: {broken\n\n") == b""
    assert translator.feed(b"event: ping\ndata: {broken\n\nevent: ping\ndata: {}\n\n") == b""


def test_several_events_in_one_chunk_give_one_chunk() -> None:
    """A chunk holding several events yields one chunk of their translations, in order."""
    events = stream_events(message(text("abcd")), parts=4)
    translator = StreamTranslator(Plan(stream=True), 0, "claude")
    out = translator.feed(b"".join(map(encode_event, events)))
    assert [e for e in split_events(out)][-1] == b"data: [DONE]\n\n"
    assert len(split_events(out)) == 7  # role, 4 deltas, finish, [DONE]


def test_usage_prefers_message_delta_counts() -> None:
    """message_delta's counts (output, and input on newer models) win over message_start's."""
    events = stream_events(message(text("x"), usage=USAGE))
    events[-2] = {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                  "usage": {"output_tokens": 40, "input_tokens": 25,
                            "cache_read_input_tokens": None}}
    usage = translate(events, Plan(stream=True, include_usage=True))[-2]["usage"]
    assert usage["prompt_tokens"] == 25 + 100 + 30 and usage["completion_tokens"] == 40


async def test_error_event_is_raised_after_what_came_before_it() -> None:
    """An error event in the same chunk as text: the text is sent, then the error raised."""
    events = stream_events(message(text("partial answer")))[:4]
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    source = Source([b"".join(map(encode_event, [*events, error, *events[3:]]))])
    seen = []
    with pytest.raises(AnthropicStreamError) as caught:
        async for out in stream(source):
            seen.append(out)
    assert caught.value.payload()["error"]["code"] == "overloaded_error"
    assert seen == [ROLE_BYTES + CONTENT_PARTIAL] and source.closed


class Source:
    """An upstream body: chunks, then end; notes whether it was closed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks, self.closed, self.read = chunks, False, 0

    def __aiter__(self) -> Source:
        return self

    async def __anext__(self) -> bytes:
        if self.read == len(self.chunks):
            raise StopAsyncIteration
        self.read += 1
        return self.chunks[self.read - 1]

    async def aclose(self) -> None:
        self.closed = True


def stream(source: Source) -> AsyncGenerator[bytes, None]:
    return translate_stream(source, StreamTranslator(Plan(stream=True), 0, "claude"), "claude")


async def test_stream_reads_to_the_end_and_closes_the_source() -> None:
    """After message_stop the rest is read (the connection can be reused), then closed."""
    events = [encode_event(e) for e in stream_events(message(text("hi")))]
    source = Source([*events, b"event: ping\ndata: {\"type\": \"ping\"}\n\n"])
    out = [c async for c in stream(source)]
    assert out[-1] == b"data: [DONE]\n\n"
    assert source.read == len(source.chunks) and source.closed


async def test_a_stream_cut_before_message_stop_is_an_upstream_failure() -> None:
    """A stream that ends early raises after the chunks so far, so the client sees an error."""
    events = [encode_event(e) for e in stream_events(message(text("hi")))][:-1]
    seen = []
    with pytest.raises(UpstreamUnavailable, match="before its message_stop"):
        async for out in stream(Source(events)):
            seen.append(out)
    assert seen and b"[DONE]" not in b"".join(seen)


async def test_closing_the_stream_early_closes_the_source() -> None:
    """A client that leaves closes the translated stream, and with it the upstream body."""
    source = Source([encode_event(e) for e in stream_events(message(text("hello")))])
    translated = stream(source)
    assert b"assistant" in await anext(translated)
    await translated.aclose()
    assert source.closed
