"""The consumer plays the handler's part for a fork: status, first byte, bytes, the outcome,
then the finishers, once, on every path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from multidict import CIMultiDict

from sidecar.call import Call, Reply
from sidecar.compare.consume import Consumed, consume
from sidecar.errors import UpstreamUnavailable
from tests.fakes.calls import make_call

Seen = list[tuple[str, int, int]]


def watched() -> tuple[Call, Seen]:
    """A call whose finisher notes (outcome, status, bytes_out) when it runs."""
    call = make_call()
    seen: Seen = []
    call.finishers.append(lambda c: seen.append((c.outcome, c.status, c.bytes_out)))
    return call, seen


def stream(*chunks: bytes, fail: Exception | None = None) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk
        if fail is not None:
            raise fail
    return gen()


async def test_a_json_answer() -> None:
    """A whole body: its status and size, outcome ok, the finishers run once."""
    call, seen = watched()

    async def pipeline(c: Call) -> Reply:
        return Reply(201, CIMultiDict(), body=b'{"x": 1}')

    got = await consume(pipeline, call, Consumed())
    assert (got.status, got.body, got.streamed, got.error) == (201, b'{"x": 1}', False, None)
    assert seen == [("ok", 201, 8)] and call.first_byte_at is not None
    assert got.ended is not None


async def test_a_stream_is_read_and_each_chunk_passed_on() -> None:
    """Each chunk goes to on_chunk as it comes; the bytes are kept."""
    call, seen = watched()
    passed: list[bytes] = []

    async def pipeline(c: Call) -> Reply:
        return Reply(200, CIMultiDict(), chunks=stream(b"data: 1\n\n", b"data: 2\n\n"), sse=True)

    got = await consume(pipeline, call, Consumed(), on_chunk=passed.append)
    assert passed == [b"data: 1\n\n", b"data: 2\n\n"] and got.streamed
    assert got.body == b"data: 1\n\ndata: 2\n\n" and seen == [("ok", 200, 18)]


@pytest.mark.parametrize(("fail", "outcome", "code"), [
    (UpstreamUnavailable("cut"), "upstream_broke", "upstream_unavailable"),
    (RuntimeError("bug"), "internal_error", "internal_error")])
async def test_a_stream_that_breaks(fail: Exception, outcome: str, code: str) -> None:
    """The upstream breaking mid-stream is upstream_broke (the breaker counts it); a bug is
    internal_error; what came before is kept."""
    call, seen = watched()

    async def pipeline(c: Call) -> Reply:
        return Reply(200, CIMultiDict(), chunks=stream(b"data: 1\n\n", fail=fail), sse=True)

    got = await consume(pipeline, call, Consumed())
    assert got.error is not None and got.error.code == code
    assert got.body == b"data: 1\n\n" and seen == [(outcome, 200, 9)]


async def test_a_pipeline_that_raises_is_a_500() -> None:
    """A bug before any answer becomes a 500 internal_error naming the request id."""
    call, seen = watched()

    async def pipeline(c: Call) -> Reply:
        raise RuntimeError("bug")

    got = await consume(pipeline, call, Consumed())
    assert got.status == 500 and got.error is not None and call.request_id in got.error.message
    assert seen[0][:2] == ("ok", 500)


@pytest.mark.parametrize(("cut", "outcome"), [(False, "client_disconnected"),
                                              (True, "cancelled")])
async def test_a_cut_fork_is_finished_with_its_outcome(cut: bool, outcome: str) -> None:
    """Cancelled while waiting for its answer: client_disconnected (its reader gave up) or
    cancelled (the shutdown), status 499, the finishers run."""
    call, seen = watched()
    started = asyncio.Event()

    async def pipeline(c: Call) -> Reply:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("never")

    task = asyncio.ensure_future(consume(pipeline, call, Consumed(), cut=lambda: cut))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [(outcome, 499, 0)]
