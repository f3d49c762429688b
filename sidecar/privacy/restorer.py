"""Put the originals back into the answer: `<EMAIL_1>` → the address the client sent.

JSON answers are restored in every string (chat, completions, Responses, error bodies alike);
inside tool-call `arguments` (a JSON document in a string) the value is JSON-escaped first, so
the arguments stay valid JSON. Streams are restored event by event as they pass: a text
channel (one choice's content, one tool call's arguments, one Responses output part) holds back
only a tail that could still become a placeholder (`<EM` of `<EMAIL_1>`, split over chunks);
everything else goes out at once. The held tail is released with the next piece of its
channel, or before the event that ends the channel (finish_reason, `….done`, `[DONE]`).
A client never sees a placeholder the sidecar made, whole or in pieces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from sidecar.privacy.redactor import PLACEHOLDER
from sidecar.sse import edit_events, event_data, event_json

_ESCAPED_LT = b"\\u003c"  # some upstreams (Go's encoding/json) escape `<` in strings
_CHAT_TEXT = ("content", "reasoning", "reasoning_content", "refusal")
Key = tuple[Any, ...]


class Restorer:
    def __init__(self, originals: dict[str, str]) -> None:
        self._originals = originals
        self._escaped = {p: orjson.dumps(v).decode()[1:-1] for p, v in originals.items()}
        self._prefixes = frozenset(p[:i] for p in originals for i in range(1, len(p)))

    def text(self, text: str, json: bool = False) -> str:
        if "<" not in text:
            return text
        table = self._escaped if json else self._originals
        return PLACEHOLDER.sub(lambda m: table.get(m.group(0), m.group(0)), text)

    def partial_tail(self, text: str) -> int:
        """Where a possible partial placeholder starts at the end of `text`, else len."""
        cut = text.rfind("<")
        return cut if cut >= 0 and text[cut:] in self._prefixes else len(text)

    def body(self, data: bytes) -> bytes:
        if b"<" not in data and _ESCAPED_LT not in data:
            return data
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self.text(data.decode("utf-8", "replace")).encode()
        return orjson.dumps(self.tree(document))

    def tree(self, node: Any, json: bool = False) -> Any:
        """Restore every string of a parsed JSON value, in place."""
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str):
                    node[key] = self.text(value, json or key == "arguments")
                elif isinstance(value, (dict, list)):
                    self.tree(value, json)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    node[index] = self.text(value, json)
                elif isinstance(value, (dict, list)):
                    self.tree(value, json)
        return node

    def stream(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return edit_events(chunks, StreamRestorer(self))


class StreamRestorer:
    """The `sse.edit_events` editor: one per stream, holding each channel's partial tail."""

    def __init__(self, restorer: Restorer) -> None:
        self._restorer = restorer
        self._pending: dict[Key, str] = {}
        self._last_chunk: dict[str, Any] | None = None

    def __call__(self, event: bytes) -> bytes | None:
        if not self._pending and b"<" not in event and _ESCAPED_LT not in event:
            return event
        if event_data(event) == b"[DONE]":
            return self._flush_chat() + event
        payload = event_json(event)
        if not isinstance(payload, dict):
            return event
        before = b""
        if isinstance(payload.get("choices"), list):
            self._chat(payload)
        elif isinstance(kind := payload.get("type"), str) and kind.startswith("response."):
            before = self._responses(kind, payload, event)
        else:
            self._restorer.tree(payload)
        return before + _with_data(event, orjson.dumps(payload))

    def _feed(self, key: Key, piece: str, json: bool, final: bool) -> str:
        text = self._pending.pop(key, "") + piece
        if not final:
            cut = self._restorer.partial_tail(text)
            if cut < len(text):
                self._pending[key] = text[cut:]
                text = text[:cut]
        return self._restorer.text(text, json)

    def _chat(self, payload: dict[str, Any]) -> None:
        self._last_chunk = payload
        for choice in payload["choices"]:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            final = choice.get("finish_reason") is not None
            delta = choice.get("delta")
            if not isinstance(delta, dict) and final and "text" not in choice and any(
                    key[0] == index for key in self._pending):
                delta = choice["delta"] = {}  # a finish chunk without a delta: held text
            if isinstance(delta, dict):
                self._delta(index, delta, final)
            if isinstance(choice.get("text"), str) or (final and (index, "text") in
                                                       self._pending):
                choice["text"] = self._feed((index, "text"), choice.get("text") or "", False,
                                            final)
            for key, value in choice.items():
                if key not in ("delta", "text") and isinstance(value, (dict, list)):
                    self._restorer.tree(value)

    def _delta(self, index: Any, delta: dict[str, Any], final: bool) -> None:
        for field in _CHAT_TEXT:
            if isinstance(delta.get(field), str) or (final and (index, field) in self._pending):
                delta[field] = self._feed((index, field), delta.get(field) or "", False, final)
        calls = delta.get("tool_calls")
        seen: set[Any] = set()
        if isinstance(calls, list):
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    number = call.get("index", 0)
                    seen.add(number)
                    function["arguments"] = self._feed((index, "tool", number),
                                                       function["arguments"], True, final)
        if final:  # tails of tool calls that got no piece in this last chunk
            for key in [k for k in self._pending if k[:2] == (index, "tool")
                        and k[2] not in seen]:
                tail = self._restorer.text(self._pending.pop(key), True)
                if not isinstance(delta.get("tool_calls"), list):
                    delta["tool_calls"] = []
                delta["tool_calls"].append({"index": key[2], "function": {"arguments": tail}})
        for name, value in delta.items():  # the rest whole (reasoning_details, audio,
            # annotations): a placeholder split across their chunks is not held back
            if name not in _CHAT_TEXT and name != "tool_calls" and isinstance(value,
                                                                                 (dict, list)):
                self._restorer.tree(value)

    def _flush_chat(self) -> bytes:
        """Tails still held when the stream ends without a finish_reason: one last chunk."""
        if not self._pending or self._last_chunk is None:
            self._pending.clear()
            return b""
        choices: dict[Any, dict[str, Any]] = {}
        for key, tail in self._pending.items():
            choice = choices.setdefault(key[0], {"index": key[0], "delta": {},
                                                 "finish_reason": None})
            if key[1] == "text":
                choice.pop("delta", None)
                choice["text"] = self._restorer.text(tail)
            elif key[1] == "tool":
                choice["delta"].setdefault("tool_calls", []).append(
                    {"index": key[2], "function": {"arguments": self._restorer.text(tail, True)}})
            else:
                choice["delta"][key[1]] = self._restorer.text(tail)
        self._pending.clear()
        chunk = {**self._last_chunk, "choices": list(choices.values())}
        chunk.pop("usage", None)
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _responses(self, kind: str, payload: dict[str, Any], event: bytes) -> bytes:
        """Responses API events: `….delta` pieces are channels; the `….done` event of a
        channel releases its tail first (as one more delta event); whole objects are restored
        as they are."""
        json = "function_call_arguments" in kind or "custom_tool_call_input" in kind
        key = (kind.rsplit(".", 1)[0], payload.get("output_index"), payload.get("content_index"),
               payload.get("summary_index"))
        if kind.endswith(".delta") and isinstance(payload.get("delta"), str):
            payload["delta"] = self._feed(key, payload["delta"], json, False)
            return b""
        before = b""
        if kind.endswith(".done") and key in self._pending:
            tail = self._restorer.text(self._pending.pop(key), json)
            delta = {k: v for k, v in payload.items() if k in (
                "item_id", "output_index", "content_index", "summary_index",
                "sequence_number")}
            delta.update(type=key[0] + ".delta", delta=tail)
            before = _with_data(event, orjson.dumps(delta), event_name=key[0] + ".delta")
        self._restorer.tree(payload, json)
        return before


def _with_data(event: bytes, data: bytes, event_name: str | None = None) -> bytes:
    """`event` with its data lines replaced by one line of `data` (other fields kept)."""
    lines = event.replace(b"\r\n", b"\n").replace(b"\r", b"\n").rstrip(b"\n").split(b"\n")
    out: list[bytes] = []
    for line in lines:
        if line.startswith(b"data:"):
            if data:
                out.append(b"data: " + data)
                data = b""
        elif event_name is not None and line.startswith(b"event:"):
            out.append(b"event: " + event_name.encode())
        else:
            out.append(line)
    return b"\n".join(out) + b"\n\n"
