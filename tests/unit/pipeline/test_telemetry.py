"""The telemetry stage (sidecar/pipeline/telemetry.py): its one finisher records the GenAI
metrics of every attempt, builds spans only for a sampled trace, and times a stream from the
events it watched go by (data events only: not keep-alive comments, not [DONE])."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families

from sidecar.call import Answer, Call, Reply, Usage
from sidecar.config.telemetry import TelemetrySettings
from sidecar.pipeline.telemetry import Telemetry
from sidecar.telemetry.genai import Upstreams
from sidecar.telemetry.metrics import Metrics
from sidecar.telemetry.otlp.export import TelemetryExport
from sidecar.telemetry.otlp.records import SpanData
from tests.fakes.calls import make_call

SERVER, CLIENT = 2, 3  # SpanKind
EXPORTING = {"exporters": [{"protocol": "http", "endpoint": "http://127.0.0.1:9"}]}
EVENT = b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'


class Stage:
    """The stage with a real export whose spans are recorded as they are put (its exporter
    threads are never started: nothing is sent)."""

    def __init__(self, **settings: Any) -> None:
        self.metrics = Metrics()
        self.export = TelemetryExport(TelemetrySettings.model_validate(settings), self.metrics,
                                      env={})
        self.spans: list[SpanData] = []
        if self.export.tracing:
            self.export.put_span = self.spans.append  # type: ignore[method-assign]
        self.stage = Telemetry(self.export, self.metrics,
                               Upstreams({"a": "http://a.test:8080/v1", "b": "http://b.test"}))

    def samples(self, name: str) -> list[Any]:
        text = self.metrics.exposition().decode()
        return [s for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == name]


def answered(call: Call, *failures: int) -> Reply:
    """What route leaves: a failed attempt per status in `failures` (on provider a), then one
    answered by b, and the answer stage's record."""
    now = time.monotonic()
    for status in failures:
        attempt = call.begin_attempt("a", "m", now - 2)
        attempt.status, attempt.error, attempt.ended = status, f"http_{status}", now - 1.5
    attempt = call.begin_attempt("b", "m", now - 1)
    attempt.status, attempt.headers_at, attempt.ended = 200, now - 0.5, now
    call.answer = Answer(Usage(prompt_tokens=7, completion_tokens=6), "stop", "m-2024", "id-1")
    return Reply(200, CIMultiDict({"Content-Type": "application/json"}), body=b"{}")


async def run(stage: Stage, call: Call, reply: Reply) -> Reply:
    async def next(c: Call) -> Reply:
        return reply

    out = await stage.stage(call, next)
    if out.chunks is not None:
        async for _ in out.chunks:
            pass
    call.status = out.status
    call.finish()
    return out


async def test_the_finisher_records_each_attempt() -> None:
    """Each attempt is one operation-duration sample (the failed one with its error type);
    token usage is counted once, for the attempt that answered, labelled with the model that
    answered."""
    stage = Stage()  # metrics only: no exporter
    call = make_call()
    await run(stage, call, answered(call, 503))
    durations = {(s.labels["gen_ai_provider_name"], s.labels["error_type"],
                  s.labels["gen_ai_request_model"], s.labels["server_address"]): s.value
                 for s in stage.samples("gen_ai_client_operation_duration_seconds_count")}
    # the refused attempt names no model: only one an upstream accepted becomes a label value
    assert durations == {("a", "http_503", "", "a.test"): 1.0, ("b", "", "m", "b.test"): 1.0}
    tokens = sorted((s.labels["gen_ai_token_type"], s.value, s.labels["gen_ai_provider_name"],
                     s.labels["gen_ai_response_model"])
                    for s in stage.samples("gen_ai_client_token_usage_sum"))
    assert tokens == [("input", 7.0, "b", "m-2024"), ("output", 6.0, "b", "m-2024")]


