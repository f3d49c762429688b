"""The prompt cache end to end: the real app, the openai SDK, the fake upstream, and the count
of upstream calls as the judge of every hit and miss."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from multidict import CIMultiDict

from sidecar.deps import DEPS
from tests.conftest import RunningSidecar, StartSidecar
from tests.fakes.cache import FakeClock, from_chunks, from_completion, tool_answer, tool_chunks
from tests.fakes.profiles import ALL
from tests.fakes.upstream import FakeUpstream, Script, chat_chunks

PROFILES = ALL  # each test runs in the module, defaults and everything profiles
# Issue 25: under a blocking budget (the everything profile) the spend stage reads a completion
# limit written 50.0 or 5e1 as no limit (spend/estimate.py: `isinstance(value, int)`) and tells
# the upstream its reserve instead, so the body, and with it the cache key, differs.
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
CHAT: dict[str, Any] = {"model": "openai/gpt-4o-mini", "messages": MESSAGES,
                        "temperature": 0.5, "max_tokens": 50}


def as_hit(stream: bytes) -> bytes:
    """A stream as a cache hit replays it: the same events, but spend writes this request's
    cost into the usage chunk's `cost`, and a hit costs 0."""
    return re.sub(rb'"cost":[0-9.e+-]+}', b'"cost":0.0}', stream)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def cached(start_sidecar: StartSidecar, clock: FakeClock) -> RunningSidecar:
    sidecar = await start_sidecar()
    store = sidecar.app[DEPS].cache
    assert store is not None
    store.clock = clock
    return sidecar


@pytest.fixture
async def client(cached: RunningSidecar) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=cached.v1, api_key="sk-client",
                                  max_retries=0) as sdk:
        yield sdk


def chat_calls(upstream: FakeUpstream) -> int:
    return sum(1 for r in upstream.forwarded if r.path.startswith("/chat/completions"))


async def post(http: aiohttp.ClientSession, sidecar: RunningSidecar, body: bytes | dict[str, Any],
               headers: dict[str, str] | None = None, path: str = "/chat/completions"
               ) -> tuple[int, CIMultiDict[str], bytes]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(sidecar.v1 + path, data=data, headers={
            "Content-Type": "application/json", "Authorization": "Bearer sk-client",
            **(headers or {})}) as response:
        return response.status, response.headers.copy(), await response.read()


async def test_repeat_is_a_hit_with_its_headers(client: openai.AsyncOpenAI,
                                                upstream: FakeUpstream,
                                                clock: FakeClock) -> None:
    """The second identical request is served from the cache: one upstream call, the same
    answer, HIT, RFC 9211 Cache-Status with the remaining ttl, Age, and the same key."""
    first = await client.chat.completions.with_raw_response.create(**CHAT)
    clock.advance(120)
    second = await client.chat.completions.with_raw_response.create(**CHAT)
    assert chat_calls(upstream) == 1
    assert first.headers["x-sidecar-cache"] == "MISS"
    assert first.headers["cache-status"] == "llm-sidecar; fwd=miss; stored"
    assert second.headers["x-sidecar-cache"] == "HIT"
    assert second.headers["cache-status"] == "llm-sidecar; hit; ttl=3480"
    assert second.headers["age"] == "120"
    key = first.headers["x-sidecar-cache-key"]
    assert len(key) == 16 and second.headers["x-sidecar-cache-key"] == key
    assert second.parse().model_dump() == first.parse().model_dump()


