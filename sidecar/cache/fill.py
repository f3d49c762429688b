"""What may be stored: a complete, successful answer that fits, and nothing else.

Never stored: an error status, a stream that broke or ended without `[DONE]`, a stream with a
data event that is not a JSON object (a glitch the client's SDK raised on: stored, it would
fail every identical request for the entry's lifetime), an answer whose `finish_reason` is
missing or `error` (OpenRouter ends a stream that failed mid-way with `finish_reason: "error"`),
an answer over `cache.max_entry_bytes`. Embeddings have no finish reason: they count as
complete when the answer is a JSON object whose `data` is a list. The Responses API's stream
ends after its `response.completed` event, without `[DONE]`; its status ("completed",
"incomplete") is the finish reason answer.py reads.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidecar import sse
from sidecar.cache.entry import Entry
from sidecar.call import Call
from sidecar.endpoints import ENDPOINTS

_OPEN = (b"data: {", b"data:{")
_DONE = (b"data: [DONE]", b"data:[DONE]", b"")


def json_entry(call: Call, body: bytes, *, now: float, ttl: float, max_bytes: int
               ) -> Entry | None:
    """The entry for a whole JSON answer (status 200), or None when it may not be stored."""
    if len(body) > max_bytes:
        return None
    if call.endpoint == "embeddings":
        if not _has_data(body):
            return None
    elif call.answer.finish_reason in (None, "error"):
        return None
    return _entry(call, "json", body, now, ttl)


def stream_entry(call: Call, chunks: list[bytes], *, now: float, ttl: float, max_bytes: int
                 ) -> Entry | None:
    """The entry for a stream that ended cleanly, or None when it may not be stored."""
    if call.answer.finish_reason in (None, "error") or not chunks:
        return None
    endpoint = ENDPOINTS.get(call.endpoint or "")
    if (endpoint is None or endpoint.stream_done) and sse.event_data(
            sse.split_events(chunks[-1])[-1]) != b"[DONE]":
        return None  # ended, but not the way a complete OpenAI stream ends
    payload = b"".join(chunks)
    if payload.startswith(b":") or b"\n:" in payload or b"\r:" in payload:
        # keep-alive comments (": OPENROUTER PROCESSING") are noise, not the answer
        payload = b"".join(e for e in sse.split_events(payload) if sse.event_data(e) is not None)
    if len(payload) > max_bytes or not _all_json(payload):
        return None
    return _entry(call, "sse", payload, now, ttl)


def _all_json(payload: bytes) -> bool:
    """Every data line looks like a JSON object (or is `[DONE]`), judged by its braces rather
    than parsed, since it runs on every stored stream: 0.25 µs an event (splitting and parsing
    each took 1.5 µs). That catches what glitches produce: a truncated event, a line of text or
    HTML. (A JSON object split over several data lines, which no provider sends, is then not
    stored: a miss, never a wrong answer.)"""
    if b"\r" in payload:
        payload = payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    for event in payload.split(b"\n\n"):
        if (event.startswith(_OPEN) and event.endswith(b"}")) or event in _DONE:
            continue  # the usual event: one data line
        for line in event.split(b"\n"):  # e.g. Responses events: `event: …` then `data: …`
            if line.startswith(b"data:"):
                data = line[5:].strip()
                if data != b"[DONE]" and (data[:1] != b"{" or data[-1:] != b"}"):
                    return False
    return True


def _entry(call: Call, kind: Any, payload: bytes, now: float, ttl: float) -> Entry:
    assert call.model is not None
    return Entry(kind=kind, payload=payload, model=call.model, stored_at=now,
                 expires_at=now + ttl, answer=call.answer)


def _has_data(body: bytes) -> bool:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(answer, dict) and isinstance(answer.get("data"), list)
