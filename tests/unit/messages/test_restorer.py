"""Placeholders restored in Anthropic answers: JSON, and streams split anywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from sidecar.messages.replay import fold
from sidecar.messages.restorer import restore_body, restore_stream
from sidecar.privacy.restorer import Restorer
from tests.fakes.anthropic import encode_event, message, stream_events, text, thinking, tool_use

ORIGINALS = {"<EMAIL_1>": 'a"b@example.com'}  # a quote: JSON escaping must be right
VALUE = 'a"b@example.com'


def _answer() -> dict[str, Any]:
    return message(thinking("about <EMAIL_1>", "sig"), text("to <EMAIL_1>."),
                   tool_use("t", "send", {"to": "<EMAIL_1>", "list": ["<EMAIL_1>"]}))


def test_json_message() -> None:
    """Text and tool inputs get the value; thinking stays as the model wrote it (signed)."""
    out = orjson.loads(restore_body(Restorer(ORIGINALS), orjson.dumps(_answer())))
    assert out["content"][0]["thinking"] == "about <EMAIL_1>"
    assert out["content"][1]["text"] == f"to {VALUE}."
    assert out["content"][2]["input"] == {"to": VALUE, "list": [VALUE]}


async def _chunks(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event


async def test_stream_split_one_character_at_a_time() -> None:
    """Every delta a character long: no placeholder piece reaches the client, and the
    stream folds into the restored message."""
    events = [encode_event(e) for e in stream_events(_answer(), parts=200)]
    out = b"".join([c async for c in restore_stream(Restorer(ORIGINALS), _chunks(events))])
    folded = fold(out)
    assert folded["content"][1]["text"] == f"to {VALUE}."
    assert folded["content"][2]["input"] == {"to": VALUE, "list": [VALUE]}
    assert folded["content"][0]["thinking"] == "about <EMAIL_1>"
    assert b"EMAIL_1" not in out.replace(b"about <EMAIL_1>", b"")
