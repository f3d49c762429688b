"""What may be stored: a stream is stored only when it ended cleanly and every data line is a
JSON object (or [DONE]); an upstream glitch in the middle makes it a miss, never an entry."""

from __future__ import annotations

import orjson
import pytest

from sidecar.cache.fill import stream_entry
from tests.fakes.calls import make_call
from tests.fakes.upstream import chat_chunks

GOOD = [b"data: " + orjson.dumps(e) + b"\n\n" for e in chat_chunks("m", ["a", "b"])]
DONE = [b"data: [DONE]\n\n"]


def entry_of(chunks: list[bytes]) -> object:
    call = make_call(model="m")
    call.answer.finish_reason = "stop"
    return stream_entry(call, chunks, now=0.0, ttl=60.0, max_bytes=1 << 20)


@pytest.mark.parametrize(("chunks", "stored"), [
    (GOOD + DONE, True),
    ([b"".join(GOOD + DONE)], True),  # several events in one chunk
    ([e.replace(b"\n\n", b"\r\n\r\n") for e in GOOD + DONE], True),  # CRLF framing
    ([b": keep-alive\n\n", *GOOD, *DONE], True),  # a comment is dropped, not judged
    ([b"event: message\ndata: " + GOOD[0][6:], *GOOD[1:], *DONE], True),  # named events
    ([GOOD[0], b"data: <html>oops</html>\n\n", *GOOD[1:], *DONE], False),
    ([GOOD[0], b'data: {"id": "cut', b"\n\n", *GOOD[1:], *DONE], False),  # truncated JSON
    ([GOOD[0], b"data: plain text\r\n\r\n", *GOOD[1:], *DONE], False),
    (GOOD, False),  # no [DONE]
], ids=["events", "one-chunk", "crlf", "comment", "named", "html", "truncated", "text",
        "no-done"])
def test_a_stream_is_stored_only_when_every_data_line_is_json(chunks: list[bytes],
                                                              stored: bool) -> None:
    """A data line that is not a JSON object (HTML, text, a cut event) is never stored."""
    assert (entry_of(chunks) is not None) is stored
