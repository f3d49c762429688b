"""The sidecar's errors rendered for each wire: OpenAI's body, Anthropic's body and event."""

from __future__ import annotations

import orjson
import pytest

from sidecar.errors import (
    BudgetExceeded,
    CacheMiss,
    InternalError,
    PiiDetected,
    RequestTooLarge,
    SidecarError,
    UpstreamUnavailable,
    render,
    stream_error_event,
)


@pytest.mark.parametrize(("error", "kind"), [
    (PiiDetected("p", metadata={"entities": {"EMAIL": 1}}), "invalid_request_error"),
    (BudgetExceeded("b"), "billing_error"),
    (RequestTooLarge("r"), "request_too_large"),
    (UpstreamUnavailable("u"), "api_error"),
    (CacheMiss("c"), "timeout_error"),
    (InternalError("i"), "api_error"),
])
def test_anthropic_shape(error: SidecarError, kind: str) -> None:
    """Anthropic's error object: its type for the status, the sidecar's code and metadata in
    details (where Anthropic's SDKs read an error's code)."""
    body = orjson.loads(render(error, "anthropic"))
    assert body == {"type": "error", "error": {
        "type": kind, "message": error.message,
        "details": {"error_code": error.code, **(error.metadata or {})}}}
    assert orjson.loads(render(error))["error"]["code"] == error.code  # OpenAI's, unchanged


def test_stream_events() -> None:
    """Mid-stream, Anthropic's wire gets an `event: error`, OpenAI's a data event."""
    error = UpstreamUnavailable("gone")
    assert stream_error_event(error, "anthropic").startswith(b"event: error\ndata: {")
    assert stream_error_event(error) == b"data: " + render(error) + b"\n\n"
