"""/v1/messages end to end with the official Anthropic SDK, in the default configuration (the
cache on): natively to an Anthropic-format provider, and translated to an OpenAI-format one
(requests out as chat completions; answers and streams back as Anthropic's, with the right
stop reason for every ending), fallbacks, count_tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import anthropic as sdk
import orjson
import pytest

from tests.conftest import RunningSidecar, StartSidecar
from tests.e2e.messages_helpers import (
    ANTHROPIC_KEY,
    CHAT_KEY,
    CLAUDE,
    GPT,
    HI,
    WEATHER,
    chunks,
    client_for,
    completion,
    events_of,
    providers,
    tool_call,
    tool_deltas,
)
from tests.fakes.anthropic import Answer, FakeAnthropic, message, stream_events, text, thinking
from tests.fakes.upstream import FakeUpstream, Script


@pytest.fixture
async def both(start_sidecar: StartSidecar, anthropic_fake: FakeAnthropic,
               upstream: FakeUpstream) -> RunningSidecar:
    return await start_sidecar(providers(anthropic_fake.url, upstream.url))


async def test_native_sync_client(both: RunningSidecar, anthropic_fake: FakeAnthropic) -> None:
    """The blocking SDK reaches the Anthropic provider: the body as sent but for the model's
    name there, the provider's key instead of the client's, Anthropic's headers kept."""
    client = sdk.Anthropic(base_url=both.url, api_key="sk-client", max_retries=0)
    version = client.default_headers["anthropic-version"]
    answer = await asyncio.to_thread(
        client.messages.create, model=CLAUDE, max_tokens=64, messages=HI,
        extra_headers={"anthropic-beta": "test-beta-1"})
    client.close()
    assert answer.content[0].type == "text" and answer.content[0].text == "Hello from Claude."
    assert answer.stop_reason == "end_turn" and answer.usage.input_tokens == 12
    sent = anthropic_fake.last
    assert sent.json == {"model": "claude-test-1", "max_tokens": 64, "messages": HI}
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert sent.headers["anthropic-beta"] == "test-beta-1"
    assert sent.headers["anthropic-version"] == version


async def test_native_stream_and_thinking(both: RunningSidecar,
                                          anthropic_fake: FakeAnthropic) -> None:
    """A native stream reaches the SDK event for event, thinking blocks and signature too."""
    anthropic_fake.answer(Answer(events=stream_events(message(
        thinking("Two and two.", "sig-9"), text("4 it is.")))))
    client = client_for(both)
    async with client.messages.stream(
            model=CLAUDE, max_tokens=2048, messages=[{"role": "user", "content": "2+2?"}],
            thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        final = await stream.get_final_message()
    await client.close()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Two and two." and final.content[0].signature == "sig-9"
    assert anthropic_fake.last.json["thinking"] == {"type": "enabled", "budget_tokens": 1024}


async def test_translated_answer(both: RunningSidecar, upstream: FakeUpstream) -> None:
    """To an OpenAI-format provider the request goes out as a chat completion (system first,
    max_tokens, stop, user, tools) and the answer comes back as an Anthropic message."""
    client = client_for(both)
    answer = await client.messages.create(
        model=GPT, max_tokens=100, system="Be brief.", messages=HI,
        extra_body={"temperature": 0.2}, stop_sequences=["###"], metadata={"user_id": "u-7"},
        tools=[WEATHER],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    await client.close()
    assert answer.type == "message" and answer.role == "assistant"
    assert answer.content[0].type == "text"
    assert answer.content[0].text == "Hello from the fake upstream."
    assert answer.stop_reason == "end_turn" and answer.model == GPT
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (7, 6)
    sent = upstream.last
    assert sent.path == "/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {CHAT_KEY}"
    assert "x-api-key" not in sent.headers and "anthropic-version" not in sent.headers
    assert orjson.loads(sent.body) == {
        "model": GPT, "messages": [{"role": "system", "content": "Be brief."}, *HI],
        "max_tokens": 100, "temperature": 0.2, "stop": ["###"], "user": "u-7",
        "tools": [{"type": "function", "function": {
            "name": "weather", "description": "The weather in a city.",
            "parameters": WEATHER["input_schema"]}}],
        "tool_choice": "auto", "parallel_tool_calls": False}


async def test_translated_stream(both: RunningSidecar, upstream: FakeUpstream) -> None:
    """A translated stream is Anthropic's event sequence, usage from the upstream's usage
    chunk (asked for with stream_options), and the SDK reads it whole."""
    client = client_for(both)
    async with client.messages.stream(model=GPT, max_tokens=50, messages=[
            {"role": "user", "content": "stream it"}]) as stream:
        text_seen = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    await client.close()
    assert text_seen == "Hello from fake."
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (7, 3)
    assert orjson.loads(upstream.last.body)["stream_options"] == {"include_usage": True}


async def test_tool_turn_and_its_result(both: RunningSidecar, upstream: FakeUpstream) -> None:
    """A tool call comes back as tool_use (stop_reason tool_use); the next turn's tool_use and
    tool_result go out as the assistant's tool_calls and a tool message."""
    upstream.script("/chat/completions", Script(json=completion(
        {"content": None, "tool_calls": [tool_call("call_1", "weather", {"city": "Oslo"})]},
        finish="tool_calls")))
    client = client_for(both)
    first = await client.messages.create(model=GPT, max_tokens=100, tools=[WEATHER],
                                         messages=[{"role": "user", "content": "Oslo?"}])
    assert first.stop_reason == "tool_use"
    (use,) = first.content
    assert use.type == "tool_use" and (use.id, use.name, use.input) == (
        "call_1", "weather", {"city": "Oslo"})
    second = await client.messages.create(model=GPT, max_tokens=100, tools=[WEATHER], messages=[
        {"role": "user", "content": "Oslo?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1",
                                           "name": "weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "Sunny, 21 C"},
            {"type": "text", "text": "And tomorrow?"}]}])
    await client.close()
    assert second.stop_reason == "end_turn"
    sent = orjson.loads(upstream.last.body)["messages"]
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"}
    assert sent[3] == {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]}


