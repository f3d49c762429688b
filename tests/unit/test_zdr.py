"""Zero-retention helpers: tracebacks without messages, OpenRouter's policy, log scrubbing."""

from __future__ import annotations

import orjson
import pytest

from sidecar.privacy.zdr import (
    WITHHELD,
    first_line_only,
    format_exception,
    is_openrouter,
    openrouter_body,
)
from tests.fakes.calls import make_call


def test_tracebacks_keep_frames_and_types_but_no_messages() -> None:
    """Chained exceptions are all shown, each type named, no message kept."""
    value = "jane" + "@example.com"  # not in the source lines the traceback shows
    try:
        try:
            raise KeyError(value)
        except KeyError as inner:
            raise ValueError(f"bad value {value}") from inner
    except ValueError as exc:
        text = format_exception(exc)
    assert "jane" not in text
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
