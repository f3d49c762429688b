"""Spans and log records as plain data, and their OTLP export requests (trace.proto, logs.proto).

A request's spans are built once, complete, when it ends (see tracing.py): a `SpanData` is
never mutated after it is queued, so the exporter threads read it without locks. Encoding
happens in those threads, once per batch for every destination of the signal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sidecar.telemetry.otlp.wire import (
    I32,
    I64,
    LEN,
    VARINT,
    AttributeEncoder,
    fixed32,
    fixed64,
    tag,
    text,
    varint,
)
from sidecar.telemetry.otlp.wire import field as ld

__all__ = [
    "CLIENT",
    "SERVER",
    "STATUS_ERROR",
    "STATUS_OK",
    "LogData",
    "LogEncoder",
    "SpanData",
    "SpanEncoder",
    "SpanEvent",
    "export_request",
]

INTERNAL: Final = 1
SERVER: Final = 2
CLIENT: Final = 3
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
# Span.flags: the W3C trace flags in bits 0-7, then "is_remote is known" and "parent is remote".
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


@dataclass(slots=True)
class SpanEvent:
    time_ns: int
    name: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SpanData:
    trace_id: int
    span_id: int
    parent_id: int  # 0: a root span
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    trace_state: str = ""
    remote_parent: bool = False
    sampled: bool = True
    events: list[SpanEvent] | None = None
    status: int = STATUS_UNSET
    status_message: str = ""


@dataclass(slots=True)
class LogData:
    time_ns: int
    severity_number: int  # 5 debug, 9 info, 13 warn, 17 error (logs data model)
    severity_text: str
    body: str
    attributes: Mapping[str, Any]
    trace_id: int = 0
    span_id: int = 0


_RESOURCE = tag(1, LEN)
_SCOPE_LIST = tag(2, LEN)  # ResourceSpans.scope_spans, ResourceLogs.scope_logs
_SCOPE = tag(1, LEN)
_ITEMS = tag(2, LEN)  # ScopeSpans.spans, ScopeLogs.log_records
_REQUEST = tag(1, LEN)  # Export*ServiceRequest.resource_spans / resource_logs


def export_request(resource: bytes, scope: bytes, items: Sequence[bytes]) -> bytes:
    """ExportTraceServiceRequest / ExportLogsServiceRequest: one resource, one scope."""
    scoped = ld(_SCOPE, scope) + b"".join(ld(_ITEMS, item) for item in items)
    return ld(_REQUEST, ld(_RESOURCE, resource) + ld(_SCOPE_LIST, scoped))


_S_TRACE_ID = tag(1, LEN)
_S_SPAN_ID = tag(2, LEN)
_S_TRACE_STATE = tag(3, LEN)
_S_PARENT = tag(4, LEN)
_S_NAME = tag(5, LEN)
_S_KIND = tag(6, VARINT)
_S_START = tag(7, I64)
_S_END = tag(8, I64)
_S_EVENTS = tag(11, LEN)
_S_STATUS = tag(15, LEN)
_S_FLAGS = tag(16, I32)
_E_TIME = tag(1, I64)
_E_NAME = tag(2, LEN)
_ST_MESSAGE = tag(2, LEN)
_ST_CODE = tag(3, VARINT)


class SpanEncoder:
    """Span messages; one per exporter thread (it caches attribute keys)."""

    __slots__ = ("_attributes", "_event_attributes")

    def __init__(self) -> None:
        self._attributes = AttributeEncoder(9)
        self._event_attributes = AttributeEncoder(3)

    def span(self, s: SpanData) -> bytes:
        flags = (1 if s.sampled else 0) | _HAS_IS_REMOTE | (_IS_REMOTE if s.remote_parent else 0)
        parts = [
            ld(_S_TRACE_ID, s.trace_id.to_bytes(16, "big")),
            ld(_S_SPAN_ID, s.span_id.to_bytes(8, "big")),
        ]
        if s.trace_state:
            parts.append(ld(_S_TRACE_STATE, text(s.trace_state)))
        if s.parent_id:
            parts.append(ld(_S_PARENT, s.parent_id.to_bytes(8, "big")))
        parts += (
            ld(_S_NAME, text(s.name)),
            _S_KIND + varint(s.kind),
            fixed64(_S_START, s.start_ns),
            fixed64(_S_END, s.end_ns),
            self._attributes.encode(s.attributes),
        )
        if s.events:
            for event in s.events:
                parts.append(ld(_S_EVENTS, fixed64(_E_TIME, event.time_ns)
                                + ld(_E_NAME, text(event.name))
                                + self._event_attributes.encode(event.attributes)))
        if s.status:
            status = _ST_CODE + varint(s.status)
            if s.status_message:
                status = ld(_ST_MESSAGE, text(s.status_message)) + status
            parts.append(ld(_S_STATUS, status))
        parts.append(fixed32(_S_FLAGS, flags))
        return b"".join(parts)


_L_TIME = tag(1, I64)
_L_SEVERITY = tag(2, VARINT)
_L_SEVERITY_TEXT = tag(3, LEN)
_L_BODY = tag(5, LEN)
_L_TRACE_ID = tag(9, LEN)
_L_SPAN_ID = tag(10, LEN)
_L_OBSERVED = tag(11, I64)
_ANY_STRING = tag(1, LEN)


class LogEncoder:
    """LogRecord messages; one per exporter thread."""

    __slots__ = ("_attributes",)

    def __init__(self) -> None:
        self._attributes = AttributeEncoder(6)

    def record(self, r: LogData) -> bytes:
        parts = [
            fixed64(_L_TIME, r.time_ns),
            fixed64(_L_OBSERVED, r.time_ns),
            _L_SEVERITY + varint(r.severity_number),
            ld(_L_SEVERITY_TEXT, text(r.severity_text)),
            ld(_L_BODY, ld(_ANY_STRING, text(r.body))),
            self._attributes.encode(r.attributes),
        ]
        if r.trace_id:
            parts += (ld(_L_TRACE_ID, r.trace_id.to_bytes(16, "big")),
                      ld(_L_SPAN_ID, r.span_id.to_bytes(8, "big")))
        return b"".join(parts)
