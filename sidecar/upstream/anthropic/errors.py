"""Anthropic errors → OpenAI's error shape, before and during a stream.

Anthropic answers `{"type": "error", "error": {"type": "overloaded_error", "message": ...},
"request_id": ...}`; the client gets `{"error": {"message", "type", "code", "param",
"metadata"}}` with Anthropic's error type as `code` (so nothing is lost), OpenAI's nearest
type as `type`, and `metadata` naming the provider, Anthropic's status and request id.

    Anthropic type          status  →  status  OpenAI type
    invalid_request_error   400        400     invalid_request_error
    authentication_error    401        401     authentication_error
    permission_error        403        403     permission_error
    not_found_error         404        404     not_found_error
    request_too_large       413        413     invalid_request_error
    rate_limit_error        429        429     rate_limit_error
    api_error               500        500     server_error
    overloaded_error        529        503     server_error

529 becomes 503: OpenAI's SDKs and the sidecar's retry policy (retry.on_status) retry a 503 and
know nothing of 529. Response headers such as Retry-After pass through unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidecar.errors import UpstreamUnavailable

OVERLOADED = 529
_STATUS = {OVERLOADED: 503}
_OPENAI_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "billing_error": "insufficient_quota",
    "api_error": "server_error",
    "overloaded_error": "server_error",
}
# For an error body that is not Anthropic's (a proxy's HTML page, Cloudflare's 413).
_TYPE_BY_STATUS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", OVERLOADED: "overloaded_error",
}


def error_payload(data: Any, status: int | None, provider: str) -> dict[str, Any]:
    """The OpenAI error object for an Anthropic error body, or a stream's error event (no
    status)."""
    error = data.get("error") if isinstance(data, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    server_side = status is None or status >= 500
    if not isinstance(kind, str):
        kind = _TYPE_BY_STATUS.get(status or 500,
                                   "api_error" if server_side else "invalid_request_error")
    if not isinstance(message, str) or not message:
        message = f"Anthropic provider '{provider}' answered with an error ({kind})."
    metadata: dict[str, Any] = {"provider": provider}
    if status is not None:
        metadata["upstream_status"] = status
    if isinstance(data, dict) and isinstance(request_id := data.get("request_id"), str):
        metadata["upstream_request_id"] = request_id
    openai_type = _OPENAI_TYPES.get(kind, "server_error" if server_side
                                    else "invalid_request_error")
    return {"error": {"message": message, "type": openai_type, "code": kind, "param": None,
                      "metadata": metadata}}


def translate_error(status: int, raw: bytes, provider: str) -> tuple[int, bytes]:
    """The status and body the client gets for an Anthropic error answer."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    return _STATUS.get(status, status), orjson.dumps(error_payload(data, status, provider))


class AnthropicStreamError(UpstreamUnavailable):
    """An `error` event in mid-stream. Raised out of the translated stream, so the relay ends
    the client's stream with it as the final event (its payload, translated) and notes the
    outcome `upstream_broke`, as for any upstream failure after the first byte."""

    def __init__(self, data: Any, provider: str) -> None:
        self._payload = error_payload(data, None, provider)
        super().__init__(self._payload["error"]["message"])

    def payload(self) -> dict[str, Any]:
        return self._payload
