"""The floor relay, on real sockets: whole answers go back in one piece with their length,
event streams chunk by chunk, and the request reaches the upstream as the client sent it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from bench.floor import create_floor
from tests.fakes.upstream import FakeUpstream, Script


@pytest.fixture
async def floor(upstream: FakeUpstream) -> AsyncIterator[str]:
    runner = web.AppRunner(create_floor(upstream.url), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize("content_type", ["application/json", "text/plain; charset=utf-8"])
async def test_whole_answers_go_back_with_their_length(
        upstream: FakeUpstream, floor: str, http: aiohttp.ClientSession,
        content_type: str) -> None:
    """A non-stream answer comes back byte for byte with Content-Length, never chunked."""
    payload = orjson.dumps({"object": "chat.completion", "n": list(range(50))})
    upstream.script("/v1/chat/completions", Script(
        status=201, body=payload, headers={"Content-Type": content_type, "x-upstream": "yes"}))
    async with http.post(f"{floor}/v1/chat/completions", data=b"{}") as response:
        body = await response.read()
        assert response.status == 201
        assert body == payload
        assert response.headers["Content-Length"] == str(len(payload))
        assert "Transfer-Encoding" not in response.headers
        assert response.headers["x-upstream"] == "yes"
        assert response.headers["Content-Type"] == content_type


async def test_event_streams_are_relayed_chunk_by_chunk(
        upstream: FakeUpstream, floor: str, http: aiohttp.ClientSession) -> None:
    """The first event reaches the client while the upstream still holds the second."""
    gate = asyncio.Event()
    upstream.script("/v1/chat/completions", Script(
        sse=[b"data: one\n\n", b"data: two\n\n"], wait_before={1: gate}))
    async with http.post(f"{floor}/v1/chat/completions", data=b"{}") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        # a floor that buffered would hang here until the timeout, as the gate is shut
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), timeout=10)
        assert first == b"data: one\n\n"
        gate.set()
        rest = await response.read()
    assert rest == b"data: two\n\ndata: [DONE]\n\n"


async def test_requests_reach_the_upstream_as_sent(
        upstream: FakeUpstream, floor: str, http: aiohttp.ClientSession) -> None:
    """Method, path with query, body and end-to-end headers pass; hop-by-hop ones do not."""
    async with http.post(f"{floor}/v1/chat/completions?x=1", data=b'{"model":"m"}',
                         headers={"Authorization": "Bearer sk-1",
                                  "Proxy-Authorization": "Basic zzz"}) as response:
        await response.read()
    seen = upstream.last
    assert (seen.method, seen.path, seen.body) == ("POST", "/v1/chat/completions?x=1",
                                                   b'{"model":"m"}')
    assert seen.headers["Authorization"] == "Bearer sk-1"
    assert "Proxy-Authorization" not in seen.headers
