"""The HTTP edge: aiohttp request → Call → pipeline → Reply → client → finishers.

The handler does no work a stage could do: it builds the Call (headers, the unread body, ids),
runs the pipeline, sends the Reply, and then, exactly once and on every path, runs the Call's
finishers. Its own finisher, registered first and so run last, writes the access line and the
request metrics. Every response, errors included, carries `x-sidecar-request-id`; the
sidecar's own errors are rendered here in the shape of the API the client speaks (errors.py).

Sending (`send_reply`) is done here rather than by handing aiohttp a Response to send later, so
when it returns the body is gone and the finishers that run next see the final `status`,
`bytes_out` and `outcome`. Each chunk is written the moment it arrives (no buffering beyond one
partial SSE event). If the upstream breaks mid-stream, an event stream ends with a final error
event the client's SDK raises (OpenAI's `data:` error, or Anthropic's `event: error` on
/v1/messages); any other stream is cut (connection aborted) so the client cannot
mistake a truncated body for a whole one. If the client goes away, the stream is closed at once,
which closes the upstream request.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from aiohttp import web
from multidict import CIMultiDict

from sidecar.call import CLIENT_CLOSED_REQUEST, Call, Finisher, Next, Reply, new_request_id
from sidecar.config.compare import COMPARE_TAG, SHADOW_TAG_PREFIX
from sidecar.endpoints import wire_of
from sidecar.errors import (
    JSON_CONTENT_TYPE,
    NotFound,
    SidecarError,
    UpstreamError,
    render,
    stream_error_event,
)
from sidecar.failures import failed, internal_error
from sidecar.headers import ATTEMPTS_HEADER, PROVIDER_HEADER, REQUEST_ID_HEADER, SERVER
from sidecar.live import Live
from sidecar.realtime.handshake import is_upgrade, session_call
from sidecar.runtime import Runtime

_log = structlog.get_logger("sidecar.handler")


class ProxyHandler:
    def __init__(self, live: Live, runtime: Runtime, record: Finisher,
                 model_headers: dict[str, str] | None = None) -> None:
        # A request runs on the pipelines it started with: read once per request here, so a
        # live reload swaps them for the next request only (sidecar/live.py).
        self._live = live
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
        return await self._serve(request, call, self._live.pipelines.model)

    async def free_endpoint(self, request: web.Request) -> web.StreamResponse:
        """A model endpoint that costs nothing (e.g. /v1/messages/count_tokens)."""
        call = _new_call(request, endpoint=request.path[4:])
        call.content = request.content
        return await self._serve(request, call, self._live.pipelines.free)

    async def passthrough(self, request: web.Request) -> web.StreamResponse:
        if is_upgrade(request):  # a WebSocket session (/v1/realtime): sidecar/realtime/
            return await self._serve(request, session_call(request),
                                     self._live.pipelines.realtime)
        call = _new_call(request, endpoint=None)
        if request.body_exists:
            call.content = request.content
        return await self._serve(request, call, self._live.pipelines.passthrough)

    async def _serve(self, request: web.Request, call: Call, pipeline: Next
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
                reply = Reply.from_error(failed(call))
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
        tags=client_tags(tags),
    )


def client_tags(header: str | None) -> tuple[str, ...]:
    """The tags of `x-sidecar-tags`, without the sidecar's own: those starting with `shadow:`
    (a shadow rule's budget pays for calls carrying its tag, so a client may not spend from it,
    nor hide its own calls among a rule's) and `compare` (a compare's model calls are never
    shadowed: a client's request carrying it would escape every rule)."""
    if not header:
        return ()
    return tuple(tag for t in header_text(header).split(",")
                 if (tag := t.strip()) and tag != COMPARE_TAG
                 and not tag.startswith(SHADOW_TAG_PREFIX))


def header_text(value: str) -> str:
    """A header value as valid text. aiohttp decodes header bytes that are not UTF-8 into lone
    surrogates, which every strict encoder (SQLite, orjson, protobuf, Redis) refuses: one such
    `x-sidecar-user` once failed a whole ledger batch. They become U+FFFD here, once."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")



async def send_reply(request: web.Request, call: Call, reply: Reply) -> web.StreamResponse:
    """Send `reply`; set `call.status` (once the status line went out), `bytes_out`,
    `first_byte_at` and `outcome` as it goes. Raises only CancelledError (the handler accounts
    for it) and bugs."""
    if reply.error is not None and reply.chunks is None and wire_of(
            call.endpoint, call.path) != "openai":
        # The one place the sidecar's own errors take the client's shape (errors.py): a stage
        # answers `Reply.from_error` without knowing which API the client speaks.
        reply.body = render(reply.error, wire_of(call.endpoint, call.path))
    headers = reply.headers
    headers["Server"] = SERVER
    headers[REQUEST_ID_HEADER] = call.request_id
    if attempts := call.attempts:
        headers[PROVIDER_HEADER] = attempts[-1].provider
        headers[ATTEMPTS_HEADER] = str(len(attempts))
    if call.response_headers:
        headers.update(call.response_headers)
    if reply.upgrade is not None:  # 101: the connection becomes a WebSocket session
        return await reply.upgrade.serve(request, call, headers)
    if reply.chunks is None:
        response: web.StreamResponse = web.Response(status=reply.status, headers=headers,
                                                    body=reply.body)
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionResetError:
            call.outcome = "client_disconnected"
            return response
        call.status = reply.status
        call.first_byte_at = time.monotonic()
        call.bytes_out = len(reply.body or b"")
        return response
    return await _stream(request, call, reply, headers)


async def _stream(request: web.Request, call: Call, reply: Reply, headers: CIMultiDict[str]
                  ) -> web.StreamResponse:
    response = web.StreamResponse(status=reply.status, headers=headers)
    chunks = reply.chunks
    assert chunks is not None
    written = 0
    try:
        await response.prepare(request)
        call.status = reply.status
        async for chunk in chunks:
            if not written:
                call.first_byte_at = time.monotonic()
            await response.write(chunk)
            written += len(chunk)
    except ConnectionResetError:
        call.outcome = "client_disconnected"
        return response
    except Exception as exc:  # the upstream broke mid-stream, or a bug in a stage's chunk work
        error: SidecarError
        if isinstance(exc, UpstreamError):
            call.outcome, error = "upstream_broke", exc
        else:
            _log.exception("stream_failed", request_id=call.request_id)
            call.outcome, error = "internal_error", internal_error(call)
        if not reply.sse or not response.prepared:
            if request.transport is not None:
                request.transport.abort()
            return response
        event = stream_error_event(error, wire_of(call.endpoint, call.path))
        written += await _write_quietly(response, call, event)
    finally:
        call.bytes_out = written
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    if call.outcome != "client_disconnected":
        try:
            await response.write_eof()
        except ConnectionResetError:
            call.outcome = "client_disconnected"
    return response


def error_response(error: SidecarError) -> web.Response:
    """A local error outside the proxy pipeline (unknown route, admin auth), with its own id."""
    return web.Response(status=error.status, body=render(error), content_type=JSON_CONTENT_TYPE,
                        headers={REQUEST_ID_HEADER: new_request_id(), "Server": SERVER})


async def _write_quietly(response: web.StreamResponse, call: Call, data: bytes) -> int:
    try:
        await response.write(data)
    except ConnectionResetError:
        call.outcome = "client_disconnected"
        return 0
    return len(data)
