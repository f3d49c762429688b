"""One place where a request ends: on every path a stage's finisher runs exactly once, after the
outcome is final, one access line is written, and no upstream connection stays checked out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict

from sidecar.call import Call, Next, Reply
from sidecar.deps import DEPS
from sidecar.runtime import RUNTIME
from tests.conftest import RunningSidecar, StartSidecar, free_port
from tests.fakes.calls import FinishRecorder
from tests.fakes.profiles import ALL
from tests.fakes.upstream import FakeUpstream, Script, chat_chunks
from tests.fakes.waits import wait_idle, wait_until

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

CHAT = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
STREAM = {**CHAT, "stream": True}


class SwapStream:
    """A stage that drops a streamed answer for a body of its own without closing the stream
    (as a cache or a guard might), so only the finishers can give the connection back."""

    name = "swapstream"
    reads_answer = False

    async def __call__(self, call: Call, next: Next) -> Reply:
        await next(call)
        return Reply(200, CIMultiDict({"Content-Type": "application/json"}), body=b"{}")


class Buggy:
    """A stage with a bug: before the upstream, or in its chunk work mid-stream."""

    name = "buggy"
    reads_answer = False

    def __init__(self, where: str) -> None:
        self.where = where

    async def __call__(self, call: Call, next: Next) -> Reply:
        if self.where == "request":
            raise RuntimeError("bug in a stage")
        reply = await next(call)
        assert reply.chunks is not None
        reply.chunks = self._fail_after_first(reply.chunks)
        return reply

    @staticmethod
    async def _fail_after_first(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            yield chunk
            raise RuntimeError("bug in chunk work")


async def read_event(response: aiohttp.ClientResponse) -> None:
    while (line := await asyncio.wait_for(response.content.readline(), timeout=10)) != b"\n":
        assert line


@dataclass
class Path:
    name: str
    outcome: str
    status: int
    drive: Callable[[RunningSidecar, FakeUpstream], Awaitable[None]]
    stages: tuple[object, ...] = ()
    config: dict[str, object] | None = None


async def body(sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(sidecar.v1 + "/chat/completions", json=CHAT) as response:
            await response.read()


async def stream_completed(sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(sidecar.v1 + "/chat/completions", json=STREAM) as response:
            assert (await response.read()).endswith(b"data: [DONE]\n\n")


async def stream_failed(sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(sidecar.v1 + "/chat/completions", json=STREAM) as response:
            assert b'"code":"internal_error"' in await response.read()


async def client_left_mid_stream(sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a"] * 1000),
                                                sse_interval_s=0.05))
    async with aiohttp.ClientSession() as session:
        response = await session.post(sidecar.v1 + "/chat/completions", json=STREAM)
        await read_event(response)
        response.close()


async def client_left_before_headers(sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    upstream.script("/chat/completions", Script(delay_s=5, json={}))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(session.post(sidecar.v1 + "/chat/completions", json=CHAT),
                                   timeout=0.2)


async def upstream_broke(sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a", "b"]), drop_after=1))
    async with aiohttp.ClientSession() as session:
        async with session.post(sidecar.v1 + "/chat/completions", json=STREAM) as response:
            assert b'"code":"upstream_unavailable"' in await response.read()


async def shutdown_cut(sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a", "b"]), stall_after=1))
    async with aiohttp.ClientSession() as session:
        response = await session.post(sidecar.v1 + "/chat/completions", json=STREAM)
        await read_event(response)
        sidecar.app[RUNTIME].cut_in_flight()
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(response.read(), timeout=10)
        response.close()


async def stream_swapped(sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a"] * 1000),
                                                sse_interval_s=0.05))
    await body(sidecar, upstream)


async def early_reply(sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(sidecar.v1 + "/chat/completions", data=b"{") as response:
            assert response.status == 401


async def upstream_refused(sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    await body(sidecar, upstream)


async def passthrough_stream(sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(sidecar.v1 + "/files?limit=1") as response:
            await response.read()


PATHS = [
    Path("body", "ok", 200, body),
    Path("stream_completed", "ok", 200, stream_completed),
    Path("client_left_mid_stream", "client_disconnected", 200, client_left_mid_stream),
    Path("client_left_before_headers", "client_disconnected", 499, client_left_before_headers),
    Path("upstream_broke", "upstream_broke", 200, upstream_broke),
    Path("shutdown_cut", "cancelled", 200, shutdown_cut),
    Path("stream_never_started", "ok", 200, stream_swapped, stages=(SwapStream(),)),
    Path("bug_before_upstream", "ok", 500, body, stages=(Buggy("request"),)),
    Path("bug_mid_stream", "internal_error", 200, stream_failed, stages=(Buggy("chunks"),)),
    Path("early_reply", "ok", 401, early_reply,
         config={"auth": {"required": True, "keys": [{"name": "a", "token": "t"}]}}),
    Path("upstream_refused", "ok", 502, upstream_refused,
         config={"upstream": {"url": f"http://127.0.0.1:{free_port()}"}}),
    Path("passthrough", "ok", 200, passthrough_stream),
]


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
async def test_finisher_runs_once_with_the_final_outcome(
        start_sidecar: StartSidecar, upstream: FakeUpstream, path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """On this path the finisher runs once, sees the final outcome and status, one access line
    is written, and the upstream pool has no connection left checked out."""
    recorder = FinishRecorder()
    sidecar = await start_sidecar(path.config, outer_stages=(recorder, *path.stages))
    await path.drive(sidecar, upstream)
    await wait_until(lambda: recorder.runs, "the finisher ran")  # disconnects arrive later
    # A second run could only come from the request's handler (or a cache flight): once none
    # is left, every run that will ever happen has happened.
    await wait_idle(sidecar.app)
    assert [(outcome, status) for _, outcome, status in recorder.runs] == [
        (path.outcome, path.status)]

    deps = sidecar.app[DEPS]
    connector = deps.upstream.session.connector
    assert connector is not None
    assert not connector._acquired, "an upstream connection is still checked out"

    deps.access.flush()
    request_id = recorder.runs[0][0]
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()
             if request_id in line and line.startswith("{")]
    assert len(lines) == 1
    assert (lines[0]["outcome"], lines[0]["status"]) == (path.outcome, path.status)


async def test_unknown_caller_gets_401_before_the_body_is_read(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """With auth.required, a caller without a key gets 401 while its 40 MiB upload is still
    being sent: the sidecar does not read (or gunzip) a body for a caller it refuses."""
    sidecar = await start_sidecar({"auth": {"required": True,
                                            "keys": [{"name": "a", "token": "t"}]}})
    sent = 0
    answered = asyncio.Event()

    async def upload() -> AsyncIterator[bytes]:
        """64 KiB, then the rest only if no answer came first (a sidecar that reads the whole
        body before it answers gets all 40 MiB: the wait is a bound, not a pace)."""
        nonlocal sent
        for index in range(40 * 16):
            if answered.is_set():
                return
            sent += 64 * 1024
            yield b"x" * (64 * 1024)
            if index == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(answered.wait(), timeout=10)

    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(sidecar.v1 + "/chat/completions", data=upload(),
                                    headers={"Content-Type": "application/json"}) as response:
                answered.set()
                status = response.status
        except aiohttp.ClientError:  # the sidecar may close the connection on the upload
            status = 401
            answered.set()
    assert status == 401
    assert sent < 40 * 1024 * 1024
    assert upstream.forwarded == []


async def test_server_header_advertises_no_versions(sidecar: RunningSidecar,
                                                    http: aiohttp.ClientSession) -> None:
    """Every response says `Server: llm-sidecar`, never Python's or aiohttp's version."""
    for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models"),
                         ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/nope")):
        async with http.request(method, sidecar.url + path,
                                json=CHAT if method == "POST" else None) as response:
            assert response.headers["Server"] == "llm-sidecar", path
