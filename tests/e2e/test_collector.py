"""A real OpenTelemetry collector (rotel, from PyPI) receives the sidecar's export, over gRPC
and HTTP at once, from `llm-sidecar serve` run as a process; the collector forwards to an
in-process receiver where the test reads it. The request is sent and SIGTERM follows at once:
the spans (queued for a 5 s batch) and the metrics (read every 60 s) arrive only because the
shutdown flushes them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import rotel
import yaml

from tests.conftest import free_port
from tests.fakes.otlp import GrpcReceiver, attributes
from tests.fakes.waits import wait_ready, wait_until

ROTEL = Path(rotel.__file__).parent / "rotel-agent"
SERVER, CLIENT = 2, 3


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def receiver() -> Iterator[GrpcReceiver]:
    receiver = GrpcReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def collector(receiver: GrpcReceiver, tmp_path: Path) -> Iterator[tuple[int, int]]:
    """rotel listening on OTLP gRPC and HTTP, forwarding everything to `receiver`."""
    grpc_port, http_port = free_port(), free_port()
    process = subprocess.Popen(
        [str(ROTEL), "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
         "--otlp-http-endpoint", f"127.0.0.1:{http_port}", "--exporter", "otlp",
         "--otlp-exporter-endpoint", receiver.endpoint, "--otlp-exporter-protocol", "grpc",
         "--batch-timeout", "50ms", "--pid-file", str(tmp_path / "rotel.pid"),
         "--log-file", str(tmp_path / "rotel.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(wait_until(lambda: _listening(grpc_port) and _listening(http_port),
                               "rotel listens", 20))
        yield grpc_port, http_port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.timeout(90)
def test_a_real_collector_receives_the_export_flushed_at_sigterm(
        collector: tuple[int, int], receiver: GrpcReceiver, tmp_path: Path) -> None:
    """Spans, metrics and logs sent by `serve` over gRPC and HTTP reach a real collector, and
    SIGTERM flushes what was still queued before the process exits 0."""
    grpc_port, http_port = collector
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"telemetry": {"service_name": "sidecar-under-test",
                                                    "exporters": [
        {"protocol": "grpc", "endpoint": f"http://127.0.0.1:{grpc_port}"},
        {"protocol": "http", "endpoint": f"http://127.0.0.1:{http_port}", "signals": ["traces"]},
    ]}}))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "serve", "--config", str(config), "--upstream", "demo",
         "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "SIDECAR_STATE_DIR": str(tmp_path / "state")})
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(base, returncode=process.poll))
        request = urllib.request.Request(
            base + "/v1/chat/completions", headers={"Content-Type": "application/json"},
            data=json.dumps({"model": "demo/echo",
                             "messages": [{"role": "user", "content": "hi"}]}).encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()[-2000:]

    asyncio.run(wait_until(
        lambda: len(receiver.spans()) >= 4 and bool(receiver.metrics()) and bool(receiver.logs()),
        "the collector forwarded spans, metrics and logs", 20))
    spans = receiver.spans()
    assert {resource["service.name"] for resource, _ in spans} == {"sidecar-under-test"}
    clients = [span for _, span in spans if span.kind == CLIENT]
    assert {span.name for span in clients} == {"chat demo/echo"}
    assert len(clients) == 2  # one through each transport
    assert all(attributes(s.attributes)["gen_ai.usage.output_tokens"] > 0 for s in clients)
    assert "gen_ai.client.operation.duration" in receiver.metrics()
    assert any(record.body.string_value == "request" for record in receiver.logs())
