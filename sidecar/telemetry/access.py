"""The end of every proxied request: its access line and its request metrics.

`AccessRecord` is the first finisher the handler registers, so it runs last, once, after every
stage's finisher, on every path (see call.py). The line carries ids, sizes and timings only:
never a key, a prompt or a completion, and the path without its query string (queries can carry
secrets). Lines go through the batched `AccessWriter` (logs.py).
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from sidecar.call import Call
from sidecar.telemetry.logs import AccessWriter
from sidecar.telemetry.metrics import Metrics


class AccessRecord:
    def __init__(self, metrics: Metrics, writer: AccessWriter) -> None:
        self._metrics = metrics
        self._writer = writer

    def __call__(self, call: Call) -> None:
        # loop.time() is millisecond-grained on uvloop; the Call's own clock is not.
        seconds = monotonic() - call.started
        endpoint = call.endpoint or "passthrough"
        self._metrics.observe(endpoint, call.status, seconds, call.outcome)
        for attempt in call.attempts:
            if attempt.error is not None:
                self._metrics.upstream_error(attempt.provider, attempt.error)
        line: dict[str, Any] = {
            "request_id": call.request_id,
            "method": call.method,
            "path": "/v1" + call.path.partition("?")[0],
            "endpoint": endpoint,
            "model": call.requested_model,
            "stream": call.stream,
            "status": call.status,
            "outcome": call.outcome,
            "latency_ms": round(seconds * 1000, 3),
            "bytes_in": _content_length(call),
            "bytes_out": call.bytes_out,
            "key": call.key_name,
            "provider": call.provider,
            "attempts": len(call.attempts),
        }
        if call.answer.usage is not None:
            line["prompt_tokens"] = call.answer.usage.prompt_tokens
            line["completion_tokens"] = call.answer.usage.completion_tokens
        if call.cache_status is not None:
            line["cache"] = call.cache_status
        if (bill := call.bill) is not None:
            line["cost_usd"] = bill.cost_usd
            if bill.hit:
                line["saved_usd"] = bill.saved_usd
        if call.redactions:
            line["redactions"] = call.redactions
        if (auto := call.auto) is not None:  # `model` is the router's name: say what ran
            line["auto_tier"] = auto.served_tier(call)
            line["auto_model"] = auto.served_model(call)
        if call.trace_id is not None:
            line["trace_id"] = call.trace_id
            line["span_id"] = call.span_id
        self._writer.write("info", line)


def admin_line(writer: AccessWriter, *, request_id: str | None, method: str, path: str,
               status: int, seconds: float, bytes_out: int | None, probe: bool) -> None:
    """The access line of a probe, admin or unknown-path request (no Call, no proxy metrics)."""
    writer.write("debug" if probe else "info", {
        "request_id": request_id, "method": method, "path": path, "status": status,
        "latency_ms": round(seconds * 1000, 3), "bytes_out": bytes_out})


def _content_length(call: Call) -> int | None:
    length = call.headers.get("Content-Length")
    if length is not None and length.isdigit():
        return int(length)
    return len(call.raw_body) if call.raw_body is not None else None

