"""Zero retention in the logs: tracebacks without messages, log scrubbing."""

from __future__ import annotations

import gc
import io
import logging
import sys

import pytest
import structlog

from sidecar.config.schema import LogSettings
from sidecar.telemetry.logs import configure_logging
from sidecar.telemetry.withhold import (
    WITHHELD,
    first_line_only,
    format_exception,
)

ADDRESS = "jane" + "@example.com"  # a variable: tracebacks show source lines, not values


def test_tracebacks_keep_frames_and_types_but_no_messages() -> None:
    """Chained exceptions are all shown, each type named, no message kept."""
    value = ADDRESS
    try:
        try:
            raise KeyError(value)
        except KeyError as inner:
            raise ValueError(f"bad value {value}") from inner
    except ValueError as exc:
        text = format_exception(exc)
    assert ADDRESS not in text
    assert text.count(WITHHELD) == 2
    assert "builtins.KeyError" in text and "builtins.ValueError" in text
    assert "test_tracebacks_keep_frames_and_types_but_no_messages" in text


def test_third_party_log_messages_keep_their_first_line() -> None:
    """asyncio-style messages lose the repr lines that follow their first line."""
    event = first_line_only(None, "error", {"event": "Task failed\nexception=KeyError('x')"})
    assert event == {"event": "Task failed"}


def test_unraisable_exceptions_go_through_the_scrubbing_log(
        capsys: pytest.CaptureFixture[str]) -> None:
    """An exception Python cannot raise (here in __del__) is logged without its message."""
    stream = io.StringIO()
    saved = sys.unraisablehook, logging.getLogger().handlers[:], logging.getLogger().level
    try:
        configure_logging(LogSettings(), stream=stream, zdr=True)

        class Leaky:
            def __del__(self) -> None:
                raise ValueError(ADDRESS)

        Leaky()
        gc.collect()
    finally:
        sys.unraisablehook = saved[0]
        logging.getLogger().handlers[:] = saved[1]
        logging.getLogger().setLevel(saved[2])
        structlog.reset_defaults()
    assert "unraisable_exception" in stream.getvalue() and WITHHELD in stream.getvalue()
    assert ADDRESS not in stream.getvalue() + capsys.readouterr().err
