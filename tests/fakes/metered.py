"""A fake upstream that bills like a real one, for the spend tests, over real HTTP.

It answers chat completions, completions, embeddings and responses with usage that follows the
request: the answer runs to the completion limit the request carries (`max_tokens`,
`max_completion_tokens`, `max_output_tokens`; `default_tokens` without one; at most
`answer_tokens` when set, as a real answer that ends on its own), one token per streamed chunk,
so a request costs its worst case, and a budget that admits too much shows up
as overspend. `overrun` makes it ignore the limit by that many tokens (an upstream that does not
honour max_tokens). Streams carry a usage chunk only when asked (`stream_options.include_usage`),
like OpenAI, or always with `usage_always` (like OpenRouter). `gate` holds every answer until
set; `arrived` counts requests in. It serves GET /models with `models` (OpenRouter's shape).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Metered:
    prompt_tokens: int = 10
    default_tokens: int = 20
    overrun: int = 0
    answer_tokens: int | None = None  # the answer's own length: it stops there when it may
    cost: float | None = None  # usage.cost to report (OpenRouter does)
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    usage_always: bool = False
    status: int = 200
    drop_after: int | None = None  # streams: cut the connection after N chunks
    models: list[dict[str, Any]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    bodies: list[dict[str, Any]] = field(default_factory=list)
    model_fetches: int = 0
    model_fetch_agent: str | None = None
    url: str = ""
    _runner: web.AppRunner | None = None
    _arrivals: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/models", self._models)
        app.router.add_post("/{endpoint:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def arrived(self, count: int) -> None:
        """Wait until `count` requests have come in."""
        async with self._arrivals:
            await self._arrivals.wait_for(lambda: len(self.bodies) >= count)

    async def _models(self, request: web.Request) -> web.Response:
        self.model_fetches += 1
        self.model_fetch_agent = request.headers.get("User-Agent")
        return web.json_response({"data": self.models})

    def usage(self, completion: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens}}
        if self.cost is not None:
            usage["cost"] = self.cost
        return usage

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        endpoint = request.match_info["endpoint"]
        async with self._arrivals:
            self.bodies.append(body)
            self._arrivals.notify_all()
        if self.gate is not None:
            await self.gate.wait()
        if self.status != 200:
            failure: dict[str, Any] = {"error": {"message": "failed on purpose",
                                                 "code": self.status}}
            if self.cost is not None:  # what some upstreams bill for a failure
                failure["usage"] = self.usage(0)
            return web.json_response(failure, status=self.status)
        model = body.get("model", "m")
        limit = next((body[k] for k in ("max_completion_tokens", "max_tokens",
                                        "max_output_tokens") if isinstance(body.get(k), int)),
                     self.default_tokens)
        tokens = limit + self.overrun
        if self.answer_tokens is not None:
            tokens = min(limit, self.answer_tokens) + self.overrun
        if endpoint == "embeddings":
            return web.json_response({"object": "list", "model": model, "data": [
                {"object": "embedding", "index": 0, "embedding": [0.5]}],
                "usage": {"prompt_tokens": self.prompt_tokens,
                          "total_tokens": self.prompt_tokens}})
        if endpoint == "responses" and body.get("stream"):
            return await self._responses_stream(request, model, tokens)
        if endpoint == "responses":
            return web.json_response({
                "id": "resp_1", "object": "response", "created_at": 1700000000, "model": model,
                "status": "completed", "output": [{"type": "message", "id": "m1",
                                                   "role": "assistant", "status": "completed",
                                                   "content": [{"type": "output_text",
                                                                "text": "a" * tokens,
                                                                "annotations": []}]}],
                "usage": {"input_tokens": self.prompt_tokens, "output_tokens": tokens,
                          "total_tokens": self.prompt_tokens + tokens}})
        if body.get("stream"):
            return await self._stream(request, body, model, tokens, endpoint)
        reason = "length" if isinstance(body.get("max_tokens"), int) or isinstance(
            body.get("max_completion_tokens"), int) else "stop"
        if endpoint == "completions":
            choice: dict[str, Any] = {"index": 0, "text": "a" * tokens, "finish_reason": reason,
                                      "logprobs": None}
            obj = "text_completion"
        else:
            choice = {"index": 0, "message": {"role": "assistant", "content": "a" * tokens},
                      "finish_reason": reason, "logprobs": None}
            obj = "chat.completion"
        return web.json_response({"id": "x1", "object": obj, "created": 1700000000,
                                  "model": model, "choices": [choice],
                                  "usage": self.usage(tokens)})

    async def _responses_stream(self, request: web.Request, model: str,
                                tokens: int) -> web.StreamResponse:
        """The Responses API's stream: its usage rides inside `response.completed`."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        shell = {"id": "resp_1", "object": "response", "created_at": 1700000000,
                 "model": model, "status": "in_progress", "output": []}
        events: list[dict[str, Any]] = [
            {"type": "response.created", "sequence_number": 0, "response": shell}]
        events += [{"type": "response.output_text.delta", "sequence_number": i + 1,
                    "item_id": "m1", "output_index": 0, "content_index": 0, "delta": "a",
                    "logprobs": []} for i in range(tokens)]
        events.append({"type": "response.completed", "sequence_number": tokens + 1,
                       "response": {**shell, "status": "completed", "usage": {
                           "input_tokens": self.prompt_tokens, "output_tokens": tokens,
                           "total_tokens": self.prompt_tokens + tokens}}})
        for event in events:
            await response.write(b"event: " + event["type"].encode() + b"\ndata: "
                                 + orjson.dumps(event) + b"\n\n")
        await response.write_eof()
        return response

    async def _stream(self, request: web.Request, body: dict[str, Any], model: str,
                      tokens: int, endpoint: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        completions = endpoint == "completions"
        base = {"id": "x1", "object": "text_completion" if completions else
                "chat.completion.chunk", "created": 1700000000, "model": model}

        def choice(text: str, reason: str | None) -> dict[str, Any]:
            if completions:
                return {"index": 0, "text": text, "finish_reason": reason, "logprobs": None}
            return {"index": 0, "delta": {"content": text} if text else {},
                    "finish_reason": reason}

        for i in range(tokens):
            if self.drop_after is not None and i == self.drop_after:
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(b"data: " + orjson.dumps({**base, "choices": [
                choice("a", None)]}) + b"\n\n")
        await response.write(b"data: " + orjson.dumps({**base, "choices": [
            choice("", "length")]}) + b"\n\n")
        options = body.get("stream_options") or {}
        if self.usage_always or options.get("include_usage"):
            await response.write(b"data: " + orjson.dumps(
                {**base, "choices": [], "usage": self.usage(tokens)}) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
