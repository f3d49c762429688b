"""Errors the sidecar itself raises, and the one place they become OpenAI-shaped bodies.

    SidecarError                         status  code
    ├── InvalidJSON                      400     invalid_json
    ├── InvalidRequest                   400     invalid_request
    ├── PiiDetected                      400     pii_detected
    ├── NoProviderAvailable              400     no_provider_available
    ├── InvalidApiKey                    401     invalid_api_key
    ├── BudgetExceeded                   402     budget_exceeded
    ├── ModelNotAllowed                  403     model_not_allowed
    ├── AdminTokenRequired               403     admin_token_required  (admin, no token set)
    ├── UnpricedPath                     403     unpriced_path
    ├── NotFound                         404     not_found
    ├── RequestTooLarge                  413     request_too_large
    ├── RateLimitExceeded                429     rate_limit_exceeded
    ├── BudgetHeld                       429     budget_held
    ├── InternalError                    500     internal_error
    ├── LedgerUnavailable                503     ledger_unavailable
    ├── CacheMiss                        504     cache_miss
    ├── CacheUnavailable                 503     cache_unavailable  (admin: purge, Redis down)
    └── UpstreamError
        ├── UpstreamUnavailable          502     upstream_unavailable
        └── UpstreamTimeout              504     upstream_timeout

Upstream errors that arrive as HTTP responses are not in this tree: they pass through with their
own status and body. Before the first byte an error becomes a JSON response (`render`); once a
stream has started it becomes a final SSE event carrying the same payload (see handler.py).

On Anthropic's wire (/v1/messages, endpoints.py) the same errors keep their status and take
Anthropic's shape, `{"type": "error", "error": {"type", "message", "details"}}`, with
Anthropic's error type for the status and the sidecar's code in `details.error_code` (where the
Anthropic SDKs read an error's code: `exc.error_code`); a stream's error is an `event: error`.

    status  Anthropic type          status  Anthropic type
    400     invalid_request_error   413     request_too_large
    401     authentication_error    429     rate_limit_error
    402     billing_error           504     timeout_error
    403     permission_error        529     overloaded_error
    404     not_found_error         other   api_error (5xx), invalid_request_error (4xx)
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from sidecar.endpoints import Wire


class SidecarError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    type: ClassVar[str] = "server_error"

    def __init__(self, message: str, *, param: str | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        if not message.isascii():  # it may quote a header value that was not UTF-8
            message = message.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        super().__init__(message)
        self.message = message
        self.param = param
        self.metadata = metadata

    def payload(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type,
                                 "code": self.code, "param": self.param}
        if self.metadata is not None:
            error["metadata"] = self.metadata
        return {"error": error}

    def anthropic_payload(self) -> dict[str, Any]:
        """The error in Anthropic's shape (see the module docstring)."""
        details: dict[str, Any] = {"error_code": self.code}
        if self.param is not None:
            details["param"] = self.param
        if self.metadata is not None:
            details.update(self.metadata)
        return {"type": "error", "error": {"type": anthropic_type(self.status),
                                           "message": self.message, "details": details}}


class InvalidJSON(SidecarError):
    status, code, type = 400, "invalid_json", "invalid_request_error"


class InvalidRequest(SidecarError):
    status, code, type = 400, "invalid_request", "invalid_request_error"


class PiiDetected(SidecarError):
    status, code, type = 400, "pii_detected", "invalid_request_error"


class NoProviderAvailable(SidecarError):
    status, code, type = 400, "no_provider_available", "invalid_request_error"


class BudgetExceeded(SidecarError):
    status, code, type = 402, "budget_exceeded", "insufficient_quota"


class InvalidApiKey(SidecarError):
    status, code, type = 401, "invalid_api_key", "authentication_error"


class ModelNotAllowed(SidecarError):
    status, code, type = 403, "model_not_allowed", "permission_error"


class AdminTokenRequired(SidecarError):
    """403, not 401: no credential the client could send would help until the sidecar is
    configured with a token."""
    status, code, type = 403, "admin_token_required", "permission_error"


class UnpricedPath(SidecarError):
    """A passthrough path no price covers, under a blocking budget, with
    spend.unpriced_paths: block."""

    status, code, type = 403, "unpriced_path", "permission_error"


class NotFound(SidecarError):
    status, code, type = 404, "not_found", "not_found_error"


class RequestTooLarge(SidecarError):
    status, code, type = 413, "request_too_large", "invalid_request_error"


class RateLimitExceeded(SidecarError):
    status, code, type = 429, "rate_limit_exceeded", "rate_limit_error"


class BudgetHeld(SidecarError):
    """A blocking budget's room is held by requests in flight (what is spent leaves room):
    429 with Retry-After, so SDKs retry; 402 budget_exceeded is for money spent."""

    status, code, type = 429, "budget_held", "rate_limit_error"


class InternalError(SidecarError):
    status, code, type = 500, "internal_error", "server_error"


class LedgerUnavailable(SidecarError):
    """spend.on_ledger_error is fail_closed and the ledger cannot record (503: the SDKs retry,
    and the ledger usually comes back)."""

    status, code, type = 503, "ledger_unavailable", "server_error"


class CacheMiss(SidecarError):
    status, code, type = 504, "cache_miss", "cache_error"


class CacheUnavailable(SidecarError):
    status, code, type = 503, "cache_unavailable", "cache_error"


class UpstreamError(SidecarError):
    status, code, type = 502, "upstream_unavailable", "upstream_error"


class UpstreamUnavailable(UpstreamError):
    status, code = 502, "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status, code = 504, "upstream_timeout"


JSON_CONTENT_TYPE = "application/json"
_ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error",
}


def anthropic_type(status: int) -> str:
    """Anthropic's error type for an HTTP status."""
    return _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500
                                else "invalid_request_error")


def render(error: SidecarError, wire: Wire = "openai") -> bytes:
    """The JSON body of an error response, in the client's wire format."""
    if wire == "anthropic":
        return orjson.dumps(error.anthropic_payload())
    return orjson.dumps(error.payload())


def stream_error_event(error: SidecarError, wire: Wire = "openai") -> bytes:
    """The final event of a stream that failed after it started: a `data:` event carrying the
    error (the OpenAI SDKs raise it), or Anthropic's `event: error` (the Anthropic SDKs do)."""
    if wire == "anthropic":
        return b"event: error\ndata: " + render(error, wire) + b"\n\n"
    return b"data: " + render(error) + b"\n\n"
