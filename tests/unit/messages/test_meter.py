"""Spend's meter on Anthropic streams: counting, and the cap's proper ending."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from sidecar.call import Answer, Usage
from sidecar.messages.meter import MessagesMeter
from tests.fakes.anthropic import encode_event, message, stream_events, text


async def _chunks(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event


def _meter(limit: int | None) -> MessagesMeter:
    return MessagesMeter(limit=limit, ending_usage=lambda: {"completion_tokens": 9})


async def test_cap_closes_the_block_and_the_message() -> None:
    """At the limit, the next output event is not sent: content_block_stop, message_delta
    max_tokens, message_stop end the stream instead."""
    events = [encode_event(e) for e in stream_events(message(text("a b c d e f")), parts=6)]
    meter = _meter(2)
    out = b"".join([c async for c in meter.watch(_chunks(events))])
    kinds = [orjson.loads(line[6:])["type"] for line in out.split(b"\n")
             if line.startswith(b"data: ")]
    assert kinds.count("content_block_delta") == 2
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert meter.cut and b'"stop_reason":"max_tokens"' in out


async def test_uncapped_stream_passes_untouched_and_is_counted() -> None:
    """Without a cap every event passes as it came; output is counted by its bytes."""
    events = [encode_event(e) for e in stream_events(message(text("héllo")), parts=1)]
    meter = _meter(None)
    out = [c async for c in meter.watch(_chunks(events))]
    assert out == events and meter.events == 1 and meter.text_bytes == len("héllo".encode())


def test_billable_only_once_the_stream_said_how_it_ended() -> None:
    """A stream cut before message_delta is billed as estimated, from message_start's real
    input count."""
    meter = _meter(None)
    started = Answer(usage=Usage(prompt_tokens=40, completion_tokens=1))
    assert meter.billable(started) is None and meter.prompt_tokens == 40
    ended = Answer(usage=Usage(prompt_tokens=40, completion_tokens=12), finish_reason="stop")
    assert meter.billable(ended) == ended.usage
