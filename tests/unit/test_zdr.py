"""Zero-retention helpers: tracebacks without messages, OpenRouter's policy, log scrubbing."""

from __future__ import annotations

import gc
import io
import logging
import sys

import orjson
import pytest
import structlog

from sidecar.config.schema import LogSettings
from sidecar.privacy.zdr import (
    WITHHELD,
    first_line_only,
    format_exception,
    is_openrouter,
    openrouter_body,
)
from sidecar.telemetry.logging import configure_logging
from tests.fakes.calls import make_call

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


@pytest.mark.parametrize(("url", "expected"), [
    ("https://openrouter.ai/api/v1", True), ("https://eu.openrouter.ai/api/v1", True),
    ("https://openrouter.ai.evil.example/v1", False), ("http://127.0.0.1:8080/v1", False),
])
def test_openrouter_hosts(url: str, expected: bool) -> None:
    """Only openrouter.ai and its subdomains get the retention policy."""
    assert is_openrouter(url) is expected


def test_openrouter_body_keeps_the_clients_fields_and_overrides() -> None:
    """The policy is merged into the client's provider object, with per-model overrides and
    the provider's model name applied as usual."""
    call = make_call(body={"model": "a/b", "messages": [], "max_tokens": 900,
                           "provider": {"only": ["x"], "data_collection": "allow"}})
    call.overrides["max_tokens"] = 100
    body = openrouter_body(call, "b")
    assert body is not None
    assert orjson.loads(body) == {"model": "b", "messages": [], "max_tokens": 100, "provider": {
        "only": ["x"], "data_collection": "deny", "zdr": True}}


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
