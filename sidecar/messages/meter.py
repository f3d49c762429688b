"""Spend's stream meter for Anthropic's events: count the output, end the stream at the cap.

The same job as spend/stream.py does for OpenAI's chunks, on Anthropic's event stream:
- **Counting.** Each `content_block_delta` carrying output (text, a tool's input JSON,
  thinking) counts as one token, and its text's UTF-8 bytes as the most tokens it can be.
- **Usage.** Anthropic's streams always carry it (message_start, message_delta): nothing to
  add or remove. A stream is billed from its usage once message_delta said how it ended; one
  that ended before (the client left, the upstream broke, the cap) is billed as estimated:
  the input count message_start reported, and the output seen.
- **The cap.** When a blocking budget granted `limit` output tokens and the counted output
  reaches it, the next output event is not sent: the open block is closed
  (content_block_stop), then `message_delta` with stop_reason `max_tokens` and the output
  counted, then `message_stop`: a complete message to the client, cut where the budget ends.
  An upstream that honours the `max_tokens` it was sent never gets there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from sidecar.call import Answer, Usage
from sidecar.spend.stream import StreamMeter, utf8_len
from sidecar.sse import event_json

_OUTPUT_FIELDS = {"text_delta": "text", "input_json_delta": "partial_json",
                  "thinking_delta": "thinking"}
_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


class MessagesMeter(StreamMeter):
    __slots__ = ("_open",)

    def __init__(self, *, limit: int | None, ending_usage: Callable[[], dict[str, Any]],
                 hit: bool = False) -> None:
        super().__init__(limit=limit, strip_usage=False, add_cost=False, cost=lambda: 0.0,
                         ending_usage=ending_usage, completions=False, hit=hit)
        self._open: Any = None  # the index of the block being streamed

    def billable(self, answer: Answer) -> Usage | None:
        if answer.finish_reason is not None:  # message_delta came: the usage is final
            return answer.usage
        if answer.usage is not None and answer.usage.prompt_tokens:
            self.prompt_tokens = answer.usage.prompt_tokens
        return None

    def _edit(self, event: bytes) -> bytes | None:
        data = event_json(event)
        if not isinstance(data, dict):
            return event
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta")
            text = None
            if isinstance(delta, dict) and (field := _OUTPUT_FIELDS.get(
                    str(delta.get("type")))) is not None:
                text = delta.get(field)
            if isinstance(text, str) and text:
                if self.at_limit:
                    self.cut = True
                    return None
                self.events += 1
                self.text_bytes += utf8_len(text)
                if self.limit is not None and self.events >= self.limit:
                    self.at_limit = True
        elif kind == "content_block_start":
            self._open = data.get("index")
        elif kind == "content_block_stop":
            self._open = None
        elif kind == "message_delta":
            self.usage_seen = True
        return event

    def _ending(self) -> bytes:
        """The end of a stream cut at the reservation: the block closed, max_tokens, stop."""
        out = b""
        if self._open is not None:
            out += _event({"type": "content_block_stop", "index": self._open})
        output = self._ending_usage().get("completion_tokens", 0)
        return out + _event({"type": "message_delta",
                             "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                             "usage": {"output_tokens": output}}) + _STOP


def _event(data: dict[str, Any]) -> bytes:
    kind: str = data["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
