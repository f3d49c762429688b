"""Anthropic stream events → OpenAI chat.completion.chunk events, as they arrive.

    message_start            → the first chunk: delta {role: assistant, content: ""} (so the
                               client's first byte does not wait for the first token)
    content_block_start      → tool_use: a tool_calls delta with index, id, name and arguments
                               "" (index counts tool calls, not Anthropic's blocks);
                               redacted_thinking: a reasoning_details entry
    content_block_delta      → text_delta: content; input_json_delta: that tool call's
                               arguments (the answer tool's: content); thinking_delta:
                               reasoning and reasoning_content; signature_delta: a
                               reasoning_details entry carrying the signature
    message_delta            → a chunk with the finish_reason (usage noted)
    message_stop             → the usage chunk (choices: []) when the request asked for it,
                               then `data: [DONE]`
    ping, content_block_stop, unknown types → nothing
    error                    → raised (AnthropicStreamError): the relay sends it as the final
                               event, translated, and the stream ends without [DONE]

A stream that ends before message_stop is an upstream failure (UpstreamUnavailable), so the
client never mistakes a cut answer for a whole one. Each upstream chunk yields at most one
chunk (pacing is kept); every chunk shares one prebuilt prefix, so a text delta costs one
small orjson.dumps.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from typing import Any

import orjson

from sidecar.errors import UpstreamUnavailable
from sidecar.sse import (
    DONE,
    Chunks,
    encode,
    event_json,
    split_events,
    translate_events,
)
from sidecar.upstream.anthropic.content import REASONING_FORMAT
from sidecar.upstream.anthropic.errors import AnthropicStreamError
from sidecar.upstream.anthropic.request import Plan
from sidecar.upstream.anthropic.response import finish_reason, openai_usage

_TAIL = b',"finish_reason":null}]}\n\n'
_NO_BLOCK = object()  # equal to no block index, not even a missing one


class StreamTranslator:
    __slots__ = ("_answer", "_called", "_created", "_head", "_id", "_model", "_plan",
                 "_provider", "_reasoning", "_tools", "_usage", "done", "error")

    def __init__(self, plan: Plan, created: int, provider: str) -> None:
        self._plan = plan
        self._created = created
        self._provider = provider
        self._tools: dict[Any, int] = {}  # Anthropic block index → OpenAI tool call index
        self._reasoning: dict[Any, int] = {}  # block index → reasoning_details index
        self._answer: Any = _NO_BLOCK  # block index of the response_format answer tool
        self._called = False  # a client tool was called
        self._usage: dict[str, Any] = {}
        self.done = False  # message_stop seen
        self.error: AnthropicStreamError | None = None  # an error event: the stream's end
        self._start_message("", "")

    def _start_message(self, id: Any, model: Any) -> None:
        self._id, self._model = id, model
        self._head = (b'data: {"id":' + orjson.dumps(id)
                      + b',"object":"chat.completion.chunk","created":'
                      + str(self._created).encode() + b',"model":' + orjson.dumps(model)
                      + b',"choices":[{"index":0,"delta":')

    def _chunk(self, delta: dict[str, Any]) -> bytes:
        return self._head + orjson.dumps(delta) + _TAIL

    def feed(self, chunk: bytes) -> bytes:
        """Translate the whole events in `chunk`; b"" when none has an OpenAI counterpart.
        An error event stops the translation: what came before it is returned, the error
        kept in `self.error` for the caller to raise once that is sent."""
        out = b""
        for data in _payloads(chunk):
            if isinstance(data, dict):
                try:
                    out += self.translate(data)
                except AnthropicStreamError as exc:
                    self.error = exc
                    break
        return out

    def translate(self, data: dict[str, Any]) -> bytes:
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta")
            return self._delta(data.get("index"), delta) if isinstance(delta, dict) else b""
        if kind == "content_block_start":
            block = data.get("content_block")
            return self._block(data.get("index"), block) if isinstance(block, dict) else b""
        if kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self._start_message(message.get("id"), message.get("model"))
                self._note_usage(message.get("usage"))
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "message_delta":
            self._note_usage(data.get("usage"))
            delta = data.get("delta")
            reason = finish_reason(delta.get("stop_reason") if isinstance(delta, dict) else None,
                                   called_tools=self._called)
            return (self._head + b'{},"finish_reason":' + orjson.dumps(reason) + b"}]}\n\n")
        if kind == "message_stop":
            self.done = True
            if not self._plan.include_usage:
                return DONE
            return encode({"id": self._id, "object": "chat.completion.chunk",
                           "created": self._created, "model": self._model, "choices": [],
                           "usage": openai_usage(self._usage)}) + DONE
        if kind == "error":
            raise AnthropicStreamError(data, self._provider)
        return b""  # ping, content_block_stop, and event types added later

    def _delta(self, index: Any, delta: dict[str, Any]) -> bytes:
        kind = delta.get("type")
        if kind == "text_delta":
            if self._plan.json_tool is not None:  # the answer is the tool's input alone
                return b""
            return self._chunk({"content": delta.get("text", "")})
        if kind == "input_json_delta":
            partial = delta.get("partial_json")
            if not partial:
                return b""
            if index == self._answer:
                return self._chunk({"content": partial})
            if (tool := self._tools.get(index)) is None:
                return b""
            return self._chunk({"tool_calls": [{"index": tool,
                                                "function": {"arguments": partial}}]})
        if not self._plan.reasoning:
            return b""
        if kind == "thinking_delta":
            text = delta.get("thinking", "")
            return self._chunk({"reasoning": text, "reasoning_content": text})
        if kind == "signature_delta":
            return self._chunk({"reasoning_details": [{
                "type": "reasoning.text", "signature": delta.get("signature"),
                "format": REASONING_FORMAT, "index": self._reasoning_index(index)}]})
        return b""  # citations_delta and later kinds

    def _block(self, index: Any, block: dict[str, Any]) -> bytes:
        kind = block.get("type")
        if kind == "tool_use":
            name = block.get("name")
            if self._plan.json_tool is not None and name == self._plan.json_tool:
                self._answer = index
                return b""
            self._tools[index] = tool = len(self._tools)
            self._called = True
            return self._chunk({"tool_calls": [{
                "index": tool, "id": block.get("id"), "type": "function",
                "function": {"name": name, "arguments": ""}}]})
        if kind == "text" and (text := block.get("text")) and self._plan.json_tool is None:
            return self._chunk({"content": text})
        if kind == "redacted_thinking" and self._plan.reasoning:
            return self._chunk({"reasoning_details": [{
                "type": "reasoning.encrypted", "data": block.get("data"),
                "format": REASONING_FORMAT, "index": self._reasoning_index(index)}]})
        return b""

    def _reasoning_index(self, index: Any) -> int:
        return self._reasoning.setdefault(index, len(self._reasoning))

    def _note_usage(self, usage: Any) -> None:
        """message_start carries the input counts, message_delta the running output count
        (and, on newer models, final input counts): the latest value of each wins."""
        if isinstance(usage, dict):
            self._usage.update((k, v) for k, v in usage.items() if v is not None)


def _payloads(chunk: bytes) -> Iterable[Any]:
    """The JSON of each event in an event-aligned chunk (None for one without JSON).

    Anthropic spells every event `event: <type>\ndata: <json>` and a blank line, and a chunk
    usually holds one: its JSON is sliced out in place. Several events are split on the blank
    lines and sliced each. sse's general parsing (CRLF, several data lines, comments) is kept
    for any other spelling: it costs about 1.2 µs an event more, and its splitting 3.6 µs for
    the four events that often come together at the start, next to about 1.3 µs for the whole
    translation of a text delta."""
    start = chunk.find(b"\ndata: ") + 7
    end = len(chunk) - 2
    if start > 6 and chunk.find(b"\n\n") == end and chunk.find(b"\n", start) == end:
        return (_loads(memoryview(chunk)[start:end]),)
    if b"\r" in chunk:
        return map(event_json, split_events(chunk))
    return map(_payload, chunk.split(b"\n\n"))


def _payload(event: bytes) -> Any:
    start = event.find(b"\ndata: ") + 7
    if start > 6 and event.find(b"\n", start) < 0:
        return _loads(memoryview(event)[start:])
    return event_json(event) if event else None


def _loads(data: memoryview) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def translate_stream(chunks: Chunks, translator: StreamTranslator, where: str
                     ) -> AsyncGenerator[bytes, None]:
    """The OpenAI event stream for an Anthropic one (`chunks`: the raw upstream body)."""
    def ending() -> bytes:
        raise UpstreamUnavailable(f"Upstream {where} ended the stream before its message_stop "
                                  "event: the answer is incomplete.")

    return translate_events(chunks, translator, ending)
