"""Exporter queues and threads: bounded, counted, never blocking the caller. The transports
are replaced by scripted ones at their Protocol seam; everything else is the real code."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from sidecar.telemetry.otlp.queues import Batcher, Sender, Warner
from sidecar.telemetry.otlp.records import SpanData
from sidecar.telemetry.otlp.transport import Destination

TRACES = Destination("traces", "grpc", "http://collector:4317")


class Scripted:
    """A transport that records payloads, fails when told, and can hang until released."""

    def __init__(self, error: str | None = None, hang: bool = False) -> None:
        self.sent: list[bytes] = []
        self.error = error
        self.release = threading.Event()
        if not hang:
            self.release.set()
        self.entered = threading.Event()

    def send(self, payload: bytes) -> str | None:
        self.entered.set()
        self.release.wait(10)
        self.sent.append(payload)
        return self.error

    def close(self) -> None:
        self.release.set()


class Drops:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, signal: str, count: int) -> None:
        self.counts[signal] += count


def test_a_full_queue_drops_and_counts_instead_of_growing() -> None:
    """put() past max_queue drops the item and counts it; the queue never exceeds its bound."""
    drops = Drops()
    batcher = Batcher("traces", lambda batch: b"", [], max_queue=5, batch_size=2, delay_s=60,
                      dropped=drops, warner=Warner())
    for item in range(12):
        batcher.put(item)
    assert batcher.queued() == 5
    assert drops.counts == {"traces": 7}


def test_batches_are_encoded_once_for_every_destination() -> None:
    """One encoding per batch, the same bytes handed to each destination's sender."""
    encoded: list[Sequence[Any]] = []

    def encode(batch: Sequence[Any]) -> bytes:
        encoded.append(list(batch))
        return repr(list(batch)).encode()

    drops = Drops()
    transports = [Scripted(), Scripted()]
    senders = [Sender(TRACES, drops, Warner(), 4, transport=t) for t in transports]
    batcher = Batcher("traces", encode, senders, max_queue=100, batch_size=3, delay_s=60,
                      dropped=drops, warner=Warner())
    batcher.start()
    for item in range(7):
        batcher.put(item)
    batcher.drain()
    assert all(s.wait_idle(time.monotonic() + 10) for s in senders)
    assert encoded == [[0, 1, 2], [3, 4, 5], [6]]
    assert transports[0].sent == transports[1].sent == [b"[0, 1, 2]", b"[3, 4, 5]", b"[6]"]
    assert drops.counts == {}
    batcher.stop()
    for sender in senders:
        sender.stop()


def test_a_stuck_destination_keeps_few_batches_and_counts_the_rest() -> None:
    """While its destination hangs, a sender keeps at most max_pending batches: the oldest
    are dropped and counted, and offer() never waits."""
    drops = Drops()
    stuck = Scripted(hang=True)
    sender = Sender(TRACES, drops, Warner(), max_pending=2, transport=stuck)
    sender.start()
    sender.offer(b"first", [], 10)
    assert stuck.entered.wait(10)  # the first batch is being sent (and hangs)
    for index in range(5):
        sender.offer(b"more", [], 10 + index)
    assert sender.pending() == 13 + 14  # the two newest batches wait
    assert drops.counts == {"traces": 10 + 11 + 12}
    sender.stop()  # what still waits is counted as dropped
    assert drops.counts == {"traces": 10 + 11 + 12 + 13 + 14}


def test_a_failed_export_is_counted_and_warned_about_once_a_minute() -> None:
    """Each failed batch counts its items as dropped; the warning names the destination and
    reason (never a header), once per interval, then says how many it held back."""
    drops = Drops()
    secret = Destination("traces", "http", "https://cloud.example/v1/traces",
                         (("Authorization", "Basic c2VjcmV0"),))
    sender = Sender(secret, drops, Warner(interval=3600), 8, transport=Scripted("http_503"))
    sender.start()
    with capture_logs() as logs:
        for _ in range(3):
            sender.offer(b"x", [], 4)
        assert sender.wait_idle(time.monotonic() + 10)
    sender.stop()
    assert drops.counts == {"traces": 12}
    (warning,) = [entry for entry in logs if entry["event"] == "telemetry_export_failed"]
    assert warning["reason"] == "http_503" and warning["dropped"] == 4
    assert warning["destination"] == "http https://cloud.example/v1/traces"
    assert "c2VjcmV0" not in repr(logs)


def test_warner_rate_limits_per_key() -> None:
    """A key warns once per interval; other keys are independent; the count held back is told."""
    warner = Warner(interval=0.0)
    with capture_logs() as logs:
        warner.warn("a", "e1")
        warner.warn("a", "e1")
    assert len(logs) == 2  # interval 0: never held back
    slow = Warner(interval=3600)
    with capture_logs() as logs:
        for _ in range(5):
            slow.warn("a", "e1")
        slow.warn("b", "e2")
    assert [entry["event"] for entry in logs] == ["e1", "e2"]
    assert logs[0]["suppressed_since_last"] == 0


def test_console_destination_prints_one_json_object_per_span(
        capsys: pytest.CaptureFixture[str]) -> None:
    """protocol: console writes each item as one JSON line on stderr, ids in hex."""
    sender = Sender(Destination("traces", "console"), Drops(), Warner(), 4)
    sender.start()
    span = SpanData(trace_id=0xABC, span_id=0x12, parent_id=0, name="chat m", kind=3,
                    start_ns=1, end_ns=2, attributes={"gen_ai.request.model": "m"})
    sender.offer(None, [span], 1)
    assert sender.wait_idle(time.monotonic() + 10)
    sender.stop()
    (line,) = capsys.readouterr().err.splitlines()
    got = json.loads(line)
    assert got["trace_id"] == f"{0xABC:032x}" and got["span_id"] == f"{0x12:016x}"
    assert got["name"] == "chat m" and got["attributes"] == {"gen_ai.request.model": "m"}


def test_a_stopped_sender_counts_what_it_is_still_offered() -> None:
    """After stop(), a late batch is counted as dropped, never queued for a dead thread."""
    drops = Drops()
    sender = Sender(TRACES, drops, Warner(), 4, transport=Scripted())
    sender.start()
    sender.stop()
    sender.offer(b"late", [], 3)
    assert sender.pending() == 0 and drops.counts == {"traces": 3}
