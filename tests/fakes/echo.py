"""An upstream that answers with what it received: the fake upstream (scripts, recording and
all), except that unscripted chat, completions and responses requests are echoed back.

Chat: the answer's content is the last message's text; with `tools` in the request it calls the
first tool instead, with arguments `{"echo": <that text>}`. Streams send one character per event,
so every placeholder the sidecar made arrives split across events.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.fakes.upstream import Event, FakeUpstream, chat_answer


def last_text(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


class EchoUpstream(FakeUpstream):
    def _default(self, request: web.Request, body: bytes) -> web.Response:
        parsed = orjson.loads(body) if body.startswith(b"{") else None
        if not isinstance(parsed, dict):
            return super()._default(request, body)
        model = parsed.get("model", "m")
        stream = parsed.get("stream") is True
        if request.path == "/chat/completions":
            text = last_text(parsed)
            tools = parsed.get("tools")
            if tools:
                name = tools[0]["function"]["name"]
                arguments = orjson.dumps({"echo": text}).decode()
                if stream:
                    return self._sse_response(_tool_chunks(model, name, arguments))
                answer = chat_answer(model, "")
                answer["choices"][0]["message"] = {"role": "assistant", "content": None,
                                                   "tool_calls": [_tool_call(name, arguments)]}
                answer["choices"][0]["finish_reason"] = "tool_calls"
                return web.json_response(answer)
            if stream:
                return self._sse_response(_text_chunks(model, text))
            return web.json_response(chat_answer(model, text))
        if request.path == "/completions" and isinstance(parsed.get("prompt"), str):
            return web.json_response({
                "id": "cmpl-echo", "object": "text_completion", "created": 1, "model": model,
                "choices": [{"index": 0, "text": parsed["prompt"], "finish_reason": "stop",
                             "logprobs": None}]})
        if request.path == "/responses" and isinstance(parsed.get("input"), str):
            if stream:
                return self._sse_response(_response_events(model, parsed["input"]))
            return web.json_response(_response(model, parsed["input"]))
        return super()._default(request, body)


def _tool_call(name: str, arguments: str) -> dict[str, Any]:
    return {"id": "call_1", "type": "function",
            "function": {"name": name, "arguments": arguments}}


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": 1,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _text_chunks(model: str, text: str) -> list[Event]:
    events: list[Event] = [_chunk(model, {"role": "assistant", "content": ""})]
    events += [_chunk(model, {"content": char}) for char in text]
    events.append(_chunk(model, {}, "stop"))
    return events


def _tool_chunks(model: str, name: str, arguments: str) -> list[Event]:
    first = {"index": 0, **_tool_call(name, "")}
    events: list[Event] = [_chunk(model, {"role": "assistant", "tool_calls": [first]})]
    events += [_chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": char}}]})
               for char in arguments]
    events.append(_chunk(model, {}, "tool_calls"))
    return events


def _response(model: str, text: str) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
            "model": model, "output": [{
                "type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": 3, "output_tokens": 3, "total_tokens": 6}}


def _response_events(model: str, text: str) -> list[Event]:
    def event(kind: str, **fields: Any) -> bytes:
        return (f"event: {kind}\n".encode() + b"data: "
                + orjson.dumps({"type": kind, **fields}) + b"\n\n")

    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events: list[Event] = [event("response.created", response={**_response(model, ""),
                                                               "status": "in_progress"})]
    events += [event("response.output_text.delta", **where, delta=char) for char in text]
    events.append(event("response.output_text.done", **where, text=text))
    events.append(event("response.completed", response=_response(model, text)))
    return events
