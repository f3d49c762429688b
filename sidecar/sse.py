"""Server-sent events: framing a byte stream into whole events, and building events.

The relay never holds more than one partial event: `EventFramer.feed` returns every complete
event as soon as its terminating blank line arrives and keeps only the unfinished tail. So an
SSE reply's chunks are *event-aligned* (each chunk is one or more whole events), which lets a
stage look at events without re-buffering and lets the relay append a clean error event when
the upstream breaks mid-stream. Bytes are never rewritten: what the upstream sent is what the
client gets, malformed JSON included.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Protocol

import orjson

DONE = b"data: [DONE]\n\n"
_BOUNDARIES = (b"\r\n\r\n", b"\n\n", b"\r\r")


def _last_boundary_end(buf: bytes) -> int:
    """Index just past the last event terminator in `buf`, or 0 if there is none."""
    end = 0
    for sep in _BOUNDARIES:
        i = buf.rfind(sep)
        if i >= 0:
            end = max(end, i + len(sep))
    return end


class EventFramer:
    """Turns arbitrary network chunks into chunks of whole events."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> bytes:
        """Return the complete events now available (possibly b""), keep the rest."""
        buf = self._tail + data if self._tail else data
        end = _last_boundary_end(buf)
        self._tail = buf[end:]
        return buf[:end]

    @property
    def pending(self) -> bytes:
        """An unfinished event still waiting for its terminator."""
        return self._tail


def split_events(chunk: bytes) -> list[bytes]:
    """Split event-aligned bytes into single events (each with its terminator)."""
    if chunk.find(b"\n\n") == len(chunk) - 2 and b"\r" not in chunk:
        return [chunk]  # the usual chunk, one event: 0.8 µs instead of 1.35 µs
    events: list[bytes] = []
    start = 0
    while start < len(chunk):
        best = -1
        best_len = 0
        for sep in _BOUNDARIES:
            i = chunk.find(sep, start)
            if i >= 0 and (best < 0 or i < best):
                best, best_len = i, len(sep)
        if best < 0:
            events.append(chunk[start:])
            break
        events.append(chunk[start:best + best_len])
        start = best + best_len
    return events


def event_data(event: bytes) -> bytes | None:
    """The joined `data:` lines of one event, or None if it has none (comments, keep-alives)."""
    if event.startswith(b"data: ") and event.find(b"\n") == len(event) - 2 and (
            b"\r" not in event):
        return event[6:-2]  # the usual event, one data line: 0.8 µs instead of 1.4 µs
    lines = [
        line[5:].removeprefix(b" ")
        for line in event.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        if line.startswith(b"data:")
    ]
    return b"\n".join(lines) if lines else None


def encode(payload: Any) -> bytes:
    """One `data:` event carrying `payload` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class Chunks(Protocol):
    """A closable stream of byte chunks (an upstream Body, an async generator)."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


async def frame_events(chunks: Chunks) -> AsyncGenerator[bytes, None]:
    """Re-chunk a byte stream so every chunk is whole events; a trailing unterminated event is
    passed on at a clean end of stream and dropped if the stream breaks."""
    framer = EventFramer()
    try:
        async for data in chunks:
            if events := framer.feed(data):
                yield events
        if framer.pending:
            yield framer.pending
    finally:
        await chunks.aclose()


class EventTranslator(Protocol):
    """Turns one format's events into another's, event by event (upstream/anthropic/stream.py,
    upstream/messages/stream.py)."""

    @property
    def done(self) -> bool:
        """The answer is complete: what follows is read and dropped."""
        ...

    @property
    def error(self) -> BaseException | None:
        """An error event arrived: raised after its output is sent."""
        ...

    def feed(self, chunk: bytes) -> bytes: ...


async def translate_events(chunks: Chunks, translator: EventTranslator,
                           ending: Callable[[], bytes]) -> AsyncGenerator[bytes, None]:
    """`chunks` framed into whole events and fed to `translator`, its output passed on as it
    comes. After the answer is complete the rest is read to the end (so the connection can go
    back to the pool); a stream that ends before it calls `ending()`, which returns the last
    events to send or raises."""
    events = frame_events(chunks)
    try:
        async for chunk in events:
            if translator.done:
                continue
            if out := translator.feed(chunk):
                yield out
            if translator.error is not None:
                raise translator.error
    finally:
        await events.aclose()
    if not translator.done and (out := ending()):
        yield out


# Given one whole event (with its terminator), return it, a replacement, or None to drop it.
EventEditor = Callable[[bytes], bytes | None]


async def edit_events(chunks: AsyncIterator[bytes], edit: EventEditor
                      ) -> AsyncGenerator[bytes, None]:
    """Rewrite or drop single events of an event-aligned stream, keeping every event whole.

    For stages that must change what the client sees (restoring redacted values, removing a
    usage chunk the client did not ask for, adding `usage.cost`). Each incoming chunk yields at
    most one outgoing chunk, so pacing is kept; a chunk whose events are all dropped yields
    nothing. A chunk holding one event (the usual case) is not split or joined.
    """
    async for chunk in chunks:
        events = split_events(chunk)
        if len(events) == 1:
            out = edit(chunk)
            if out:
                yield out
            continue
        edited = [e for e in map(edit, events) if e]
        if edited:
            yield b"".join(edited)


def event_json(event: bytes) -> Any:
    """The JSON payload of a `data:` event, or None (no data, `[DONE]`, or not JSON)."""
    data = event_data(event)
    if data is None or data == b"[DONE]":
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
