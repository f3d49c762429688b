"""Placeholders restored in an Anthropic answer: `<EMAIL_1>` → the value the client sent.

A message: every text block, and every string of every tool_use input (the values are parsed
strings there, so no JSON escaping). A stream, event by event as it passes: each block is a
channel (text_delta text; input_json_delta partial_json, a piece of a JSON document, so values
go in JSON-escaped) that holds back only a tail which could still become a placeholder, released
with the block's next piece or just before its content_block_stop (as one more delta). Thinking
blocks are left as the model wrote them (signed: see fields.py). Anything else (an error body,
an event of another kind) is restored whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from sidecar.privacy.restorer import Restorer
from sidecar.sse import edit_events, event_json

_ESCAPED_LT = b"\\u003c"
_CHANNELS = {"text_delta": ("text", False), "input_json_delta": ("partial_json", True)}


def restore_body(restorer: Restorer, data: bytes) -> bytes:
    """A whole answer (a message, or an error body) with the originals put back."""
    if b"<" not in data and _ESCAPED_LT not in data:
        return data
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return restorer.body(data)
    if isinstance(document, dict) and document.get("type") == "message":
        for block in document.get("content") or ():
            _block(restorer, block)
        return orjson.dumps(document)
    return orjson.dumps(restorer.tree(document))


def _block(restorer: Restorer, block: Any) -> None:
    if not isinstance(block, dict) or block.get("type") in ("thinking", "redacted_thinking"):
        return
    restorer.tree(block)


def restore_stream(restorer: Restorer, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    return edit_events(chunks, MessagesStreamRestorer(restorer))


class MessagesStreamRestorer:
    """The `sse.edit_events` editor for one Anthropic stream."""

    def __init__(self, restorer: Restorer) -> None:
        self._restorer = restorer
        self._pending: dict[Any, tuple[str, str]] = {}  # block index -> (delta type, tail)

    def __call__(self, event: bytes) -> bytes | None:
        if not self._pending and b"<" not in event and _ESCAPED_LT not in event:
            return event
        payload = event_json(event)
        if not isinstance(payload, dict):
            return event
        kind = payload.get("type")
        index = payload.get("index")
        if kind == "content_block_delta" and isinstance(delta := payload.get("delta"), dict):
            channel = _CHANNELS.get(str(delta.get("type")))
            if channel is None:  # thinking and signatures as written; citations whole
                if delta.get("type") == "citations_delta":
                    self._restorer.tree(delta)
                    return _with(event, payload)
                return event
            field, json = channel
            piece = delta.get(field)
            if not isinstance(piece, str):
                return event
            text = self._pending.pop(index, ("", ""))[1] + piece
            cut = self._restorer.partial_tail(text)
            if cut < len(text):
                self._pending[index] = (str(delta.get("type")), text[cut:])
                text = text[:cut]
            delta[field] = self._restorer.text(text, json)
            return _with(event, payload) if delta[field] else None
        before = b""
        if index in self._pending and kind == "content_block_stop":
            before = self._release(index)
        elif kind in ("message_delta", "message_stop"):
            before = b"".join(self._release(i) for i in list(self._pending))
        if kind == "content_block_start" and isinstance(payload.get("content_block"), dict):
            _block(self._restorer, payload["content_block"])
        elif kind not in ("content_block_start", "content_block_stop"):
            self._restorer.tree(payload)
        return before + _with(event, payload)

    def _release(self, index: Any) -> bytes:
        kind, tail = self._pending.pop(index)
        field, json = _CHANNELS[kind]
        delta = {"type": "content_block_delta", "index": index,
                 "delta": {"type": kind, field: self._restorer.text(tail, json)}}
        return b"event: content_block_delta\ndata: " + orjson.dumps(delta) + b"\n\n"


def _with(event: bytes, payload: dict[str, Any]) -> bytes:
    """`event` with its data replaced by `payload` (its `event:` line kept)."""
    head, sep, _ = event.partition(b"data:")
    return (head if sep else b"") + b"data: " + orjson.dumps(payload) + b"\n\n"
