"""W3C trace context parsing and the OpenTelemetry samplers."""

from __future__ import annotations

import pytest

from sidecar.telemetry.tracing import Sampler, parse_traceparent, start_trace

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(("header", "expected"), [
    (f"00-{TRACE}-{SPAN}-01", (int(TRACE, 16), int(SPAN, 16), True)),
    (f"00-{TRACE}-{SPAN}-00", (int(TRACE, 16), int(SPAN, 16), False)),
    (f"00-{TRACE.upper()}-{SPAN}-03", (int(TRACE, 16), int(SPAN, 16), True)),
    (f"01-{TRACE}-{SPAN}-01-future", (int(TRACE, 16), int(SPAN, 16), True)),
    (f" 00-{TRACE}-{SPAN}-01 ", (int(TRACE, 16), int(SPAN, 16), True)),
    (None, None),
    ("", None),
    ("garbage", None),
    (f"00-{TRACE}-{SPAN}-01-extra", None),  # version 00 has exactly four fields
    (f"ff-{TRACE}-{SPAN}-01", None),  # version ff is invalid
    (f"00-{'0' * 32}-{SPAN}-01", None),  # all-zero trace id
    (f"00-{TRACE}-{'0' * 16}-01", None),  # all-zero parent id
    (f"00-{TRACE[:-1]}g-{SPAN}-01", None),  # not hex
    (f"00-{TRACE}-{SPAN[:-1]}-01", None),  # short span id
])
def test_traceparent_parsing(header: str | None, expected: object) -> None:
    """Valid headers give (trace id, parent id, sampled); anything invalid gives None."""
    assert parse_traceparent(header) == expected


@pytest.mark.parametrize(("sampler", "parent", "expected"), [
    (Sampler("ratio", 0.0, True), True, True),  # parent-based: follow the caller
    (Sampler("ratio", 1.0, True), False, False),
    (Sampler("ratio", 0.0, False), True, False),  # not parent-based: the ratio decides
    (Sampler("always_on", 1.0, False), False, True),
    (Sampler("always_off", 1.0, True), None, False),
    (Sampler("always_on", 1.0, True), None, True),
])
def test_samplers(sampler: Sampler, parent: bool | None, expected: bool) -> None:
    """Parent-based samplers follow a caller's decision; root samplers decide alone."""
    assert sampler.sample(12345, parent, sampler.bound) is expected


def test_ratio_uses_the_low_64_bits_like_the_sdk() -> None:
    """TraceIdRatioBased: sampled iff the low 64 bits are below ratio * 2**64, so a sidecar and
    an SDK at the same ratio keep the same traces; about that share of random ids pass."""
    sampler = Sampler("ratio", 0.25, False)
    bound = sampler.bound
    assert bound == 2**62
    assert sampler.sample((1 << 100) | (2**62 - 1), None, bound)
    assert not sampler.sample(2**62, None, bound)
    import random
    rng = random.Random(7)
    kept = sum(sampler.sample(rng.getrandbits(128), None, bound) for _ in range(20000))
    assert 4500 < kept < 5500


def test_start_trace_continues_or_starts() -> None:
    """With a valid traceparent the trace and parent are kept, the span id is new, tracestate is
    passed on; without one a fresh trace starts; the upstream header names our span."""
    trace = start_trace(f"00-{TRACE}-{SPAN}-01", "vendor=1", Sampler(), Sampler().bound)
    assert (f"{trace.trace_id:032x}", f"{trace.parent_id:016x}") == (TRACE, SPAN)
    assert trace.span_id not in (0, int(SPAN, 16)) and trace.trace_state == "vendor=1"
    assert trace.traceparent() == f"00-{TRACE}-{trace.span_id:016x}-01"
    fresh = start_trace(None, "ignored=1", Sampler(), Sampler().bound)
    assert fresh.parent_id == 0 and fresh.trace_state == "" and fresh.trace_id
    oversized = start_trace(f"00-{TRACE}-{SPAN}-00", "k=" + "v" * 600, Sampler(), 0)
    assert oversized.trace_state == "" and not oversized.sampled
    assert oversized.traceparent().endswith("-00")
