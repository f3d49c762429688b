"""Single-flight end to end: identical requests in flight at once cost one upstream call, and
whatever happens to the leader (an error, a broken stream, its client leaving), the others are
answered. The upstream holds its answer on an event until every request has joined, so no test
depends on timing."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from sidecar.cache.singleflight import Flights
from sidecar.deps import DEPS
from tests.conftest import RunningSidecar, StartSidecar
from tests.e2e.test_cache import CHAT, chat_calls, post
from tests.fakes.cache import from_chunks, from_completion, tool_answer, tool_chunks
from tests.fakes.upstream import FakeUpstream, Script, chat_chunks
from tests.fakes.waits import wait_until

N = 20
STREAM = {**CHAT, "stream": True}


@pytest.fixture
async def cached(start_sidecar: StartSidecar) -> RunningSidecar:
    return await start_sidecar()


def flights(sidecar: RunningSidecar) -> Flights:
    flights = sidecar.app[DEPS].flights
    assert flights is not None
    return flights


async def nothing_left(sidecar: RunningSidecar) -> None:
    """No flight, no follower, and no upstream connection checked out of the pool."""
    connector = sidecar.app[DEPS].upstream.session.connector
    assert connector is not None
    await wait_until(lambda: len(flights(sidecar)) == 0 and not connector._acquired,
                     "every flight is over and its connection back in the pool")
    assert flights(sidecar).followers() == 0


async def joined(sidecar: RunningSidecar, count: int) -> None:
    await wait_until(lambda: flights(sidecar).followers() >= count,
                     f"{count} requests follow the flight")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_concurrent_identical_requests_cost_one_upstream_call(
        cached: RunningSidecar, upstream: FakeUpstream, stream: bool) -> None:
    """20 identical requests at once: one upstream call; all 20 get the same answer through
    the SDK; 19 are collapsed (HIT, Cache-Status fwd=miss; collapsed)."""
    release = asyncio.Event()
    script = (Script(sse=tool_chunks(), wait_before={1: release}) if stream
              else Script(json=tool_answer(), hold=release))
    upstream.script("/chat/completions", script)
    async with openai.AsyncOpenAI(base_url=cached.v1, api_key="sk-client",
                                  max_retries=0) as sdk:
        async def one() -> tuple[str, dict[str, Any]]:
            raw = await sdk.chat.completions.with_raw_response.create(**CHAT, stream=stream)
            if stream:
                return raw.headers["cache-status"], from_chunks(
                    [chunk async for chunk in raw.parse()])
            return raw.headers["cache-status"], from_completion(raw.parse())

        tasks = [asyncio.create_task(one()) for _ in range(N)]
        await joined(cached, N)
        release.set()
        results = await asyncio.gather(*tasks)
    assert chat_calls(upstream) == 1
    assert len({orjson.dumps(answer) for _, answer in results}) == 1
    statuses = sorted(status for status, _ in results)
    assert statuses.count("llm-sidecar; fwd=miss; collapsed") == N - 1
    await nothing_left(cached)


def _answer() -> dict[str, Any]:
    return tool_answer()


async def test_streaming_and_json_requests_share_one_flight(
        cached: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """A streamed leader answers JSON followers too (folded once the stream is complete), and
    streaming followers get the events as they arrive: still one upstream call."""
    release = asyncio.Event()
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["Pa", "ris"]),
                                                wait_before={1: release}))
    leader = asyncio.create_task(post(http, cached, STREAM))
    await joined(cached, 1)
    others = [asyncio.create_task(post(http, cached, body)) for body in (CHAT, STREAM)]
    await joined(cached, 3)
    release.set()
    (_, _, streamed), (_, headers, folded), (_, _, followed) = await asyncio.gather(
        leader, *others)
    assert chat_calls(upstream) == 1
    assert followed == streamed
    assert orjson.loads(folded)["choices"][0]["message"]["content"] == "Paris"
    assert headers["cache-status"] == "llm-sidecar; fwd=miss; collapsed"


@pytest.mark.parametrize("failure", ["error status", "stream broken before any event"])
async def test_when_the_leader_fails_the_followers_go_upstream_themselves(
        cached: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession,
        failure: str) -> None:
    """The leader's failure is its own: the followers are not handed it, they each go upstream
    and get a good answer (20 upstream calls in all)."""
    release = asyncio.Event()
    stream = failure != "error status"
    upstream.script("/chat/completions", Script(status=503, json={"error": {"message": "busy"}},
                                                hold=release) if not stream else
                    Script(sse=chat_chunks("m", ["x"]), wait_before={0: release},
                           drop_after=0))
    body = STREAM if stream else CHAT
    leader = asyncio.create_task(post(http, cached, body))
    await joined(cached, 1)
    followers = [asyncio.create_task(post(http, cached, body)) for _ in range(N - 1)]
    await joined(cached, N)
    release.set()
    status, _, answer = await leader
    if stream:
        assert b'"code":"upstream_unavailable"' in answer
    else:
        assert status == 503
    for status, headers, answer in await asyncio.gather(*followers):
        assert (status, headers["x-sidecar-cache"]) == (200, "MISS")
        assert b"Hello" in answer
    assert chat_calls(upstream) == N


async def test_a_stream_broken_after_events_ends_followers_with_the_error(
        cached: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """Once events were shared, a break cannot be hidden: every follower's stream ends with the
    same final error event (as the leader's does), and nothing is stored."""
    release = asyncio.Event()
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a", "b"]),
                                                wait_before={1: release}, drop_after=1))
    tasks = [asyncio.create_task(post(http, cached, STREAM)) for _ in range(3)]
    await joined(cached, 3)
    await wait_until(lambda: bool(next(iter(flights(cached)._flights.values())).chunks),
                     "the first event arrived")
    release.set()
    for _, _, body in await asyncio.gather(*tasks):
        assert b'"content":"a"' in body and b'"code":"upstream_unavailable"' in body
    _, headers, _ = await post(http, cached, STREAM)
    assert headers["x-sidecar-cache"] == "MISS"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_the_leaders_client_leaving_does_not_break_the_followers(
        cached: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession,
        stream: bool) -> None:
    """The leader's client disconnects while the answer is on its way: the upstream call goes
    on for the followers (and, for a JSON answer, for the leaver's bill), who get the whole
    answer; one upstream call, and it is stored."""
    release = asyncio.Event()
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a", "b"]),
                                                wait_before={1: release}) if stream
                    else Script(json=_answer(), hold=release))
    body = STREAM if stream else CHAT
    port = int(cached.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = orjson.dumps(body)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 b"application/json\r\nAuthorization: Bearer sk-client\r\nContent-Length: "
                 + str(len(data)).encode() + b"\r\n\r\n" + data)
    await joined(cached, 1)
    followers = [asyncio.create_task(post(http, cached, body)) for _ in range(3)]
    await joined(cached, 4)
    if stream:
        while not (await reader.readline()).startswith(b"data: "):
            pass
    writer.close()  # the leader's client is gone
    if stream:
        await wait_until(lambda: flights(cached).followers() == 3, "the leader has left")
    else:  # a whole answer is still read for the leaver, to bill it (pipeline/detach.py)
        background = cached.app[DEPS].background
        assert background is not None
        await background.wait_adopted(1)
    release.set()
    for status, headers, answer in await asyncio.gather(*followers):
        assert (status, headers["x-sidecar-cache"]) == (200, "HIT")
        assert answer.endswith(b"data: [DONE]\n\n") if stream else b"Paris" in answer
    assert chat_calls(upstream) == 1
    assert not upstream.aborted.is_set()
    _, headers, _ = await post(http, cached, body)
    assert headers["x-sidecar-cache"] == "HIT"
    await nothing_left(cached)


