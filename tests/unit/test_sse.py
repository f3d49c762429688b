"""SSE framing: whole events out as soon as they are complete, bytes never rewritten."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from sidecar import sse


def test_complete_events_pass_at_once() -> None:
    """A chunk of whole events comes out whole, in the same call."""
    framer = sse.EventFramer()
    assert framer.feed(b"data: 1\n\ndata: 2\n\n") == b"data: 1\n\ndata: 2\n\n"
    assert framer.pending == b""


def test_partial_event_waits_for_its_terminator() -> None:
    """An event split across chunks is released when its blank line arrives."""
    framer = sse.EventFramer()
    assert framer.feed(b"data: 1\n\ndata: {\"a\"") == b"data: 1\n\n"
    assert framer.feed(b": 1}\n") == b""
    assert framer.feed(b"\ndata: 3") == b'data: {"a": 1}\n\n'
    assert framer.pending == b"data: 3"


@pytest.mark.parametrize("sep", [b"\r\n\r\n", b"\n\n", b"\r\r"])
def test_all_line_endings_terminate_events(sep: bytes) -> None:
    """CRLF, LF and CR event terminators are all recognised."""
    framer = sse.EventFramer()
    assert framer.feed(b"data: x" + sep + b"data: y") == b"data: x" + sep


def test_split_crlf_terminator() -> None:
    """A CRLF CRLF terminator split across chunks still ends the event once."""
    framer = sse.EventFramer()
    assert framer.feed(b"data: x\r\n") == b""
    assert framer.feed(b"\r\n") == b"data: x\r\n\r\n"


def test_split_events_and_data() -> None:
    """split_events yields single events; event_data joins data lines and skips comments."""
    chunk = b": keep-alive\n\ndata: a\ndata: b\n\nevent: x\r\ndata:c\r\n\r\n"
    events = sse.split_events(chunk)
    assert events == [b": keep-alive\n\n", b"data: a\ndata: b\n\n", b"event: x\r\ndata:c\r\n\r\n"]
    assert [sse.event_data(e) for e in events] == [None, b"a\nb", b"c"]


def test_encode() -> None:
    """encode builds one data event carrying compact JSON."""
    assert sse.encode({"a": [1, 2]}) == b'data: {"a":[1,2]}\n\n'


async def _chunks(*parts: bytes, fail: Exception | None = None) -> AsyncGenerator[bytes, None]:
    for part in parts:
        yield part
    if fail is not None:
        raise fail


async def test_frame_events_passes_a_trailing_unterminated_event_at_clean_end() -> None:
    """At a clean end of stream an unterminated last event is still delivered."""
    got = [c async for c in sse.frame_events(_chunks(b"data: 1\n\nda", b"ta: 2"))]
    assert got == [b"data: 1\n\n", b"data: 2"]


async def test_frame_events_drops_a_partial_event_when_the_stream_breaks() -> None:
    """When the stream breaks, a half event is not delivered (the error event follows clean)."""
    got: list[bytes] = []
    with pytest.raises(ConnectionError):
        async for chunk in sse.frame_events(_chunks(b"data: 1\n\ndata: {\"par",
                                                    fail=ConnectionError())):
            got.append(chunk)
    assert got == [b"data: 1\n\n"]


def _drop_usage_and_shout(event: bytes) -> bytes | None:
    data = sse.event_json(event)
    if isinstance(data, dict) and "usage" in data:
        return None
    return event.replace(b"hi", b"HI")


async def test_edit_events_rewrites_and_drops_whole_events() -> None:
    """An editor sees whole events: it can rewrite one, drop one, and keep the rest as sent."""
    stream = _chunks(b'data: {"c":"hi"}\n\n', b'data: {"c":"x"}\n\ndata: {"usage":{}}\n\n',
                     b'data: {"usage":{}}\n\n', sse.DONE)
    got = [c async for c in sse.edit_events(stream, _drop_usage_and_shout)]
    assert got == [b'data: {"c":"HI"}\n\n', b'data: {"c":"x"}\n\n', sse.DONE]


def test_event_json() -> None:
    """event_json gives the JSON of a data event; None for [DONE], comments and non-JSON."""
    assert sse.event_json(b'data: {"a":1}\n\n') == {"a": 1}
    assert sse.event_json(sse.DONE) is None
    assert sse.event_json(b": keep-alive\n\n") is None
    assert sse.event_json(b"data: {oops\n\n") is None