async def test_streamed_tool_turn_says_tool_use(both: RunningSidecar,
                                                upstream: FakeUpstream) -> None:
    """A streamed tool call whose upstream finished with 'stop' (as some do) still ends the
    turn with tool_use, never end_turn: the agent must run the tool. Two calls, each a block
    of its own, arguments assembled from their pieces."""
    upstream.script("/chat/completions", Script(sse=chunks(
        {"content": "Checking."},
        *tool_deltas("call_1", "weather", '{"city": "Oslo"}', 0),
        *tool_deltas("call_2", "weather", '{"city": "Rome"}', 1), finish="stop")))
    client = client_for(both)
    async with client.messages.stream(model=GPT, max_tokens=100, tools=[WEATHER],
                                      messages=[{"role": "user", "content": "two"}]) as stream:
        final = await stream.get_final_message()
    await client.close()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert [(b.id, b.input) for b in final.content[1:]] == [  # type: ignore[union-attr]
        ("call_1", {"city": "Oslo"}), ("call_2", {"city": "Rome"})]


STOPS: list[tuple[str, dict[str, Any], str | None, dict[str, Any], str, str | None]] = [
    ("end_turn", {"content": "done"}, "stop", {}, "end_turn", None),
    ("max_tokens", {"content": "cut"}, "length", {}, "max_tokens", None),
    ("tool_use", {"tool_calls": [tool_call("c9", "weather", {})]}, "tool_calls", {},
     "tool_use", None),
    ("refusal", {"content": "no"}, "content_filter", {}, "refusal", None),
    ("refusal-field", {"content": None, "refusal": "I can't."}, "stop", {}, "refusal", None),
    ("stop_sequence", {"content": "a"}, "stop", {"stop_reason": "###"}, "stop_sequence", "###"),
    ("dropped-finish", {"content": "x"}, None, {}, "end_turn", None),
    ("dropped-finish-tools", {"tool_calls": [tool_call("c8", "weather", {})]}, None, {},
     "tool_use", None),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("case", "message_", "finish", "extra", "reason", "sequence"), STOPS,
                         ids=[s[0] for s in STOPS])
async def test_every_stop_reason(both: RunningSidecar, upstream: FakeUpstream, stream: bool,
                                 case: str, message_: dict[str, Any], finish: str | None,
                                 extra: dict[str, Any], reason: str,
                                 sequence: str | None) -> None:
    """Each way an OpenAI-format answer ends maps to Anthropic's stop reason, JSON or
    streamed; a missing finish reason still gets one (from what the answer holds)."""
    if stream:
        delta = {k: v for k, v in message_.items() if v is not None and k != "tool_calls"}
        calls = [d for c in message_.get("tool_calls", ()) for d in tool_deltas(
            c["id"], c["function"]["name"], c["function"]["arguments"])]
        upstream.script("/chat/completions",
                        Script(sse=chunks(*([delta] if delta else []), *calls, finish=finish,
                                          **extra)))
    else:
        upstream.script("/chat/completions", Script(json=completion(message_, finish=finish,
                                                                    **extra)))
    client = client_for(both)
    body: dict[str, Any] = {"model": GPT, "max_tokens": 100, "stop_sequences": ["###"],
                            "messages": [{"role": "user", "content": f"case {case}"}]}
    if stream:
        async with client.messages.stream(**body) as events:
            final = await events.get_final_message()
    else:
        final = await client.messages.create(**body)
    await client.close()
    assert (final.stop_reason, final.stop_sequence) == (reason, sequence)


