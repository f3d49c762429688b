"""A scriptable fake OpenAI-compatible upstream, served over real HTTP.

By default it answers like OpenAI (chat, completions, embeddings, responses, models) and echoes
anything else. Tests steer single requests with `script(path, Script(...))`: status, delay, a
paced or dropped or stalled SSE stream, raw or gzipped bodies, extra headers, and faults of the
wire itself: a body sent one byte at a time, or cut (reset) or stalled after N bytes. Each
script is used once, in order; without one the default answer is given. Every request is recorded
(method, raw path, headers, body bytes, the prompt-cache breakpoints it carried) and the fake
notes when a client aborted a stream; `forwarded` leaves out the sidecar's own price fetch at
start. With `prompt_cache` set (bench/provider_cache.py) it keeps a prompt cache as
OpenRouter's Anthropic providers do, and its default chat answers bill cache writes and reads in
`prompt_tokens_details` (OpenRouter's `cached_tokens`, `cache_write_tokens`).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import ssl
import struct
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from bench.provider_cache import Billed, ProviderCache, marker_paths

Event = bytes | dict[str, Any]


@dataclass
class Script:
    status: int = 200
    json: Any = None  # the body, as JSON
    body: bytes | None = None  # the body, raw
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before sending the response headers
    hold: asyncio.Event | None = None  # wait for it before sending the response headers
    sse: list[Event] | None = None  # stream these events (dicts become `data: {json}`)
    sse_interval_s: float = 0.0  # pause between events
    done: bool = True  # end the stream with `data: [DONE]`
    drop_after: int | None = None  # after N events, cut the connection
    stall_after: int | None = None  # after N events, go silent until the client leaves
    wait_before: dict[int, asyncio.Event] = field(default_factory=dict)  # event index -> gate
    gzip: bool = False  # send the body gzip-encoded with Content-Encoding: gzip
    close_before_headers: bool = False  # read the request, then drop the connection
    byte_pause_s: float | None = None  # send the body (JSON or SSE) one byte per write
    cut_body_after: int | None = None  # JSON: full Content-Length, N bytes, then a reset
    stall_body_after: int | None = None  # JSON: full Content-Length, N bytes, then silence


@dataclass
class Recorded:
    method: str
    path: str  # raw path with query, as received
    headers: CIMultiDictProxy[str]
    body: bytes
    chunked: bool  # the request body came with Transfer-Encoding: chunked
    peer_port: int  # the sidecar's side of the connection: equal ports mean a reused connection

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def markers(self) -> list[str]:
        """Where this request carried cache_control (marker_paths' spelling)."""
        return marker_paths(self.json)

    @property
    def price_fetch(self) -> bool:
        return is_price_fetch(self.method, self.path, self.headers)


def is_price_fetch(method: str, path: str, headers: CIMultiDictProxy[str]) -> bool:
    """The sidecar's own GET <base>/models at start (its price book), not a client's request:
    on by default, so a test counting requests leaves it out."""
    return (method == "GET" and path.rpartition("/")[2] == "models"
            and headers.get("User-Agent", "").startswith("llm-sidecar/"))


def chat_answer(model: str, text: str = "Hello from the fake upstream.") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13},
    }


def cache_usage(billed: Billed, completion: int) -> dict[str, Any]:
    """OpenRouter's usage for a prompt its provider's cache billed."""
    return {"prompt_tokens": billed.prompt, "completion_tokens": completion,
            "total_tokens": billed.prompt + completion,
            "prompt_tokens_details": {"cached_tokens": billed.read,
                                      "cache_write_tokens": billed.written}}


