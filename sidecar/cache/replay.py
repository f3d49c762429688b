"""Serve an answer in the shape the client asked for, whichever shape filled the entry.

    entry \\ client   stream                              JSON
    sse               the events as stored, + [DONE]      the events folded into one answer
    json              the answer unfolded into chunks     the body as stored

Folding and unfolding keep what the SDKs read: ids, created, model, system_fingerprint, every
choice by index, role, content, refusal, reasoning, tool calls (deltas merged by index; the
function name and arguments concatenated), logprobs, finish_reason and usage. Chat completions
and legacy completions convert both ways, and so do Anthropic's messages (messages/replay.py:
a message and its event stream); the Responses API keeps each shape in its own entry (key.py).
The usage-only chunk (`choices: []`) goes to a streaming client only when its request asked for
it (`stream_options.include_usage`). A hit is sent at once: no artificial pacing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from multidict import CIMultiDict

from sidecar import sse
from sidecar.cache.entry import Entry
from sidecar.call import Reply
from sidecar.errors import JSON_CONTENT_TYPE
from sidecar.messages import replay as messages

CONVERTIBLE = frozenset({"chat/completions", "completions", "messages"})
SSE_CONTENT_TYPE = "text/event-stream"
_TOP = ("id", "created", "model", "system_fingerprint", "service_tier", "provider")
_CHUNK_OBJECT = {"chat/completions": "chat.completion.chunk", "completions": "text_completion"}


def can_serve(entry: Entry, endpoint: str, stream: bool) -> bool:
    """Whether this entry can answer a client asking for this shape."""
    wanted = "sse" if stream else "json"
    return entry.kind == wanted or endpoint in CONVERTIBLE


def hit_reply(entry: Entry, endpoint: str, *, stream: bool, include_usage: bool) -> Reply:
    if stream:
        if entry.kind == "sse":
            data = entry.payload if include_usage else without_usage_chunk(entry.payload)
        elif endpoint == "messages":
            data = messages.unfold(orjson.loads(entry.payload))
        else:
            data = unfold(endpoint, orjson.loads(entry.payload), include_usage) + sse.DONE
        return Reply(200, CIMultiDict({"Content-Type": SSE_CONTENT_TYPE}), chunks=_once(data),
                     sse=True)
    if entry.kind == "json":
        body = entry.payload
    elif endpoint == "messages":
        body = orjson.dumps(messages.fold(entry.payload))
    else:
        body = orjson.dumps(fold(endpoint, entry.payload))
    return Reply(200, CIMultiDict({"Content-Type": JSON_CONTENT_TYPE}), body=body)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def without_usage_chunk(events: bytes) -> bytes:
    """The events without the trailing usage-only chunk (the last data event before [DONE])."""
    parts = sse.split_events(events)
    for i in range(len(parts) - 1, -1, -1):
        data = sse.event_data(parts[i])
        if data is None or data == b"[DONE]":
            continue
        if _is_usage_chunk(sse.event_json(parts[i])):
            del parts[i]
            return b"".join(parts)
        break
    return events


def _is_usage_chunk(data: Any) -> bool:
    return isinstance(data, dict) and data.get("choices") == [] and bool(data.get("usage"))


# ---- JSON answer -> chunks ------------------------------------------------------------------

def unfold(endpoint: str, answer: dict[str, Any], include_usage: bool) -> bytes:
    """A JSON answer as the events its stream would have been (without [DONE])."""
    base = {k: answer[k] for k in _TOP if k in answer}
    base["object"] = _CHUNK_OBJECT[endpoint]
    chunks: list[dict[str, Any]] = []
    for choice in answer.get("choices") or []:
        index = choice.get("index", 0)
        if endpoint == "completions":
            chunks.append({**base, "choices": [{
                "index": index, "text": choice.get("text", ""),
                "logprobs": choice.get("logprobs"), "finish_reason": choice.get("finish_reason")}]})
            continue
        message = choice.get("message") or {}
        delta = {k: v for k, v in message.items() if v is not None and k != "tool_calls"}
        if calls := message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(calls)]
        chunks.append({**base, "choices": [{"index": index, "delta": delta,
                                            "logprobs": choice.get("logprobs"),
                                            "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": index, "delta": {}, "logprobs": None,
                                            "finish_reason": choice.get("finish_reason")}]})
    if include_usage and answer.get("usage") is not None:
        chunks.append({**base, "choices": [], "usage": answer["usage"]})
    return b"".join(map(sse.encode, chunks))


# ---- chunks -> JSON answer ------------------------------------------------------------------

def fold(endpoint: str, events: bytes) -> dict[str, Any]:
    """The events of a stream as the one JSON answer a non-streaming request gets."""
    answer: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    calls: dict[int, dict[int, dict[str, Any]]] = {}
    usage = None
    for event in sse.split_events(events):
        data = sse.event_json(event)
        if not isinstance(data, dict):
            continue
        for k in _TOP:
            if data.get(k) is not None:
                answer[k] = data[k]
        if data.get("usage"):
            usage = data["usage"]
        for part in data.get("choices") or []:
            index = part.get("index", 0)
            if endpoint == "completions":
                choice = choices.setdefault(index, {"index": index, "text": "",
                                                    "logprobs": None, "finish_reason": None})
                choice["text"] += part.get("text") or ""
            else:
                choice = choices.setdefault(index, {
                    "index": index, "message": {"role": "assistant", "content": None},
                    "logprobs": None, "finish_reason": None})
                _merge_delta(choice["message"], part.get("delta") or {},
                             calls.setdefault(index, {}))
            if part.get("finish_reason") is not None:
                choice["finish_reason"] = part["finish_reason"]
            if part.get("logprobs"):
                choice["logprobs"] = _merge_logprobs(choice["logprobs"], part["logprobs"])
    for index, merged in calls.items():
        if merged:
            choices[index]["message"]["tool_calls"] = [merged[i] for i in sorted(merged)]
    answer["object"] = "text_completion" if endpoint == "completions" else "chat.completion"
    answer["choices"] = [choices[i] for i in sorted(choices)]
    if usage is not None:
        answer["usage"] = usage
    return answer


def _merge_delta(message: dict[str, Any], delta: dict[str, Any],
                 calls: dict[int, dict[str, Any]]) -> None:
    for field, value in delta.items():
        if value is None:
            continue
        if field == "tool_calls":
            for call in value:
                _merge_call(calls, call)
        elif field == "role":
            message["role"] = value
        elif isinstance(value, str):  # content, refusal, reasoning: pieces of one text
            message[field] = (message.get(field) or "") + value
        elif isinstance(value, list):  # reasoning_details, annotations
            message.setdefault(field, []).extend(value)
        else:
            message[field] = value


def _merge_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    index = delta.get("index", 0)
    call = calls.setdefault(index, {"id": None, "type": "function",
                                    "function": {"name": "", "arguments": ""}})
    if delta.get("id") and not call["id"]:
        call["id"] = delta["id"]
    if delta.get("type"):
        call["type"] = delta["type"]
    function = delta.get("function") or {}
    for part in ("name", "arguments"):
        if function.get(part):
            call["function"][part] += function[part]


def _merge_logprobs(into: dict[str, Any] | None, part: dict[str, Any]) -> dict[str, Any]:
    merged = dict(into or {})
    for k, v in part.items():
        if isinstance(v, list):
            merged[k] = [*(merged.get(k) or []), *v]
        elif k not in merged:
            merged[k] = v
    return merged