async def test_a_request_without_attempts_records_no_genai_metric() -> None:
    """A request refused before any upstream (a 400 of the sidecar's own) adds no GenAI
    sample: those describe calls to upstreams."""
    stage = Stage()
    call = make_call()
    await run(stage, call, Reply(400, CIMultiDict(), body=b"{}"))
    assert stage.samples("gen_ai_client_operation_duration_seconds_count") == []


async def test_spans_are_built_only_for_a_sampled_trace() -> None:
    """A sampled request gives a SERVER span and one CLIENT span per attempt; one whose
    caller's traceparent says not sampled gives none, and its metrics are still recorded."""
    stage = Stage(**EXPORTING)
    sampled = make_call()
    await run(stage, sampled, answered(sampled, 503))
    assert [s.kind for s in stage.spans] == [SERVER, CLIENT, CLIENT]
    server = stage.spans[0]
    assert f"{server.trace_id:032x}" == sampled.trace_id
    assert all(s.parent_id == server.span_id for s in stage.spans[1:])
    assert sampled.upstream_headers["traceparent"].endswith("-01")

    stage.spans.clear()
    unsampled = make_call(headers={
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"})
    await run(stage, unsampled, answered(unsampled))
    assert stage.spans == []
    assert unsampled.upstream_headers["traceparent"].endswith("-00")
    counts = stage.samples("gen_ai_client_operation_duration_seconds_count")
    assert sum(s.value for s in counts) == 3  # two attempts, then one


async def test_a_ratio_of_zero_exports_no_span() -> None:
    """sample_ratio 0: no span is built, the trace id still goes upstream."""
    stage = Stage(**EXPORTING, sample_ratio=0)
    call = make_call()
    await run(stage, call, answered(call))
    assert stage.spans == [] and call.trace_id is not None


async def events(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_a_streams_timing_comes_from_its_data_events() -> None:
    """Time to first chunk runs from the attempt's start to the first event with data (a
    keep-alive comment before it does not count), and each later data event is one
    time-per-chunk sample ([DONE] is none); the CLIENT span carries the first-chunk time."""
    stage = Stage(**EXPORTING)
    call = make_call()
    call.stream = True
    answered(call)
    chunks = events(b": OPENROUTER PROCESSING\n\n", EVENT, EVENT + EVENT, EVENT,
                    b"data: [DONE]\n\n")
    reply = await run(stage, call, Reply(200, CIMultiDict(), chunks=chunks, sse=True))
    assert reply.sse
    (first,) = stage.samples("gen_ai_client_operation_time_to_first_chunk_seconds_count")
    assert first.value == 1.0
    (waited,) = stage.samples("gen_ai_client_operation_time_to_first_chunk_seconds_sum")
    assert waited.value >= 1.0  # the attempt started a second before the first event
    (gaps,) = stage.samples("gen_ai_client_operation_time_per_output_chunk_seconds_count")
    assert gaps.value == 3.0  # four data events: three after the first
    client = next(s for s in stage.spans if s.kind == CLIENT)
    ttfc = client.attributes["gen_ai.response.time_to_first_chunk"]
    assert ttfc >= 1.0  # as in the metric
    assert [e.name for e in client.events or []] == ["llm_sidecar.first_chunk"]


async def test_a_watched_stream_closed_early_closes_the_upstreams() -> None:
    """Closing the watched stream before its first chunk still closes the stream beneath
    (which gives the upstream connection back)."""
    closed: list[bool] = []

    class Upstream:
        def __aiter__(self) -> Upstream:
            return self

        async def __anext__(self) -> bytes:
            return EVENT

        async def aclose(self) -> None:
            closed.append(True)

    stage = Stage()
    call = make_call()
    answered(call)

    async def next(c: Call) -> Reply:
        return Reply(200, CIMultiDict(), chunks=Upstream(), sse=True)

    reply = await stage.stage(call, next)
    assert reply.chunks is not None
    close = getattr(reply.chunks, "aclose")  # noqa: B009 - AsyncIterator declares no aclose
    await close()
    assert closed == [True]