CHANGES: dict[str, dict[str, Any]] = {
    "temperature": {"temperature": 0.7},
    "max_tokens": {"max_tokens": 51},
    "message": {"messages": [{"role": "user", "content": "What is the capital of Spain?"}]},
    "system prompt": {"messages": [{"role": "system", "content": "Be brief."}, *MESSAGES]},
    "model": {"model": "openai/gpt-4o"},
    "top_p": {"top_p": 0.9},
    "seed": {"seed": 7},
    "n": {"n": 2},
    "stop": {"stop": ["\n"]},
    "response_format": {"response_format": {"type": "json_object"}},
    "tools": {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
    "logprobs": {"logprobs": True},
}


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
async def test_each_parameter_change_is_a_miss(client: openai.AsyncOpenAI,
                                               upstream: FakeUpstream, change: str) -> None:
    """Changing any parameter that shapes the answer makes a different key: a MISS."""
    await client.chat.completions.create(**CHAT)
    other = await client.chat.completions.with_raw_response.create(**{**CHAT,
                                                                      **CHANGES[change]})
    assert other.headers["x-sidecar-cache"] == "MISS"
    assert chat_calls(upstream) == 2


SAME: dict[str, bytes] = {
    "key order": b'{"max_tokens":50,"temperature":0.5,"messages":[{"content":"What is the '
                 b'capital of France?","role":"user"}],"model":"openai/gpt-4o-mini"}',
    "whitespace": b'{ "model" : "openai/gpt-4o-mini" , "messages" : [ {"role":"user",\n'
                  b'"content":"What is the capital of France?"} ], "temperature" : 0.50,'
                  b' "max_tokens" : 50 }',
    "excluded fields": orjson.dumps({
        **CHAT, "user": "u-42", "metadata": {"team": "a"}, "usage": {"include": True},
        "provider": {"order": ["openai"]}, "session_id": "s1", "prompt_cache_key": "k",
        "safety_identifier": "x", "trace": {"trace_id": "t"}}),
}


@pytest.mark.parametrize("variant", list(SAME), ids=list(SAME))
async def test_equivalent_requests_share_one_entry(cached: RunningSidecar,
                                                   upstream: FakeUpstream,
                                                   http: aiohttp.ClientSession,
                                                   variant: str) -> None:
    """Keys sorted, formatting and excluded fields ignored: a HIT."""
    await post(http, cached, CHAT)
    status, headers, _ = await post(http, cached, SAME[variant])
    assert (status, headers["x-sidecar-cache"]) == (200, "HIT")
    assert chat_calls(upstream) == 1


SAME_NUMBERS: dict[str, bytes] = {
    "1 vs 1.0": b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"What is '
                b'the capital of France?"}],"temperature":0.5,"max_tokens":50.0}',
    "exponent": b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"What is '
                b'the capital of France?"}],"temperature":5e-1,"max_tokens":5e1}',
}


@pytest.mark.parametrize("variant", list(SAME_NUMBERS), ids=list(SAME_NUMBERS))
async def test_equal_numbers_share_one_entry(cached: RunningSidecar, upstream: FakeUpstream,
                                             http: aiohttp.ClientSession, variant: str) -> None:
    """Numbers are normalised (50, 50.0 and 5e1 are one number): a HIT."""
    await post(http, cached, CHAT)
    status, headers, _ = await post(http, cached, SAME_NUMBERS[variant])
    assert (status, headers["x-sidecar-cache"]) == (200, "HIT")
    assert chat_calls(upstream) == 1


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tool-calls"])
async def test_stream_after_non_stream_is_a_hit_with_the_same_answer(
        client: openai.AsyncOpenAI, upstream: FakeUpstream, tools: bool) -> None:
    """A JSON entry is served to a streaming client as well-formed chunks: same id, model,
    content, tool calls, finish reason and (when asked) usage; then [DONE]."""
    if tools:
        upstream.script("/chat/completions", Script(json=tool_answer()))
    answer = await client.chat.completions.create(**CHAT)
    raw = await client.chat.completions.with_raw_response.create(
        **CHAT, stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in raw.parse()]
    assert raw.headers["x-sidecar-cache"] == "HIT"
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert chat_calls(upstream) == 1
    assert from_chunks(chunks) == from_completion(answer)
    assert len(from_completion(answer)["tool_calls"]) == (2 if tools else 0)


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tool-calls"])
async def test_non_stream_after_stream_is_a_hit_with_the_same_answer(
        client: openai.AsyncOpenAI, upstream: FakeUpstream, tools: bool) -> None:
    """A streamed entry is folded into one JSON answer for a non-streaming client, tool-call
    deltas merged by index."""
    if tools:
        upstream.script("/chat/completions", Script(sse=tool_chunks()))
    stream = await client.chat.completions.create(**CHAT, stream=True,
                                                  stream_options={"include_usage": True})
    streamed = from_chunks([chunk async for chunk in stream])
    raw = await client.chat.completions.with_raw_response.create(**CHAT)
    assert raw.headers["x-sidecar-cache"] == "HIT"
    assert chat_calls(upstream) == 1
    assert from_completion(raw.parse()) == streamed
    if tools:
        assert streamed["tool_calls"] == [("call_a", "get_weather", '{"city": "Paris"}'),
                                          ("call_b", "get_time", '{"tz": "CET"}')]


async def test_stream_hit_replays_the_events_as_stored(cached: RunningSidecar,
                                                       upstream: FakeUpstream,
                                                       http: aiohttp.ClientSession) -> None:
    """A streamed entry goes back to a streaming client as the same events (keep-alive
    comments dropped), ending with [DONE]; only the usage chunk's `cost` differs: spend writes
    this request's cost there, 0 on a hit."""
    events = chat_chunks("m", ["Par", "is"])
    upstream.script("/chat/completions", Script(sse=[b": OPENROUTER PROCESSING\n\n", *events]))
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    _, _, first = await post(http, cached, body)
    _, headers, second = await post(http, cached, body)
    assert headers["x-sidecar-cache"] == "HIT"
    assert b'"cost":0.0}' in second
    assert second == as_hit(first).replace(b": OPENROUTER PROCESSING\n\n", b"")
    assert second.endswith(b"data: [DONE]\n\n")


async def test_usage_chunk_only_when_the_request_asks(cached: RunningSidecar,
                                                      upstream: FakeUpstream,
                                                      http: aiohttp.ClientSession) -> None:
    """A hit carries the usage-only chunk to a stream that asked for include_usage and not to
    one that did not; a stream asking for usage is not served an entry that has none."""
    streamed = {**CHAT, "stream": True}
    _, _, plain = await post(http, cached, {**streamed, "stream_options":
                                            {"include_usage": True}})
    _, headers, without = await post(http, cached, streamed)
    assert headers["x-sidecar-cache"] == "HIT"
    assert b'"choices":[]' in plain and b'"choices":[]' not in without
    assert without.endswith(b"data: [DONE]\n\n")
    assert chat_calls(upstream) == 1

    other = {**CHAT, "temperature": 0.1, "stream": True}
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a"], usage=False)))
    await post(http, cached, other)
    _, headers, _ = await post(http, cached, {**other, "stream_options":
                                              {"include_usage": True}})
    assert headers["x-sidecar-cache"] == "MISS"  # the entry cannot give it usage


async def test_identities_never_share_entries(cached: RunningSidecar, upstream: FakeUpstream,
                                              http: aiohttp.ClientSession) -> None:
    """Two upstream credentials are two tenants: two entries. The same credential hits."""
    for token in ("sk-alice", "sk-bob", "sk-alice"):
        await post(http, cached, CHAT, {"Authorization": f"Bearer {token}"})
    assert chat_calls(upstream) == 2


async def test_local_keys_are_namespaces_and_shared_namespace_joins_them(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        http: aiohttp.ClientSession) -> None:
    """With auth.required the key's name is the namespace; shared_namespace: one for all."""
    keys = [{"name": "team-a", "token": "tok-a"}, {"name": "team-b", "token": "tok-b"}]
    for shared, calls in ((False, 2), (True, 1)):
        sidecar = await start_sidecar({"auth": {"required": True, "keys": keys},
                                       "cache": {"shared_namespace": shared}})
        before = chat_calls(upstream)
        for token in ("tok-a", "tok-b", "tok-a"):
            status, _, _ = await post(http, sidecar, CHAT, {"Authorization": f"Bearer {token}"})
            assert status == 200
        assert chat_calls(upstream) - before == calls


BROKEN: dict[str, Script] = {
    "error status": Script(status=500, json={"error": {"message": "boom"}}),
    "rate limited": Script(status=429, json={"error": {"message": "slow down"}}),
    "stream cut": Script(sse=chat_chunks("m", ["a", "b", "c"]), drop_after=2),
    "stream without [DONE]": Script(sse=chat_chunks("m", ["a"]), done=False),
    "no finish_reason": Script(sse=[{"choices": [{"index": 0, "delta": {"content": "x"}}]}]),
    "finish_reason error": Script(sse=[{"choices": [{"index": 0, "delta": {"content": "x"},
                                                     "finish_reason": "error"}]}]),
    "JSON without finish_reason": Script(json={"choices": [{"index": 0, "message": {
        "role": "assistant", "content": "x"}}]}),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
async def test_failed_or_incomplete_answers_are_not_stored(
        cached: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession,
        case: str) -> None:
    """Errors, broken or unfinished streams and answers without a finish reason are never
    stored: the same request goes upstream again (and gets the good answer)."""
    upstream.script("/chat/completions", BROKEN[case])
    body = {**CHAT, "stream": BROKEN[case].sse is not None}
    await post(http, cached, body)
    status, headers, _ = await post(http, cached, body)
    assert (status, headers["x-sidecar-cache"]) == (200, "MISS")
    assert chat_calls(upstream) == 2


async def test_answers_over_max_entry_bytes_are_not_stored(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        http: aiohttp.ClientSession) -> None:
    """An answer larger than cache.max_entry_bytes is served but not stored, streamed or not;
    a smaller one is."""
    sidecar = await start_sidecar({"cache": {"max_entry_bytes": 2000}})
    big = "x" * 3000
    for body, script in ((CHAT, Script(json={**tool_answer(), "filler": big})),
                         ({**CHAT, "stream": True}, Script(sse=chat_chunks("m", [big])))):
        upstream.script("/chat/completions", script, script)
        for _ in range(2):
            status, headers, answer = await post(http, sidecar, body)
            assert (status, headers["x-sidecar-cache"]) == (200, "MISS")
            assert big.encode() in answer
    assert chat_calls(upstream) == 4
    await post(http, sidecar, {**CHAT, "seed": 1})  # the default answer is small
    status, headers, _ = await post(http, sidecar, {**CHAT, "seed": 1})
    assert headers["x-sidecar-cache"] == "HIT"
