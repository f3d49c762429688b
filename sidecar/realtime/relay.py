"""A WebSocket session relayed both ways: frames, pings, and the close of either side.

`Session` is the upgrade a Realtime reply carries (call.py's `Upgrade`): the upstream side is
open already (connect.py); `serve` completes the client's handshake and runs two pumps, one per
direction, each forwarding every frame as it came: text and binary frames as their bytes (text is
not decoded and encoded again), pings and pongs to the other side (so a client's ping measures
the whole path), nothing buffered beyond the frame in hand. How it ends:

    the client closes (code, reason)   the upstream gets the same code and reason; the client
                                       its close echoed once the upstream echoed it
    the upstream closes (code, reason) the client gets the same code and reason
    the client's connection drops      the upstream gets 1001 "client went away"
    the upstream's connection drops    the client gets 1014 (bad gateway) "upstream connection lost"
    the sidecar ends it                both get its code and reason (a budget exhausted: 4402;
                                       shutdown: 1001), the client first its notice, if any
    the sidecar is cut (grace over)    both get 1001 "sidecar shutting down"

A `Watcher` (the spend meter, realtime/meter.py) sees the JSON events it asks for, by marker
(the event type in quotes, searched in the frame's bytes before anything is parsed, so audio
frames cost a substring search): a client event before it is forwarded (it may hold it back),
an upstream event after. When a session ends while the watcher has a response in progress, the
upstream is asked to cancel it and given `DRAIN_S` to say what it cost (`response.done`) before
its side is closed: the relay never closes on a response it could still bill exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson
from aiohttp import ClientWebSocketResponse, WSMsgType, web
from multidict import CIMultiDict

from sidecar.call import Attempt, Call
from sidecar.realtime.stats import Closer, SessionStats
from sidecar.runtime import RUNTIME
from sidecar.telemetry.metrics import Metrics

__all__ = ["CLOSE_TIMEOUT_S", "DRAIN_S", "Session", "Watcher"]

CLOSE_TIMEOUT_S = 5.0  # how long a side gets to answer our close frame
DRAIN_S = 5.0  # how long a response in progress gets to report its usage once the session ends
_NO_STATUS = 1005  # a close frame without a code (reported; never sent)
_ABNORMAL = 1006  # no close frame at all
_GOING_AWAY = 1001
_BAD_GATEWAY = 1014
_CANCEL = b'{"type":"response.cancel"}'
_MAX_REASON = 123  # bytes a close frame's reason can hold


class Control(Protocol):
    """What a watcher may do to its session."""

    def end(self, code: int, reason: str, notice: bytes | None = None) -> None: ...

    async def send_upstream(self, data: bytes) -> None: ...


class Watcher(Protocol):
    client_markers: tuple[bytes, ...]  # e.g. b'"response.create"'
    upstream_markers: tuple[bytes, ...]
    idle: asyncio.Event  # set while no response is in progress

    def bind(self, session: Control) -> None: ...

    async def from_client(self, event: dict[str, Any]) -> bool:
        """A client event, before it goes upstream: False holds it back."""
        ...

    async def from_upstream(self, event: dict[str, Any]) -> None:
        """An upstream event, after it went to the client."""
        ...


@dataclass(slots=True)
class End:
    by: Closer
    code: int  # what the closing side sent (_NO_STATUS, _ABNORMAL when it sent none)
    reason: str = ""
    notice: bytes | None = None  # the sidecar's last event to the client


class Session:
    def __init__(self, upstream: ClientWebSocketResponse[Literal[False]], attempt: Attempt,
                 metrics: Metrics,
                 *, max_msg_size: int) -> None:
        self._upstream = upstream
        self._attempt = attempt
        self._metrics = metrics
        self._max = max_msg_size
        self._watcher: Watcher | None = None
        self._ending = asyncio.Event()
        self._end: End | None = None
        self._stats = SessionStats()

    def watch(self, watcher: Watcher) -> None:
        self._watcher = watcher
        watcher.bind(self)

    def end(self, code: int, reason: str, notice: bytes | None = None) -> None:
        """End the session from the sidecar's side (a budget, shutdown); the first reason wins."""
        if self._end is None:
            self._end = End("sidecar", code, reason, notice)
        self._ending.set()

    async def send_upstream(self, data: bytes) -> None:
        if not self._upstream.closed:
            with contextlib.suppress(ConnectionResetError):
                await self._upstream.send_frame(data, WSMsgType.TEXT)

    async def discard(self) -> None:
        """Not served after all (the client is gone before its upgrade)."""
        await self._upstream.close(code=_GOING_AWAY, message=b"client went away")
        self._attempt.ended = time.monotonic()

    async def serve(self, request: web.Request, call: Call, headers: CIMultiDict[str]
                    ) -> web.StreamResponse:
        protocol = self._upstream.protocol
        client = web.WebSocketResponse(protocols=(protocol,) if protocol else (),
                                       autoping=False, autoclose=False, compress=False,
                                       max_msg_size=self._max, timeout=CLOSE_TIMEOUT_S,
                                       decode_text=False)
        client.headers.update(headers)
        stats = call.session if isinstance(call.session, SessionStats) else self._stats
        call.session = self._stats = stats
        try:
            await client.prepare(request)
        except ConnectionResetError:
            call.outcome = "client_disconnected"
            await self.discard()
            return client
        call.status = 101
        call.first_byte_at = stats.opened_at = time.monotonic()
        runtime = request.config_dict[RUNTIME]
        runtime.sessions.add(self)
        # The relay runs in a task of its own: aiohttp cancels a handler whose client's
        # connection closed, which every session's end does; the relay must still close the
        # upstream side, and bill what was in progress, before the finishers run.
        relay = asyncio.ensure_future(self._relay(client))
        try:
            while True:
                try:
                    end = await asyncio.shield(relay)
                    break
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if not runtime.cut and task is not None:
                        task.uncancel()  # the client's connection went: the relay ends it
                        continue
                    relay.cancel()  # cut at the end of the shutdown grace
                    call.outcome = "cancelled"
                    stats.closed_by, stats.close_code = "sidecar", _GOING_AWAY
                    stats.close_reason = "sidecar shutting down"
                    await self._abort(client)
                    raise
            call.outcome = ("client_disconnected" if end.by == "client" and end.code == _ABNORMAL
                            else "upstream_broke" if end.by == "upstream" and end.code == _ABNORMAL
                            else "ok")
        finally:
            runtime.sessions.discard(self)
            stats.closed_at = self._attempt.ended = time.monotonic()
            call.bytes_out = stats.bytes_out
            self._metrics.realtime_session(stats.closed_by or "sidecar", stats.seconds,
                                           stats.frames_in, stats.bytes_in, stats.frames_out,
                                           stats.bytes_out)
        return client

    async def _relay(self, client: web.WebSocketResponse) -> End:
        upstream = self._upstream
        down = asyncio.ensure_future(self._pump(client, upstream, "client"))
        up = asyncio.ensure_future(self._pump(upstream, client, "upstream"))
        ending = asyncio.ensure_future(self._ending.wait())
        try:
            done, _ = await asyncio.wait((down, up, ending), return_when=asyncio.FIRST_COMPLETED)
            end = down.result() if down in done else up.result() if up in done else self._end
            assert end is not None
            self._note(end)
            await self._close(client, end)
            return end
        finally:
            for task in (down, up, ending):
                task.cancel()
            await asyncio.gather(down, up, ending, return_exceptions=True)

    def _note(self, end: End) -> None:
        stats = self._stats
        stats.closed_by, stats.close_code, stats.close_reason = end.by, end.code, end.reason

    async def _close(self, client: web.WebSocketResponse, end: End) -> None:
        upstream = self._upstream
        if end.by == "client":  # relayed end to end: the client's close is acknowledged
            await self._drain()  # once the upstream acknowledged it
            code, reason = ((_GOING_AWAY, "client went away") if end.code == _ABNORMAL
                            else (_sendable(end.code), end.reason))
            await upstream.close(code=code, message=_reason(reason))
            if end.code != _ABNORMAL:
                await client.close(code=_sendable(end.code), message=_reason(end.reason))
        elif end.by == "upstream":
            code, reason = ((_BAD_GATEWAY, "upstream connection lost") if end.code == _ABNORMAL
                            else (_sendable(end.code), end.reason))
            await client.close(code=code, message=_reason(reason))
            await upstream.close(code=code, message=_reason(reason))
        else:
            if end.notice is not None and not client.closed:
                with contextlib.suppress(ConnectionResetError):
                    await client.send_frame(end.notice, WSMsgType.TEXT)
            await self._drain()
            await asyncio.gather(client.close(code=end.code, message=_reason(end.reason)),
                                 upstream.close(code=1000, message=_reason(end.reason)))

    async def _drain(self) -> None:
        """A response in progress: ask the upstream to cancel it and wait (bounded) for the
        `response.done` that says what it cost. The upstream pump still runs meanwhile."""
        watcher = self._watcher
        if watcher is None or watcher.idle.is_set() or self._upstream.closed:
            return
        await self.send_upstream(_CANCEL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher.idle.wait(), DRAIN_S)

    async def _abort(self, client: web.WebSocketResponse) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(
                client.close(code=_GOING_AWAY, message=b"sidecar shutting down"),
                self._upstream.close(code=_GOING_AWAY, message=b"sidecar shutting down"),
                return_exceptions=True), 1.0)

    async def _pump(self, source: Any, sink: Any, sender: Closer) -> End:
        """Forward `source`'s frames to `sink` until `source` closes or fails."""
        stats = self._stats
        watcher = self._watcher
        from_client = sender == "client"
        markers = () if watcher is None else (
            watcher.client_markers if from_client else watcher.upstream_markers)
        text, binary = WSMsgType.TEXT, WSMsgType.BINARY
        while True:
            msg = await source.receive()
            kind = msg.type
            if kind is text or kind is binary:
                data: bytes = msg.data
                if from_client:
                    stats.frames_in += 1
                    stats.bytes_in += len(data)
                else:
                    stats.frames_out += 1
                    stats.bytes_out += len(data)
                event = None
                if markers and kind is text and any(m in data for m in markers):
                    event = _event(data)
                if event is not None and from_client:
                    assert watcher is not None
                    if not await watcher.from_client(event):
                        continue
                if not sink.closed:
                    with contextlib.suppress(ConnectionResetError):
                        await sink.send_frame(data, kind)
                if event is not None and not from_client:
                    assert watcher is not None
                    await watcher.from_upstream(event)
            elif kind is WSMsgType.PING or kind is WSMsgType.PONG:
                if not sink.closed:
                    with contextlib.suppress(ConnectionResetError):
                        await (sink.ping if kind is WSMsgType.PING else sink.pong)(msg.data)
            elif kind is WSMsgType.CLOSE:
                return End(sender, msg.data or _NO_STATUS, msg.extra or "")
            else:  # CLOSING (we are closing it), CLOSED or ERROR: the connection is gone
                return End(sender, _ABNORMAL)


def _event(data: bytes) -> dict[str, Any] | None:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def _sendable(code: int) -> int:
    """A code a close frame can carry (1005 and 1006 only describe one that had none)."""
    return 1000 if code in (_NO_STATUS, _ABNORMAL) else code


def _reason(text: str) -> bytes:
    data = text.encode()
    if len(data) <= _MAX_REASON:
        return data
    return data[:_MAX_REASON].decode(errors="ignore").encode()
