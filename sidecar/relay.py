"""Write a Reply to the client: a whole body, or a stream relayed chunk by chunk.

The relay sends the response itself (rather than handing aiohttp a Response to send later), so
when it returns the body is gone and the finishers that run next see the final `status`,
`bytes_out` and `outcome`. Each chunk is written the moment it arrives (no buffering beyond one
partial SSE event). If the upstream breaks mid-stream, an event stream ends with a final error
event the OpenAI SDKs raise; any other stream is cut (connection aborted) so the client cannot
mistake a truncated body for a whole one. If the client goes away, the stream is closed at once,
which closes the upstream request.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web
from multidict import CIMultiDict

from sidecar import sse
from sidecar.call import Call, Reply, new_request_id
from sidecar.errors import (
    JSON_CONTENT_TYPE,
    InternalError,
    SidecarError,
    UpstreamError,
    render,
)
from sidecar.headers import ATTEMPTS_HEADER, PROVIDER_HEADER, REQUEST_ID_HEADER, SERVER

_log = structlog.get_logger("sidecar.relay")


async def send_reply(request: web.Request, call: Call, reply: Reply) -> web.StreamResponse:
    """Send `reply`; set `call.status` (once the status line went out), `bytes_out`,
    `first_byte_at` and `outcome` as it goes. Raises only CancelledError (the handler accounts
    for it) and bugs."""
    headers = reply.headers
    headers["Server"] = SERVER
    headers[REQUEST_ID_HEADER] = call.request_id
    if attempts := call.attempts:
        headers[PROVIDER_HEADER] = attempts[-1].provider
        headers[ATTEMPTS_HEADER] = str(len(attempts))
    if call.response_headers:
        headers.update(call.response_headers)
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
        written += await _write_quietly(response, call, sse.encode(error.payload()))
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


def internal_error(call: Call) -> InternalError:
    return InternalError(f"The sidecar failed unexpectedly; its log has the details under "
                         f"request id {call.request_id}.")


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
