"""The end of every request: its access line and its metrics.

aiohttp calls `AccessLog.log` once per request after the last byte is sent (streams included).
The line carries ids, sizes and timings only: never a key, a prompt or a completion, and the
path without its query string (queries can carry secrets). Lines go through the runtime's
batched `AccessWriter` (logging.py).
"""

from __future__ import annotations

from time import monotonic
from typing import cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from sidecar.call import CALL, Call
from sidecar.relay import REQUEST_ID_HEADER
from sidecar.runtime import RUNTIME, Runtime

_PROBES = frozenset({"/healthz", "/readyz"})
CLIENT_CLOSED_REQUEST = 499


class AccessLog(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        runtime = cast(web.Request, request).config_dict[RUNTIME]
        call = request.get(CALL)
        if call is None:  # probes, admin routes, unknown paths: no Call, no proxy metrics
            runtime.access.write("debug" if request.path in _PROBES else "info", {
                "request_id": response.headers.get(REQUEST_ID_HEADER),
                "method": request.method, "path": request.path, "status": response.status,
                "latency_ms": round(time * 1000, 3), "bytes_out": response.body_length})
            return
        record(runtime, request, call, response.status, response.body_length)


def record_unfinished(request: BaseRequest, call: Call) -> None:
    """Account for a request whose handler was cancelled: aiohttp logs nothing for it. The
    status is what the client was already sent, else 499 (nginx's "client closed request")."""
    runtime = cast(web.Request, request).config_dict[RUNTIME]
    record(runtime, request, call, call.status or CLIENT_CLOSED_REQUEST, None)


def record(runtime: Runtime, request: BaseRequest, call: Call, status: int,
           bytes_out: int | None) -> None:
    # loop.time() is millisecond-grained on uvloop; the Call's own clock is not.
    seconds = monotonic() - call.started
    endpoint = call.endpoint or "passthrough"
    runtime.metrics.observe(endpoint, status, seconds, call.outcome)
    runtime.access.write("info", {
        "request_id": call.request_id,
        "method": call.method,
        "path": request.path,
        "endpoint": endpoint,
        "model": call.model,
        "stream": call.stream,
        "status": status,
        "outcome": call.outcome,
        "latency_ms": round(seconds * 1000, 3),
        "bytes_in": request.content_length,
        "bytes_out": bytes_out,
        "key": call.key_name,
        "provider": call.provider,
        "attempts": call.attempts,
    })
