"""The relay (`send_reply` in sidecar/handler.py): a Reply written to a real client over a real
loopback socket: a whole body, a stream, a stream the upstream breaks before or after its
first event (an event stream ends with an error event, any other stream is cut), and a client
that leaves mid-stream. Each case checks what the client got and what the Call says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
import structlog
from aiohttp import web
from multidict import CIMultiDict

from sidecar.call import Call, Reply
from sidecar.errors import UpstreamUnavailable
from sidecar.handler import send_reply
from tests.fakes.calls import make_call
from tests.fakes.waits import wait_until

EVENT = b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
BROKEN = UpstreamUnavailable("The upstream closed the connection mid-answer.")


class Chunks:
    """A reply's chunks: each item is yielded, or raised when it is an exception; `hold`
    (an index) waits for `release` before that item. Records whether it was closed."""

    def __init__(self, *items: bytes | Exception, hold: int | None = None) -> None:
        self.items = list(items)
        self.hold = hold
        self.release = asyncio.Event()
        self.closed = False
        self._next = 0

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        if self._next >= len(self.items):
            raise StopAsyncIteration
        if self._next == self.hold:
            await self.release.wait()
        item = self.items[self._next]
        self._next += 1
        if isinstance(item, Exception):
            raise item
        return item

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class Relay:
    """A server whose one route relays `reply` for a fresh Call, kept with its request."""

    url: str = ""
    reply: Reply | None = None
    calls: list[Call] = field(default_factory=list)
    requests: list[web.Request] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        call = make_call()
        call.begin_attempt("up", "m", 0.0)  # the answer came from provider "up"
        self.calls.append(call)
        self.requests.append(request)
        assert self.reply is not None
        try:
            return await send_reply(request, call, self.reply)
        finally:
            self.done.set()

    @property
    def call(self) -> Call:
        return self.calls[-1]


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    """The relay on a loopback port. handler_cancellation off: a client that leaves shows as a
    failed write, which is what send_reply itself must handle."""
    served = Relay()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", served.handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    served.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
    yield served
    await runner.cleanup()


def sse(chunks: Chunks) -> Reply:
    return Reply(200, CIMultiDict({"Content-Type": "text/event-stream"}), chunks=chunks, sse=True)


async def test_a_body_is_sent_whole_with_the_sidecars_headers(relay: Relay) -> None:
    """A whole body reaches the client with Server, the request id and who answered; the Call
    records the status, the bytes sent and when the first byte went."""
    relay.reply = Reply(201, CIMultiDict({"Content-Type": "application/json"}), body=b'{"a":1}')
    async with aiohttp.ClientSession() as http, http.post(relay.url) as response:
        assert (response.status, await response.read()) == (201, b'{"a":1}')
        assert response.headers["Server"] == "llm-sidecar"
        assert response.headers["x-sidecar-request-id"] == relay.call.request_id
        assert (response.headers["x-sidecar-provider"],
                response.headers["x-sidecar-attempts"]) == ("up", "1")
    call = relay.call
    assert (call.status, call.bytes_out, call.outcome) == (201, 7, "ok")
    assert call.first_byte_at is not None


async def test_a_stream_is_relayed_event_by_event_then_closed(relay: Relay) -> None:
    """Each chunk is written as it comes; at the end the stream is closed and the Call counts
    every byte."""
    chunks = Chunks(EVENT, EVENT, b"data: [DONE]\n\n")
    relay.reply = sse(chunks)
    async with aiohttp.ClientSession() as http, http.post(relay.url) as response:
        body = await response.read()
    assert body == EVENT * 2 + b"data: [DONE]\n\n"
    await relay.done.wait()
    assert (relay.call.outcome, relay.call.bytes_out) == ("ok", len(body))
    assert chunks.closed


@pytest.mark.parametrize("events_before", [0, 1], ids=["before_the_first_event", "mid_stream"])
async def test_an_event_stream_the_upstream_breaks_ends_with_an_error_event(
        relay: Relay, events_before: int) -> None:
    """The upstream breaking, before its first event or after one, ends an event stream with
    a final error event the SDKs raise; outcome upstream_broke; the stream is closed."""
    chunks = Chunks(*[EVENT] * events_before, BROKEN)
    relay.reply = sse(chunks)
    async with aiohttp.ClientSession() as http, http.post(relay.url) as response:
        assert response.status == 200
        body = await response.read()
    assert body.startswith(EVENT * events_before)
    last = body[len(EVENT) * events_before:]
    assert last.startswith(b"data: ") and last.endswith(b"\n\n")
    error = orjson.loads(last[6:])["error"]
    assert error["code"] == "upstream_unavailable" and "mid-answer" in error["message"]
    await relay.done.wait()
    call = relay.call
    assert (call.status, call.outcome, call.bytes_out) == (200, "upstream_broke", len(body))
    assert chunks.closed


@pytest.mark.parametrize("chunks_before", [0, 1], ids=["before_the_first_chunk", "mid_body"])
async def test_any_other_stream_the_upstream_breaks_is_cut(relay: Relay,
                                                          chunks_before: int) -> None:
    """A stream that is not an event stream cannot carry an error event: the connection is
    aborted, so the client cannot take the truncated body for a whole one."""
    chunks = Chunks(*[b"part of a file"] * chunks_before, BROKEN)
    relay.reply = Reply(200, CIMultiDict({"Content-Type": "application/octet-stream"}),
                        chunks=chunks)
    async with aiohttp.ClientSession() as http, http.post(relay.url) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    await relay.done.wait()
    assert relay.call.outcome == "upstream_broke"
    assert relay.call.bytes_out == len(b"part of a file") * chunks_before
    assert chunks.closed


async def test_a_client_gone_mid_stream_closes_the_stream(relay: Relay) -> None:
    """The client leaves after the first event: the next write fails, outcome is
    client_disconnected, and the stream is closed at once (which closes the upstream's)."""
    chunks = Chunks(EVENT, EVENT, EVENT, hold=1)
    relay.reply = sse(chunks)
    with structlog.testing.capture_logs() as logged:
        async with aiohttp.ClientSession() as http:
            response = await http.post(relay.url)
            assert await response.content.readuntil(b"\n\n") == EVENT
            response.close()  # the client leaves
        request = relay.requests[-1]
        await wait_until(lambda: request.transport is None or request.transport.is_closing(),
                         "the server saw the client leave")
        chunks.release.set()
        await asyncio.wait_for(relay.done.wait(), timeout=10)
    call = relay.call
    assert (call.status, call.outcome, call.bytes_out) == (200, "client_disconnected", len(EVENT))
    assert chunks.closed
    assert logged == []  # a client leaving is no failure of the sidecar's
