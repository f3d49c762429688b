"""The process's log lines during a test: `configure_logging` onto a StringIO, then the
previous logging setup back (structlog defaults, the root logger's handlers and level)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import structlog

from sidecar.config.schema import LogSettings
from sidecar.telemetry.logs import configure_logging


@contextmanager
def captured_logs(fmt: str = "json", level: str = "debug") -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging(LogSettings.model_validate({"format": fmt, "level": level}), stream=out)
    try:
        yield out
    finally:
        structlog.reset_defaults()
        root.handlers[:], level_before = saved
        root.setLevel(level_before)


def json_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
