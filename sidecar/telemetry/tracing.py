"""W3C trace context and head sampling: which trace a request belongs to, and whether to keep it.

A request continues the trace of an incoming `traceparent` (its `tracestate` is kept and passed
on); without one it starts a trace with random ids. The sampling decision is made once, at the
start, and travels with the trace: upstreams receive `traceparent` with the same trace id and
the sampled flag, so their spans join the same trace whether or not this sidecar keeps its own.

Samplers are those of the OpenTelemetry specification, with the SDK's exact ratio rule (the
low 64 bits of the trace id below `ratio * 2**64`), so a sidecar and an SDK sampling at the same
ratio keep the same traces. The default, `parentbased_traceidratio` with `telemetry.sample_ratio`,
follows the caller's decision when there is one. Metrics never depend on sampling.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

__all__ = ["Sampler", "TraceContext", "parse_traceparent", "start_trace"]

Root = Literal["always_on", "always_off", "ratio"]
_LOW_64 = (1 << 64) - 1
_HEX = frozenset("0123456789abcdef")
_MAX_TRACESTATE = 512  # W3C: a vendor may truncate beyond 512 characters; we drop it instead


@dataclass(frozen=True, slots=True)
class Sampler:
    root: Root = "ratio"
    ratio: float = 1.0
    parent_based: bool = True

    @property
    def bound(self) -> int:
        return round(self.ratio * (_LOW_64 + 1))

    def sample(self, trace_id: int, parent_sampled: bool | None, bound: int) -> bool:
        if parent_sampled is not None and self.parent_based:
            return parent_sampled
        if self.root == "always_on":
            return True
        if self.root == "always_off":
            return False
        return (trace_id & _LOW_64) < bound


@dataclass(slots=True)
class TraceContext:
    """One request's place in its trace: filled at the start, read when it ends."""

    trace_id: int
    span_id: int  # the SERVER span's id
    parent_id: int  # the caller's span id, 0 without a traceparent
    sampled: bool
    trace_state: str = ""

    def traceparent(self) -> str:
        """For the upstream: the upstream's spans become children of the SERVER span."""
        flags = "01" if self.sampled else "00"
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{flags}"


def parse_traceparent(value: str | None) -> tuple[int, int, bool] | None:
    """(trace id, parent span id, sampled) from a W3C traceparent; None if absent or invalid."""
    if not value:
        return None
    value = value.strip().lower()
    parts = value.split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, trace_hex, span_hex, flags = parts[:4]
    if version == "00" and len(parts) != 4:
        return None  # version 00 has exactly four fields; later versions may add more
    if len(trace_hex) != 32 or len(span_hex) != 16 or len(flags) != 2:
        return None
    if not _HEX.issuperset(version + trace_hex + span_hex + flags):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def start_trace(traceparent: str | None, tracestate: str | None, sampler: Sampler,
                bound: int) -> TraceContext:
    """Continue the caller's trace or start one; decide sampling."""
    parent = parse_traceparent(traceparent)
    span_id = random.getrandbits(64) or 1
    if parent is None:
        trace_id = random.getrandbits(128) or 1
        return TraceContext(trace_id, span_id, 0, sampler.sample(trace_id, None, bound))
    trace_id, parent_id, parent_sampled = parent
    state = tracestate.strip() if tracestate and len(tracestate) <= _MAX_TRACESTATE else ""
    return TraceContext(trace_id, span_id, parent_id,
                        sampler.sample(trace_id, parent_sampled, bound), state)
