"""Telemetry end to end, how it is configured and how it fails: dead exporters, the standard
OTEL_* variables, the SDK switched off, Prometheus off, passthrough paths."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.deps import DEPS
from sidecar.live import LIVE
from sidecar.telemetry.otlp.export import PENDING_BATCHES
from tests.conftest import StartSidecar, free_port
from tests.fakes.otlp import BlackHole, GrpcReceiver, HttpReceiver, attributes
from tests.fakes.profiles import ALL
from tests.fakes.telemetry import CLIENT, SERVER, by_kind, client, flush
from tests.fakes.upstream import FakeUpstream

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"

# The cache off in the module profile (start_sidecar merges SIDECAR_BASE under each config):
# each request must reach the upstream. The 300 identical requests of the dead-exporter test
# share one answer in the others, which changes nothing it asserts.
SIDECAR_BASE = {"cache": {"backend": "off"}}


async def test_dead_exporters_never_hold_up_requests_and_memory_stays_bounded(
        start_sidecar: StartSidecar, http: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every exporter pointed at a black hole or a closed port, all requests are served,
    the queues stay within their bounds, and the lost spans are counted (then close() returns).
    Were an export done on the event loop, 1 s per stuck batch would exceed the test timeout."""
    hole = BlackHole()
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "32")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "1")
    dead = [{"protocol": "grpc", "endpoint": hole.endpoint, "timeout_s": 1},
            {"protocol": "http", "endpoint": hole.endpoint, "timeout_s": 1},
            {"protocol": "grpc", "endpoint": f"http://127.0.0.1:{free_port()}", "timeout_s": 1}]
    try:
        sidecar = await start_sidecar({"telemetry": {"exporters": dead}})
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        gate = asyncio.Semaphore(30)

        async def one() -> int:
            async with gate, http.post(f"{sidecar.v1}/chat/completions", json=body) as response:
                await response.read()
                return int(response.status)

        statuses = await asyncio.gather(*(one() for _ in range(300)))
        assert statuses == [200] * 300
        deps = sidecar.app[DEPS]
        bound = 32 + len(dead) * PENDING_BATCHES * 8
        assert 0 < deps.telemetry.queued()["traces"] <= bound
        async with http.get(f"{sidecar.url}/metrics") as response:
            text = await response.text()
        dropped = {s.labels["signal"]: s.value for f in text_string_to_metric_families(text)
                   for s in f.samples if s.name == "llm_sidecar_telemetry_dropped_total"}
        assert dropped["traces"] > 0
        await asyncio.wait_for(deps.telemetry.close(), timeout=30)
    finally:
        hole.close()


async def test_standard_otel_variables_configure_an_exporter(
        http_receiver: HttpReceiver, start_sidecar: StartSidecar,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without config exporters, OTEL_EXPORTER_OTLP_* set the endpoint, protocol and headers,
    and OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES the resource."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team%20a")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES",
                       "deployment.environment.name=staging,service.name=loses")
    sidecar = await start_sidecar({"telemetry": {"exporters": []}})
    async with client(sidecar) as sdk:
        await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    await flush(sidecar)
    resource, _ = http_receiver.spans()[0]
    assert resource["service.name"] == "from-env"
    assert resource["deployment.environment.name"] == "staging"
    assert {e.signal for e in http_receiver.exports} == {"traces", "metrics", "logs"}
    assert all(e.headers["x-tenant"] == "team a" for e in http_receiver.exports)


async def test_otel_sdk_disabled_exports_nothing_and_leaves_traceparent_alone(
        grpc_receiver: GrpcReceiver, start_sidecar: StartSidecar, upstream: FakeUpstream,
        http: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SDK_DISABLED=true: no span, metric or log leaves; /metrics still serves; the
    client's own traceparent reaches the upstream untouched."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    sidecar = await start_sidecar({"telemetry": {"exporters": [
        {"protocol": "grpc", "endpoint": grpc_receiver.endpoint}]}})
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    async with client(sidecar) as sdk:
        await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                          extra_headers={"traceparent": parent})
    await flush(sidecar)
    assert grpc_receiver.exports == []
    assert upstream.last.headers["traceparent"] == parent
    async with http.get(f"{sidecar.url}/metrics") as response:
        assert "gen_ai_client_operation_duration_seconds_count" in await response.text()


async def test_prometheus_off_removes_metrics_route(start_sidecar: StartSidecar,
                                                    http: Any) -> None:
    """telemetry.prometheus: false removes /metrics (404) and, with nothing else on, the stage."""
    sidecar = await start_sidecar({"telemetry": {"prometheus": False, "exporters": []}})
    async with http.get(f"{sidecar.url}/metrics") as response:
        assert response.status == 404
    assert "telemetry" not in sidecar.app[LIVE].pipelines.stage_names


async def test_passthrough_requests_get_an_http_client_span(
        grpc_receiver: GrpcReceiver, start_sidecar: StartSidecar, http: Any) -> None:
    """A path outside the model endpoints gets a SERVER span named by its route template and a
    plain HTTP CLIENT span, no GenAI attributes, and no query string anywhere."""
    sidecar = await start_sidecar({"telemetry": {"exporters": [
        {"protocol": "grpc", "endpoint": grpc_receiver.endpoint, "signals": ["traces"]}]}})
    # /v1/files: with several providers /v1/models is a merged list, not a passthrough
    async with http.get(f"{sidecar.v1}/files?secret=s3cr3t") as response:
        assert response.status == 200
    await flush(sidecar)
    spans = grpc_receiver.spans()
    (server,) = by_kind(spans, SERVER)
    (upstream_span,) = by_kind(spans, CLIENT)
    assert server.name == "GET /v1/{tail}"
    assert attributes(server.attributes)["url.path"] == "/v1/files"
    assert upstream_span.name == "GET"
    assert not any(k.startswith("gen_ai.") for k in attributes(upstream_span.attributes))
    assert b"s3cr3t" not in b"".join(e.request.SerializeToString() for e in grpc_receiver.exports)
