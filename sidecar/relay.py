"""Write a Reply to the client: a whole body, or a stream relayed chunk by chunk.

Each chunk is written the moment it arrives (no buffering beyond one partial SSE event). If the
upstream breaks mid-stream, an event stream ends with a final error event the OpenAI SDKs raise;
any other stream is cut (connection aborted) so the client cannot mistake a truncated body for a
whole one. If the client goes away, the upstream request is closed at once. In every case the
reply's chunk generator is closed here, which runs the stages' post-stream work.
"""

from __future__ import annotations

from aiohttp import web

from sidecar import sse
from sidecar.call import Call, Reply, new_request_id
from sidecar.errors import JSON_CONTENT_TYPE, SidecarError, UpstreamError, render

REQUEST_ID_HEADER = "x-sidecar-request-id"  # on every response: here, in not_found, in admin


async def send_reply(request: web.Request, call: Call, reply: Reply) -> web.StreamResponse:
    call.status = reply.status
    headers = reply.headers
    headers[REQUEST_ID_HEADER] = call.request_id
    if call.response_headers:
        headers.update(call.response_headers)
    if reply.chunks is None:
        return web.Response(status=reply.status, headers=headers, body=reply.body)

    response = web.StreamResponse(status=reply.status, headers=headers)
    chunks = reply.chunks
    try:
        await response.prepare(request)
        async for chunk in chunks:
            await response.write(chunk)
    except UpstreamError as exc:
        call.outcome = "upstream_broke"
        if reply.sse:
            await _write_quietly(response, call, sse.encode(exc.payload()))
        elif request.transport is not None:
            request.transport.abort()
            return response
    except ConnectionResetError:
        call.outcome = "client_disconnected"
        return response
    finally:
        await chunks.aclose()
    await response.write_eof()
    return response


def error_response(error: SidecarError) -> web.Response:
    """A local error outside the proxy pipeline (unknown route, admin auth), with its own id."""
    return web.Response(status=error.status, body=render(error), content_type=JSON_CONTENT_TYPE,
                        headers={REQUEST_ID_HEADER: new_request_id()})


async def _write_quietly(response: web.StreamResponse, call: Call, data: bytes) -> None:
    try:
        await response.write(data)
    except ConnectionResetError:
        call.outcome = "client_disconnected"