def chat_chunks(model: str, pieces: list[str], usage: bool = True) -> list[Event]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model}
    events: list[Event] = [
        {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
        for p in pieces
    ]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        events.append({**base, "choices": [], "usage": {
            "prompt_tokens": 7, "completion_tokens": len(pieces),
            "total_tokens": 7 + len(pieces)}})
    return events


class FakeUpstream:
    def __init__(self, ssl_context: ssl.SSLContext | None = None,
                 prompt_cache: ProviderCache | None = None) -> None:
        self._ssl = ssl_context  # serve https (with a test CA's certificate)
        self.prompt_cache = prompt_cache
        self.billed: list[Billed] = []  # what the prompt cache billed, per chat completion
        self.requests: list[Recorded] = []
        self.aborted = asyncio.Event()  # a client went away before a scripted answer was done
        self.first_body_bytes = asyncio.Event()  # an upload's first bytes arrived
        # Set: every answer waits for it (default answers stream their first event first).
        self.gate: asyncio.Event | None = None
        self._arrivals = asyncio.Condition()
        self._scripts: dict[str, deque[Script]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def script(self, path: str, *scripts: Script) -> None:
        """Queue answers for the next requests to `path` (e.g. "/chat/completions")."""
        self._scripts[path].extend(scripts)

    @property
    def forwarded(self) -> list[Recorded]:
        """What the sidecar sent for its clients: every request but its own price fetch (on
        by default, so a test counting requests counts these)."""
        return [r for r in self.requests if not r.price_fetch]

    @property
    def last(self) -> Recorded:
        """The last request the sidecar sent for a client (its price fetch is not one)."""
        return self.forwarded[-1]

    async def arrived(self, count: int) -> None:
        """Wait until `count` requests have come in (their answers may still be held)."""
        async with self._arrivals:
            await self._arrivals.wait_for(lambda: len(self.requests) >= count)

    async def start(self) -> None:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                     auto_decompress=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        scheme = "https" if self._ssl else "http"
        self.url = f"{scheme}://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = bytearray()
        while chunk := await request.content.readany():
            body += chunk
            self.first_body_bytes.set()
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        assert request.transport is not None
        peer_port = request.transport.get_extra_info("peername")[1]
        self.requests.append(Recorded(request.method, request.raw_path, request.headers,
                                      bytes(body), chunked, peer_port))
        async with self._arrivals:
            self._arrivals.notify_all()
        queue = self._scripts.get(request.path)
        script = queue.popleft() if queue else None
        if script is None:
            answer = self._default(request, bytes(body))
            if self.gate is None:
                return answer
            return await self._gated(request, answer, self.gate)
        try:
            return await self._scripted(request, script)
        except (asyncio.CancelledError, ConnectionResetError):
            self.aborted.set()
            raise

    async def _scripted(self, request: web.Request, script: Script) -> web.StreamResponse:
        if script.close_before_headers:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if script.delay_s:
            await asyncio.sleep(script.delay_s)
        if script.hold is not None:
            await script.hold.wait()
        if script.sse is not None:
            return await self._stream(request, script)
        payload = script.body if script.body is not None else orjson.dumps(script.json)
        headers = dict(script.headers)
        headers.setdefault("Content-Type", "application/json")
        if script.gzip:
            payload = gzip.compress(payload)
            headers["Content-Encoding"] = "gzip"
        if (script.byte_pause_s is None and script.cut_body_after is None
                and script.stall_body_after is None):
            return web.Response(status=script.status, body=payload, headers=headers)
        response = web.StreamResponse(status=script.status, headers=headers)
        response.content_length = len(payload)
        await response.prepare(request)
        if script.cut_body_after is not None or script.stall_body_after is not None:
            sent = script.cut_body_after if script.cut_body_after is not None else (
                script.stall_body_after or 0)
            await response.write(payload[:sent])
            if script.cut_body_after is not None:
                assert request.transport is not None
                request.transport.abort()
                return response
            await asyncio.Event().wait()  # until the client disconnects
        await self._trickle(response, payload, script.byte_pause_s or 0.0)
        await response.write_eof()
        return response

    @staticmethod
    async def _trickle(response: web.StreamResponse, data: bytes, pause_s: float) -> None:
        """Write `data` one byte per write (each its own chunk on the wire)."""
        for index in range(len(data)):
            await response.write(data[index:index + 1])
            await asyncio.sleep(pause_s)

    async def _stream(self, request: web.Request, script: Script) -> web.StreamResponse:
        response = web.StreamResponse(status=script.status, headers={
            "Content-Type": "text/event-stream", **script.headers})
        await response.prepare(request)
        assert script.sse is not None
        for index, event in enumerate(script.sse):
            if index in script.wait_before:
                await script.wait_before[index].wait()
            if index == script.drop_after:
                assert request.transport is not None
                request.transport.abort()
                return response
            if index == script.stall_after:
                await asyncio.Event().wait()  # until the client disconnects
            raw = event if isinstance(event, bytes) else b"data: " + orjson.dumps(event) + b"\n\n"
            if script.byte_pause_s is not None:
                await self._trickle(response, raw, script.byte_pause_s)
            else:
                await response.write(raw)
            if script.sse_interval_s:
                await asyncio.sleep(script.sse_interval_s)
        if script.done:
            if script.byte_pause_s is not None:
                await self._trickle(response, b"data: [DONE]\n\n", script.byte_pause_s)
            else:
                await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _default(self, request: web.Request, body: bytes) -> web.Response:
        path = request.path
        parsed: Any = None
        if body and request.content_type == "application/json":
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
        model = parsed.get("model", "fake-model") if isinstance(parsed, dict) else "fake-model"
        if path == "/chat/completions" and isinstance(parsed, dict):
            if self.prompt_cache is not None:
                billed = self.prompt_cache.bill_openai(parsed)
                self.billed.append(billed)
                answer = {**chat_answer(model), "usage": cache_usage(billed, 6)}
                if not parsed.get("stream"):
                    return web.json_response(answer)
                events = chat_chunks(model, ["Hello", " from", " fake."], usage=False)
                return self._sse_response([*events, {**events[-1], "choices": [],
                                                     "usage": cache_usage(billed, 3)}])
            if parsed.get("stream"):
                return self._sse_response(chat_chunks(model, ["Hello", " from", " fake."]))
            return web.json_response(chat_answer(model))
        if path == "/completions" and isinstance(parsed, dict):
            return web.json_response({
                "id": "cmpl-fake", "object": "text_completion", "created": 1700000000,
                "model": model, "choices": [{"index": 0, "text": "Once upon a time",
                                             "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})
        if path == "/embeddings" and isinstance(parsed, dict):
            inputs = parsed.get("input")
            count = len(inputs) if isinstance(inputs, list) else 1
            vector = [0.25, -0.5, 0.75]
            encoded: Any = vector
            if parsed.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack("<3f", *vector)).decode()
            return web.json_response({
                "object": "list", "model": model,
                "data": [{"object": "embedding", "index": i, "embedding": encoded}
                         for i in range(count)],
                "usage": {"prompt_tokens": 2 * count, "total_tokens": 2 * count}})
        if path == "/models":
            return web.json_response({"object": "list", "data": [
                {"id": "fake/model-a", "object": "model", "created": 1700000000,
                 "owned_by": "fake"}]})
        return web.json_response({"method": request.method, "path": request.raw_path,
                                  "body_bytes": len(body)})

    @staticmethod
    async def _gated(request: web.Request, answer: web.Response, gate: asyncio.Event
                     ) -> web.StreamResponse:
        """A default answer held by `gate`: a JSON body before its headers, a stream after its
        first event (so a stream is under way while the test does something)."""
        body = answer.body
        assert isinstance(body, bytes)
        if answer.content_type != "text/event-stream":
            await gate.wait()
            return answer
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        first = body.index(b"\n\n") + 2
        await response.write(body[:first])
        await gate.wait()
        await response.write(body[first:])
        await response.write_eof()
        return response

    @staticmethod
    def _sse_response(events: list[Event]) -> web.Response:
        raw = b"".join(e if isinstance(e, bytes) else b"data: " + orjson.dumps(e) + b"\n\n"
                       for e in events) + b"data: [DONE]\n\n"
        return web.Response(body=raw, content_type="text/event-stream")
