"""OpenAI chat.completion.chunk events → Anthropic's event stream, as they arrive.

    first chunk (or a keep-alive  → message_start (id and model from the chunk; usage zeros,
      comment before it)            the real figures come in message_delta)
    delta.reasoning /             → a thinking block: content_block_start, thinking_delta;
      reasoning_content             OpenRouter's reasoning_details add signature_delta, and
                                    redacted_thinking blocks for encrypted reasoning
    delta.content, delta.refusal  → a text block: content_block_start, text_delta
    delta.tool_calls              → a tool_use block per call (id, name), input_json_delta
                                    with each piece of its arguments
    finish_reason                 → content_block_stop of the open block; noted
    usage chunk                   → noted
    [DONE] (or the end, once a    → message_delta {stop_reason, stop_sequence} with usage,
      finish reason came)           message_stop
    keep-alive comments           → ping, once the message started
    an error event, or            → raised (MessagesStreamError): the relay ends the stream
      finish_reason "error"         with Anthropic's `event: error`

A new kind of delta closes the open block and opens the next (Anthropic's blocks are one at a
time, indexed in order). The stop reason is decided once the stream ended (response.py): a
turn that called tools says tool_use whatever finish reason the upstream gave (some say stop),
and a stream that ended with [DONE] but no finish reason still gets one. A stream that ends
with neither a finish reason nor [DONE] is an upstream failure (UpstreamUnavailable): the
client never mistakes a cut answer for a whole one. Each upstream chunk yields at most one
chunk (pacing is kept).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from sidecar.errors import UpstreamUnavailable
from sidecar.sse import Chunks, event_data, split_events, translate_events
from sidecar.upstream.messages.errors import MessagesStreamError
from sidecar.upstream.messages.request import Plan
from sidecar.upstream.messages.response import (
    anthropic_usage,
    message_id,
    stop_match,
    stop_reason,
)

_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def event(data: dict[str, Any]) -> bytes:
    """One Anthropic event: its type named on the `event:` line, then its JSON."""
    kind: str = data["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventTranslator:
    __slots__ = ("_finish", "_index", "_match", "_open", "_plan", "_provider", "_refused",
                 "_tools", "_usage", "done", "error", "finished", "started")

    def __init__(self, plan: Plan, provider: str) -> None:
        self._plan = plan
        self._provider = provider
        self._index = -1  # the last block opened
        self._open: Any = None  # the open block: "thinking", "text" or ("tool", n)
        self._tools: dict[Any, int] = {}  # OpenAI tool call index → block index
        self._refused = False
        self._finish: Any = None
        self._match: Any = None
        self._usage: Any = None
        self.started = False  # message_start sent
        self.finished = False  # a finish reason came
        self.done = False  # message_stop sent
        self.error: MessagesStreamError | None = None  # an error event: the stream's end

    def feed(self, chunk: bytes) -> bytes:
        """The Anthropic events for the whole events in `chunk` (b"" when none). An error
        event stops the translation: what came before it is returned, the error kept in
        `self.error` for the caller to raise once that is sent."""
        out = b""
        for raw in split_events(chunk):
            data = event_data(raw)
            if data is None:  # a comment: the upstream is alive
                if not self.started:
                    out += self._start(None, None)
                out += _PING
                continue
            if data == b"[DONE]":
                out += self.end()
                break
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(payload, dict):
                try:
                    out += self._chunk(payload)
                except MessagesStreamError as exc:
                    self.error = exc  # raised by the caller once `out` went out
                    break
        return out

    def _start(self, upstream_id: Any, model: Any) -> bytes:
        self.started = True
        return event({"type": "message_start", "message": {
            "id": message_id(upstream_id), "type": "message", "role": "assistant",
            "model": model if isinstance(model, str) and model else self._plan.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})

    def _chunk(self, data: dict[str, Any]) -> bytes:
        if "error" in data and not data.get("choices"):
            raise MessagesStreamError(data, self._provider)
        out = b"" if self.started else self._start(data.get("id"), data.get("model"))
        if isinstance(usage := data.get("usage"), dict):
            self._usage = usage
        choices = data.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if isinstance(delta := choice.get("delta"), dict):
                out += self._delta(delta)
            finish = choice.get("finish_reason")
            if finish is not None:
                if finish == "error":
                    raise MessagesStreamError({"error": {
                        "message": "The upstream ended its answer with finish_reason 'error': "
                                   "the answer is incomplete."}}, self._provider)
                self._finish, self._match, self.finished = finish, stop_match(choice), True
                out += self._close()
        return out

    def _delta(self, delta: dict[str, Any]) -> bytes:
        if len(delta) == 1 and type(text := delta.get("content")) is str:  # the usual delta
            if not text:
                return b""
            return self._opened("text", {"type": "text", "text": ""}) + self._piece(
                {"type": "text_delta", "text": text})
        out = b""
        reasoning = delta.get("reasoning")
        if not isinstance(reasoning, str):
            reasoning = delta.get("reasoning_content")
        signature = None
        details = delta.get("reasoning_details")
        for detail in details if isinstance(details, list) else ():
            if not isinstance(detail, dict):
                continue
            if detail.get("type") == "reasoning.encrypted" and isinstance(
                    data := detail.get("data"), str):
                out += self._whole({"type": "redacted_thinking", "data": data})
            elif detail.get("type") == "reasoning.text":
                if not isinstance(reasoning, str) and isinstance(detail.get("text"), str):
                    reasoning = detail["text"]
                if isinstance(sig := detail.get("signature"), str) and sig:
                    signature = sig
        if isinstance(reasoning, str) and reasoning:
            out += self._opened("thinking", {"type": "thinking", "thinking": "",
                                             "signature": ""})
            out += self._piece({"type": "thinking_delta", "thinking": reasoning})
        if signature is not None:
            out += self._opened("thinking", {"type": "thinking", "thinking": "",
                                             "signature": ""})
            out += self._piece({"type": "signature_delta", "signature": signature})
        for name in ("content", "refusal"):
            text = delta.get(name)
            if isinstance(text, str) and text:
                self._refused |= name == "refusal"
                out += self._opened("text", {"type": "text", "text": ""})
                out += self._piece({"type": "text_delta", "text": text})
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                out += self._tool(call)
        return out

    def _tool(self, call: dict[str, Any]) -> bytes:
        number = call.get("index", 0)
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        out = b""
        if number not in self._tools:
            out += self._close()
            self._index += 1
            self._tools[number] = self._index
            self._open = ("tool", number)
            name = function.get("name")
            out += event({"type": "content_block_start", "index": self._index,
                          "content_block": {"type": "tool_use",
                                            "id": call.get("id") or f"toolu_{self._index}",
                                            "name": name if isinstance(name, str) else "",
                                            "input": {}}})
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out += event({"type": "content_block_delta", "index": self._tools[number],
                          "delta": {"type": "input_json_delta", "partial_json": arguments}})
        return out

    def _opened(self, key: str, block: dict[str, Any]) -> bytes:
        """Open a block of this kind unless it is the open one."""
        if self._open == key:
            return b""
        out = self._close()
        self._index += 1
        self._open = key
        return out + event({"type": "content_block_start", "index": self._index,
                            "content_block": block})

    def _piece(self, delta: dict[str, Any]) -> bytes:
        if delta["type"] == "text_delta":  # the usual event: a prebuilt head, one dumps
            return (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
                    + str(self._index).encode() + b',"delta":{"type":"text_delta","text":'
                    + orjson.dumps(delta["text"]) + b"}}\n\n")
        return event({"type": "content_block_delta", "index": self._index, "delta": delta})

    def _whole(self, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._index += 1
        return out + event({"type": "content_block_start", "index": self._index,
                            "content_block": block}) + event(
            {"type": "content_block_stop", "index": self._index})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return event({"type": "content_block_stop", "index": self._index})

    def end(self) -> bytes:
        """The close of a complete answer: message_delta with the stop reason, message_stop."""
        if self.done:
            return b""
        out = b"" if self.started else self._start(None, None)
        out += self._close()
        reason, sequence = stop_reason(self._finish, tools=bool(self._tools),
                                       refused=self._refused, stop_match=self._match,
                                       plan=self._plan)
        usage = anthropic_usage(self._usage)
        self.done = True
        return out + event({"type": "message_delta",
                            "delta": {"stop_reason": reason, "stop_sequence": sequence},
                            "usage": usage}) + _STOP


def translate_stream(chunks: Chunks, translator: EventTranslator, where: str
                     ) -> AsyncGenerator[bytes, None]:
    """Anthropic's event stream for an OpenAI one (`chunks`: the raw upstream body)."""
    def ending() -> bytes:
        if not translator.finished:
            raise UpstreamUnavailable(f"Upstream {where} ended the stream before its answer "
                                      "finished: the answer is incomplete.")
        return translator.end()

    return translate_events(chunks, translator, ending)
