"""OpenAI-shaped errors → Anthropic's error shape, before and during a stream.

An OpenAI-format upstream answers `{"error": {"message", "type", "code", "param"}}` (OpenRouter:
`code` is the HTTP status, `metadata` says more); an Anthropic-format client gets
`{"type": "error", "error": {"type", "message", "details"}}` with the same status, Anthropic's
error type for it (errors.anthropic_type: 429 rate_limit_error, 529 overloaded_error, ...), and
in `details` the upstream's own code (`error_code`, where Anthropic's SDKs read it), the
provider's name and the upstream's status. A body that is not JSON (a proxy's HTML page) gets
a message naming the provider and status. In a stream, the upstream's error event becomes the
final `event: error` (`MessagesStreamError`, raised so the relay writes it and notes the
outcome `upstream_broke`).
"""

from __future__ import annotations

from typing import Any

import orjson

from sidecar.errors import UpstreamUnavailable, anthropic_type

# OpenAI's error types whose Anthropic counterpart the status alone does not say.
_TYPES = {"insufficient_quota": "billing_error"}


def error_body(data: Any, status: int | None, provider: str) -> dict[str, Any]:
    """Anthropic's error body for an OpenAI error body (`status` None: a stream's event)."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    if status is None and type(code) is int and 400 <= code < 600:
        status = code  # OpenRouter's mid-stream errors carry the status as their code
    kind = _TYPES.get(str(error.get("type")), anthropic_type(status or 500))
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = (f"Provider '{provider}' answered with an error"
                   + (f" (HTTP {status})." if status else "."))
    details: dict[str, Any] = {"provider": provider}
    if isinstance(code, str):
        details["error_code"] = code
    elif isinstance(error.get("type"), str):
        details["error_code"] = error["type"]
    if status is not None:
        details["upstream_status"] = status
    if isinstance(param := error.get("param"), str):
        details["param"] = param
    return {"type": "error", "error": {"type": kind, "message": message, "details": details}}


def translate_error(status: int, raw: bytes, provider: str) -> bytes:
    """The Anthropic error body for an OpenAI-format upstream's error answer."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    return orjson.dumps(error_body(data, status, provider))


class MessagesStreamError(UpstreamUnavailable):
    """An upstream's error event in mid-stream, as Anthropic's `error` event."""

    def __init__(self, data: Any, provider: str) -> None:
        self._body = error_body(data, None, provider)
        super().__init__(self._body["error"]["message"])

    def anthropic_payload(self) -> dict[str, Any]:
        return self._body
