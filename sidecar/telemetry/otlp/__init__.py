"""Our own OTLP exporter: everything that leaves the process as OpenTelemetry data.

    plan.py       what to export, where and how (`telemetry` settings + OTEL_* variables)
    export.py     `TelemetryExport`, the Resource that owns the queues and threads
    queues.py     bounded queues, batchers and one sender thread per destination
    records.py    spans and log records as plain data, and their OTLP export requests
    metrics.py    the metrics registry as an OTLP metrics export request
    logs.py       log lines (access lines and every other) as OTLP log records
    wire.py       the protocol-buffers wire format, written by hand
    transport.py  OTLP over gRPC and HTTP/protobuf, with the specification's retries

Why our own instead of the OpenTelemetry SDK: docs/telemetry.md has the measurement
(`python -m bench.telemetry` compares the two).
"""

__all__: list[str] = []
