"""Play the handler's part for a Call the sidecar made itself (a compare model, a shadow copy, a
judge): run it through a pipeline, read its Reply to the end, and set what the handler sets as
it sends (status, first_byte_at, bytes_out, outcome), then finish the Call, on every path.

So every finisher judges the fork's exchange as it judges a client's: spend writes its row (a
stream that broke is billed what was seen), the breaker counts a broken stream as a failure
(`upstream_broke`), a fork whose reader gave up is `client_disconnected` (the compare client
left, or the compare's deadline passed), one cut by the shutdown is `cancelled`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from sidecar.call import CLIENT_CLOSED_REQUEST, Call, Next, Reply
from sidecar.errors import SidecarError, UpstreamError
from sidecar.failures import failed, internal_error

_log = structlog.get_logger("sidecar.compare")

OnChunk = Callable[[bytes], None]  # each chunk of whole SSE events, as it arrives


@dataclass(slots=True)
class Consumed:
    """What the consumer read. Kept by the caller, so a fork cut half-way keeps what came."""

    status: int = 0
    body: bytes = b""  # the JSON body, or the stream's events as they came
    streamed: bool = False  # the answer was an event stream
    error: SidecarError | None = None  # the sidecar's own error: a refusal, a break, a bug
    ended: float | None = None  # monotonic time the call was finished


async def consume(pipeline: Next, call: Call, into: Consumed, *, on_chunk: OnChunk | None = None,
                  cut: Callable[[], bool] = lambda: False) -> Consumed:
    """Run `call` to its end into `into`. Raises only CancelledError (the reader gave up:
    `client_disconnected`, or `cancelled` when `cut()` says the shutdown cut it) and bugs; the
    call is finished in every case."""
    try:
        try:
            reply = await pipeline(call)
        except Exception:
            reply = Reply.from_error(failed(call))
        await _read(call, reply, into, on_chunk)
    except asyncio.CancelledError:
        call.outcome = "cancelled" if cut() else "client_disconnected"
        raise
    except BaseException:
        call.outcome = "internal_error"
        raise
    finally:
        if not call.status:  # nothing was read
            call.status = 500 if call.outcome == "internal_error" else CLIENT_CLOSED_REQUEST
        into.status = call.status
        into.ended = time.monotonic()
        call.finish()
    return into


async def _read(call: Call, reply: Reply, into: Consumed, on_chunk: OnChunk | None) -> None:
    into.error = reply.error
    call.status = reply.status
    if reply.chunks is None:
        call.first_byte_at = time.monotonic()
        into.body = reply.body or b""
        call.bytes_out = len(into.body)
        return
    into.streamed = reply.sse
    chunks = reply.chunks
    parts = bytearray()
    forward = on_chunk if reply.sse else None
    try:
        async for chunk in chunks:
            if call.first_byte_at is None:
                call.first_byte_at = time.monotonic()
            parts += chunk
            if forward is not None:
                forward(chunk)
    except Exception as exc:  # the upstream broke mid-stream, or a bug in a stage's chunk work
        if isinstance(exc, UpstreamError):
            call.outcome, into.error = "upstream_broke", exc
        else:
            _log.exception("stream_failed", request_id=call.request_id)
            call.outcome, into.error = "internal_error", internal_error(call)
    finally:
        call.bytes_out = len(parts)
        into.body = bytes(parts)
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
