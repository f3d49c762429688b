"""configure_logging: one JSON object per line for structlog and stdlib records alike."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog

from sidecar.config.schema import LogSettings as Logs
from sidecar.telemetry.logs import configure_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    saved = logging.getLogger().handlers[:], logging.getLogger().level
    yield out
    structlog.reset_defaults()
    logging.getLogger().handlers[:], level = saved
    logging.getLogger().setLevel(level)


def test_stdlib_exceptions_render_as_json(stream: io.StringIO) -> None:
    """An aiohttp-style logger.exception becomes one JSON line with the traceback as text."""
    configure_logging(Logs(), stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Unhandled exception")
    line = orjson.loads(stream.getvalue())
    assert line["event"] == "Unhandled exception"
    assert line["logger"] == "aiohttp.server"
    assert line["level"] == "error"
    assert "ValueError: boom" in line["exception"]


def test_unknown_values_never_break_a_log_line(stream: io.StringIO) -> None:
    """A value JSON cannot hold is written as text instead of failing the log call."""
    configure_logging(Logs(), stream=stream)
    structlog.get_logger("t").warning("odd", value=int, other={1, 2})
    line = orjson.loads(stream.getvalue())
    assert line["value"] == "<class 'int'>"
    assert line["event"] == "odd"


def test_level_filters_structlog_and_stdlib(stream: io.StringIO) -> None:
    """Records below logs.level are dropped from both kinds of logger."""
    configure_logging(Logs(level="warning"), stream=stream)
    structlog.get_logger("t").info("quiet")
    logging.getLogger("x").info("quiet too")
    structlog.get_logger("t").warning("loud")
    assert [orjson.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["loud"]
