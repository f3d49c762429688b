"""Spend's view of a streamed answer: count the output as it passes, keep the usage chunk the
client's business, and end the stream at the reservation.

Event by event, never buffered (each incoming chunk gives at most one outgoing chunk):
- **Counting.** Each event that carries output (a content, reasoning, refusal or tool-call
  delta; a completion's text; a Responses `*.delta`) counts as one token, and its text's UTF-8
  bytes are added up as the most tokens it can be. If the stream ends without the upstream's
  usage (the client left, the upstream broke), the bill uses that upper bound, capped by the
  grant, and the row is marked `estimated`.
- **Usage.** A client that did not ask for usage never sees it: the spend stage asked upstream
  for it (`stream_options.include_usage`), and the usage-only chunk is dropped here (a `usage`
  riding on a chunk with choices is removed from it). A client that asked gets `usage.cost`
  added to its usage chunk (USD; 0 on a cache hit), unless the upstream already put its own.
- **The cap.** When a blocking budget granted `limit` output tokens and the counted output
  reaches it, the next output event is not sent: the stream ends with a final chunk
  `finish_reason: "length"`, the usage chunk if the client asked (estimated), and `[DONE]`.
  An upstream that honours the `max_tokens` it was sent never gets there: its own finish,
  usage and `[DONE]` follow the last counted event and pass through, real figures included.
  (Events under-count tokens, so the cut only ever catches an upstream that ignores the limit.)
Chat completions and completions streams only; a Responses stream is counted, and capped by
the `max_output_tokens` it was sent.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from sidecar import sse
from sidecar.call import Answer, Usage
from sidecar.sse import event_json, split_events


def utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def output_bytes(data: dict[str, Any]) -> int:
    """UTF-8 bytes of the output text in one chunk; -1 when it carries no output."""
    total, found = 0, False
    choices = data.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            parts: list[Any] = []
            if isinstance(delta, dict):
                parts = [delta.get("content"), delta.get("reasoning"),
                         delta.get("reasoning_content"), delta.get("refusal")]
                for call in delta.get("tool_calls") or ():
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict):
                        parts += [function.get("name"), function.get("arguments")]
            else:
                parts = [choice.get("text")]
            for part in parts:
                if isinstance(part, str) and part:
                    total += utf8_len(part)
                    found = True
    elif isinstance(delta := data.get("delta"), str) and str(data.get("type", "")).endswith(
            ".delta") and delta:
        return utf8_len(delta)
    return total if found else -1


class StreamMeter:
    __slots__ = ("_cost", "_ending_usage", "_hit", "_indexes", "_last", "_object", "add_cost",
                 "at_limit", "cut", "events", "limit", "prompt_tokens", "strip_usage",
                 "text_bytes", "usage_seen")

    def __init__(self, *, limit: int | None, strip_usage: bool, add_cost: bool,
                 cost: Callable[[], float], ending_usage: Callable[[], dict[str, Any]],
                 completions: bool, hit: bool = False) -> None:
        self.limit = limit  # output events allowed (None: no cap)
        self.strip_usage = strip_usage  # the client did not ask for usage
        self.add_cost = add_cost  # the client asked: add usage.cost
        self._cost = cost  # USD of the answer, once its usage is known
        self._ending_usage = ending_usage  # the estimated usage object, for a cut stream
        self._object = "text_completion" if completions else "chat.completion.chunk"
        self._hit = hit  # a cache hit replayed: it cost 0, whatever its stored usage says
        self.events = 0
        self.text_bytes = 0
        self.at_limit = False
        self.cut = False  # the sidecar ended the stream at the reservation
        self.usage_seen = False
        self.prompt_tokens: int | None = None  # the real prompt count, when a stream that
        # ended early had said it (Anthropic's message_start): the estimate's prompt then
        self._last: dict[str, Any] = {}
        self._indexes: set[int] = set()

    def billable(self, answer: Answer) -> Usage | None:
        """The usage to bill once the stream is over; None when it ended without a final
        usage (billed as estimated). OpenAI's streams report usage only at their end."""
        return answer.usage

    async def watch(self, chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in chunks:
                events = split_events(chunk)
                out = []
                for event in events:
                    edited = self._edit(event)
                    if self.cut:
                        break
                    if edited is not None:
                        out.append(edited)
                if out:
                    yield out[0] if len(out) == 1 else b"".join(out)
                if self.cut:
                    yield self._ending()
                    return
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    def _edit(self, event: bytes) -> bytes | None:
        data = event_json(event)
        if not isinstance(data, dict):
            return event
        size = output_bytes(data)
        if size >= 0:
            if self.at_limit:
                self.cut = True
                return None
            self.events += 1
            self.text_bytes += size
            if self.limit is not None and self.events >= self.limit:
                self.at_limit = True
        if self.limit is not None:  # only a cut stream needs its ids and choice indexes
            self._remember(data)
        usage = data.get("usage")
        if not isinstance(usage, dict):
            return event
        self.usage_seen = True
        if self.strip_usage:
            if not data.get("choices"):
                return None
            del data["usage"]
            return sse.encode(data)
        if self.add_cost and (self._hit or "cost" not in usage):
            usage["cost"] = self._cost()
            return sse.encode(data)
        return event

    def _remember(self, data: dict[str, Any]) -> None:
        if not self._last and isinstance(data.get("id"), str):
            self._last = {k: data[k] for k in ("id", "created", "model") if k in data}
        for choice in data.get("choices") or ():
            if isinstance(choice, dict) and isinstance(index := choice.get("index"), int):
                self._indexes.add(index)

    def _ending(self) -> bytes:
        """The end of a stream cut at the reservation: finish_reason length, usage, [DONE]."""
        base: dict[str, Any] = {**self._last, "object": self._object}
        choices: list[dict[str, Any]]
        if self._object == "text_completion":
            choices = [{"index": i, "text": "", "finish_reason": "length", "logprobs": None}
                       for i in sorted(self._indexes or {0})]
        else:
            choices = [{"index": i, "delta": {}, "finish_reason": "length"}
                       for i in sorted(self._indexes or {0})]
        out = sse.encode({**base, "choices": choices})
        if not self.strip_usage:
            out += sse.encode({**base, "choices": [], "usage": self._ending_usage()})
        return out + sse.DONE
