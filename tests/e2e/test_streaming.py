"""Server-sent events: relayed event by event, cancelled with the client, ended cleanly on
upstream failure. No test here measures time: each waits on events with a generous timeout,
so a sidecar that buffered or hung fails by timing out."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import orjson
import pytest

from sidecar.deps import DEPS
from tests.conftest import RunningSidecar, StartSidecar
from tests.fakes.profiles import ALL
from tests.fakes.upstream import FakeUpstream, Script, chat_chunks
from tests.fakes.waits import wait_idle

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

CHAT = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}


async def read_event(response: aiohttp.ClientResponse) -> bytes:
    """Read one whole SSE event (up to its blank line)."""
    lines = []
    while (line := await asyncio.wait_for(response.content.readline(), timeout=10)) != b"\n":
        assert line, "stream ended"
        lines.append(line)
    return b"".join(lines)


async def test_first_event_arrives_while_upstream_still_generating(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """The client reads the first token before the upstream sends the second one."""
    # The upstream waits for the client's confirmation, so buffering in between deadlocks.
    client_has_first = asyncio.Event()
    upstream.script("/chat/completions", Script(
        sse=chat_chunks("m", ["first", "second"]), wait_before={1: client_has_first}))
    async with http.post(sidecar.v1 + "/chat/completions", json=CHAT) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        first = await read_event(response)
        assert b'"content":"first"' in first
        client_has_first.set()
        rest = await asyncio.wait_for(response.read(), timeout=10)
    assert b'"content":"second"' in rest
    assert rest.endswith(b"data: [DONE]\n\n")


async def test_stream_is_relayed_byte_for_byte(sidecar: RunningSidecar, upstream: FakeUpstream,
                                               http: aiohttp.ClientSession) -> None:
    """Comments, CRLF events and odd fields reach the client exactly as the upstream sent them."""
    events = [b": OPENROUTER PROCESSING\n\n", b"event: message\r\ndata: {\"a\":1}\r\n\r\n",
              b"id: 7\ndata: {\"b\":2}\n\n"]
    upstream.script("/chat/completions", Script(sse=list(events), sse_interval_s=0.01))
    async with http.post(sidecar.v1 + "/chat/completions", json=CHAT) as response:
        body = await response.read()
    assert body == b"".join(events) + b"data: [DONE]\n\n"


async def test_malformed_chunk_is_relayed_and_the_sidecar_carries_on(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession,
        async_client: openai.AsyncOpenAI) -> None:
    """A chunk that is not JSON is relayed as sent; the stream and the next request go on."""
    upstream.script("/chat/completions", Script(sse=[b"data: {not json\n\n",
                                                     *chat_chunks("m", ["ok"])]))
    async with http.post(sidecar.v1 + "/chat/completions", json=CHAT) as response:
        body = await response.read()
    assert body.startswith(b"data: {not json\n\n")
    assert body.endswith(b"data: [DONE]\n\n")
    answer = await async_client.chat.completions.create(model="m", messages=[])
    assert answer.choices[0].message.content


async def test_upstream_drop_mid_stream_ends_with_an_error_event(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """An upstream break mid-stream ends the client's stream with one error event, no [DONE]."""
    upstream.script("/chat/completions", Script(
        sse=[*chat_chunks("m", ["a", "b", "c"])], drop_after=2))
    async with http.post(sidecar.v1 + "/chat/completions", json=CHAT) as response:
        body = await asyncio.wait_for(response.read(), timeout=10)
    events = body.split(b"\n\n")
    assert events[-1] == b""
    assert len(events) == 4  # two chunks, the error, and the empty tail after the last \n\n
    error = orjson.loads(events[2].removeprefix(b"data: "))
    assert error["error"]["code"] == "upstream_unavailable"
    assert "broke the connection while streaming" in error["error"]["message"]
    assert b"[DONE]" not in body


