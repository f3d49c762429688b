"""The cache's two shapes of an Anthropic answer: a message, and the events of its stream.

    unfold  a stored message → the events its stream would have been: message_start (the
            message without content, stop reason or output count), per block
            content_block_start / delta(s) / stop (text_delta and citations_delta,
            input_json_delta with the whole input, thinking_delta then signature_delta; other
            blocks whole in their start event), message_delta (stop reason, stop sequence,
            usage), message_stop
    fold    stored events → the message a non-streaming request gets, accumulated the way
            Anthropic's SDKs accumulate a stream (blocks by index, tool input parsed from its
            JSON pieces, usage counts overwritten by message_delta's)

A stored stream replays to a streaming client as stored: the same events, byte for byte.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidecar import sse


def _opening(block: dict[str, Any]) -> dict[str, Any]:
    """The block as its content_block_start carries it (what the deltas add left out)."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": ""}
    if kind == "tool_use":
        return {**block, "input": {}}
    if kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return block


def _event(data: dict[str, Any]) -> bytes:
    kind: str = data["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def unfold(message: dict[str, Any]) -> bytes:
    """A message as the events of its stream."""
    found = message.get("usage")
    usage: dict[str, Any] = found if isinstance(found, dict) else {}
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 0}}
    out = [_event({"type": "message_start", "message": start})]
    for index, block in enumerate(message.get("content") or ()):
        if not isinstance(block, dict):
            continue
        out.append(_event({"type": "content_block_start", "index": index,
                           "content_block": _opening(block)}))
        for delta in _deltas(block):
            out.append(_event({"type": "content_block_delta", "index": index, "delta": delta}))
        out.append(_event({"type": "content_block_stop", "index": index}))
    out.append(_event({"type": "message_delta",
                       "delta": {"stop_reason": message.get("stop_reason"),
                                 "stop_sequence": message.get("stop_sequence")},
                       "usage": usage}))
    out.append(_event({"type": "message_stop"}))
    return b"".join(out)


def _deltas(block: dict[str, Any]) -> list[dict[str, Any]]:
    kind = block.get("type")
    if kind == "text":
        deltas: list[dict[str, Any]] = [{"type": "text_delta", "text": block.get("text", "")}]
        for citation in block.get("citations") or ():
            deltas.append({"type": "citations_delta", "citation": citation})
        return deltas
    if kind == "tool_use":
        return [{"type": "input_json_delta",
                 "partial_json": orjson.dumps(block.get("input") or {}).decode()}]
    if kind == "thinking":
        return [{"type": "thinking_delta", "thinking": block.get("thinking", "")},
                {"type": "signature_delta", "signature": block.get("signature", "")}]
    return []


def fold(events: bytes) -> dict[str, Any]:
    """The events of a stream as the one message a non-streaming request gets."""
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    inputs: dict[int, str] = {}
    for raw in sse.split_events(events):
        data = sse.event_json(raw)
        if not isinstance(data, dict):
            continue
        kind = data.get("type")
        index = data.get("index")
        if kind == "message_start" and isinstance(data.get("message"), dict):
            message = dict(data["message"])
        elif kind == "content_block_start" and isinstance(index, int):
            block = data.get("content_block")
            blocks[index] = dict(block) if isinstance(block, dict) else {}
        elif kind == "content_block_delta" and index in blocks:
            assert isinstance(index, int)
            _apply(blocks[index], data.get("delta"), inputs, index)
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, dict):
                message.update(delta)
            if isinstance(usage := data.get("usage"), dict):
                message["usage"] = {**(message.get("usage") or {}),
                                    **{k: v for k, v in usage.items() if v is not None}}
    for index, text in inputs.items():
        try:
            parsed = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError:
            parsed = {}
        blocks[index]["input"] = parsed if isinstance(parsed, dict) else {}
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


def _apply(block: dict[str, Any], delta: Any, inputs: dict[int, str], index: int) -> None:
    if not isinstance(delta, dict):
        return
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = str(block.get("text") or "") + str(delta.get("text") or "")
    elif kind == "input_json_delta":
        inputs[index] = inputs.get(index, "") + str(delta.get("partial_json") or "")
    elif kind == "thinking_delta":
        block["thinking"] = str(block.get("thinking") or "") + str(delta.get("thinking") or "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature")
    elif kind == "citations_delta":
        block.setdefault("citations", []).append(delta.get("citation"))
