"""OTLP transports against real receivers: retries what the specification calls retryable,
gives up at once on the rest, and never outlives the destination's timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sidecar.telemetry.otlp.transport import Destination, make_transport
from tests.fakes.otlp import BlackHole, GrpcReceiver, HttpReceiver
from tests.fakes.ports import free_port

PAYLOAD = ExportTraceServiceRequest().SerializeToString()


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.mark.parametrize(("status", "error", "attempts"), [
    (503, None, 3),  # retryable: two failures, then delivered
    (429, None, 3),
    (400, "http_400", 1),  # not retryable: one try, reported
    (401, "http_401", 1),
])
async def test_http_retries_only_what_is_retryable(receiver: HttpReceiver, status: int,
                                                   error: str | None, attempts: int) -> None:
    """503/429 (with Retry-After) are retried until delivered; 400/401 fail at once."""
    receiver.status, receiver.failures = status, 2
    transport = make_transport(Destination("traces", "http", f"{receiver.endpoint}/v1/traces",
                                           (("x-k", "v"),), gzip=True, timeout_s=10))
    assert await asyncio.to_thread(transport.send, PAYLOAD) == error
    assert receiver.attempts == attempts
    if error is None:
        (export,) = receiver.of("traces")
        assert export.headers["x-k"] == "v" and export.headers["content-encoding"] == "gzip"
    transport.close()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_unreachable_destinations_fail_within_their_timeout(protocol: str) -> None:
    """A closed port and a black hole both end in an error, never a hang past timeout_s
    (the test's own timeout is the guard)."""
    hole = BlackHole()
    try:
        for url in (f"http://127.0.0.1:{free_port()}", hole.endpoint):
            if protocol == "http":
                url += "/v1/traces"
            transport = make_transport(Destination("traces", protocol, url, timeout_s=1.0))  # type: ignore[arg-type]
            assert await asyncio.to_thread(transport.send, PAYLOAD) is not None
            transport.close()
    finally:
        hole.close()


async def test_grpc_delivers_with_its_metadata() -> None:
    """gRPC sends the encoded request as is, with the destination's headers as metadata."""
    receiver = GrpcReceiver()
    receiver.start()
    try:
        transport = make_transport(Destination("traces", "grpc", receiver.endpoint,
                                               (("X-Team", "a"),), gzip=True))
        assert await asyncio.to_thread(transport.send, PAYLOAD) is None
        (export,) = receiver.of("traces")
        assert export.headers["x-team"] == "a"
        transport.close()
    finally:
        receiver.stop()
