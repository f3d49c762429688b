"""What the inspector keeps of a finished request: metadata only, never content.

A `RequestRecord` is built from the Call in a finisher with data the pipeline already has (no
parsing, no I/O): ids, model, provider, status, outcome, timings, tokens, cost, cache status,
redactions, attempts, key name and tags. Content (prompt and completion) is kept apart, only
when `telemetry.capture_content` is on and zero-retention is off, in a bounded `ContentStore`
the detail view reads on demand; the list and the event stream never carry it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from sidecar.call import Call


@dataclass(slots=True)
class RequestRecord:
    seq: int  # position in the ring: the page asks for what came after the last one it saw
    time: float  # wall-clock seconds since the epoch, at arrival
    request_id: str
    method: str
    endpoint: str  # a model endpoint, or "passthrough"
    model: str | None  # what the client asked for
    response_model: str | None  # what answered
    provider: str | None
    status: int
    outcome: str
    latency_ms: float
    ttft_ms: float | None  # first byte of the answer to the client (streams: first event)
    stream: bool
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    saved_usd: float | None
    budget_remaining_usd: float | None
    cache: str | None
    redactions: int
    attempts: int
    fallbacks: list[dict[str, Any]] = field(default_factory=list)  # failed attempts
    key: str | None = None
    user: str | None = None
    tags: list[str] = field(default_factory=list)
    trace_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_of(call: Call, seq: int, now: float | None = None) -> RequestRecord:
    """The record of a finished call (its finishers run after outcome and status are final)."""
    ended = time.monotonic() if now is None else now
    usage = call.usage
    failed = [{"provider": a.provider, "model": a.model, "status": a.status, "error": a.error}
              for a in call.attempts[:-1]]
    return RequestRecord(
        seq=seq,
        time=time.time() - (ended - call.started),
        request_id=call.request_id,
        method=call.method,
        endpoint=call.endpoint or "passthrough",
        model=call.requested_model,
        response_model=call.response_model,
        provider=call.provider,
        status=call.status,
        outcome=call.outcome,
        latency_ms=round((ended - call.started) * 1000, 3),
        ttft_ms=(round((call.first_byte_at - call.started) * 1000, 3)
                 if call.first_byte_at is not None else None),
        stream=call.stream,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        cost_usd=call.cost_usd,
        saved_usd=call.saved_usd,
        budget_remaining_usd=call.budget_remaining_usd,
        cache=call.cache_status,
        redactions=call.redactions,
        attempts=len(call.attempts),
        fallbacks=failed,
        key=call.key_name,
        user=call.user,
        tags=list(call.tags),
        trace_id=call.trace_id,
    )


class ContentStore:
    """Prompts and completions of the most recent requests, by request id, bounded in count
    and in bytes (oldest dropped first). Memory only: never written anywhere."""

    def __init__(self, max_items: int, max_bytes: int = 16 * 1024 * 1024) -> None:
        self._items: OrderedDict[str, tuple[Any, str]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._bytes = 0

    def put(self, request_id: str, prompt: Any, completion: str, size: int) -> None:
        if size > self._max_bytes:
            return
        self._items[request_id] = (prompt, completion)
        self._sizes[request_id] = size
        self._bytes += size
        while len(self._items) > self._max_items or self._bytes > self._max_bytes:
            old, _ = self._items.popitem(last=False)
            self._bytes -= self._sizes.pop(old)

    def get(self, request_id: str) -> tuple[Any, str] | None:
        return self._items.get(request_id)

    def __len__(self) -> int:
        return len(self._items)
