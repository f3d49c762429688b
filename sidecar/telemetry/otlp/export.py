"""`TelemetryExport`: the Resource that owns every exporter thread and queue (deps.py).

Built from the `telemetry` settings and the `OTEL_*` environment (plan.py) when the app is built;
threads start with the app and stop at shutdown. On SIGTERM, after the drain, `close()` hands
everything queued to the destinations, takes a last metrics reading, and waits for deliveries
for at most the longest exporter timeout (`timeout_s`, default 10 s); what is still undelivered
then is counted as dropped and the process exits anyway (the threads are daemons, and blocking
work runs in a worker thread, so the event loop is never held).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from sidecar import __version__
from sidecar.config.telemetry import TelemetrySettings
from sidecar.telemetry.metrics import Metrics
from sidecar.telemetry.otlp import wire
from sidecar.telemetry.otlp.logs import OtlpLogHandler, access_sink
from sidecar.telemetry.otlp.metrics import MetricsEncoder
from sidecar.telemetry.otlp.plan import make_plan
from sidecar.telemetry.otlp.queues import Batcher, MetricsPump, Sender, Warner
from sidecar.telemetry.otlp.records import (
    LogData,
    LogEncoder,
    SpanData,
    SpanEncoder,
    export_request,
)
from sidecar.telemetry.otlp.transport import Destination, Signal

__all__ = ["SCOPE_NAME", "TelemetryExport"]

SCOPE_NAME = "llm_sidecar"
PENDING_BATCHES = 8  # per destination: with 512-item batches, 4096 items waiting at most
_log = structlog.get_logger("sidecar.telemetry")


class TelemetryExport:
    name = "telemetry export"

    def __init__(self, settings: TelemetrySettings, metrics: Metrics,
                 env: Mapping[str, str], *, zdr: bool = False) -> None:
        """`zdr`: privacy.zdr; exported log records then withhold what the stdout lines do."""
        self._zdr = zdr
        self.plan = plan = make_plan(settings, env)
        self.capture_content = settings.capture_content
        self._metrics = metrics
        self._warner = Warner()
        resource = wire.resource(plan.resource)
        scope = wire.scope(SCOPE_NAME, __version__)
        self.spans: Batcher | None = None
        self.logs: Batcher | None = None
        self.metrics_pump: MetricsPump | None = None
        if traces := plan.for_signal("traces"):
            span_encoder = SpanEncoder()
            self.spans = self._batcher("traces", traces, lambda batch: export_request(
                resource, scope, [span_encoder.span(s) for s in batch]), plan.spans)
        if logs := plan.for_signal("logs"):
            log_encoder = LogEncoder()
            self.logs = self._batcher("logs", logs, lambda batch: export_request(
                resource, scope, [log_encoder.record(r) for r in batch]), plan.logs)
        if metric_destinations := plan.for_signal("metrics"):
            encoder = MetricsEncoder(metrics.registry, metrics.started_ns)
            self.metrics_pump = MetricsPump(
                lambda: encoder.request(resource, scope),
                self._senders(metric_destinations), plan.metrics_interval_s)
        self._handler: OtlpLogHandler | None = None
        self._closed = False

    def _senders(self, destinations: Sequence[Destination]) -> list[Sender]:
        return [Sender(d, self._metrics.dropped, self._warner, PENDING_BATCHES)
                for d in destinations]

    def _batcher(self, signal: Signal, destinations: Sequence[Destination],
                 encode: Callable[[Sequence[Any]], bytes], limits: Any) -> Batcher:
        return Batcher(signal, encode, self._senders(destinations),
                       max_queue=limits.max_queue, batch_size=limits.batch_size,
                       delay_s=limits.delay_s, dropped=self._metrics.dropped,
                       warner=self._warner)

    @property
    def tracing(self) -> bool:
        return self.spans is not None

    def put_span(self, span: SpanData) -> None:
        assert self.spans is not None
        self.spans.put(span)

    def access_sink(self) -> Callable[[str, dict[str, Any]], None] | None:
        """For AccessWriter, when logs are exported."""
        return access_sink(self._put_log) if self.logs is not None else None

    def _put_log(self, record: LogData) -> None:
        assert self.logs is not None
        self.logs.put(record)

    def _parts(self) -> list[Batcher | MetricsPump]:
        return [p for p in (self.spans, self.logs, self.metrics_pump) if p is not None]

    async def start(self) -> None:
        for part in self._parts():
            part.start()
        if self.logs is not None:
            self._handler = OtlpLogHandler(self._put_log, zdr=self._zdr)
            logging.getLogger().addHandler(self._handler)
        for warning in self.plan.warnings:
            _log.warning("telemetry_config", problem=warning)
        if self.plan.destinations:
            _log.info("telemetry_export", destinations=[
                d.label if d.protocol == "http" else f"{d.label} ({d.signal})"
                for d in self.plan.destinations],
                sampler=f"{self.plan.sampler.root}:{self.plan.sampler.ratio}")

    def stop_logs(self) -> None:
        """Stop taking the process's log lines (a live reload's successor takes them now);
        what was queued is still sent."""
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None

    async def close(self) -> None:
        self.stop_logs()
        if self._closed or not self._parts():
            return
        self._closed = True
        budget = max((d.timeout_s for d in self.plan.destinations), default=1.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(self.flush, budget), budget + 1.0)
        for part in self._parts():
            part.stop()
            for sender in part.senders:
                sender.stop()

    def flush(self, timeout_s: float) -> bool:
        """Blocking (call it off the event loop): hand over what is queued, take a metrics
        reading, and wait until every destination has it, or `timeout_s`. True if all went."""
        deadline = time.monotonic() + timeout_s
        for batcher in (self.spans, self.logs):
            if batcher is not None:
                batcher.drain()
        if self.metrics_pump is not None:
            self.metrics_pump.export()
        return all(sender.wait_idle(deadline) for part in self._parts()
                   for sender in part.senders)

    def problem(self) -> str | None:
        return None  # an exporter that is down never makes the sidecar unready

    def queued(self) -> dict[str, int]:
        """Items waiting, by signal and in destination queues (bounded; for tests and /readyz)."""
        out: dict[str, int] = {}
        for part in self._parts():
            name = part.signal if isinstance(part, Batcher) else "metrics"
            waiting = part.queued() if isinstance(part, Batcher) else 0
            out[name] = waiting + sum(s.pending() for s in part.senders)
        return out
