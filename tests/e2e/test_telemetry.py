"""Telemetry end to end: the real app exporting to two real OTLP receivers at once (one gRPC,
one HTTP), the official SDK as client, the fake upstream recording what it was sent.

Exports are waited for by flushing (`TelemetryExport.flush`, which returns once every
destination answered), never by sleeping.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from sidecar.call import Call, Next, Reply
from sidecar.config.schema import LogSettings
from sidecar.deps import DEPS
from sidecar.telemetry.logs import configure_logging
from sidecar.telemetry.metrics import GENAI_DURATION_BUCKETS, GENAI_TOKEN_BUCKETS
from tests.conftest import StartSidecar
from tests.fakes.otlp import GrpcReceiver, HttpReceiver, attributes
from tests.fakes.profiles import ALL, fresh
from tests.fakes.telemetry import CLIENT, SERVER, both, by_kind, client, flush
from tests.fakes.upstream import FakeUpstream, Script, chat_answer, chat_chunks

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SECRET_PROMPT = "my-secret-prompt-text-42"

# The cache off in the module profile (start_sidecar merges SIDECAR_BASE under each config):
# each request must reach the upstream (one CLIENT span each); in the others each test sends
# prompts of its own.
SIDECAR_BASE = {"cache": {"backend": "off"}}


async def test_spans_reach_both_receivers_with_only_their_own_headers(
        grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver, start_sidecar: StartSidecar,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A chat request gives a SERVER and a GenAI CLIENT span at both receivers; each receiver
    gets its own headers only, and the generic OTEL header never leaks to configured ones."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-leak=generic")
    sidecar = await start_sidecar(both(grpc_receiver, http_receiver,
                                       service_name="checkout-sidecar"))
    async with client(sidecar) as sdk:
        answer = await sdk.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
            temperature=0.25, max_tokens=50)
    assert answer.choices[0].message.content
    await flush(sidecar)
    for receiver in (grpc_receiver, http_receiver):
        spans = receiver.spans()
        assert {r["service.name"] for r, _ in spans} == {"checkout-sidecar"}
        (server,) = by_kind(spans, SERVER)
        (chat,) = by_kind(spans, CLIENT)
        assert server.name == "POST /v1/chat/completions"
        assert chat.name == "chat openai/gpt-4o-mini"
        assert chat.trace_id == server.trace_id and chat.parent_span_id == server.span_id
        got = attributes(chat.attributes)
        assert got["gen_ai.operation.name"] == "chat"
        assert got["gen_ai.provider.name"] == "upstream"
        assert got["gen_ai.request.model"] == "openai/gpt-4o-mini"
        assert got["gen_ai.response.model"] == "openai/gpt-4o-mini"
        assert got["gen_ai.response.id"] == "chatcmpl-fake"
        assert got["gen_ai.response.finish_reasons"] == ["stop"]
        assert got["gen_ai.usage.input_tokens"] == 7
        assert got["gen_ai.usage.output_tokens"] == 6
        assert got["gen_ai.request.temperature"] == 0.25
        assert got["gen_ai.request.max_tokens"] == 50
        assert got["server.address"] == "127.0.0.1"
        assert got["llm_sidecar.attempt"] == 1
        assert chat.start_time_unix_nano >= server.start_time_unix_nano
        assert chat.end_time_unix_nano <= server.end_time_unix_nano
        on_server = attributes(server.attributes)
        assert on_server["http.response.status_code"] == 200
        assert on_server["llm_sidecar.outcome"] == "ok"
    grpc_headers = [e.headers for e in grpc_receiver.exports]
    http_headers = [e.headers for e in http_receiver.exports]
    assert all(h.get("x-backend") == "grpc-one" and "authorization" not in h
               and "x-leak" not in h for h in grpc_headers)
    assert all(h.get("authorization") == "Basic aHR0cC10d28=" and "x-backend" not in h
               and "x-leak" not in h for h in http_headers)


async def test_the_client_span_names_the_response_of_every_answer(
        grpc_receiver: GrpcReceiver, start_sidecar: StartSidecar) -> None:
    """A whole answer and a streamed one each give a CLIENT span with gen_ai.response.id, the
    upstream's own id, whatever else is on (the cache reads the answer on its own copy)."""
    sidecar = await start_sidecar({"telemetry": {"exporters": [
        {"protocol": "grpc", "endpoint": grpc_receiver.endpoint, "signals": ["traces"]}]}})
    async with client(sidecar) as sdk:
        await sdk.chat.completions.create(model="m", messages=[
            {"role": "user", "content": fresh()}])
        stream = await sdk.chat.completions.create(model="m", messages=[
            {"role": "user", "content": fresh()}], stream=True)
        assert [chunk async for chunk in stream]
    await flush(sidecar)
    spans = by_kind(grpc_receiver.spans(), CLIENT)
    assert [attributes(s.attributes).get("gen_ai.response.id") for s in spans] == [
        "chatcmpl-fake", "chatcmpl-fake"]


