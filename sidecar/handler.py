"""aiohttp request → Call → pipeline → relay.

Model endpoints read the body once (bounded by `listen.max_body_bytes`, request
Content-Encoding undone here), parse it once with orjson and check only what every later stage
relies on: a JSON object with a `model`. Every other /v1 path is passed through with its body
unread. Every response, errors included, carries `x-sidecar-request-id`.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from functools import partial

import orjson
import structlog
from aiohttp import StreamReader, web

from sidecar.call import CALL, Call, Reply, new_request_id
from sidecar.errors import (
    InternalError,
    InvalidJSON,
    InvalidRequest,
    NotFound,
    RequestTooLarge,
    SidecarError,
)
from sidecar.pipeline import Pipelines
from sidecar.relay import error_response, send_reply
from sidecar.runtime import Runtime
from sidecar.telemetry.access import record_unfinished

MODEL_ENDPOINTS = ("chat/completions", "completions", "embeddings", "responses")
_log = structlog.get_logger("sidecar.handler")


class ProxyHandler:
    def __init__(self, pipelines: Pipelines, runtime: Runtime, *, max_body_bytes: int) -> None:
        self._pipelines = pipelines
        self._runtime = runtime
        self._limit = max_body_bytes

    async def model_endpoint(self, request: web.Request) -> web.StreamResponse:
        call = _new_call(request, endpoint=request.path[4:])

        async def run() -> Reply:
            _accept_body(call, await self._read_body(request))
            return await self._pipelines.model(call)

        return await self._serve(request, call, run)

    async def passthrough(self, request: web.Request) -> web.StreamResponse:
        call = _new_call(request, endpoint=None)
        if request.body_exists:
            call.body_stream = _stream(request.content)
        return await self._serve(request, call, partial(self._pipelines.passthrough, call))

    async def _serve(self, request: web.Request, call: Call, run: Callable[[], Awaitable[Reply]]
                     ) -> web.StreamResponse:
        """Run the call, render any error, relay the reply; account for it even if cancelled."""
        task = asyncio.current_task()
        assert task is not None
        in_flight = self._runtime.in_flight
        in_flight.add(task)
        try:
            try:
                reply = await run()
            except SidecarError as exc:
                reply = Reply.error(exc)
            except Exception:
                reply = _internal_error(call)
            return await send_reply(request, call, reply)
        except asyncio.CancelledError:
            # Cancelled by aiohttp when the client disconnects (handler_cancellation), or by
            # the sidecar at the end of the shutdown grace period; aiohttp then writes no access
            # line of its own.
            call.outcome = "cancelled" if self._runtime.cut else "client_disconnected"
            record_unfinished(request, call)
            raise
        finally:
            in_flight.discard(task)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._limit
        length = request.content_length
        if length is not None and length > limit:
            raise _too_large(limit)
        body = bytearray()
        while chunk := await request.content.readany():
            body += chunk
            if len(body) > limit:
                raise _too_large(limit)
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding == "identity":
            return bytes(body)
        return _decode(bytes(body), encoding, limit)


async def not_found(request: web.Request) -> web.StreamResponse:
    """Everything outside /v1, /healthz, /readyz and the admin routes."""
    error = NotFound(f"No such route: {request.method} {request.path}. The OpenAI-compatible "
                     "API is under /v1 (set OPENAI_BASE_URL to http://<host>:<port>/v1).")
    return error_response(error)


def _new_call(request: web.Request, *, endpoint: str | None) -> Call:
    headers = request.headers
    tags = headers.get("x-sidecar-tags")
    call = Call(
        request_id=new_request_id(),
        method=request.method,
        path=request.raw_path[3:],  # "/v1/x?q" -> "/x?q", still percent-encoded
        endpoint=endpoint,
        headers=headers,
        started=time.monotonic(),
        user=headers.get("x-sidecar-user"),
        tags=tuple(t.strip() for t in tags.split(",") if t.strip()) if tags else (),
    )
    request[CALL] = call
    return call


def _accept_body(call: Call, raw: bytes) -> None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"The request body is not valid JSON ({exc}). Send a JSON object "
                          "with Content-Type: application/json.") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, not a JSON "
                             f"{type(body).__name__}.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(f"'model' is required for /v1/{call.endpoint}: name the model to "
                             "call, e.g. \"openai/gpt-4o-mini\".", param="model")
    call.raw_body = raw
    call.body = body
    call.model = model
    call.stream = body.get("stream") is True
    if call.user is None and isinstance(user := body.get("user"), str):
        call.user = user


def _decode(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise InvalidRequest(f"Content-Encoding '{encoding}' is not supported on this endpoint; "
                             "send the body uncompressed, gzip or deflate.")
    # wbits 47 accepts gzip and zlib headers; raw deflate (no header) is tried after.
    for wbits in (47, -15):
        decoder = zlib.decompressobj(wbits)
        try:
            out = decoder.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit or decoder.unconsumed_tail:
            raise _too_large(limit)
        return out
    raise InvalidRequest(f"The request body is not valid {encoding} data.")


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"The request body is larger than this sidecar accepts "
                           f"({limit} bytes, listen.max_body_bytes).")


def _internal_error(call: Call) -> Reply:
    _log.exception("unhandled_error", request_id=call.request_id)
    return Reply.error(InternalError(
        f"The sidecar failed unexpectedly; its log has the details under request id "
        f"{call.request_id}."))


async def _stream(content: StreamReader) -> AsyncGenerator[bytes, None]:
    while chunk := await content.readany():
        yield chunk
