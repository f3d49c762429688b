"""A fake WebSocket upstream, in OpenAI's Realtime shape, served over real HTTP by aiohttp.

Any path accepts a WebSocket (subprotocol `realtime` when offered). It records each handshake
(path, headers, offered subprotocols) and every frame and close it receives, and answers:

    a text frame {"type": "response.create"}   `response.created`, one text delta, then
                                               `response.done` with `usage` (the next of
                                               `usages`, else a small default), unless `hold`:
                                               then the response stays in progress until a
                                               `response.cancel`, which ends it "cancelled"
    {"type": "fake.close", "code", "reason"}   closes the connection with that code and reason
    {"type": "fake.drop"}                      drops the connection without a close frame
    any other frame, text or binary            echoed back as it came
    a ping                                     a pong with the same data (aiohttp's autoping)

`require_key` makes the handshake answer 401 unless `Authorization: Bearer <that key>` came.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from multidict import CIMultiDictProxy

DEFAULT_USAGE = {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10,
                 "input_token_details": {"text_tokens": 20, "audio_tokens": 0},
                 "output_token_details": {"text_tokens": 10, "audio_tokens": 0}}


@dataclass
class Handshake:
    path: str  # raw, with the query
    headers: CIMultiDictProxy[str]
    protocols: list[str]


@dataclass
class Peer:
    """One connection's record."""

    handshake: Handshake
    frames: list[tuple[WSMsgType, Any]] = field(default_factory=list)
    close_code: int | None = None  # the code of the close frame it received (None: none)
    close_reason: str = ""


class FakeRealtime:
    def __init__(self) -> None:
        self.handshakes: list[Handshake] = []
        self.peers: list[Peer] = []
        self.usages: deque[dict[str, Any]] = deque()
        self.hold = False  # responses stay in progress until cancelled
        self.require_key: str | None = None
        self.closed = asyncio.Event()  # a connection ended (its close code is recorded)
        self.received = asyncio.Event()  # a frame arrived
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def last(self) -> Peer:
        return self.peers[-1]

    def sent_events(self, peer: Peer | None = None) -> list[dict[str, Any]]:
        """The JSON text frames a connection received."""
        frames = (peer or self.last).frames
        return [orjson.loads(data) for kind, data in frames if kind is WSMsgType.TEXT]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "")
                   .split(",") if p.strip()]
        shake = Handshake(request.raw_path, request.headers, offered)
        self.handshakes.append(shake)
        if self.require_key is not None and request.headers.get(
                "Authorization") != f"Bearer {self.require_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided",
                                                "code": "invalid_api_key"}}, status=401)
        ws = web.WebSocketResponse(protocols=("realtime",), autoclose=True)
        await ws.prepare(request)
        peer = Peer(shake)
        self.peers.append(peer)
        active: str | None = None
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.CLOSE:
                peer.close_code, peer.close_reason = msg.data, msg.extra or ""
                break
            if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
            peer.frames.append((msg.type, msg.data))
            self.received.set()
            if msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
                continue
            if msg.type is not WSMsgType.TEXT:
                continue
            event = orjson.loads(msg.data)
            kind = event.get("type")
            if kind == "response.create":
                active = f"resp_{next(self._ids)}"
                await ws.send_str(orjson.dumps({"type": "response.created", "event_id": "e1",
                                                "response": {"id": active,
                                                             "status": "in_progress"}}).decode())
                await ws.send_str(orjson.dumps({"type": "response.output_text.delta",
                                                "response_id": active,
                                                "delta": "Hello"}).decode())
                if not self.hold:
                    await self._done(ws, active, "completed")
                    active = None
            elif kind == "response.cancel" and active is not None:
                await self._done(ws, active, "cancelled")
                active = None
            elif kind == "fake.close":
                await ws.close(code=event["code"], message=event["reason"].encode())
            elif kind == "fake.drop":
                assert request.transport is not None
                request.transport.abort()
                break
            else:
                await ws.send_str(msg.data)
        self.closed.set()
        return ws

    async def _done(self, ws: web.WebSocketResponse, rid: str, status: str) -> None:
        usage = self.usages.popleft() if self.usages else DEFAULT_USAGE
        await ws.send_str(orjson.dumps({"type": "response.done", "event_id": "e2", "response": {
            "id": rid, "object": "realtime.response", "status": status,
            "usage": usage}}).decode())