async def test_metrics_reach_both_receivers_and_prometheus(
        grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver, start_sidecar: StartSidecar,
        http: Any) -> None:
    """GenAI metrics arrive over OTLP with the conventions' names and bucket boundaries, and
    /metrics shows the same instruments in a text format Prometheus' own parser reads."""
    sidecar = await start_sidecar(both(grpc_receiver, http_receiver))
    async with client(sidecar) as sdk:
        await sdk.chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])
    await flush(sidecar)
    for receiver in (grpc_receiver, http_receiver):
        metrics = receiver.metrics()
        usage = metrics["gen_ai.client.token.usage"].histogram.data_points
        assert {attributes(p.attributes)["gen_ai.token.type"]: p.sum for p in usage} == {
            "input": 7, "output": 6}
        assert list(usage[0].explicit_bounds) == list(GENAI_TOKEN_BUCKETS)
        (duration,) = metrics["gen_ai.client.operation.duration"].histogram.data_points
        assert list(duration.explicit_bounds) == list(GENAI_DURATION_BUCKETS)
        assert attributes(duration.attributes)["gen_ai.request.model"] == "m1"
        assert metrics["gen_ai.client.operation.duration"].unit == "s"
        requests = metrics["llm_sidecar_requests"].sum
        assert requests.is_monotonic
        assert [p.as_double for p in requests.data_points] == [1.0]
    async with http.get(f"{sidecar.url}/metrics") as response:
        text = await response.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    tokens = families["gen_ai_client_token_usage"]
    assert tokens.type == "histogram"
    counts = {s.labels["gen_ai_token_type"]: s.value for s in tokens.samples
              if s.name.endswith("_sum")}
    assert counts == {"input": 7.0, "output": 6.0}
    duration_family = families["gen_ai_client_operation_duration_seconds"]
    buckets = {s.labels["le"] for s in duration_family.samples if s.name.endswith("_bucket")}
    assert buckets == {str(b) for b in GENAI_DURATION_BUCKETS} | {"+Inf"}