async def test_cut_stream_is_an_error_event(both: RunningSidecar, upstream: FakeUpstream,
                                            http: aiohttp.ClientSession) -> None:
    """An upstream stream that breaks before its finish ends with Anthropic's error event
    (and no message_stop): the SDK raises instead of taking a cut answer for a whole one."""
    upstream.script("/chat/completions", Script(sse=chunks({"content": "par"}), drop_after=2))
    async with http.post(both.v1 + "/messages", json={
            "model": GPT, "max_tokens": 10, "stream": True,
            "messages": [{"role": "user", "content": "cut"}]}) as response:
        events = events_of(await response.read())
    assert [e["type"] for e in events] == [
        "message_start", "content_block_start", "content_block_delta", "error"]
    assert events[-1]["error"]["type"] == "api_error"
    assert events[-1]["error"]["details"]["error_code"] == "upstream_unavailable"
    upstream.script("/chat/completions", Script(sse=chunks({"content": "par"}), drop_after=2))
    client = client_for(both)
    with pytest.raises(sdk.APIStatusError):
        async with client.messages.stream(model=GPT, max_tokens=10, messages=[
                {"role": "user", "content": "cut again"}]) as stream:
            await stream.get_final_message()
    await client.close()


async def test_upstream_error_event_mid_stream(both: RunningSidecar,
                                               upstream: FakeUpstream) -> None:
    """OpenRouter's mid-stream error (a data event with an error object) becomes Anthropic's
    error event, with its status's type; the SDK raises it."""
    upstream.script("/chat/completions", Script(sse=[
        *chunks({"content": "so"})[:2],
        {"error": {"code": 429, "message": "Provider rate limited."}}], done=False))
    client = client_for(both)
    with pytest.raises(sdk.APIStatusError) as caught:
        async with client.messages.stream(model=GPT, max_tokens=10, messages=[
                {"role": "user", "content": "error please"}]) as stream:
            await stream.get_final_message()
    await client.close()
    assert "Provider rate limited." in str(caught.value)
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "rate_limit_error"


async def test_upstream_error_answer(both: RunningSidecar, upstream: FakeUpstream) -> None:
    """An OpenAI-format error answer reaches the client in Anthropic's shape, its status
    kept (the SDK's RateLimitError), the upstream's code in details.error_code."""
    upstream.script("/chat/completions", *[Script(status=429, json={"error": {
        "message": "Slow down.", "type": "rate_limit_error", "code": "rate_limit_exceeded"}})]
        * 3)
    client = client_for(both)
    with pytest.raises(sdk.RateLimitError) as caught:
        await client.messages.create(model=GPT, max_tokens=10, messages=HI)
    await client.close()
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error" and body["error"]["message"] == "Slow down."
    assert body["error"]["details"]["error_code"] == "rate_limit_exceeded"
    assert caught.value.error_code == "rate_limit_exceeded"


async def test_translated_thinking(both: RunningSidecar, upstream: FakeUpstream) -> None:
    """A reasoning model's reasoning comes back as a thinking block before the text, JSON or
    streamed (its signature from OpenRouter's reasoning_details)."""
    upstream.script("/chat/completions", Script(json=completion(
        {"content": "4", "reasoning": "Two and two.",
         "reasoning_details": [{"type": "reasoning.text", "text": "Two and two.",
                                "signature": "sig-or"}]})),
        Script(sse=chunks({"reasoning_content": "Two "}, {"reasoning_content": "and two."},
                          {"content": "4"})))
    client = client_for(both)
    answer = await client.messages.create(model=GPT, max_tokens=100, messages=[
        {"role": "user", "content": "think json"}])
    async with client.messages.stream(model=GPT, max_tokens=100, messages=[
            {"role": "user", "content": "think stream"}]) as stream:
        final = await stream.get_final_message()
    await client.close()
    for got, signature in ((answer, "sig-or"), (final, "")):
        assert [b.type for b in got.content] == ["thinking", "text"]
        assert got.content[0].thinking == "Two and two."  # type: ignore[union-attr]
        assert got.content[0].signature == signature  # type: ignore[union-attr]


