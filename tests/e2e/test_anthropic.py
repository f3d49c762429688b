"""A `format: anthropic` provider end to end: the official openai SDK → the real sidecar → a fake
Anthropic Messages API on loopback. Requests are translated, answers and streams come back in
OpenAI's shapes (tool calls, images, json_schema, thinking, usage), errors are mapped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pydantic
import pytest

from sidecar.call import Call, Next, Reply, Usage
from tests.conftest import RunningSidecar, StartSidecar, free_port
from tests.fakes.anthropic import (
    Answer,
    FakeAnthropic,
    error,
    message,
    stream_events,
    text,
    thinking,
    tool_use,
)
from tests.fakes.profiles import ALL, fresh

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

KEY = "sk-ant-provider"
MODEL = "anthropic/claude-test-1"
HI = [{"role": "user", "content": "hi"}]
WEATHER: Any = {"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}

# The cache off in the module profile (start_sidecar merges SIDECAR_BASE under each config):
# these tests repeat requests; in the others, those whose every request must reach the
# provider send prompts of their own.
SIDECAR_BASE = {"cache": {"backend": "off"}}


def provider(url: str, **extra: Any) -> dict[str, Any]:
    return {"providers": [{"name": "claude", "base_url": url, "format": "anthropic",
                           "api_key": KEY, "models": ["anthropic/*"], "strip_prefix": True,
                           **extra}]}


@pytest.fixture
async def anthropic() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    await fake.start()
    yield fake
    await fake.close()


class AnswerProbe:
    """A stage that reads the answer (as spend and telemetry do) and keeps what it saw."""

    name = "probe"
    reads_answer = True

    def __init__(self) -> None:
        self.seen: list[tuple[Usage | None, str | None]] = []

    async def __call__(self, call: Call, next: Next) -> Reply:
        call.finishers.append(lambda c: self.seen.append((c.answer.usage,
                                                          c.answer.finish_reason)))
        return await next(call)


@pytest.fixture
async def claude(start_sidecar: StartSidecar, anthropic: FakeAnthropic) -> RunningSidecar:
    return await start_sidecar(provider(anthropic.url))


@pytest.fixture
async def client(claude: RunningSidecar) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=claude.v1, api_key="sk-client", max_retries=0)
    yield sdk
    await sdk.close()


async def test_chat_completion(client: openai.AsyncOpenAI, anthropic: FakeAnthropic) -> None:
    """A chat goes to /v1/messages with Anthropic's headers and comes back as a completion."""
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."}, *HI], user="u-1")
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello from Claude."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and (answer.usage.prompt_tokens,
                                         answer.usage.completion_tokens) == (12, 5)
    assert raw.headers["x-sidecar-provider"] == "claude"
    sent = anthropic.last
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent.headers
    assert sent.json == {"model": "claude-test-1", "system": [{"type": "text",
                                                               "text": "Be brief."}],
                         "messages": HI, "max_tokens": 4096, "metadata": {"user_id": "u-1"}}


async def test_sync_client(claude: RunningSidecar) -> None:
    """The blocking SDK client gets the same translated answer."""
    sdk = openai.OpenAI(base_url=claude.v1, api_key="x", max_retries=0)
    answer = await asyncio.to_thread(sdk.chat.completions.create, model=MODEL, messages=HI)
    sdk.close()
    assert answer.choices[0].message.content == "Hello from Claude."


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage-asked", "usage-not-asked"])
async def test_stream(claude: RunningSidecar, anthropic: FakeAnthropic,
                      http: aiohttp.ClientSession, include_usage: bool) -> None:
    """A stream arrives as OpenAI chunks ending in [DONE]; the usage chunk only when asked."""
    body: dict[str, Any] = {"model": MODEL, "messages": HI, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    async with http.post(claude.v1 + "/chat/completions", json=body) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = await response.read()
    events = [orjson.loads(e[6:]) for e in raw.split(b"\n\n") if e and e != b"data: [DONE]"]
    assert raw.endswith(b"data: [DONE]\n\n")
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events
                   if e["choices"]) == "Hello from Claude."
    usage_chunks = [e for e in events if not e["choices"]]
    assert len(usage_chunks) == int(include_usage)
    assert "stream_options" not in anthropic.last.json and anthropic.last.json["stream"] is True