async def test_trace_continues_from_the_client_to_the_upstream(
        grpc_receiver: GrpcReceiver, start_sidecar: StartSidecar,
        upstream: FakeUpstream) -> None:
    """The client's traceparent/tracestate are continued: same trace id on the spans and in
    the traceparent the upstream receives, whose parent is the sidecar's SERVER span."""
    sidecar = await start_sidecar({"telemetry": {"exporters": [
        {"protocol": "grpc", "endpoint": grpc_receiver.endpoint, "signals": ["traces"]}]}})
    async with client(sidecar) as sdk:
        await sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], extra_headers={
                "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "tracestate": "k=v"})
    await flush(sidecar)
    (server,) = by_kind(grpc_receiver.spans(), SERVER)
    assert server.trace_id.hex() == CLIENT_TRACE
    assert server.parent_span_id.hex() == CLIENT_SPAN
    assert server.trace_state == "k=v"
    sent = upstream.last.headers["traceparent"]
    assert sent == f"00-{CLIENT_TRACE}-{server.span_id.hex()}-01"
    assert upstream.last.headers["tracestate"] == "k=v"


async def test_unsampled_traces_are_not_exported_but_metrics_stay_exact(
        grpc_receiver: GrpcReceiver, start_sidecar: StartSidecar,
        upstream: FakeUpstream) -> None:
    """With sample_ratio 0 no span is exported, the trace id still goes upstream (flag 00),
    and every request is still counted in the metrics."""
    sidecar = await start_sidecar({"telemetry": {"sample_ratio": 0, "exporters": [
        {"protocol": "grpc", "endpoint": grpc_receiver.endpoint}]}})
    async with client(sidecar) as sdk:
        for _ in range(3):
            await sdk.chat.completions.create(model="m",
                                              messages=[{"role": "user", "content": fresh()}])
    await flush(sidecar)
    assert grpc_receiver.spans() == []
    assert upstream.last.headers["traceparent"].endswith("-00")
    (point,) = grpc_receiver.metrics()["gen_ai.client.operation.duration"].histogram.data_points
    assert point.count == 3


async def test_stream_span_carries_time_to_first_chunk_and_tokens(
        grpc_receiver: GrpcReceiver, start_sidecar: StartSidecar,
        upstream: FakeUpstream) -> None:
    """A streamed answer's CLIENT span ends with the stream and carries TTFT (attribute and
    event), the usage of the final chunk, and the stream flag; per-chunk metrics are recorded."""
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a", "b", "c", "d"])))
    sidecar = await start_sidecar({"telemetry": {"exporters": [
        {"protocol": "grpc", "endpoint": grpc_receiver.endpoint}]}})
    async with client(sidecar) as sdk:
        stream = await sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True,
            stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    assert chunks
    await flush(sidecar)
    (chat,) = by_kind(grpc_receiver.spans(), CLIENT)
    got = attributes(chat.attributes)
    ttft = got["gen_ai.response.time_to_first_chunk"]
    assert 0 < ttft < (chat.end_time_unix_nano - chat.start_time_unix_nano) / 1e9
    assert got["gen_ai.request.stream"] is True
    assert got["gen_ai.usage.output_tokens"] == 4
    assert got["gen_ai.response.finish_reasons"] == ["stop"]
    (event,) = chat.events
    assert event.name == "llm_sidecar.first_chunk"
    assert chat.start_time_unix_nano < event.time_unix_nano <= chat.end_time_unix_nano
    metrics = grpc_receiver.metrics()
    (first,) = metrics["gen_ai.client.operation.time_to_first_chunk"].histogram.data_points
    assert first.count == 1
    (per_chunk,) = metrics["gen_ai.client.operation.time_per_output_chunk"].histogram.data_points
    assert per_chunk.count == 5  # 6 events (4 deltas, the finish, the usage) after the first


async def test_keep_alive_comments_are_not_chunks(
        grpc_receiver: GrpcReceiver, start_sidecar: StartSidecar,
        upstream: FakeUpstream) -> None:
    """OpenRouter sends `: OPENROUTER PROCESSING` comments while a model thinks: the first
    chunk is the first event with data, and comments are not output chunks."""
    thinking = [b": OPENROUTER PROCESSING\n\n"] * 3
    upstream.script("/chat/completions", Script(
        sse=[*thinking, *chat_chunks("m", ["a", "b", "c", "d"])], sse_interval_s=0.05))
    sidecar = await start_sidecar({"telemetry": {"exporters": [
        {"protocol": "grpc", "endpoint": grpc_receiver.endpoint}]}})
    async with client(sidecar) as sdk:
        stream = await sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True,
            stream_options={"include_usage": True})
        assert [chunk async for chunk in stream]
    await flush(sidecar)
    (chat,) = by_kind(grpc_receiver.spans(), CLIENT)
    # three comments 50 ms apart came first: the first chunk is at least 150 ms in
    assert attributes(chat.attributes)["gen_ai.response.time_to_first_chunk"] >= 0.15
    metrics = grpc_receiver.metrics()
    (per_chunk,) = metrics["gen_ai.client.operation.time_per_output_chunk"].histogram.data_points
    assert per_chunk.count == 5  # as without the comments


async def test_one_client_span_per_attempt(grpc_receiver: GrpcReceiver,
                                           start_sidecar: StartSidecar,
                                           upstream: FakeUpstream) -> None:
    """A request answered on its second attempt (routing's retry after a 503) has two CLIENT
    spans: the failed one with error.type, the answered one with the fallback reason and the
    usage."""
    upstream.script("/chat/completions", Script(status=503, json={"error": {"message": "busy"}}))
    sidecar = await start_sidecar({
        "telemetry": {"exporters": [{"protocol": "grpc", "endpoint": grpc_receiver.endpoint}]},
        "retry": {"attempts": 2, "backoff_s": 0}})
    async with client(sidecar) as sdk:
        await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    await flush(sidecar)
    spans = grpc_receiver.spans()
    (server,) = by_kind(spans, SERVER)
    first, second = sorted(by_kind(spans, CLIENT), key=lambda s: s.start_time_unix_nano)
    failed, answered = attributes(first.attributes), attributes(second.attributes)
    assert failed["error.type"] == "http_503" and first.status.code == 2
    assert failed["llm_sidecar.attempt"] == 1 and "gen_ai.usage.input_tokens" not in failed
    assert answered["llm_sidecar.attempt"] == 2
    assert answered["llm_sidecar.fallback_reason"] == "http_503"
    assert answered["gen_ai.usage.input_tokens"] == 7 and "error.type" not in answered
    assert first.end_time_unix_nano <= second.start_time_unix_nano
    assert attributes(server.attributes)["llm_sidecar.attempts"] == 2
    durations = grpc_receiver.metrics()["gen_ai.client.operation.duration"].histogram
    errors = sorted(attributes(p.attributes).get("error.type", "") for p in durations.data_points)
    assert errors == ["", "http_503"]


