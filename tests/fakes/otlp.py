"""Real OTLP receivers for tests: gRPC (Trace, Metrics and Logs services on a grpc.server) and
HTTP/protobuf (an aiohttp app serving /v1/traces, /v1/metrics, /v1/logs), both on loopback.

Each records every export request it got, decoded with the official opentelemetry-proto
classes, and the headers (gRPC metadata) it came with. Plus a black hole: a socket that accepts
connections and never answers, for exporters that must not block anything.
"""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["BlackHole", "Export", "GrpcReceiver", "HttpReceiver", "attributes", "value"]

_REQUESTS = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}


@dataclass
class Export:
    signal: str
    request: Any  # Export{Trace,Metrics,Logs}ServiceRequest
    headers: dict[str, str]


def value(any_value: AnyValue) -> Any:
    """An OTLP AnyValue as Python data."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


def attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in key_values}


@dataclass
class _Recorder:
    exports: list[Export] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, signal: str, request: Message, headers: dict[str, str]) -> None:
        with self.lock:
            self.exports.append(Export(signal, request, headers))

    def of(self, signal: str) -> list[Export]:
        with self.lock:
            return [e for e in self.exports if e.signal == signal]

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        return [(attributes(rs.resource.attributes), span)
                for export in self.of("traces") for rs in export.request.resource_spans
                for ss in rs.scope_spans for span in ss.spans]

    def metrics(self) -> dict[str, Any]:
        """The latest Metric message by name (cumulative: the last export holds the totals)."""
        out: dict[str, Any] = {}
        for export in self.of("metrics"):
            for rm in export.request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        out[metric.name] = metric
        return out

    def logs(self) -> list[Any]:
        return [record for export in self.of("logs") for rl in export.request.resource_logs
                for sl in rl.scope_logs for record in sl.log_records]


class GrpcReceiver(_Recorder):
    """OTLP/gRPC on 127.0.0.1:<port>."""

    def __init__(self) -> None:
        super().__init__()
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        recorder = self

        def servicer(base: type, response: type, signal: str) -> Any:
            class Servicer(base):  # type: ignore[misc, valid-type]
                def Export(self, request: Message, context: grpc.ServicerContext) -> Any:
                    recorder.record(signal, request, dict(context.invocation_metadata()))
                    return response()
            return Servicer()

        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer(
            trace_service_pb2_grpc.TraceServiceServicer,
            trace_service_pb2.ExportTraceServiceResponse, "traces"), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(servicer(
            metrics_service_pb2_grpc.MetricsServiceServicer,
            metrics_service_pb2.ExportMetricsServiceResponse, "metrics"), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(servicer(
            logs_service_pb2_grpc.LogsServiceServicer,
            logs_service_pb2.ExportLogsServiceResponse, "logs"), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(0).wait()


class HttpReceiver(_Recorder):
    """OTLP/HTTP (protobuf) on http://127.0.0.1:<port>/v1/<signal>. `status` answers with an
    error instead (e.g. 503) until set back to 200; `failures` answers the next N requests
    with `status` and then 200. `attempts` counts every request, answered or not."""

    def __init__(self) -> None:
        super().__init__()
        self.status = 200
        self.failures: int | None = None
        self.attempts = 0
        self._runner: web.AppRunner | None = None
        self.endpoint = ""

    async def start(self) -> None:
        app = web.Application()
        for signal in _REQUESTS:
            app.router.add_post(f"/v1/{signal}", self._handler(signal))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.endpoint = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def _handler(self, signal: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()  # aiohttp undoes Content-Encoding: gzip
            message = _REQUESTS[signal]()
            message.ParseFromString(body)
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.attempts += 1
            if self.failures is not None:
                if self.failures > 0:
                    self.failures -= 1
                    return web.Response(status=self.status, headers={"Retry-After": "0"})
            elif self.status != 200:
                return web.Response(status=self.status)
            self.record(signal, message, headers)
            return web.Response(body=b"", content_type="application/x-protobuf")
        return handle

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class BlackHole:
    """A listening socket that never accepts: connections hang, nothing is ever answered."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1024)
        self.port = self._sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._sock.close()
