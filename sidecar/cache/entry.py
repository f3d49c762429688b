"""A cached answer, and its byte form for stores that keep bytes (Redis).

An entry is the answer *as the upstream sent it*: the JSON body, or the stream's events (without
the final `[DONE]` and without keep-alive comments), plus what the stage needs without parsing
it again: the answer record (usage: a hit reports the tokens it did not spend; the finish
reason; the model that answered; the answer's id), and when it was stored (`Age`) and expires.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Literal

import orjson

from sidecar.call import Answer, Usage

Kind = Literal["json", "sse"]
# Python objects around the payload in the memory store (the Entry, its Usage, the key string
# and the LRU's links), measured with tracemalloc by bench/cache.py: 470-520 bytes.
ENTRY_OVERHEAD_BYTES = 512
_MAGIC = b"SC1"
_HEADER = struct.Struct(">3sI")  # magic, length of the JSON metadata that follows


@dataclass(slots=True)
class Entry:
    kind: Kind  # "json": payload is the body; "sse": payload is the events, as received
    payload: bytes
    model: str  # the model the key was computed for (purged by glob)
    stored_at: float  # wall-clock seconds (shared with other replicas through Redis)
    expires_at: float
    answer: Answer = field(default_factory=Answer)  # never written once stored

    @property
    def size(self) -> int:
        """What the entry counts against `cache.max_bytes`."""
        return len(self.payload) + ENTRY_OVERHEAD_BYTES

    def age(self, now: float) -> float:
        return max(0.0, now - self.stored_at)

    def ttl(self, now: float) -> float:
        return max(0.0, self.expires_at - now)


def encode(entry: Entry) -> bytes:
    answer = entry.answer
    u = answer.usage
    meta = orjson.dumps({
        "kind": entry.kind, "model": entry.model, "stored_at": entry.stored_at,
        "expires_at": entry.expires_at, "finish_reason": answer.finish_reason,
        "response_model": answer.model, "id": answer.id,
        "usage": None if u is None else [u.prompt_tokens, u.completion_tokens, u.cached_tokens,
                                         u.cache_write_tokens, u.reasoning_tokens, u.cost_usd],
    })
    return _HEADER.pack(_MAGIC, len(meta)) + meta + entry.payload


def decode(data: bytes) -> Entry:
    """The entry `encode` wrote; ValueError for anything else (another version, corruption)."""
    try:
        magic, length = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a cache entry of this version")
        start = _HEADER.size
        meta = orjson.loads(data[start:start + length])
        usage = meta["usage"]
        return Entry(
            kind="sse" if meta["kind"] == "sse" else "json",
            payload=data[start + length:], model=str(meta["model"]),
            stored_at=float(meta["stored_at"]), expires_at=float(meta["expires_at"]),
            answer=Answer(None if usage is None else Usage(*usage), meta["finish_reason"],
                          meta["response_model"], meta.get("id")))
    except (struct.error, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"corrupt cache entry: {exc}") from None
