"""`python -m bench.telemetry`: what telemetry costs per request, measured in-process.

For each mode it drives the real telemetry stage and its finisher over N simulated requests
(one upstream attempt, usage, a JSON answer or a 20-event stream) and reports:
  loop µs/req   CPU of the event loop's thread: the stage, the stream passing through it,
                the finisher (metrics, span building, queueing); what delays requests
  CPU µs/req    the whole process's CPU per request, exporter threads included (encoding,
                compression, sending), after everything was delivered; what throughput pays
The OTLP receiver is a raw-bytes gRPC/HTTP sink in a separate process, so its CPU is not
counted. With the OpenTelemetry SDK installed it also times the SDK's equivalents (live
spans, its OTLP encoder, its metric instruments) for comparison; they are not dependencies.

    .venv/bin/python -m bench.telemetry [--requests 20000] [--stream]
    .venv/bin/python -m bench.telemetry --sink 4317   # only run the sink (for python -m bench
                                                     # --sidecar-config bench/configs/...)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.call import Answer, Call, Reply, Usage
from sidecar.config.telemetry import TelemetrySettings
from sidecar.pipeline.telemetry import Telemetry
from sidecar.telemetry.genai import Upstreams
from sidecar.telemetry.metrics import Metrics
from sidecar.telemetry.otlp.export import TelemetryExport
from sidecar.telemetry.otlp.records import SpanData, SpanEncoder, export_request

BODY = {"model": "openai/gpt-4o-mini", "temperature": 0.7, "max_tokens": 64,
        "messages": [{"role": "user", "content": "Write one sentence."}]}
ANSWER = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"Hi"},"finish_reason":"stop"}]}'
EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"word "}}]}\n\n'


def _two_free_ports() -> int:
    """A port p with p + 1 free too (the sink's gRPC and HTTP)."""
    import socket

    while True:
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


def serve_sink(port: int) -> None:
    """An OTLP sink: gRPC on `port` and HTTP on `port + 1`, answering every export, empty."""
    from concurrent.futures import ThreadPoolExecutor
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import grpc

    def ok(request: bytes, context: Any) -> bytes:
        return b""

    server = grpc.server(ThreadPoolExecutor(4))
    for service in ("trace.v1.TraceService", "metrics.v1.MetricsService", "logs.v1.LogsService"):
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            f"opentelemetry.proto.collector.{service}",
            {"Export": grpc.unary_unary_rpc_method_handler(ok)})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()

    class Http(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port + 1), Http).serve_forever()


async def _stream(events: int) -> AsyncIterator[bytes]:
    for _ in range(events):
        yield EVENT
    yield b"data: [DONE]\n\n"


def _call() -> Call:
    return Call(request_id="r", method="POST", path="/chat/completions",
                endpoint="chat/completions", headers=CIMultiDictProxy(CIMultiDict()),
                started=time.monotonic(), body=BODY, raw_body=b"{}", model=BODY["model"],
                requested_model=BODY["model"])


async def _next(call: Call, stream: bool) -> Reply:
    attempt = call.begin_attempt("upstream", call.model or "", time.monotonic())
    attempt.status, attempt.headers_at = 200, time.monotonic()
    call.answer = Answer(Usage(12, 20), "stop", "openai/gpt-4o-mini-2024", "chatcmpl-1")
    if stream:
        return Reply(200, CIMultiDict(), chunks=_stream(20), sse=True)
    attempt.ended = time.monotonic()
    return Reply(200, CIMultiDict(), body=ANSWER)


async def measure(config: dict[str, Any] | None, requests: int, stream: bool
                  ) -> tuple[float, float]:
    """(loop µs per request, process CPU µs per request) for one telemetry config; None: no
    telemetry stage at all (what the simulated request costs by itself)."""
    metrics = Metrics()
    export = TelemetryExport(TelemetrySettings.model_validate(config or {}), metrics, env={})
    stage: Any = Telemetry(export, metrics,
                           Upstreams({"upstream": "https://openrouter.ai/api/v1"}))
    if config is None:
        async def stage(call: Call, next: Any) -> Reply:
            return await next(call)
    await export.start()

    clock = time.thread_time  # this thread's CPU: the exporter threads are not in it

    async def one() -> float:
        call = _call()
        began = clock()
        reply = await stage(call, lambda c: _next(c, stream))
        if reply.chunks is not None:
            async for _ in reply.chunks:
                pass
        call.status = 200
        call.finish()
        return clock() - began

    # This loop outruns any server by 5x: every 500 requests the exporters are let catch up
    # (2,000 spans at once overflowed the queue of 2,048 now and then, warm-up included).
    for index in range(min(2000, requests)):  # warm-up: caches, first labels
        await one()
        if index % 500 == 499:
            await asyncio.to_thread(export.flush, 30)
    assert await asyncio.to_thread(export.flush, 30)
    cpu = time.process_time()
    loop = 0.0
    for index in range(requests):
        loop += await one()
        if index % 500 == 499:
            await asyncio.to_thread(export.flush, 30)
    assert await asyncio.to_thread(export.flush, 60), "the sink did not take everything"
    cpu = time.process_time() - cpu
    await export.close()
    dropped = metrics.telemetry_dropped.total()
    assert not dropped, f"{dropped} items dropped: the figures would be too low"
    return loop / requests * 1e6, cpu / requests * 1e6


