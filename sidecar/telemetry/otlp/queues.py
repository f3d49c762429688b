"""Bounded queues and exporter threads: the only place telemetry leaves the process.

    event loop ── put(span) ──► Batcher (one per signal: bounded deque, one thread)
                                  │ encodes each batch ONCE
                                  ├──► Sender (one per destination: bounded, own thread) ──► gRPC
                                  └──► Sender ──► HTTP / console
    MetricsPump (one thread): every interval, reads the registry ──► the metrics Senders

The event loop only appends to a deque (no lock, no I/O, no encoding). Nothing here can block a
request: a full queue drops the newest item, a Sender whose destination is slow or down drops
its oldest batch, and a failed export drops its batch; every dropped item is counted in
`llm_sidecar_telemetry_dropped_total{signal}` and reported in at most one warning per
destination and problem per minute. One destination being down delays no other.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog

from sidecar.telemetry.otlp.transport import Destination, Signal, Transport, make_transport

__all__ = ["Batcher", "Dropped", "MetricsPump", "Sender", "Warner"]

Dropped = Callable[[str, int], None]  # Metrics.dropped(signal, count)
WARN_INTERVAL_S = 60.0
_log = structlog.get_logger("sidecar.telemetry")


class Warner:
    """At most one warning per key per `interval`, saying how many were held back meanwhile."""

    def __init__(self, interval: float = WARN_INTERVAL_S) -> None:
        self._interval = interval
        self._seen: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def warn(self, key: str, event: str, **fields: Any) -> None:
        now = time.monotonic()
        with self._lock:
            last, held = self._seen.get(key, (-self._interval, 0))
            if now - last < self._interval:
                self._seen[key] = (last, held + 1)
                return
            self._seen[key] = (now, 0)
        _log.warning(event, suppressed_since_last=held, **fields)


class Sender:
    """Delivers encoded batches to one destination from its own thread."""

    def __init__(self, destination: Destination, dropped: Dropped, warner: Warner,
                 max_pending: int, transport: Transport | None = None) -> None:
        self.destination = destination
        self._transport = transport  # made at start(): building the app opens no connection
        self._dropped = dropped
        self._warner = warner
        self._max_pending = max_pending
        self._pending: deque[tuple[bytes | None, Sequence[Any], int]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                         name=f"telemetry-{destination.signal}-sender")

    @property
    def wants_payload(self) -> bool:
        return self.destination.protocol != "console"

    def start(self) -> None:
        if self._transport is None and self.destination.protocol != "console":
            self._transport = make_transport(self.destination)
        self._thread.start()

    def offer(self, payload: bytes | None, items: Sequence[Any], count: int) -> None:
        with self._cond:
            if self._stopping:
                self._lost(count, "shutdown")
                return
            if len(self._pending) >= self._max_pending:
                _, _, lost = self._pending.popleft()
                self._lost(lost, "queue_full")
            self._pending.append((payload, items, count))
            self._cond.notify()

    def pending(self) -> int:
        """Items waiting for this destination (at most `max_pending` batches of them)."""
        with self._cond:
            return sum(count for _, _, count in self._pending)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending:
                    return
                payload, items, count = self._pending.popleft()
                self._busy = True
            try:
                error = self._deliver(payload, items)
            except Exception as exc:  # a bug or a closed channel: count it, keep the thread
                error = type(exc).__name__
            with self._cond:
                self._busy = False
                self._cond.notify_all()
            if error is not None:
                self._lost(count, error)

    def _deliver(self, payload: bytes | None, items: Sequence[Any]) -> str | None:
        if self._transport is None:  # console: one JSON object per item, on stderr
            sys.stderr.write("".join(orjson.dumps(render(item), default=str).decode() + "\n"
                                     for item in items))
            sys.stderr.flush()
            return None
        assert payload is not None
        return self._transport.send(payload)

    def _lost(self, count: int, reason: str) -> None:
        signal = self.destination.signal
        self._dropped(signal, count)
        self._warner.warn(f"{self.destination.label}:{reason}", "telemetry_export_failed",
                          destination=self.destination.label, signal=signal, reason=reason,
                          dropped=count)

    def wait_idle(self, deadline: float) -> bool:
        """Block until everything offered so far was delivered (or failed), or the deadline."""
        with self._cond:
            while self._pending or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stop(self) -> None:
        """Stop after the current batch; what is still pending is counted as dropped."""
        with self._cond:
            self._stopping = True
            lost = sum(count for _, _, count in self._pending)
            self._pending.clear()
            self._cond.notify_all()
        if lost:
            self._lost(lost, "shutdown")
        if self._transport is not None:
            self._transport.close()


def render(item: Any) -> Any:
    """An item as JSON-friendly data, for the console destination."""
    fields = getattr(item, "__slots__", None)
    if fields is None:
        return item
    out = {name: getattr(item, name) for name in fields}
    for key in ("trace_id", "span_id", "parent_id"):
        if isinstance(out.get(key), int):
            out[key] = f"{out[key]:0{32 if key == 'trace_id' else 16}x}"
    if out.get("events"):
        out["events"] = [render(e) for e in out["events"]]
    return out


class Batcher:
    """One signal's queue: `put` from the event loop, batches encoded on its own thread."""

    def __init__(self, signal: Signal, encode: Callable[[Sequence[Any]], bytes],
                 senders: Sequence[Sender], *, max_queue: int, batch_size: int, delay_s: float,
                 dropped: Dropped, warner: Warner) -> None:
        self.signal = signal
        self.senders = tuple(senders)
        self._encode = encode
        self._needs_payload = any(s.wants_payload for s in senders)
        self._items: deque[Any] = deque()
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._delay_s = delay_s
        self._dropped = dropped
        self._warner = warner
        self._wake = threading.Event()
        self._drain_lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"telemetry-{signal}-batcher")

    def start(self) -> None:
        for sender in self.senders:
            sender.start()
        self._thread.start()

    def put(self, item: Any) -> None:
        """Called on the event loop: an append, or a counted drop when the queue is full."""
        items = self._items
        if len(items) >= self._max_queue:
            self._dropped(self.signal, 1)
            self._warner.warn(f"{self.signal}:queue_full", "telemetry_queue_full",
                              signal=self.signal, max_queue=self._max_queue)
            return
        items.append(item)
        if len(items) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def queued(self) -> int:
        return len(self._items)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            self.drain()

    def drain(self) -> None:
        """Hand every queued item to the senders, in batches (from any thread)."""
        items = self._items
        with self._drain_lock:
            while items:
                batch = [items.popleft() for _ in range(min(self._batch_size, len(items)))]
                try:
                    payload = self._encode(batch) if self._needs_payload else None
                except Exception as exc:  # a bug: never let it kill the thread
                    self._dropped(self.signal, len(batch))
                    self._warner.warn(f"{self.signal}:encode", "telemetry_encode_failed",
                                      signal=self.signal, error=repr(exc))
                    continue
                for sender in self.senders:
                    sender.offer(payload, batch, len(batch))
                time.sleep(0)  # let the event loop have the GIL between batches

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()


class MetricsPump:
    """Reads the metrics registry every `interval_s` and hands the encoding to the senders."""

    def __init__(self, collect: Callable[[], tuple[bytes, int]], senders: Sequence[Sender],
                 interval_s: float) -> None:
        self.senders = tuple(senders)
        self._collect = collect
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="telemetry-metrics-reader")

    def start(self) -> None:
        for sender in self.senders:
            sender.start()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.export()

    def export(self) -> None:
        with self._lock:
            payload, points = self._collect()
            for sender in self.senders:
                sender.offer(payload, (), points)

    def stop(self) -> None:
        self._stop.set()
