"""What the inspector keeps of a finished request: metadata only, never content.

A `RequestRecord` is built from the Call in a finisher with data the pipeline already has (no
parsing, no I/O): ids, model, provider, status, outcome, timings, tokens, cost, cache status,
redactions, attempts, key name and tags, and for an auto router's request its tier, why, and
what it saved against the router's baseline. Content (prompt and completion) is kept apart, only
when `telemetry.capture_content` is on and zero-retention is off, in a bounded `ContentStore`
the detail view reads on demand; the list and the event stream never carry it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, fields
from time import monotonic
from time import time as wall
from typing import Any

import orjson

from sidecar.call import NANO_USD, Call


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
    tier: str | None = None  # the auto router's tier (docs/auto.md)
    auto_reason: str | None = None
    saved_vs_baseline_usd: float | None = None  # negative: it cost more than the baseline
    _event: bytes | None = None  # this record as a server-sent event, rendered once

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    def event(self) -> bytes:
        """`id`, `event: request` and the JSON data: rendered once, sent to every page."""
        if self._event is None:
            self._event = b"id: %d\nevent: request\ndata: %s\n\n" % (
                self.seq, orjson.dumps(self.as_dict()))
        return self._event


_FIELDS = tuple(f.name for f in fields(RequestRecord) if not f.name.startswith("_"))


def record_of(call: Call, seq: int, now: float | None = None) -> RequestRecord:
    """The record of a finished call (its finishers run after outcome and status are final).
    Positional and without helpers: it runs for every request (about 2 µs)."""
    ended = monotonic() if now is None else now
    started = call.started
    usage = call.answer.usage
    bill = call.bill
    attempts = call.attempts
    failed = [{"provider": a.provider, "model": a.model, "status": a.status, "error": a.error}
              for a in attempts[:-1]] if len(attempts) > 1 else []
    first = call.first_byte_at
    auto = call.auto
    saved = auto.saved(bill) if auto is not None else None
    return RequestRecord(
        seq, wall() - (ended - started), call.request_id, call.method,
        call.endpoint or "passthrough", call.requested_model, call.answer.model,
        attempts[-1].provider if attempts else None, call.status, call.outcome,
        round((ended - started) * 1000, 3),
        None if first is None else round((first - started) * 1000, 3), call.stream,
        usage.prompt_tokens if usage else None, usage.completion_tokens if usage else None,
        bill.cost_usd if bill else None, bill.saved_usd if bill else None,
        bill.remaining_usd if bill else None, call.cache_status,
        call.redactions, len(attempts), failed, call.key_name, call.user, list(call.tags),
        call.trace_id, auto.served_tier(call) if auto is not None else None,
        auto.reason if auto is not None else None,
        None if saved is None else saved * NANO_USD)


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
