"""Restoring placeholders in answers: JSON bodies and SSE streams, event by event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from sidecar.privacy.restorer import Restorer
from sidecar.sse import event_json

ORIGINALS = {"<EMAIL_1>": "jane@example.com", "<SECRET_1>": 'p"w\\rd'}
RESTORER = Restorer(ORIGINALS)


def chat(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
    return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "model": "m",
                                     "choices": [{"index": index, "delta": delta,
                                                  "finish_reason": finish}]}) + b"\n\n"


async def run(events: list[bytes]) -> list[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    return [chunk async for chunk in RESTORER.stream(chunks())]


def texts(out: list[bytes], field: str = "content") -> list[str]:
    pieces = []
    for chunk in out:
        data = event_json(chunk)
        if isinstance(data, dict):
            for choice in data["choices"]:
                pieces.append(choice.get("delta", {}).get(field) or "")
    return pieces


async def test_a_split_placeholder_is_held_then_restored() -> None:
    """`<EMA` + `IL_1> hi` → "" then the value and the rest: nothing partial reaches the client."""
    out = await run([chat({"content": "to <EMA"}), chat({"content": "IL_1> hi"}),
                     chat({}, "stop"), b"data: [DONE]\n\n"])
    assert texts(out) == ["to ", "jane@example.com hi", ""]
    assert out[-1] == b"data: [DONE]\n\n"


async def test_a_lookalike_is_released_as_soon_as_it_cannot_be_a_placeholder() -> None:
    """`<EM` followed by `phasis>` is ordinary text: held one chunk, then sent unchanged."""
    out = await run([chat({"content": "an <EM"}), chat({"content": "phasis>"})])
    assert texts(out) == ["an ", "<EMphasis>"]


async def test_a_tail_held_at_the_finish_goes_out_with_the_finish_chunk() -> None:
    """A stream that ends inside a possible placeholder sends that text before finishing."""
    out = await run([chat({"content": "a <EMAIL_"}), chat({}, "stop")])
    assert texts(out) == ["a ", "<EMAIL_"]


async def test_tails_are_flushed_before_done_without_a_finish_reason() -> None:
    """No finish_reason at all: the held text becomes one chunk just before [DONE]."""
    out = await run([chat({"content": "x <"}), b"data: [DONE]\n\n"])
    assert texts(out[:1]) == ["x "]
    assert out[1].startswith(b"data: {") and out[1].endswith(b"data: [DONE]\n\n")
    assert event_json(out[1].split(b"\n\n")[0] + b"\n\n")["choices"][0]["delta"] == {
        "content": "<"}


async def test_tool_call_arguments_are_restored_as_json() -> None:
    """Inside arguments the value is JSON-escaped, split across chunks, per tool call."""
    pieces = ['{"pw": "<SEC', 'RET_1>", "to": "<EMAIL_1>"}']
    out = await run([chat({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
                     for p in pieces] + [chat({}, "tool_calls")])
    arguments = "".join(call["function"]["arguments"] for chunk in out
                        for call in event_json(chunk)["choices"][0]["delta"].get(
                            "tool_calls", []))
    assert orjson.loads(arguments) == {"pw": 'p"w\\rd', "to": "jane@example.com"}


async def test_choices_are_separate_channels() -> None:
    """n=2: each choice holds its own tail."""
    out = await run([chat({"content": "<EMA"}, index=0), chat({"content": "<EMAIL_1>"}, index=1),
                     chat({"content": "IL_1>"}, index=0)])
    assert texts(out) == ["", "jane@example.com", "jane@example.com"]


async def test_events_without_placeholders_pass_byte_for_byte() -> None:
    """Events that need no change are not re-encoded (the upstream's bytes go out)."""
    event = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n'
    assert await run([event, b": keep-alive\n\n"]) == [event, b": keep-alive\n\n"]


async def test_responses_done_event_releases_the_tail_first() -> None:
    """Responses API: a held tail goes out as one more delta (same event name) before the
    done event, which is restored whole; other fields and lines are kept."""
    def event(kind: str, **fields: Any) -> bytes:
        return f"event: {kind}\n".encode() + b"data: " + orjson.dumps(
            {"type": kind, "output_index": 0, "content_index": 0, **fields}) + b"\n\n"

    out = await run([event("response.output_text.delta", delta="hi <EMAIL"),
                     event("response.output_text.done", text="hi <EMAIL_1>")])
    assert b"".join(out).count(b"event: response.output_text.delta") == 2
    tail, done = out[1].split(b"\n\n")[:2]
    assert event_json(tail + b"\n\n")["delta"] == "<EMAIL"
    assert event_json(done + b"\n\n")["text"] == "hi jane@example.com"


@pytest.mark.parametrize("body", [
    b'{"choices": [{"message": {"content": "to <EMAIL_1>"}}]}',
    b'{"choices": [{"message": {"content": "to \\u003cEMAIL_1\\u003e"}}]}',
])
def test_json_bodies_are_restored_whatever_the_escaping(body: bytes) -> None:
    """`<` written as `\\u003c` (Go's encoder) is restored too."""
    restored = orjson.loads(RESTORER.body(body))
    assert restored["choices"][0]["message"]["content"] == "to jane@example.com"


def test_non_json_bodies_are_restored_as_text() -> None:
    """A plain-text error body quoting a placeholder gets the value back."""
    assert RESTORER.body(b"bad <EMAIL_1>") == b"bad jane@example.com"


async def test_a_finish_chunk_without_delta_still_releases_the_tail() -> None:
    """`delta: null` with a finish_reason, and `tool_calls: null`: held text still goes out."""
    finish = b'data: {"choices": [{"index": 0, "delta": null, "finish_reason": "stop"}]}\n\n'
    out = await run([chat({"content": "a <EMAI"}), finish])
    assert texts(out) == ["a ", "<EMAI"]
    calls = await run([chat({"tool_calls": [{"index": 0, "function": {"arguments": "<SEC"}}]}),
                       chat({"tool_calls": None}, "tool_calls")])
    last = event_json(calls[-1])["choices"][0]["delta"]["tool_calls"]
    assert last == [{"index": 0, "function": {"arguments": "<SEC"}}]


async def test_responses_function_call_arguments_are_json_escaped() -> None:
    """Responses API tool calls: argument deltas are a JSON channel like chat's."""
    def event(kind: str, **fields: Any) -> bytes:
        return b"data: " + orjson.dumps({"type": kind, "output_index": 1, **fields}) + b"\n\n"

    out = await run([event("response.function_call_arguments.delta", delta='{"pw": "<SECRE'),
                     event("response.function_call_arguments.delta", delta='T_1>"}'),
                     event("response.function_call_arguments.done",
                           arguments='{"pw": "<SECRET_1>"}')])
    deltas = "".join(event_json(c)["delta"] for c in out[:2])
    assert orjson.loads(deltas) == {"pw": 'p"w\\rd'}
    assert orjson.loads(event_json(out[2])["arguments"]) == {"pw": 'p"w\\rd'}


async def test_other_delta_fields_are_restored_as_in_a_json_answer() -> None:
    """OpenRouter streams reasoning in `reasoning_details` as well as `reasoning`: a
    placeholder there is restored, as it is in the same answer sent as JSON."""
    out = await run([chat({"reasoning_details": [{"type": "reasoning.text",
                                                  "text": "write to <EMAIL_1>"}]}),
                     chat({}, "stop")])
    data = event_json(out[0])
    assert isinstance(data, dict)
    assert data["choices"][0]["delta"]["reasoning_details"][0]["text"] == \
        "write to jane@example.com"
