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
    ├── NotFound                         404     not_found
    ├── RequestTooLarge                  413     request_too_large
    ├── RateLimitExceeded                429     rate_limit_exceeded
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
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


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


class NotFound(SidecarError):
    status, code, type = 404, "not_found", "not_found_error"


class RequestTooLarge(SidecarError):
    status, code, type = 413, "request_too_large", "invalid_request_error"


class RateLimitExceeded(SidecarError):
    status, code, type = 429, "rate_limit_exceeded", "rate_limit_error"


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


def render(error: SidecarError) -> bytes:
    """The JSON body of an error response."""
    return orjson.dumps(error.payload())
