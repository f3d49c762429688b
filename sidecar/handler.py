"""aiohttp request → Call → pipeline → relay → finishers.

The handler does no work a stage could do: it builds the Call (headers, the unread body, ids),
runs the pipeline, sends the Reply, and then, exactly once and on every path, runs the Call's
finishers. Its own finisher, registered first and so run last, writes the access line and the
request metrics. Every response, errors included, carries `x-sidecar-request-id`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from sidecar.call import CLIENT_CLOSED_REQUEST, Call, Finisher, Reply, new_request_id
from sidecar.errors import NotFound, SidecarError
from sidecar.pipeline.read_body import too_deep
from sidecar.relay import error_response, internal_error, send_reply
from sidecar.runtime import Runtime

Pipeline = Callable[[Call], Awaitable[Reply]]
_log = structlog.get_logger("sidecar.handler")


class ProxyHandler:
    def __init__(self, model: Pipeline, passthrough: Pipeline, runtime: Runtime,
                 record: Finisher, model_headers: dict[str, str] | None = None) -> None:
        self._model = model
        self._passthrough = passthrough
        self._runtime = runtime
        self._record = record
        # Headers every model-endpoint answer carries whatever the stages do (e.g.
        # `x-sidecar-cache: OFF` when the cache is off and so absent from the pipeline).
        self._model_headers = model_headers or {}

    async def model_endpoint(self, request: web.Request) -> web.StreamResponse:
        call = _new_call(request, endpoint=request.path[4:])
        call.content = request.content
        if self._model_headers:
            call.response_headers.update(self._model_headers)
        return await self._serve(request, call, self._model)

    async def passthrough(self, request: web.Request) -> web.StreamResponse:
        call = _new_call(request, endpoint=None)
        if request.body_exists:
            call.content = request.content
        return await self._serve(request, call, self._passthrough)

    async def _serve(self, request: web.Request, call: Call, pipeline: Pipeline
                     ) -> web.StreamResponse:
        """Run the call, relay the reply, then finish the call whatever happened."""
        task = asyncio.current_task()
        assert task is not None
        in_flight = self._runtime.in_flight
        in_flight.add(task)
        call.finishers.append(self._record)
        try:
            try:
                reply = await pipeline(call)
            except Exception:
                reply = Reply.from_error(_failed(call))
            return await send_reply(request, call, reply)
        except asyncio.CancelledError:
            # Cancelled by aiohttp when the client disconnects (handler_cancellation), or by
            # the sidecar at the end of the shutdown grace period.
            call.outcome = "cancelled" if self._runtime.cut else "client_disconnected"
            raise
        except BaseException:
            call.outcome = "internal_error"
            raise
        finally:
            if not call.status:  # nothing reached the client
                call.status = 500 if call.outcome == "internal_error" else CLIENT_CLOSED_REQUEST
            call.finish()
            in_flight.discard(task)


def _failed(call: Call) -> SidecarError:
    """What a request that raised gets: 400 when its body is nested deeper than the stages can
    handle (see read_body.MAX_DEPTH: checked here, after the fact, to keep it off the hot path),
    else a 500 naming the request id, with the traceback logged under that id."""
    if call.body is not None and (error := too_deep(call.body)) is not None:
        return error
    _log.exception("unhandled_error", request_id=call.request_id)
    return internal_error(call)


async def not_found(request: web.Request) -> web.StreamResponse:
    """Everything outside /v1, /healthz, /readyz and the admin routes."""
    error = NotFound(f"No such route: {request.method} {request.path}. The OpenAI-compatible "
                     "API is under /v1 (set OPENAI_BASE_URL to http://<host>:<port>/v1).")
    return error_response(error)


def _new_call(request: web.Request, *, endpoint: str | None) -> Call:
    headers = request.headers
    tags = headers.get("x-sidecar-tags")
    user = headers.get("x-sidecar-user")
    raw_path = request.raw_path
    if raw_path[:1] != "/":  # absolute-form target (GET http://host/v1/x): its path only
        raw_path = request.rel_url.raw_path_qs
    return Call(
        request_id=new_request_id(),
        method=request.method,
        path=raw_path[3:],  # "/v1/x?q" -> "/x?q", still percent-encoded
        endpoint=endpoint,
        headers=headers,
        started=time.monotonic(),
        user=None if user is None else header_text(user),
        tags=tuple(t.strip() for t in header_text(tags).split(",") if t.strip()) if tags
        else (),
    )


def header_text(value: str) -> str:
    """A header value as valid text. aiohttp decodes header bytes that are not UTF-8 into lone
    surrogates, which every strict encoder (SQLite, orjson, protobuf, Redis) refuses: one such
    `x-sidecar-user` once failed a whole ledger batch. They become U+FFFD here, once."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