@pytest.mark.parametrize("capture", [False, True])
async def test_content_is_exported_only_when_capture_is_on(
        grpc_receiver: GrpcReceiver, start_sidecar: StartSidecar, capture: bool) -> None:
    """Prompts and completions appear in no exported byte unless capture_content is on; then
    they are the conventions' gen_ai.input/output.messages."""
    sidecar = await start_sidecar({"telemetry": {"capture_content": capture, "exporters": [
        {"protocol": "grpc", "endpoint": grpc_receiver.endpoint}]}})
    async with client(sidecar) as sdk:
        await sdk.chat.completions.create(model="m", messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": SECRET_PROMPT}])
    await flush(sidecar)
    exported = b"".join(e.request.SerializeToString() for e in grpc_receiver.exports)
    (chat,) = by_kind(grpc_receiver.spans(), CLIENT)
    got = attributes(chat.attributes)
    if not capture:
        assert SECRET_PROMPT.encode() not in exported
        assert b"Hello from the fake upstream" not in exported
        assert not {"gen_ai.input.messages", "gen_ai.output.messages",
                    "gen_ai.system_instructions"} & set(got)
        return
    assert SECRET_PROMPT in got["gen_ai.input.messages"]
    assert "be brief" in got["gen_ai.system_instructions"]
    assert "Hello from the fake upstream" in got["gen_ai.output.messages"]


async def test_captured_answers_keep_the_placeholders_the_upstream_saw(
        grpc_receiver: GrpcReceiver, start_sidecar: StartSidecar,
        upstream: FakeUpstream) -> None:
    """In pseudonymize mode the client gets the answer restored, but a span's captured
    output, like its input, holds the placeholders: no redacted value is exported."""
    upstream.script("/chat/completions", Script(json=chat_answer("m", "Write to <EMAIL_1>.")))
    sidecar = await start_sidecar({"privacy": {"redact": {"mode": "pseudonymize"}},
                                   "telemetry": {"capture_content": True, "exporters": [
                                       {"protocol": "grpc",
                                        "endpoint": grpc_receiver.endpoint}]}})
    async with client(sidecar) as sdk:
        answer = await sdk.chat.completions.create(model="m", messages=[
            {"role": "user", "content": "mail jane.doe@example.com please"}])
    assert answer.choices[0].message.content == "Write to jane.doe@example.com."
    await flush(sidecar)
    exported = b"".join(e.request.SerializeToString() for e in grpc_receiver.exports)
    assert b"jane.doe@example.com" not in exported
    (chat,) = by_kind(grpc_receiver.spans(), CLIENT)
    got = attributes(chat.attributes)
    assert "<EMAIL_1>" in got["gen_ai.input.messages"]
    assert "Write to <EMAIL_1>." in got["gen_ai.output.messages"]


async def test_access_and_error_lines_carry_trace_ids_and_go_out_as_otlp_logs(
        start_sidecar: StartSidecar, grpc_receiver: GrpcReceiver) -> None:
    """Logs exported over OTLP: the access line of each request and any line logged while it
    was served, both with the request's trace and span ids (also in the JSON on stdout)."""
    out = io.StringIO()
    saved = logging.getLogger().handlers[:], logging.getLogger().level
    configure_logging(LogSettings(), stream=out)

    class Warns:
        name = "warns"
        reads_answer = False
        async def __call__(self, call: Call, next: Next) -> Reply:
            structlog.get_logger("sidecar.test").warning("something_odd", detail=1)
            return await next(call)

    try:
        sidecar = await start_sidecar({"telemetry": {"exporters": [
            {"protocol": "grpc", "endpoint": grpc_receiver.endpoint,
             "signals": ["traces", "logs"]}]}}, outer_stages=[Warns()])
        async with client(sidecar) as sdk:
            await sdk.chat.completions.create(model="m",
                                              messages=[{"role": "user", "content": "x"}])
        sidecar.app[DEPS].access.flush()
        await flush(sidecar)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers[:], level = saved
        logging.getLogger().setLevel(level)
    (server,) = by_kind(grpc_receiver.spans(), SERVER)
    records = {r.body.string_value: r for r in grpc_receiver.logs()}
    for name in ("request", "something_odd"):
        assert records[name].trace_id == server.trace_id, name
        assert records[name].span_id == server.span_id, name
    assert attributes(records["request"].attributes)["status"] == 200
    assert records["something_odd"].severity_text == "WARN"
    assert f'"trace_id":"{server.trace_id.hex()}"' in out.getvalue()