async def test_fallback_that_fails_after_message_start(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        upstreams: Any, http: aiohttp.ClientSession) -> None:
    """When the first model's stream breaks after message_start, the client gets one
    message_start and then an error event: no second message_start from the next model (an
    answer cannot be restarted), and the next model is never asked."""
    (second,) = await upstreams(1)
    sidecar = await start_sidecar({
        "providers": [{"name": "one", "base_url": upstream.url, "models": ["chat/model-1"]},
                      {"name": "two", "base_url": second.url, "models": ["chat/model-2"]}],
        "routes": {"chat/best": ["chat/model-1", "chat/model-2"]}})
    upstream.script("/chat/completions", Script(sse=chunks({"content": "half"}),
                                                drop_after=2))
    async with http.post(sidecar.v1 + "/messages", json={
            "model": "chat/best", "max_tokens": 10, "stream": True,
            "messages": [{"role": "user", "content": "fallback"}]}) as response:
        events = events_of(await response.read())
    kinds = [e["type"] for e in events]
    assert kinds.count("message_start") == 1 and kinds[-1] == "error"
    assert "message_stop" not in kinds
    assert second.requests == []


async def test_fallback_before_the_answer(start_sidecar: StartSidecar, upstream: FakeUpstream,
                                          upstreams: Any) -> None:
    """A first model that fails before answering (503) falls back to the next, whose answer
    the client gets as an Anthropic message."""
    (second,) = await upstreams(1)
    sidecar = await start_sidecar({
        "providers": [{"name": "one", "base_url": upstream.url, "models": ["chat/model-1"]},
                      {"name": "two", "base_url": second.url, "models": ["chat/model-2"]}],
        "routes": {"chat/best": ["chat/model-1", "chat/model-2"]},
        "retry": {"attempts": 1}})
    upstream.script("/chat/completions", Script(status=503, json={"error": {"message": "x"}}))
    client = client_for(sidecar)
    raw = await client.messages.with_raw_response.create(
        model="chat/best", max_tokens=10, messages=[{"role": "user", "content": "fb"}])
    await client.close()
    answer = await raw.parse()
    assert answer.content[0].text == "Hello from the fake upstream."  # type: ignore[union-attr]
    assert raw.headers["x-sidecar-provider"] == "two"
    assert orjson.loads(second.last.body)["model"] == "chat/model-2"


async def test_count_tokens(both: RunningSidecar, anthropic_fake: FakeAnthropic,
                            upstream: FakeUpstream) -> None:
    """count_tokens goes to Anthropic where the provider has it; an OpenAI-format provider's
    model gets the spend estimate's prompt bound (at least the real count), said by a header;
    neither is billed (no ledger row) nor sent to the OpenAI-format upstream."""
    client = client_for(both)
    native = await client.messages.count_tokens(model=CLAUDE, messages=HI)
    assert native.input_tokens == 10
    assert anthropic_fake.last.path == "/v1/messages/count_tokens"
    assert anthropic_fake.last.json["model"] == "claude-test-1"
    raw = await client.messages.with_raw_response.count_tokens(
        model=GPT, messages=[{"role": "user", "content": "count these words"}])
    await client.close()
    counted = await raw.parse()
    assert raw.headers["x-sidecar-token-count"] == "bound"
    assert counted.input_tokens >= len("count these words")
    assert upstream.requests == []


async def test_beta_messages(both: RunningSidecar, anthropic_fake: FakeAnthropic,
                             upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """The SDK's beta namespace (anthropic-beta) is the same model endpoint, and a query
    (`?beta=true`, as other SDK versions and Claude Code add) goes to Anthropic as sent, and
    stays here for an OpenAI-format provider."""
    client = client_for(both)
    native = await client.beta.messages.create(model=CLAUDE, max_tokens=10, messages=HI,
                                               betas=["context-1m-2025-08-07"])
    await client.close()
    assert native.content[0].text == "Hello from Claude."  # type: ignore[union-attr]
    assert anthropic_fake.last.headers["anthropic-beta"] == "context-1m-2025-08-07"
    for model in (CLAUDE, GPT):
        async with http.post(both.v1 + "/messages?beta=true", json={
                "model": model, "max_tokens": 10, "messages": HI}) as response:
            assert (await response.json())["type"] == "message"
    assert anthropic_fake.last.path == "/v1/messages?beta=true"
    assert upstream.last.path == "/chat/completions"
