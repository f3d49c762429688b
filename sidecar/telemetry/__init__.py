"""Telemetry, in two halves.

The request side, read from the finished Call (the stage is pipeline/telemetry.py):
    tracing.py   W3C trace context and head sampling
    genai.py     GenAI semantic-convention attribute names and values
    spans.py     a finished request as its SERVER and CLIENT spans
    content.py   opt-in content capture (prompts and completions as span attributes)
    metrics.py   every instrument (names, units, buckets); series.py stores them
    access.py    the access line and the request metrics, the handler's last finisher
    logs.py      structured logs and the batched access writer; withhold.py: ZDR in logs
    refusals.py  401s counted and logged at most once per interval

The exporter, in its own sub-package (otlp/): the plan of what goes where (OTEL_* and the
`telemetry` settings), bounded queues and exporter threads, the OTLP encoders, the transports.
The request side hands it finished records (SpanData, LogData) and never waits on it.
"""

__all__: list[str] = []
