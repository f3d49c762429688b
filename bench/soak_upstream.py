"""The soak's two fake providers and its fault schedule (`python -m bench.soak`).

Both answer chat completions deterministically from the prompt (so a cache hit can be checked
against the first answer), with `usage`, JSON or streamed, in-process on loopback. `backup`
always answers. `primary` follows the schedule: a cycle (a minute, or the whole run when it is
shorter) split into phases, each injecting one kind of fault into a share of its answers:

    calm        nothing
    errors      1 in 3 answers is a 503 (the sidecar retries on the backup)
    resets      1 in 4 connections dropped before the headers, or a JSON body cut mid-way
    slow        stream events 15 ms apart, JSON answers 100 ms late
    breaks      1 in 4 streams cut after their second event (the client gets an error event)
    hangs       1 in 8 answers never start (the read timeout fires; the backup answers)
    redis       the orchestrator kills Redis at the start of this phase and restarts it
                halfway through (the cache is skipped meanwhile)

A stream the fake will break carries `x-fake-fault: break`: the sidecar passes end-to-end
headers through, so the load generator knows that error event is expected.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

PHASES: tuple[tuple[str, float], ...] = (  # name, start as a fraction of the cycle
    ("calm", 0.0), ("errors", 0.12), ("resets", 0.24), ("slow", 0.36), ("breaks", 0.48),
    ("hangs", 0.60), ("redis", 0.72), ("calm", 0.90))
FAULT_HEADER = "x-fake-fault"
PLACEHOLDER = "<EMAIL_1>"  # what the sidecar's pseudonymization puts in place of the address


def answer_text(prompt: str) -> str:
    """The answer to a prompt (after redaction), the same every time it is asked."""
    digest = hashlib.blake2b(prompt.encode(), digest_size=4).hexdigest()
    return f"Answer {digest} for {PLACEHOLDER}, in a few words."


def pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


@dataclass
class Schedule:
    began: float = field(default_factory=time.monotonic)
    cycle_s: float = 60.0

    def phase(self, now: float | None = None) -> str:
        at = ((time.monotonic() if now is None else now) - self.began) % self.cycle_s
        name = PHASES[0][0]
        for phase, start in PHASES:
            if at >= start * self.cycle_s:
                name = phase
        return name

    def redis_window(self) -> tuple[float, float]:
        """(down, up) as seconds into the cycle: the start and the middle of `redis`."""
        index = [name for name, _ in PHASES].index("redis")
        start, end = PHASES[index][1], PHASES[index + 1][1]
        return start * self.cycle_s, (start + end) / 2 * self.cycle_s


class Provider:
    """One fake OpenAI-compatible provider; `faulty` ones follow the schedule."""

    def __init__(self, name: str, schedule: Schedule | None) -> None:
        self.name = name
        self.schedule = schedule
        self.count = 0
        self.faults: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _fault(self) -> str | None:
        """The fault for this answer, if the phase injects one into it."""
        if self.schedule is None:
            return None
        phase, n = self.schedule.phase(), self.count
        share = {"errors": 3, "resets": 4, "slow": 1, "breaks": 4, "hangs": 8}.get(phase)
        if share is None or n % share:
            return None
        self.faults[phase] += 1
        return phase

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.count += 1
        fault = self._fault()
        prompt = "".join(str(m.get("content")) for m in body.get("messages", ()))
        text = answer_text(prompt)
        usage = {"prompt_tokens": max(1, len(prompt) // 4),
                 "completion_tokens": len(pieces(text))}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if fault == "errors":
            return web.json_response({"error": {"message": "overloaded", "code": 503}},
                                     status=503)
        if fault == "hangs":
            await asyncio.sleep(3600)  # the sidecar's read timeout ends it
        if fault == "resets" and (self.count // 4) % 2 == 0:
            assert request.transport is not None
            request.transport.close()  # before the headers
            return web.Response()
        if body.get("stream"):
            return await self._stream(request, body, text, usage, fault)
        payload = orjson.dumps({
            "id": f"chatcmpl-{self.name}", "object": "chat.completion", "created": 1700000000,
            "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop", "logprobs": None}], "usage": usage})
        if fault == "slow":
            await asyncio.sleep(0.1)
        if fault == "resets":  # a JSON body cut mid-way: the sidecar retries elsewhere
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            assert request.transport is not None
            request.transport.abort()
            return response
        return web.Response(body=payload, content_type="application/json")

    async def _stream(self, request: web.Request, body: dict[str, Any], text: str,
                      usage: dict[str, int], fault: str | None) -> web.StreamResponse:
        headers = {"Content-Type": "text/event-stream"}
        if fault == "breaks":
            headers[FAULT_HEADER] = "break"
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        base = {"id": f"chatcmpl-{self.name}", "object": "chat.completion.chunk",
                "created": 1700000000, "model": body.get("model")}
        events = [{**base, "choices": [{"index": 0, "delta": {"content": p},
                                        "finish_reason": None}]} for p in pieces(text)]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": usage})
        for index, event in enumerate(events):
            if fault == "breaks" and index == 2:
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
            if fault == "slow":
                await asyncio.sleep(0.015)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
