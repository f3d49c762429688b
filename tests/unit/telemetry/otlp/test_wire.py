"""The hand-written OTLP encoder: every message it writes parses with the official
opentelemetry-proto classes into exactly the data it was given."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValueList

from sidecar.telemetry.metrics import GENAI_DURATION_BUCKETS, Metrics
from sidecar.telemetry.otlp import wire
from sidecar.telemetry.otlp.metrics import MetricsEncoder
from sidecar.telemetry.otlp.records import (
    CLIENT,
    STATUS_ERROR,
    LogData,
    LogEncoder,
    SpanData,
    SpanEncoder,
    SpanEvent,
    export_request,
)
from tests.fakes.otlp import attributes, value

RESOURCE = wire.resource({"service.name": "svc", "service.version": "1"})
SCOPE = wire.scope("llm_sidecar", "9.9")


@pytest.mark.parametrize("given", [
    "text", "", "ünïcödé ✓", True, False, 0, 1, 127, 128, 300, -1, -(2**63), 2**63 - 1,
    0.0, -2.5, 1e300, ["a", "b"], ("x", 1, 2.5, True), [], {"k": "v", "n": 3},
])
def test_any_value_round_trips(given: Any) -> None:
    """Every attribute type the sidecar uses parses back as the same value."""
    expected = list(given) if isinstance(given, tuple) else given
    assert value(AnyValue.FromString(wire.any_value(given))) == expected


def test_out_of_range_ints_and_bad_utf8_never_break_a_message() -> None:
    """An int beyond int64 goes as text; a lone surrogate is replaced, not sent as bad UTF-8."""
    assert value(AnyValue.FromString(wire.any_value(2**70))) == str(2**70)
    assert value(AnyValue.FromString(wire.any_value("a\ud800b"))) == "a?b"


def test_spans_parse_back_field_for_field() -> None:
    """Ids, parent, trace state, name, kind, times, attributes, events, status and flags."""
    span = SpanData(trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id=0x00F067AA0BA902B7,
                    parent_id=0x1122334455667788, name="chat gpt-4o", kind=CLIENT,
                    start_ns=1_700_000_000_000_000_000, end_ns=1_700_000_000_500_000_000,
                    attributes={"gen_ai.usage.input_tokens": 12, "gen_ai.request.model": "m",
                                "gen_ai.response.finish_reasons": ("stop",), "skip": None},
                    trace_state="k=v", remote_parent=True,
                    events=[SpanEvent(1_700_000_000_100_000_000, "first", {"t": 0.1})],
                    status=STATUS_ERROR, status_message="boom")
    encoder = SpanEncoder()
    request = ExportTraceServiceRequest.FromString(
        export_request(RESOURCE, SCOPE, [encoder.span(span), encoder.span(span)]))
    (resource_spans,) = request.resource_spans
    assert attributes(resource_spans.resource.attributes) == {"service.name": "svc",
                                                              "service.version": "1"}
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("llm_sidecar", "9.9")
    got = scope_spans.spans[1]
    assert got.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert got.span_id.hex() == "00f067aa0ba902b7"
    assert got.parent_span_id.hex() == "1122334455667788"
    assert (got.trace_state, got.name, got.kind) == ("k=v", "chat gpt-4o", CLIENT)
    assert (got.start_time_unix_nano, got.end_time_unix_nano) == (span.start_ns, span.end_ns)
    assert attributes(got.attributes) == {"gen_ai.usage.input_tokens": 12,
                                          "gen_ai.request.model": "m",
                                          "gen_ai.response.finish_reasons": ["stop"]}
    (event,) = got.events
    assert (event.time_unix_nano, event.name) == (1_700_000_000_100_000_000, "first")
    assert attributes(event.attributes) == {"t": 0.1}
    assert (got.status.code, got.status.message) == (STATUS_ERROR, "boom")
    assert got.flags == 0x301  # sampled, is_remote known, parent remote


def test_log_records_parse_back() -> None:
    """Time, severity, body, attributes and the trace/span ids of a log record."""
    record = LogData(1_700_000_000_000_000_001, 13, "WARN", "something_odd",
                     {"logger": "x", "n": 2}, trace_id=7, span_id=9)
    request = ExportLogsServiceRequest.FromString(
        export_request(RESOURCE, SCOPE, [LogEncoder().record(record)]))
    (got,) = request.resource_logs[0].scope_logs[0].log_records
    assert got.time_unix_nano == record.time_ns
    assert (got.severity_number, got.severity_text) == (13, "WARN")
    assert got.body.string_value == "something_odd"
    assert attributes(got.attributes) == {"logger": "x", "n": 2}
    assert int.from_bytes(got.trace_id, "big") == 7 and int.from_bytes(got.span_id, "big") == 9


def test_the_metrics_registry_parses_back_with_otlp_names_and_buckets() -> None:
    """Counters become monotonic cumulative sums, gauges gauges, histograms cumulative
    explicit-bucket histograms with per-bucket (not cumulative) counts; GenAI series get their
    semantic-convention names and attribute names, and server.port is an int."""
    metrics = Metrics()
    metrics.observe("chat/completions", 200, 0.2, "ok")
    metrics.observe("chat/completions", 200, 0.3, "ok")
    labels = ("chat", "openai", "gpt-4o", "gpt-4o-2024", "api.openai.com", "443")
    metrics.genai_operation(labels, 0.03, None)
    metrics.genai_operation(labels, 0.5, None)
    metrics.genai_operation(labels, 100.0, None)
    metrics.set_budget_remaining("daily", 12.5)
    payload, points = MetricsEncoder(metrics.registry, metrics.started_ns).request(RESOURCE, SCOPE)
    request = ExportMetricsServiceRequest.FromString(payload)
    by_name = {m.name: m for m in request.resource_metrics[0].scope_metrics[0].metrics}
    assert points == sum(len(getattr(m, m.WhichOneof("data")).data_points)
                         for m in by_name.values())
    requests = by_name["llm_sidecar_requests"]
    assert requests.sum.is_monotonic and requests.sum.aggregation_temporality == 2
    (point,) = requests.sum.data_points
    assert point.as_double == 2 and attributes(point.attributes) == {
        "endpoint": "chat/completions", "status": "200"}
    (gauge,) = by_name["llm_sidecar_budget_remaining_usd"].gauge.data_points
    assert gauge.as_double == 12.5
    duration = by_name["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    (histogram,) = duration.histogram.data_points
    assert list(histogram.explicit_bounds) == list(GENAI_DURATION_BUCKETS)
    assert histogram.count == 3 and histogram.sum == pytest.approx(100.53)
    counts = list(histogram.bucket_counts)
    assert len(counts) == len(GENAI_DURATION_BUCKETS) + 1 and sum(counts) == 3
    assert counts[2] == 1 and counts[6] == 1 and counts[-1] == 1  # 0.03, 0.5, 100 (overflow)
    assert attributes(histogram.attributes) == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024",
        "server.address": "api.openai.com", "server.port": 443}  # empty error.type left out


def test_attribute_cache_keeps_neither_content_nor_figures() -> None:
    """Repeating values are cached, but captured content (long text) and floats are encoded
    each time: the cache cannot hold prompts, and ids of every request do not flush it."""
    encoder = wire.AttributeEncoder(1)
    prompt = "x" * 20_000
    for i in range(10):
        got = encoder.encode({"gen_ai.input.messages": prompt + str(i), "cost": i / 7,
                              "gen_ai.operation.name": "chat", "n": 3})
        decoded = KeyValueList.FromString(got)
        assert [kv.key for kv in decoded.values] == ["gen_ai.input.messages", "cost",
                                                     "gen_ai.operation.name", "n"]
        assert decoded.values[0].value.string_value == prompt + str(i)
        assert decoded.values[1].value.double_value == i / 7
    assert len(encoder._done) == 2  # the operation name and the int
