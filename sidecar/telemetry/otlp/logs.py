"""Log lines as OTLP log records (`signals: [logs]`): access lines and every other line.

Access lines come from `AccessWriter` through `access_sink` (one record per request, the same
fields as the JSON line); everything else (structlog's lines and the standard library's) through
`OtlpLogHandler` on the root logger. Both only build a `LogData` and queue it; the logs Batcher
encodes and sends it off the event loop. Records carry the request's trace and span ids, so a
backend links each line to its trace.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from structlog.contextvars import get_contextvars

from sidecar.telemetry import withhold as zero_retention
from sidecar.telemetry.logs import trace_fields
from sidecar.telemetry.otlp.records import LogData

__all__ = ["OtlpLogHandler", "access_sink"]

SEVERITY = {"debug": (5, "DEBUG"), "info": (9, "INFO"), "warning": (13, "WARN"),
            "error": (17, "ERROR"), "critical": (21, "FATAL")}
_SKIP = frozenset({"event", "level", "timestamp", "trace_id", "span_id", "exc_info"})


def _ids(fields: dict[str, Any]) -> tuple[int, int]:
    trace_id, span_id = fields.get("trace_id"), fields.get("span_id")
    if isinstance(trace_id, str) and isinstance(span_id, str):
        try:
            return int(trace_id, 16), int(span_id, 16)
        except ValueError:
            pass
    return 0, 0


def access_sink(put: Callable[[LogData], None]) -> Callable[[str, dict[str, Any]], None]:
    """For AccessWriter: one record per access line, body "request"."""
    def sink(level: str, fields: dict[str, Any]) -> None:
        number, text = SEVERITY[level]
        trace_id, span_id = _ids(fields)
        attributes = {k: v for k, v in fields.items() if k not in _SKIP}
        put(LogData(time.time_ns(), number, text, "request", attributes, trace_id, span_id))
    return sink


class OtlpLogHandler(logging.Handler):
    """Every record the root logger handles, queued as a LogData. With `zdr`, the same rules
    as the stdout lines (sidecar/telemetry/withhold.py): exception messages withheld, a third-party
    record's message cut to its first line."""

    def __init__(self, put: Callable[[LogData], None], *, zdr: bool = False) -> None:
        super().__init__()
        self._put = put
        self._zdr = zdr

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._put(self._convert(record))
        except Exception:
            self.handleError(record)

    def _convert(self, record: logging.LogRecord) -> LogData:
        level = record.levelname.lower()
        number, text = SEVERITY.get(level, (9, record.levelname))
        attributes: dict[str, Any] = {"logger": record.name}
        if isinstance(record.msg, dict):  # a structlog event
            fields = record.msg
            body = str(fields.get("event", ""))
            attributes.update((k, v) for k, v in fields.items()
                              if k not in _SKIP and not k.startswith("_"))
        else:
            fields = {**get_contextvars(), **trace_fields()}
            body = record.getMessage()
            if self._zdr:
                body = body.split("\n", 1)[0][:200]
        exc_info: Any = record.exc_info
        if exc_info is None and isinstance(record.msg, dict):
            flag = record.msg.get("exc_info")
            exc_info = sys.exc_info() if flag is True else flag if isinstance(flag, tuple) else None
        if exc_info and exc_info[0] is not None:
            attributes["exception.type"] = exc_info[0].__name__
            if self._zdr:
                attributes["exception.message"] = zero_retention.WITHHELD
                if (exc := zero_retention.exception_of(exc_info)) is not None:
                    attributes["exception.stacktrace"] = zero_retention.format_exception(exc)
            else:
                attributes["exception.message"] = str(exc_info[1])
                attributes["exception.stacktrace"] = "".join(
                    traceback.format_exception(*exc_info))
        trace_id, span_id = _ids(fields)
        return LogData(int(record.created * 1e9), number, text, body, attributes,
                       trace_id, span_id)
