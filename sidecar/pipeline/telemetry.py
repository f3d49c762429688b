"""The telemetry stage: first in the pipeline, so it sees every request and every outcome.

On the way in it places the request in its trace (continuing the caller's `traceparent`), sets
`call.trace_id`/`span_id` (the access line prints them), makes them the request's trace ids for
logging (TRACE_IDS: every line logged during the request carries them), and passes `traceparent`
upstream so the upstream's spans join the same trace. It registers ONE finisher before calling
next; the finisher runs when the request is over (for a stream: when the stream ended) and does
all the rest from what the Call recorded: the GenAI metrics of each upstream attempt and, when
the trace is sampled, the SERVER span and one CLIENT span per attempt, queued for the exporter
threads. A stream is watched event by event (arrival times for time to first chunk and time per
chunk; the text too, only when content capture is on), never buffered.

Present when traces are exported, content is captured, or metrics are read (Prometheus or
OTLP); absent when all are off. What it costs is in docs/telemetry.md (bench/telemetry.py).
"""

from __future__ import annotations

from array import array
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from time import monotonic

from sidecar.call import Call, Next, Reply
from sidecar.privacy.pseudonyms import pseudonymized
from sidecar.sse import DONE, event_data, split_events
from sidecar.telemetry import content, genai
from sidecar.telemetry.logs import TRACE_IDS
from sidecar.telemetry.metrics import GenAILabels, Metrics
from sidecar.telemetry.otlp.export import TelemetryExport
from sidecar.telemetry.spans import Clock, StreamTiming, attempt_error, attempt_window, build_spans
from sidecar.telemetry.tracing import TraceContext, start_trace

__all__ = ["Telemetry"]


class Telemetry:
    name = "telemetry"
    reads_answer = True  # usage, finish reason, the answering model and id

    def __init__(self, export: TelemetryExport, metrics: Metrics,
                 upstreams: genai.Upstreams) -> None:
        self.export = export if export.tracing else None  # None: no trace is exported
        self.sampler = export.plan.sampler
        self.bound = export.plan.sampler.bound
        self.capture = export.capture_content
        self.metrics = metrics
        self.upstreams = upstreams

    async def __call__(self, call: Call, next: Next) -> Reply:
        request = _Request(self)
        if self.export is not None:
            headers = call.headers
            trace = request.trace = start_trace(headers.get("traceparent"),
                                                headers.get("tracestate"), self.sampler,
                                                self.bound)
            call.trace_id = f"{trace.trace_id:032x}"
            call.span_id = f"{trace.span_id:016x}"
            call.upstream_headers["traceparent"] = trace.traceparent()
            if trace.trace_state:
                call.upstream_headers["tracestate"] = trace.trace_state
            TRACE_IDS.set((call.trace_id, call.span_id))
        call.finishers.append(request.finish)
        reply = await next(call)
        if reply.error is not None:
            request.error_code = reply.error.code
        if reply.chunks is not None and reply.sse:
            request.times = array("d")
            if self.capture:
                request.text = content.StreamText()
            reply.chunks = _Watched(reply.chunks, request.times, request.text)
        elif self.capture:
            request.body = reply.body
        return reply


class _Request:
    """One request's telemetry state, from the stage to its finisher."""

    __slots__ = ("body", "error_code", "stage", "text", "times", "trace")

    def __init__(self, stage: Telemetry) -> None:
        self.stage = stage
        self.trace: TraceContext | None = None
        self.error_code: str | None = None
        self.times: array[float] | None = None  # arrival of each event of a stream
        self.text: content.StreamText | None = None
        self.body: bytes | None = None

    def finish(self, call: Call) -> None:
        end = monotonic()
        stage = self.stage
        if call.endpoint is not None and call.attempts:
            self._record_metrics(call, end)
        trace = self.trace
        if trace is None or not trace.sampled or stage.export is None:
            return
        times = self.times
        stream = StreamTiming(times[0], times[-1]) if times else StreamTiming()
        captured = None
        if stage.capture:
            captured = content.input_attributes(call.body)
            if call.status < 400:
                captured.update(content.output_attribute(self.body, self.text,
                                                         call.answer.finish_reason))
                output = captured.get(content.OUTPUT)
                if output is not None and call.pseudonyms:  # restored for the client only
                    captured[content.OUTPUT] = pseudonymized(output, call.pseudonyms, json=True)
        put = stage.export.put_span
        for span in build_spans(call, trace, Clock.now(), end, stage.upstreams, stream,
                                self.error_code, captured):
            put(span)

    def _record_metrics(self, call: Call, end: float) -> None:
        stage = self.stage
        metrics = stage.metrics
        operation = genai.OPERATIONS.get(call.endpoint or "", "chat")
        attempts = call.attempts
        last = len(attempts) - 1
        for index, attempt in enumerate(attempts):
            upstream = stage.upstreams.get(attempt.provider)
            error = attempt_error(call, attempts, index)
            answered = index == last and error is None and 0 < attempt.status < 400
            # Models only once an upstream accepted them: a client cannot mint label values.
            labels: GenAILabels = (
                operation, upstream.provider if upstream else attempt.provider,
                attempt.model if 0 < attempt.status < 400 else "",
                (call.answer.model or "") if answered else "",
                upstream.address if upstream else "", str(upstream.port) if upstream else "")
            started, ended = attempt_window(attempts, index, end)
            metrics.genai_operation(labels, ended - started, error)
            if not answered:
                continue
            if call.answer.usage is not None:
                metrics.genai_usage(labels, call.answer.usage.prompt_tokens,
                                    call.answer.usage.completion_tokens)
            times = self.times
            if times:
                gaps = map(float.__sub__, times[1:], times)  # each chunk after the first
                metrics.genai_stream(labels, times[0] - attempt.started, gaps)


class _Watched:
    """A stream, passed through event by event, noting when each event arrived.

    The work is an async generator (its per-item step runs in C: 0.25 µs an event against 0.6
    for a Python `__anext__` coroutine); the class around it makes `aclose()` reach the
    upstream body even when the stream is closed before its first chunk, when a generator
    alone would not run at all."""

    __slots__ = ("_chunks", "_watch")

    def __init__(self, chunks: AsyncIterator[bytes], times: array[float],
                 text: content.StreamText | None) -> None:
        self._chunks = chunks
        self._watch = _watch(chunks, times, text)

    def __aiter__(self) -> _Watched:
        return self

    def __anext__(self) -> Awaitable[bytes]:
        return self._watch.__anext__()

    async def aclose(self) -> None:
        await self._watch.aclose()
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()


async def _watch(chunks: AsyncIterator[bytes], times: array[float],
                 text: content.StreamText | None) -> AsyncGenerator[bytes, None]:
    append = times.append
    async for chunk in chunks:
        # One time per event that carries data (chunks are whole events, several when they
        # arrived together): not the final [DONE], nor keep-alive comments such as
        # OpenRouter's ": OPENROUTER PROCESSING", sent while a model thinks.
        if chunk.count(b"\n\n") == 1 and b"\r" not in chunk:  # the usual case: one event
            if chunk != DONE and chunk[:1] != b":":
                append(monotonic())
        else:
            now = monotonic()
            for event in split_events(chunk):
                if event_data(event) not in (None, b"[DONE]"):
                    append(now)
        if text is not None:
            text.feed(chunk)
        yield chunk