async def test_sdk_raises_on_a_broken_stream(sidecar: RunningSidecar, upstream: FakeUpstream,
                                             async_client: openai.AsyncOpenAI) -> None:
    """The OpenAI SDK turns the final error event into an APIError after the tokens so far."""
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a", "b"]), drop_after=1))
    stream = await async_client.chat.completions.create(**CHAT)
    seen = []
    with pytest.raises(openai.APIError, match="broke the connection"):
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content)
    assert seen == ["a"]


async def test_partial_event_is_not_glued_to_the_error(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """Half an event sent before the break is dropped, so the error event parses cleanly."""
    upstream.script("/chat/completions", Script(
        sse=[b"data: {\"whole\":1}\n\n", b"data: {\"half", b"tail"], drop_after=2))
    async with http.post(sidecar.v1 + "/chat/completions", json=CHAT) as response:
        body = await asyncio.wait_for(response.read(), timeout=10)
    first, error, tail = body.split(b"\n\n")
    assert first == b'data: {"whole":1}'
    assert orjson.loads(error.removeprefix(b"data: "))["error"]["type"] == "upstream_error"
    assert tail == b""


async def test_stalled_upstream_times_out_mid_stream(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        http: aiohttp.ClientSession) -> None:
    """An upstream silent for longer than read_timeout_s ends the stream with upstream_timeout."""
    sidecar = await start_sidecar({"upstream": {"read_timeout_s": 0.3}})
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a", "b"]),
                                                stall_after=1))
    async with http.post(sidecar.v1 + "/chat/completions", json=CHAT) as response:
        body = await asyncio.wait_for(response.read(), timeout=10)
    error = orjson.loads(body.split(b"\n\n")[1].removeprefix(b"data: "))
    assert error["error"]["code"] == "upstream_timeout"


async def test_client_disconnect_cancels_the_upstream_stream(
        sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    """When the client goes away mid-stream, the sidecar closes its upstream request."""
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a"] * 1000),
                                                sse_interval_s=0.05))
    async with aiohttp.ClientSession() as session:
        response = await session.post(sidecar.v1 + "/chat/completions", json=CHAT)
        await read_event(response)
        response.close()  # drop the connection mid-stream
    await asyncio.wait_for(upstream.aborted.wait(), timeout=10)


async def test_client_disconnect_before_headers_cancels_the_upstream_request(
        sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    """A client that gives up while the upstream is still thinking cancels that request too."""
    upstream.script("/chat/completions", Script(delay_s=0.2, sse=chat_chunks("m", ["a"] * 50),
                                                sse_interval_s=0.05))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(session.post(sidecar.v1 + "/chat/completions", json=CHAT),
                                   timeout=0.05)
    await asyncio.wait_for(upstream.aborted.wait(), timeout=10)


async def test_disconnects_are_logged_and_counted(sidecar: RunningSidecar,
                                                  upstream: FakeUpstream,
                                                  http: aiohttp.ClientSession) -> None:
    """A request whose client went away still gets its access line and its metrics."""
    upstream.script("/chat/completions",
                    Script(sse=chat_chunks("m", ["a"] * 1000), sse_interval_s=0.05),
                    Script(delay_s=0.5, json={}))
    async with aiohttp.ClientSession() as session:
        response = await session.post(sidecar.v1 + "/chat/completions", json=CHAT)
        await read_event(response)
        response.close()  # mid-stream
        with pytest.raises(asyncio.TimeoutError):  # before the answer's headers
            await asyncio.wait_for(session.post(sidecar.v1 + "/chat/completions",
                                                json={"model": "m"}), timeout=0.1)
    await wait_idle(sidecar.app)  # the sidecar notices the disconnects asynchronously
    text = sidecar.app[DEPS].metrics.exposition().decode()
    assert ('llm_sidecar_stream_interruptions_total{endpoint="chat/completions",'
            'outcome="client_disconnected"} 2.0') in text
    assert 'llm_sidecar_requests_total{endpoint="chat/completions",status="200"} 1.0' in text
    assert 'llm_sidecar_requests_total{endpoint="chat/completions",status="499"} 1.0' in text
