"""Shared fakes for unit tests of stages: a Call, a terminal `next`, and a recording stage."""

from __future__ import annotations

import time
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.call import Call, Next, Reply


def make_call(headers: dict[str, str] | None = None, model: str | None = "openai/gpt-4o",
              body: dict[str, Any] | None = None, **fields: Any) -> Call:
    """A chat-completions Call as read_body leaves it (body parsed, model set)."""
    if body is None and model is not None:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    call = Call(request_id="r1", method="POST", path="/chat/completions",
                endpoint="chat/completions", started=time.monotonic(),
                headers=CIMultiDictProxy(CIMultiDict(headers or {})), model=model,
                requested_model=model, body=body, **fields)
    return call


def finished(n: int, **fields: object) -> list[object]:
    """`n` finished calls (status 200) with ids r0, r1, ..."""
    calls = []
    for i in range(n):
        call = make_call(**fields)  # type: ignore[arg-type]
        call.request_id = f"r{i}"
        call.status = 200
        calls.append(call)
    return calls


async def ok(call: Call) -> Reply:
    """A terminal that answers 200 "upstream"."""
    return Reply(200, CIMultiDict(), body=b"upstream")


class Recorder:
    """A stage that logs `name>` on the way in and `<name` on the way out."""

    reads_answer = False

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def __call__(self, call: Call, next: Next) -> Reply:
        self.log.append(f"{self.name}>")
        reply = await next(call)
        self.log.append(f"<{self.name}")
        return reply


class FinishRecorder:
    """A stage that registers a finisher and records each run with the call's final state."""

    reads_answer = False
    name = "finish_recorder"

    def __init__(self) -> None:
        self.runs: list[tuple[str, str, int]] = []  # (request_id, outcome, status)

    async def __call__(self, call: Call, next: Next) -> Reply:
        call.finishers.append(self._finish)
        return await next(call)

    def _finish(self, call: Call) -> None:
        self.runs.append((call.request_id, call.outcome, call.status))