async def test_when_every_client_leaves_the_upstream_call_is_cancelled(
        cached: RunningSidecar, upstream: FakeUpstream) -> None:
    """With nobody left to answer, the flight closes its upstream request (a client that
    disconnects cancels its request) and stores nothing."""
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a", "b"]),
                                                stall_after=1))
    async with aiohttp.ClientSession() as session:
        responses = [await session.post(cached.v1 + "/chat/completions", json=STREAM)
                     for _ in range(2)]
        for response in responses:
            assert (await response.content.readline()).startswith(b"data: ")
            response.close()
    await asyncio.wait_for(upstream.aborted.wait(), timeout=10)
    await nothing_left(cached)
    async with aiohttp.ClientSession() as session:
        _, headers, _ = await post(session, cached, STREAM)
    assert headers["x-sidecar-cache"] == "MISS"


async def test_an_error_stream_that_breaks_off_is_answered_as_the_break(
        cached: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """An error status sent as an event stream, cut before it ends: the client gets the
    sidecar's own 502 for the break (it got the error status over an empty stream)."""
    upstream.script("/chat/completions", Script(status=503, sse=[{"error": "busy"}],
                                                drop_after=0))
    status, _, answer = await post(http, cached, STREAM)
    assert status == 502
    assert orjson.loads(answer)["error"]["code"] == "upstream_unavailable"
    await nothing_left(cached)


async def test_requests_that_store_nothing_do_not_wait_for_each_other(
        cached: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """With `x-sidecar-cache-ttl: 0` nothing is stored, so an identical request in flight is
    not followed (it would wait for the whole call and then call upstream anyway): both
    reach the upstream while the first is still held."""
    release = asyncio.Event()
    upstream.script("/chat/completions", Script(json=tool_answer(), hold=release),
                    Script(json=tool_answer()))
    no_store = {"x-sidecar-cache-ttl": "0"}
    first = asyncio.create_task(post(http, cached, CHAT, no_store))
    await wait_until(lambda: chat_calls(upstream) == 1, "the first request is upstream")
    second = await post(http, cached, CHAT, no_store)
    assert second[0] == 200 and chat_calls(upstream) == 2
    release.set()
    assert (await first)[0] == 200
    await nothing_left(cached)