async def test_sdk_stream_with_usage(client: openai.AsyncOpenAI,
                                     anthropic: FakeAnthropic) -> None:
    """The SDK reads the stream and its usage chunk, cache reads and writes counted."""
    usage = {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 500,
             "cache_creation_input_tokens": 40}
    anthropic.answer(Answer(events=stream_events(message(text("Cached."), usage=usage))))
    stream = await client.chat.completions.create(
        model=MODEL, messages=HI, stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Cached."
    final = chunks[-1].usage
    assert final is not None and final.prompt_tokens == 550 and final.completion_tokens == 3
    assert final.prompt_tokens_details is not None
    assert final.prompt_tokens_details.cached_tokens == 500


async def test_first_token_is_not_held_back(claude: RunningSidecar, anthropic: FakeAnthropic,
                                            http: aiohttp.ClientSession) -> None:
    """The client reads the first text before Anthropic sends the rest (no buffering)."""
    gate = asyncio.Event()
    events = stream_events(message(text("first second")))
    anthropic.answer(Answer(events=events, wait_before={4: gate}))  # after the first delta
    async with http.post(claude.v1 + "/chat/completions",
                         json={"model": MODEL, "messages": HI, "stream": True}) as response:
        seen = b""
        while b'"content":"first' not in seen:
            line = await asyncio.wait_for(response.content.readline(), timeout=10)
            assert line, "stream ended before the first token"
            seen += line
        gate.set()
        rest = await asyncio.wait_for(response.read(), timeout=10)
    assert rest.endswith(b"data: [DONE]\n\n")


async def test_tool_calls(client: openai.AsyncOpenAI, anthropic: FakeAnthropic) -> None:
    """Tools and tool_choice go out as Anthropic's; tool_use comes back as tool_calls."""
    anthropic.answer(Answer(json=message(tool_use("toolu_1", "weather", {"city": "Oslo"}),
                                         stop_reason="tool_use")))
    answer = await client.chat.completions.create(
        model=MODEL, messages=HI, tools=[WEATHER], tool_choice="required",
        parallel_tool_calls=False)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id == "toolu_1" and call.function.name == "weather"
    assert orjson.loads(call.function.arguments) == {"city": "Oslo"}
    sent = anthropic.last.json
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert sent["tools"][0]["name"] == "weather"


async def test_streamed_tool_calls_and_results(client: openai.AsyncOpenAI,
                                               anthropic: FakeAnthropic) -> None:
    """Streamed tool arguments add up per call; the results go back as one user turn."""
    anthropic.answer(Answer(events=stream_events(message(
        tool_use("toolu_1", "weather", {"city": "Oslo"}),
        tool_use("toolu_2", "weather", {"city": "Rome"}), stop_reason="tool_use"))))
    stream = await client.chat.completions.create(model=MODEL, messages=HI, tools=[WEATHER],
                                                  stream=True)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or ():
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += delta.id or ""
            entry["name"] += (delta.function and delta.function.name) or ""
            entry["arguments"] += (delta.function and delta.function.arguments) or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert calls == {0: {"id": "toolu_1", "name": "weather", "arguments": '{"city":"Oslo"}'},
                     1: {"id": "toolu_2", "name": "weather", "arguments": '{"city":"Rome"}'}}
    history: list[Any] = [*HI, {"role": "assistant", "tool_calls": [
        {"id": c["id"], "type": "function",
         "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls.values()]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "rain"}]
    await client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER])
    turns = anthropic.last.json["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["tool_use_id"] for b in turns[2]["content"]] == ["toolu_1", "toolu_2"]


async def test_images(client: openai.AsyncOpenAI, anthropic: FakeAnthropic) -> None:
    """Image parts go out as base64 and url sources."""
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}])
    parts = anthropic.last.json["messages"][0]["content"]
    assert [p["source"] for p in parts[1:]] == [
        {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        {"type": "url", "url": "https://example.com/cat.jpg"}]


class Count(pydantic.BaseModel):
    n: int


async def test_json_schema_by_forced_tool(client: openai.AsyncOpenAI,
                                          anthropic: FakeAnthropic) -> None:
    """The SDK's structured-output parse works: the forced tool's input is the content."""
    anthropic.answer(Answer(json=message(tool_use("toolu_1", "json_answer", {"n": 7}),
                                         stop_reason="tool_use")))
    parsed = await client.chat.completions.parse(model=MODEL, messages=HI,
                                                 response_format=Count)
    assert parsed.choices[0].message.parsed == Count(n=7)
    assert parsed.choices[0].finish_reason == "stop"
    sent = anthropic.last.json
    assert sent["tool_choice"] == {"type": "tool", "name": "json_answer"}
    assert sent["tools"][0]["input_schema"]["properties"] == {"n": {"title": "N",
                                                                    "type": "integer"}}


async def test_streamed_json_schema(client: openai.AsyncOpenAI, anthropic: FakeAnthropic) -> None:
    """Streamed, the answer tool's input arrives as content deltas that parse as the JSON."""
    anthropic.answer(Answer(events=stream_events(message(
        tool_use("toolu_1", "json_answer", {"n": 7, "why": "because"}), stop_reason="tool_use"),
        parts=5)))
    stream = await client.chat.completions.create(
        model=MODEL, messages=HI, stream=True,
        response_format={"type": "json_object"})
    content = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert orjson.loads(content) == {"n": 7, "why": "because"}


async def test_thinking_as_reasoning(client: openai.AsyncOpenAI, anthropic: FakeAnthropic) -> None:
    """Reasoning asked OpenRouter's way turns thinking on; thoughts come back as reasoning."""
    anthropic.answer(Answer(events=stream_events(message(thinking("Two and two.", "sig"),
                                                         text("4")))))
    stream = await client.chat.completions.create(
        model=MODEL, messages=HI, stream=True, extra_body={"reasoning": {"max_tokens": 2048}})
    chunks = [c async for c in stream]
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning", None) or "" for c in chunks)
    assert reasoning == "Two and two."
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "4"
    assert anthropic.last.json["thinking"] == {"type": "enabled", "budget_tokens": 2048}


async def test_answer_facts_reach_the_stages(start_sidecar: StartSidecar,
                                             anthropic: FakeAnthropic) -> None:
    """Spend, cache and telemetry read usage and finish reason from the translated answers."""
    probe = AnswerProbe()
    sidecar = await start_sidecar(provider(anthropic.url), outer_stages=[probe])
    usage = {"input_tokens": 4, "output_tokens": 2, "cache_read_input_tokens": 6,
             "cache_creation_input_tokens": 1}
    anthropic.answer(Answer(json=message(text("a"), usage=usage, stop_reason="max_tokens")),
                     Answer(events=stream_events(message(text("b"), usage=usage))))
    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="x", max_retries=0)
    # prompts of their own: the cache (on in most profiles) would answer the second itself
    await sdk.chat.completions.create(model=MODEL, messages=[
        {"role": "user", "content": fresh()}])
    stream = await sdk.chat.completions.create(model=MODEL, messages=[
        {"role": "user", "content": fresh()}], stream=True,
        stream_options={"include_usage": True})
    [c async for c in stream]
    await sdk.close()
    expected = Usage(11, 2, cached_tokens=6, cache_write_tokens=1)
    assert probe.seen == [(expected, "length"), (expected, "stop")]


ERRORS = [
    (400, "invalid_request_error", openai.BadRequestError, 400),
    (401, "authentication_error", openai.AuthenticationError, 401),
    (403, "permission_error", openai.PermissionDeniedError, 403),
    (404, "not_found_error", openai.NotFoundError, 404),
    (413, "request_too_large", openai.APIStatusError, 413),
    (429, "rate_limit_error", openai.RateLimitError, 429),
    (500, "api_error", openai.InternalServerError, 500),
    (529, "overloaded_error", openai.InternalServerError, 503),
]


@pytest.mark.parametrize(("status", "kind", "exception", "expected"), ERRORS,
                         ids=[e[1] for e in ERRORS])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_errors_mapped(client: openai.AsyncOpenAI, anthropic: FakeAnthropic, status: int,
                             kind: str, exception: type[openai.APIStatusError], expected: int,
                             stream: bool) -> None:
    """Each Anthropic error reaches the SDK as OpenAI's, with its status and Retry-After."""
    anthropic.answer(error(status, kind, "Something is wrong", {"retry-after": "7"}))
    with pytest.raises(exception) as caught:
        await client.chat.completions.create(model=MODEL, messages=HI, stream=stream)
    got = caught.value
    assert got.status_code == expected
    assert got.code == kind and got.message.endswith("Something is wrong")
    assert got.response.headers["retry-after"] == "7"


async def test_error_event_mid_stream(client: openai.AsyncOpenAI, anthropic: FakeAnthropic,
                                      claude: RunningSidecar,
                                      http: aiohttp.ClientSession) -> None:
    """An error event after some text ends the stream with OpenAI's error event, no [DONE]."""
    events = stream_events(message(text("partial answer")))[:4]
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    anthropic.answer(Answer(events=[*events, overloaded]), Answer(events=[*events, overloaded]))
    stream = await client.chat.completions.create(model=MODEL, messages=HI, stream=True)
    seen = []
    with pytest.raises(openai.APIError, match="Overloaded"):
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content)
    assert "".join(filter(None, seen)) == "partial"
    async with http.post(claude.v1 + "/chat/completions",
                         json={"model": MODEL, "messages": HI, "stream": True}) as response:
        raw = await response.read()
    last = orjson.loads(raw.split(b"\n\n")[-2].removeprefix(b"data: "))
    assert last["error"]["code"] == "overloaded_error" and b"[DONE]" not in raw