def sdk_comparison() -> list[str]:
    """The OpenTelemetry SDK doing the same work, when it is installed."""
    try:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
        from opentelemetry.trace import SpanKind, set_span_in_context
    except ImportError:
        return ["OpenTelemetry SDK not installed: no comparison"]

    class Keep(SpanExporter):
        def __init__(self) -> None:
            self.spans: list[Any] = []

        def export(self, spans: Any) -> SpanExportResult:
            if len(self.spans) < 512:
                self.spans.extend(spans)
            return SpanExportResult.SUCCESS

    clock = time.thread_time  # CPU of this thread, as for our own figures
    exporter = Keep()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=100000))
    tracer = provider.get_tracer("bench")
    attributes = {f"gen_ai.attr{i}": ("value" if i % 2 else i) for i in range(15)}
    n = 20000
    began = clock()
    for _ in range(n):
        server = tracer.start_span("POST /v1/chat/completions", kind=SpanKind.SERVER)
        tracer.start_span("chat m", context=set_span_in_context(server), kind=SpanKind.CLIENT,
                          attributes=attributes).end()
        server.end()
    live = (clock() - began) / n * 1e6
    provider.force_flush()
    spans = [s for s in exporter.spans if s.kind == SpanKind.CLIENT][:256]
    began = clock()
    encode_spans(spans).SerializePartialToString()
    encoded = (clock() - began) / len(spans) * 1e6
    ours = [SpanData(1, 2, 3, "chat m", 3, 1, 2, dict(s.attributes)) for s in spans]
    encoder = SpanEncoder()
    began = clock()
    export_request(b"", b"", [encoder.span(s) for s in ours])
    our_encoding = (clock() - began) / len(ours) * 1e6
    meter = MeterProvider([InMemoryMetricReader(), InMemoryMetricReader()],
                          shutdown_on_exit=False).get_meter("bench")
    histogram = meter.create_histogram("h")
    labels = {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}
    began = clock()
    for _ in range(n):
        histogram.record(0.5, labels)
    record = (clock() - began) / n * 1e6
    return [f"SDK live spans (SERVER + CLIENT, 15 attributes): {live:.1f} µs per request",
            f"SDK OTLP encoding: {encoded:.1f} µs per span (ours: {our_encoding:.1f})",
            f"SDK histogram record (5 attributes, 2 readers): {record:.1f} µs"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--stream", action="store_true", help="20-event streams, not JSON")
    parser.add_argument("--sink", type=int, metavar="PORT", help="only run the OTLP sink")
    args = parser.parse_args(argv)
    if args.sink:
        serve_sink(args.sink)
        return 0
    port = _two_free_ports()
    sink = subprocess.Popen([sys.executable, "-m", "bench.telemetry", "--sink", str(port)],
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    time.sleep(1.0)  # the sink binds in well under a second
    grpc_all = {"protocol": "grpc", "endpoint": f"http://127.0.0.1:{port}"}
    http_traces = {"protocol": "http", "endpoint": f"http://127.0.0.1:{port + 1}",
                   "signals": ["traces"]}
    modes: dict[str, dict[str, Any] | None] = {
        "off (no telemetry stage)": None,
        "metrics only (Prometheus)": {},
        "traces + metrics, 1 gRPC exporter": {"exporters": [grpc_all]},
        "traces + metrics, gRPC uncompressed": {"exporters": [{**grpc_all,
                                                               "compression": "none"}]},
        "traces + metrics, gRPC + HTTP exporters": {"exporters": [grpc_all, http_traces]},
        "traces sampled at 10 %, gRPC": {"exporters": [grpc_all], "sample_ratio": 0.1},
    }
    kind = "20-event streams" if args.stream else "JSON answers"
    print(f"telemetry cost per request, {args.requests} requests, {kind}")
    print("| mode | loop µs/req | CPU µs/req | added loop µs | added CPU µs |")
    print("|---|---:|---:|---:|---:|")
    base: tuple[float, float] | None = None
    try:
        for name, config in modes.items():
            loop, cpu = asyncio.run(measure(config, args.requests, args.stream))
            base = base or (loop, cpu)
            print(f"| {name} | {loop:.1f} | {cpu:.1f} | {loop - base[0]:.1f} | "
                  f"{cpu - base[1]:.1f} |", flush=True)
    finally:
        sink.terminate()
        sink.wait()
    for line in sdk_comparison():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
