"""A scriptable fake of Anthropic's Messages API, served over real HTTP on loopback.

Written from Anthropic's documented formats (version 2023-06-01): `POST /v1/messages` answers a
message, or with `"stream": true` the documented event sequence (message_start, ping,
content_block_start / delta / stop per block, message_delta with usage, message_stop);
`GET /v1/models[/id]` pages like Anthropic's (`limit`, `has_more`); anything else is Anthropic's
404. It checks what Anthropic checks first (x-api-key, anthropic-version, max_tokens,
messages) and answers Anthropic's error shapes. Tests queue answers per request with
`answer(...)`: a message, an event list (paced by gates, or cut), an error with its status and
headers. Every request is recorded, its JSON parsed, with the prompt-cache breakpoints it
carried (`markers`). With `prompt_cache` set (bench/provider_cache.py), it keeps a prompt cache
as Anthropic does and bills default answers' cache writes and reads in their usage.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from bench.provider_cache import Billed, ProviderCache, marker_paths
from tests.fakes.upstream import is_price_fetch

Event = dict[str, Any] | bytes
MODEL = "claude-test-1"
MODELS = [{"type": "model", "id": f"claude-test-{i}", "display_name": f"Claude Test {i}",
           "created_at": f"2025-0{i}-01T00:00:00Z"} for i in range(1, 4)]


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(id: str, name: str, input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": input}


def thinking(value: str, signature: str = "sig-1") -> dict[str, Any]:
    return {"type": "thinking", "thinking": value, "signature": signature}


def message(*content: dict[str, Any], stop_reason: str | None = "end_turn",
            usage: dict[str, int] | None = None, model: str = MODEL) -> dict[str, Any]:
    return {"id": "msg_01Test", "type": "message", "role": "assistant", "model": model,
            "content": list(content), "stop_reason": stop_reason, "stop_sequence": None,
            "usage": usage or {"input_tokens": 12, "output_tokens": 5,
                               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def error_body(kind: str, text: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text},
            "request_id": "req_01Test"}


def _pieces(value: str, parts: int) -> list[str]:
    size = max(1, -(-len(value) // parts))
    return [value[i:i + size] for i in range(0, len(value), size)] or [""]


def stream_events(msg: dict[str, Any], parts: int = 2) -> list[Event]:
    """The events Anthropic streams for `msg`: each text, tool input and thought in `parts`."""
    usage = msg["usage"]
    start = {**msg, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}
    events: list[Event] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(msg["content"]):
        kind = block["type"]
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], parts)]
        elif kind == "tool_use":
            opening = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p}
                      for p in ["", *_pieces(orjson.dumps(block["input"]).decode(), parts)]]
        elif kind == "thinking":
            opening = {"type": "thinking", "thinking": ""}
            deltas = [{"type": "thinking_delta", "thinking": p}
                      for p in _pieces(block["thinking"], parts)]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            opening = block
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta",
                   "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                   "usage": {"output_tokens": usage["output_tokens"]}})
    events.append({"type": "message_stop"})
    return events


def encode_event(event: Event) -> bytes:
    if isinstance(event, bytes):
        return event
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


@dataclass
class Answer:
    status: int = 200
    json: Any = None  # a whole body: a message, or an error body
    events: list[Event] | None = None  # stream these instead
    headers: dict[str, str] = field(default_factory=dict)
    wait_before: dict[int, asyncio.Event] = field(default_factory=dict)  # event index -> gate
    drop_after: int | None = None  # after N events, cut the connection


def error(status: int, kind: str, text: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, error_body(kind, text), headers=headers or {})


@dataclass
class Recorded:
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def markers(self) -> list[str]:
        """Where this request carried cache_control (marker_paths' spelling)."""
        return marker_paths(self.json)


class FakeAnthropic:
    def __init__(self, prompt_cache: ProviderCache | None = None) -> None:
        self.prompt_cache = prompt_cache
        self.billed: list[Billed] = []  # what the prompt cache billed, per /v1/messages
        self.requests: list[Recorded] = []
        self._answers: deque[Answer] = deque()
        self._runner: web.AppRunner | None = None
        self.url = ""  # the base URL a provider is configured with (ends in /v1)

    def answer(self, *answers: Answer) -> None:
        """Queue answers for the next requests to /v1/messages, in order."""
        self._answers.extend(answers)

    @property
    def forwarded(self) -> list[Recorded]:
        """What the sidecar sent for its clients: every request but its own price fetch."""
        return [r for r in self.requests if not is_price_fetch(r.method, r.path, r.headers)]

    @property
    def last(self) -> Recorded:
        """The last request the sidecar sent for a client (its price fetch is not one)."""
        return self.forwarded[-1]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.raw_path, request.headers, body))
        if not request.headers.get("x-api-key"):
            return _error(401, "authentication_error", "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version header is required")
        path = request.path
        if request.method == "POST" and path == "/v1/messages":
            return await self._messages(request, body)
        if request.method == "GET" and path == "/v1/models":
            limit = int(request.query.get("limit", "20"))
            page = MODELS[:limit]
            return web.json_response({"data": page, "has_more": len(MODELS) > limit,
                                      "first_id": page[0]["id"], "last_id": page[-1]["id"]})
        if request.method == "GET" and path.startswith("/v1/models/"):
            found = [m for m in MODELS if m["id"] == path[11:]]
            if found:
                return web.json_response(found[0])
            return _error(404, "not_found_error", f"model: {path[11:]}")
        if request.method == "POST" and path == "/v1/messages/count_tokens":
            return web.json_response({"input_tokens": 10})
        return _error(404, "not_found_error", "Not found")

    async def _messages(self, request: web.Request, body: bytes) -> web.StreamResponse:
        parsed = orjson.loads(body)
        for name in ("max_tokens", "messages", "model"):
            if name not in parsed:
                return _error(400, "invalid_request_error", f"{name}: Field required")
        answer = self._answers.popleft() if self._answers else None
        usage = None
        if self.prompt_cache is not None:
            billed = self.prompt_cache.bill_anthropic(parsed)
            self.billed.append(billed)
            usage = {"input_tokens": billed.input, "output_tokens": 5,
                     "cache_creation_input_tokens": billed.written,
                     "cache_read_input_tokens": billed.read}
        if answer is None:
            reply = message(text("Hello from Claude."), model=parsed["model"], usage=usage)
            answer = Answer(events=stream_events(reply)) if parsed.get("stream") else Answer(
                json=reply)
        if answer.events is None:
            return web.Response(status=answer.status, body=orjson.dumps(answer.json),
                                content_type="application/json", headers=answer.headers)
        response = web.StreamResponse(status=answer.status, headers={
            "Content-Type": "text/event-stream; charset=utf-8", **answer.headers})
        await response.prepare(request)
        for index, event in enumerate(answer.events):
            if index in answer.wait_before:
                await answer.wait_before[index].wait()
            if index == answer.drop_after:
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(encode_event(event))
        await response.write_eof()
        return response


def _error(status: int, kind: str, text: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(error_body(kind, text)),
                        content_type="application/json")
