"""Structured logs: structlog, JSON by default, one object per line on stdout.

`configure_logging` is called by `serve`, never at import. structlog's loggers hand their events
to the standard library's root logger, and one handler renders both kinds (ours and aiohttp's,
asyncio's...), so the whole process speaks one format and one more handler on the root logger
(the OTLP log export, otlp/logs.py) sees every line. Lines logged while a request is being
served carry its `trace_id` and `span_id` (bound by the telemetry stage as structlog context
variables, merged into every line, ours and the standard library's).

The per-request access line is the hottest log line by far, so `AccessWriter` skips structlog's
processor chain (about 15 µs a line): it renders straight to JSON with the same shape as every
other line (fields, then `event`, `level`, `timestamp`) and writes in batches, one write per
`FLUSH_INTERVAL_S` or `FLUSH_BYTES` instead of one flushed write per request; the app flushes
it at shutdown, so a crash loses at most one interval's lines. `format: console` renders access
lines with structlog's console renderer.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TextIO

import orjson
import structlog

from sidecar.config.schema import LogSettings
from sidecar.telemetry.withhold import (
    first_line_only,
    route_unraisable_to_logging,
    withhold_exception_messages,
)

# The trace ids of the request being served, set by the telemetry stage: one ContextVar.set
# per request (structlog's bind_contextvars costs ten times that), read only when a line is
# logged.
TRACE_IDS: ContextVar[tuple[str, str] | None] = ContextVar("llm_sidecar_trace_ids",
                                                            default=None)


def trace_fields() -> dict[str, str]:
    """{"trace_id", "span_id"} of the request being served, or {}."""
    ids = TRACE_IDS.get()
    return {} if ids is None else {"trace_id": ids[0], "span_id": ids[1]}


def add_trace_ids(logger: Any, method: str, event: Any) -> Any:
    """A structlog processor: every line logged while a request is served names its trace."""
    ids = TRACE_IDS.get()
    if ids is not None:
        event.setdefault("trace_id", ids[0])
        event.setdefault("span_id", ids[1])
    return event


_LEVELS = {name: logging.getLevelNamesMapping()[name.upper()]
           for name in ("debug", "info", "warning", "error")}


def _json(event: Any, **_: Any) -> str:
    # default=str: a value orjson does not know is written as text, never a crashed log call
    return orjson.dumps(event, default=str).decode()


def _render_chain(fmt: str, zdr: bool) -> list[structlog.typing.Processor]:
    """The last steps for every record, structlog's and the standard library's alike. In
    zero data retention mode tracebacks are formatted without exception messages first."""
    scrub: list[structlog.typing.Processor] = [withhold_exception_messages] if zdr else []
    if fmt == "console":  # renders exceptions itself, prettily
        return [*scrub, console_renderer()]
    return [*scrub, structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(_json)]


def console_renderer() -> structlog.dev.ConsoleRenderer:
    """structlog's console renderer, with tracebacks that do not print local variables: its
    default (rich, show_locals) would print a frame's `call` or `headers` on any logged
    exception, so client keys, the upstream key and prompts would reach the log."""
    return structlog.dev.ConsoleRenderer(
        colors=False, exception_formatter=structlog.dev.RichTracebackFormatter(
            color_system=None, show_locals=False))


def configure_logging(logs: LogSettings, stream: TextIO | None = None, *,
                      zdr: bool = False) -> None:
    """`zdr`: privacy.zdr, see withhold.py for what it withholds."""
    stream = stream or sys.stdout
    level = _LEVELS[logs.level]
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    foreign: list[structlog.typing.Processor] = [first_line_only] if zdr else []
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        # Not cached: a reconfiguration (ZDR on or off, tests) must reach the module-level
        # loggers already used; they log rarely (access lines bypass structlog).
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *_render_chain(logs.format, zdr)],
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, *foreign],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if zdr:
        route_unraisable_to_logging()


FLUSH_INTERVAL_S = 0.05
FLUSH_BYTES = 64 * 1024


class AccessWriter:
    """Renders access events and writes them to stdout in batches. A Resource (deps.py): its
    `close` writes what is still pending."""

    name = "access log"

    def __init__(self, logs: LogSettings,
                 stream: Callable[[], TextIO] = lambda: sys.stdout,
                 sink: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self._threshold = _LEVELS[logs.level]
        self._stream = stream
        self.sink = sink  # the OTLP log export, when `signals: [logs]` is configured
        self._render: Callable[[dict[str, Any]], str] = lambda event: _json(event) + "\n"
        if logs.format == "console":
            console = console_renderer()
            self._render = lambda event: str(console(None, event["level"], event)) + "\n"
        self._pending: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._second_text = ""

    def write(self, level: str, fields: dict[str, Any]) -> None:
        if _LEVELS[level] < self._threshold:
            return
        if self.sink is not None:
            self.sink(level, fields)
        fields["event"] = "request"
        fields["level"] = level
        fields["timestamp"] = self._timestamp()
        line = self._render(fields)
        self._pending.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_INTERVAL_S, self.flush)

    def _timestamp(self) -> str:
        """structlog's ISO UTC format (2026-11-21T05:35:00.956466Z); the date-time part is
        formatted once a second, which makes it four times cheaper than datetime.isoformat."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1_000_000):06d}Z"

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self.flush()

    def problem(self) -> str | None:
        return None

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            stream = self._stream()
            stream.write("".join(self._pending))
            stream.flush()
            self._pending.clear()
            self._size = 0