@pytest.mark.parametrize(("answer", "says"), [
    (Answer(events=stream_events(message(text("abc"))), drop_after=4), "broke the connection"),
    (Answer(events=stream_events(message(text("abc")))[:-1]), "before its message_stop"),
], ids=["connection-cut", "ended-early"])
async def test_stream_cut_by_anthropic(client: openai.AsyncOpenAI, anthropic: FakeAnthropic,
                                       answer: Answer, says: str) -> None:
    """A stream cut or ended before message_stop reaches the SDK as an error, never as a
    complete answer."""
    anthropic.answer(answer)
    stream = await client.chat.completions.create(model=MODEL, messages=HI, stream=True)
    with pytest.raises(openai.APIError, match=says):
        [c async for c in stream]


@pytest.mark.parametrize(("fields", "param"), [
    ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]},
     "messages[0].content[0].image_url.url"),
], ids=["n", "logprobs", "image-scheme"])
async def test_unsupported_fields_are_refused(client: openai.AsyncOpenAI,
                                              anthropic: FakeAnthropic, fields: dict[str, Any],
                                              param: str) -> None:
    """A field Anthropic cannot honour is a 400 naming it, and nothing goes upstream."""
    body: dict[str, Any] = {"model": MODEL, "messages": HI, **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(**body)
    assert caught.value.code == "invalid_request" and caught.value.param == param
    assert anthropic.forwarded == []


async def test_client_key_and_local_key(start_sidecar: StartSidecar,
                                        anthropic: FakeAnthropic) -> None:
    """Without a provider key the client's key goes as x-api-key, unless it is a local key."""
    config = provider(anthropic.url)
    del config["providers"][0]["api_key"]
    byo = await start_sidecar(config)
    sdk = openai.AsyncOpenAI(base_url=byo.v1, api_key="sk-ant-client", max_retries=0)
    await sdk.chat.completions.create(model=MODEL, messages=HI)
    await sdk.close()
    assert anthropic.last.headers["x-api-key"] == "sk-ant-client"
    local = await start_sidecar({**config, "auth": {"required": True, "keys": [
        {"name": "app", "token": "local-token"}]}})
    sdk = openai.AsyncOpenAI(base_url=local.v1, api_key="local-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        await sdk.chat.completions.create(model=MODEL, messages=HI)
    await sdk.close()
    assert caught.value.code == "authentication_error"
    assert "x-api-key" not in anthropic.last.headers
    assert "local-token" not in repr(dict(anthropic.last.headers))


async def test_models(client: openai.AsyncOpenAI, anthropic: FakeAnthropic) -> None:
    """/v1/models lists every Anthropic model in OpenAI's shape, named as clients send them."""
    listing = await client.models.list()
    assert [m.id for m in listing.data] == [f"anthropic/claude-test-{i}" for i in (1, 2, 3)]
    assert listing.data[0].owned_by == "anthropic" and listing.data[0].created == 1735689600
    assert anthropic.last.path == "/v1/models?limit=1000"
    one = await client.models.retrieve("anthropic/claude-test-2")
    assert one.id == "anthropic/claude-test-2"
    assert anthropic.last.path == "/v1/models/claude-test-2"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("anthropic/claude-none")


async def test_paths_without_an_anthropic_equivalent(client: openai.AsyncOpenAI,
                                                     claude: RunningSidecar,
                                                     anthropic: FakeAnthropic,
                                                     http: aiohttp.ClientSession) -> None:
    """Embeddings, files and the like get a clear OpenAI 404; nothing goes upstream."""
    with pytest.raises(openai.NotFoundError, match="no equivalent of POST /v1/embeddings"):
        await client.embeddings.create(model=MODEL, input="x")
    async with http.get(claude.v1 + "/files") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    assert anthropic.forwarded == []


async def test_native_messages_pass_through(claude: RunningSidecar, anthropic: FakeAnthropic,
                                            http: aiohttp.ClientSession) -> None:
    """An Anthropic-format client can call /v1/messages through the sidecar: routed by model
    like any model endpoint, the body unchanged but for the model's name at the provider, the
    provider's key instead of the client's."""
    body = {"model": MODEL, "max_tokens": 10, "messages": HI}
    async with http.post(claude.v1 + "/messages", json=body,
                         headers={"x-api-key": "sk-ant-mine"}) as response:
        answer = await response.json()
    assert answer["type"] == "message" and answer["content"][0]["text"] == "Hello from Claude."
    assert anthropic.last.headers["x-api-key"] == KEY
    assert anthropic.last.json == {**body, "model": "claude-test-1"}


async def test_an_answer_not_in_anthropic_format(client: openai.AsyncOpenAI,
                                                 anthropic: FakeAnthropic) -> None:
    """A 200 whose body is not an Anthropic message is a 502 saying so, not a broken answer
    (retried like any 502: every try gets the same)."""
    anthropic.answer(*[Answer(json={"choices": []})] * 3)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model=MODEL, messages=HI)
    assert caught.value.status_code == 502 and "not in Anthropic's format" in caught.value.message


async def test_anthropic_unreachable(start_sidecar: StartSidecar) -> None:
    """A provider that refuses connections is a 502 upstream_unavailable naming it."""
    sidecar = await start_sidecar(provider(f"http://127.0.0.1:{free_port()}/v1"))
    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        await sdk.chat.completions.create(model=MODEL, messages=HI)
    await sdk.close()
    assert caught.value.status_code == 502 and "claude" in caught.value.message
