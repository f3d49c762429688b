"""/v1/messages through every stage, with the official Anthropic SDK: local keys in x-api-key,
the sidecar's own errors in Anthropic's shape, budgets and the ledger priced from Anthropic's
usage (cache reads and writes), redaction (block and pseudonymize, tool inputs included) and
the cache (a hit replays the same events; JSON and streams serve each other)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import anthropic as sdk
import orjson
import pytest

from tests.conftest import RunningSidecar, StartSidecar
from tests.e2e.messages_helpers import (
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
)
from tests.fakes.anthropic import Answer, FakeAnthropic, message, stream_events, text, tool_use
from tests.fakes.otlp import GrpcReceiver, attributes
from tests.fakes.spend import flush, rows
from tests.fakes.telemetry import CLIENT, SERVER, by_kind
from tests.fakes.telemetry import flush as flush_telemetry
from tests.fakes.upstream import FakeUpstream, Script

EMAIL = "alice@example.com"
PRICES = {CLAUDE: {"prompt": 1e-6, "completion": 2e-6, "input_cache_read": 1e-7,
                   "input_cache_write": 1.25e-6},
          GPT: {"prompt": 1e-6, "completion": 2e-6}}


def config(anthropic_fake: FakeAnthropic, upstream: FakeUpstream, **extra: Any
           ) -> dict[str, Any]:
    return {**providers(anthropic_fake.url, upstream.url), **extra}


@pytest.mark.parametrize("header", ["x-api-key", "Authorization"])
async def test_local_keys(start_sidecar: StartSidecar, anthropic_fake: FakeAnthropic,
                          upstream: FakeUpstream, header: str) -> None:
    """A local key is accepted in x-api-key (Anthropic's SDKs, Claude Code) or as a bearer
    token, and never goes upstream; an unknown one is a 401 in Anthropic's shape."""
    sidecar = await start_sidecar(config(anthropic_fake, upstream, auth={
        "required": True, "keys": [{"name": "dev", "token": "sk-local-1"}]}))
    client = client_for(sidecar, key="sk-local-1", bearer=header == "Authorization")
    answer = await client.messages.create(model=CLAUDE, max_tokens=10, messages=HI)
    await client.close()
    assert answer.content[0].text == "Hello from Claude."  # type: ignore[union-attr]
    assert "sk-local-1" not in str(dict(anthropic_fake.last.headers))
    stranger = client_for(sidecar, key="sk-unknown")
    with pytest.raises(sdk.AuthenticationError) as caught:
        await stranger.messages.create(model=CLAUDE, max_tokens=10, messages=HI)
    await stranger.close()
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert caught.value.error_code == "invalid_api_key"
    assert len(anthropic_fake.requests) == 1


async def test_sidecar_errors_are_anthropic_shaped(start_sidecar: StartSidecar,
                                                   http: aiohttp.ClientSession) -> None:
    """Missing max_tokens (mandatory on Anthropic's API), a body that is not JSON, one too
    large, a provider that cannot be reached: each is Anthropic's error object with the
    sidecar's status and code, never an OpenAI body."""
    sidecar = await start_sidecar({"listen": {"max_body_bytes": 4096}, "providers": [
        {"name": "gone", "base_url": "http://127.0.0.1:9/v1", "models": ["*"]}],
        "retry": {"attempts": 1}})
    cases = [
        ({"model": GPT, "messages": HI}, 400, "invalid_request_error", "invalid_request"),
        (b"{not json", 400, "invalid_request_error", "invalid_json"),
        ({"model": GPT, "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 5000}]},
         413, "request_too_large", "request_too_large"),
        ({"model": GPT, "max_tokens": 5, "messages": HI}, 502, "api_error",
         "upstream_unavailable"),
    ]
    for body, status, kind, code in cases:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        async with http.post(sidecar.v1 + "/messages", data=data,
                             headers={"Content-Type": "application/json"}) as response:
            answer = orjson.loads(await response.read())
        assert response.status == status, answer
        assert answer["type"] == "error" and set(answer) == {"type", "error"}
        assert answer["error"]["type"] == kind and answer["error"]["details"]["error_code"] == code
        assert isinstance(answer["error"]["message"], str)
    assert "'max_tokens' is required" in (await _post_error(http, sidecar, {
        "model": GPT, "messages": HI}))["error"]["message"]


async def _post_error(http: aiohttp.ClientSession, sidecar: RunningSidecar,
                      body: dict[str, Any]) -> Any:
    async with http.post(sidecar.v1 + "/messages", json=body) as response:
        return orjson.loads(await response.read())


async def test_budget_refuses_with_402_in_anthropic_shape(
        start_sidecar: StartSidecar, anthropic_fake: FakeAnthropic,
        upstream: FakeUpstream) -> None:
    """Under a tiny blocking budget the request is refused before it goes upstream: 402
    billing_error, the sidecar's code (budget_exceeded) where the SDK reads it."""
    sidecar = await start_sidecar(config(anthropic_fake, upstream, spend={
        "prices": PRICES, "budgets": [{"name": "tiny", "limit_usd": 0.000001}]}))
    client = client_for(sidecar)
    with pytest.raises(sdk.APIStatusError) as caught:
        await client.messages.create(model=CLAUDE, max_tokens=100, messages=HI)
    await client.close()
    assert caught.value.status_code == 402
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "billing_error"
    assert body["error"]["details"]["error_code"] == "budget_exceeded"
    assert body["error"]["details"]["budget"] == "tiny"
    assert anthropic_fake.requests == []


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_ledger_row_prices_anthropic_usage(start_sidecar: StartSidecar,
                                                 anthropic_fake: FakeAnthropic,
                                                 upstream: FakeUpstream, tmp_path: Path,
                                                 stream: bool) -> None:
    """A /v1/messages answer is billed from Anthropic's usage: fresh input, cache reads and
    cache writes each at their own price, output; one ledger row says so."""
    usage = {"input_tokens": 100, "output_tokens": 50, "cache_read_input_tokens": 1000,
             "cache_creation_input_tokens": 200}
    reply = message(text("Priced."), usage=usage)
    anthropic_fake.answer(Answer(events=stream_events(reply)) if stream else Answer(json=reply))
    sidecar = await start_sidecar(config(anthropic_fake, upstream, spend={"prices": PRICES}))
    client = client_for(sidecar)
    if stream:
        async with client.messages.stream(model=CLAUDE, max_tokens=100, messages=HI) as events:
            await events.get_final_message()
    else:
        await client.messages.create(model=CLAUDE, max_tokens=100, messages=HI)
    await client.close()
    await flush(sidecar)
    (row,) = rows(tmp_path / "ledger.db")
    assert row["endpoint"] == "messages" and row["provider"] == "claude"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (1300, 50)
    assert (row["cached_tokens"], row["cache_write_tokens"]) == (1000, 200)
    expected = 100 * 1e-6 + 1000 * 1e-7 + 200 * 1.25e-6 + 50 * 2e-6
    assert row["cost_nusd"] == round(expected * 1e9) and not row["estimated"]


async def test_budget_cap_ends_the_stream_properly(start_sidecar: StartSidecar,
                                                   anthropic_fake: FakeAnthropic,
                                                   upstream: FakeUpstream,
                                                   http: aiohttp.ClientSession) -> None:
    """A blocking budget lowers max_tokens; an upstream that ignores it is cut at the cap
    with Anthropic's proper ending: content_block_stop, message_delta stop_reason max_tokens,
    message_stop (the SDK reads a whole message)."""
    sidecar = await start_sidecar(config(anthropic_fake, upstream, spend={
        "prices": {CLAUDE: {"prompt": 0, "completion": 1e-6}},
        "budgets": [{"name": "cap", "limit_usd": 3e-6}]}))
    anthropic_fake.answer(Answer(events=stream_events(message(text("one two three four five "
                                                                   "six seven")), parts=7)))
    async with http.post(sidecar.v1 + "/messages", json={
            "model": CLAUDE, "max_tokens": 100, "stream": True, "messages": HI}) as response:
        events = events_of(await response.read())
    assert anthropic_fake.last.json["max_tokens"] == 3
    deltas = [e for e in events if e["type"] == "content_block_delta"]
    assert len(deltas) == 3
    assert [e["type"] for e in events[-3:]] == ["content_block_stop", "message_delta",
                                                "message_stop"]
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"


async def test_block_mode_refuses_with_nothing_upstream(start_sidecar: StartSidecar,
                                                       anthropic_fake: FakeAnthropic,
                                                       upstream: FakeUpstream) -> None:
    """In block mode an email anywhere in the content (here a tool result) is a 400 in
    Anthropic's shape naming the entity, and nothing goes upstream."""
    sidecar = await start_sidecar(config(anthropic_fake, upstream,
                                         privacy={"redact": {"mode": "block"}}))
    client = client_for(sidecar)
    with pytest.raises(sdk.BadRequestError) as caught:
        await client.messages.create(model=GPT, max_tokens=10, messages=[
            {"role": "user", "content": "lookup"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1",
                                               "name": "who", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                          "content": f"It is {EMAIL}"}]}])
    await client.close()
    assert caught.value.error_code == "pii_detected"
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["details"]["entities"] == {"EMAIL": 1}
    assert EMAIL not in str(body)
    assert upstream.requests == [] and anthropic_fake.requests == []


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_pseudonymize_restores_text_and_tool_inputs_native(
        start_sidecar: StartSidecar, anthropic_fake: FakeAnthropic, upstream: FakeUpstream,
        stream: bool) -> None:
    """Pseudonymized on the way out (system, text, tool inputs and results), restored on the
    way back in the text and inside tool inputs, streamed in small pieces or not."""
    sidecar = await start_sidecar(config(anthropic_fake, upstream,
                                         privacy={"redact": {"mode": "pseudonymize"}}))
    reply = message(text("Writing to <EMAIL_1> now."),
                    tool_use("toolu_1", "send", {"to": "<EMAIL_1>", "cc": ["<EMAIL_1>"]}),
                    stop_reason="tool_use")
    anthropic_fake.answer(Answer(events=stream_events(reply, parts=9)) if stream
                          else Answer(json=reply))
    client = client_for(sidecar)
    body: dict[str, Any] = {"model": CLAUDE, "max_tokens": 50, "system": f"User: {EMAIL}",
                            "tools": [WEATHER], "messages": [
        {"role": "user", "content": f"Mail {EMAIL}"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t0", "name": "lookup",
                                           "input": {"who": EMAIL}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t0",
                                      "content": [{"type": "text", "text": EMAIL}]}]}]}
    if stream:
        async with client.messages.stream(**body) as events:
            final = await events.get_final_message()
    else:
        final = await client.messages.create(**body)
    await client.close()
    sent = anthropic_fake.last.body.decode()
    assert EMAIL not in sent and sent.count("<EMAIL_1>") == 4
    assert final.content[0].text == f"Writing to {EMAIL} now."  # type: ignore[union-attr]
    assert final.content[1].input == {"to": EMAIL, "cc": [EMAIL]}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"


async def test_pseudonymize_restores_translated_tool_arguments(
        start_sidecar: StartSidecar, anthropic_fake: FakeAnthropic,
        upstream: FakeUpstream) -> None:
    """Through an OpenAI-format provider too: placeholders the model put in its tool call's
    arguments reach the client as the original values in the tool_use input."""
    sidecar = await start_sidecar(config(anthropic_fake, upstream,
                                         privacy={"redact": {"mode": "pseudonymize"}}))
    upstream.script("/chat/completions", Script(sse=chunks(
        {"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                         "function": {"name": "send", "arguments": '{"to": "<EMA'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 'IL_1>"}'}}]},
        finish="tool_calls")))
    client = client_for(sidecar)
    async with client.messages.stream(model=GPT, max_tokens=50, messages=[
            {"role": "user", "content": f"Mail {EMAIL}"}]) as events:
        final = await events.get_final_message()
    await client.close()
    assert EMAIL not in upstream.last.body.decode()
    assert final.content[0].input == {"to": EMAIL}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize("target", [CLAUDE, GPT], ids=["native", "translated"])
async def test_cache_hit_replays_the_same_events(start_sidecar: StartSidecar,
                                                 anthropic_fake: FakeAnthropic,
                                                 upstream: FakeUpstream,
                                                 http: aiohttp.ClientSession,
                                                 target: str) -> None:
    """A second identical streamed request is a HIT: the same events byte for byte, nothing
    upstream, billed nothing; a JSON request is then served from the stored stream, folded
    into the same message the stream makes."""
    sidecar = await start_sidecar(config(anthropic_fake, upstream))
    body = {"model": target, "max_tokens": 30, "stream": True, "tools": [WEATHER],
            "messages": [{"role": "user", "content": "cache me"}]}
    anthropic_fake.answer(Answer(events=stream_events(message(
        text("Sure."), tool_use("toolu_1", "weather", {"city": "Oslo"}),
        stop_reason="tool_use"))))
    upstream.script("/chat/completions", Script(sse=chunks(
        {"content": "Sure."}, {"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function",
                                                "function": {"name": "weather",
                                                             "arguments": '{"city":"Oslo"}'}}]},
        finish="tool_calls")))
    seen = []
    for _ in range(2):  # with the key the SDK sends below: the cache keeps callers apart
        async with http.post(sidecar.v1 + "/messages", json=body,
                             headers={"x-api-key": "sk-client"}) as response:
            seen.append((response.headers["x-sidecar-cache"], await response.read()))
    assert [status for status, _ in seen] == ["MISS", "HIT"]
    assert seen[0][1] == seen[1][1]
    assert len(anthropic_fake.requests) + len(upstream.requests) == 1
    client = client_for(sidecar)
    raw = await client.messages.with_raw_response.create(
        **{k: v for k, v in body.items() if k != "stream"})
    await client.close()
    folded = await raw.parse()
    assert raw.headers["x-sidecar-cache"] == "HIT"
    assert [b.type for b in folded.content] == ["text", "tool_use"]
    assert folded.content[1].input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert folded.stop_reason == "tool_use"


async def test_cached_message_serves_a_stream(start_sidecar: StartSidecar,
                                              anthropic_fake: FakeAnthropic,
                                              upstream: FakeUpstream) -> None:
    """A stored JSON message answers a streaming request as Anthropic's events, which the SDK
    accumulates into the same message."""
    sidecar = await start_sidecar(config(anthropic_fake, upstream))
    upstream.script("/chat/completions", Script(json=completion(
        {"content": "Stored.", "tool_calls": [tool_call("c1", "weather", {"city": "Rome"})]},
        finish="tool_calls")))
    client = client_for(sidecar)
    body: dict[str, Any] = {"model": GPT, "max_tokens": 30, "tools": [WEATHER],
                            "messages": [{"role": "user", "content": "json first"}]}
    first = await client.messages.create(**body)
    async with client.messages.stream(**body) as events:
        replayed = await events.get_final_message()
    await client.close()
    assert [b.to_dict() for b in replayed.content] == [b.to_dict() for b in first.content]
    assert replayed.stop_reason == "tool_use"
    assert replayed.usage.input_tokens == first.usage.input_tokens
    assert len(upstream.requests) == 1


async def test_genai_span_and_metrics(start_sidecar: StartSidecar, grpc_receiver: GrpcReceiver,
                                      anthropic_fake: FakeAnthropic,
                                      upstream: FakeUpstream) -> None:
    """A streamed /v1/messages call is a GenAI chat operation: its CLIENT span carries the
    model, the stop reason (OpenAI's word), the usage with cache reads and writes, the
    captured system and output text; the token metric counts it."""
    usage = {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 30,
             "cache_creation_input_tokens": 5}
    anthropic_fake.answer(Answer(events=stream_events(message(text("Traced."), usage=usage))))
    sidecar = await start_sidecar(config(anthropic_fake, upstream, telemetry={
        "capture_content": True,
        "exporters": [{"protocol": "grpc", "endpoint": grpc_receiver.endpoint}]}))
    client = client_for(sidecar)
    async with client.messages.stream(model=CLAUDE, max_tokens=20, system="Be brief.",
                                      messages=HI) as stream:
        await stream.get_final_message()
    await client.close()
    await flush_telemetry(sidecar)
    (span,) = by_kind(grpc_receiver.spans(), CLIENT)
    got = attributes(span.attributes)
    assert got["gen_ai.operation.name"] == "chat"
    assert got["gen_ai.request.model"] == CLAUDE
    assert got["gen_ai.response.finish_reasons"] == ["stop"]
    assert (got["gen_ai.usage.input_tokens"], got["gen_ai.usage.output_tokens"]) == (45, 4)
    assert got["gen_ai.usage.cache_read.input_tokens"] == 30
    assert got["gen_ai.usage.cache_creation.input_tokens"] == 5
    assert got["gen_ai.request.max_tokens"] == 20
    server = attributes(by_kind(grpc_receiver.spans(), SERVER)[0].attributes)
    captured = str(got) + str(server)
    assert "Be brief." in captured and "Traced." in captured
    metrics = grpc_receiver.metrics()
    assert metrics["gen_ai.client.token.usage"].histogram.data_points


async def test_every_feature_on(start_sidecar: StartSidecar, anthropic_fake: FakeAnthropic,
                                upstream: FakeUpstream, tmp_path: Path,
                                http: aiohttp.ClientSession) -> None:
    """Local keys, pseudonymization, a warn budget, the cache, content capture, the inspector
    and a fallback route at once: a streamed tool turn through a route alias comes back
    restored, the identical request is a HIT with the same bytes, and the ledger has one row
    billed and one saved."""
    sidecar = await start_sidecar(config(
        anthropic_fake, upstream,
        auth={"required": True, "keys": [{"name": "dev", "token": "sk-local-1"}]},
        privacy={"redact": {"mode": "pseudonymize"}},
        spend={"prices": PRICES, "budgets": [{"name": "soft", "limit_usd": 1.0,
                                              "action": "warn"}]},
        telemetry={"capture_content": True}, routes={"coder": [GPT, CLAUDE]}))
    upstream.script("/chat/completions", Script(sse=chunks(
        {"content": "Mailing <EMAIL_1>."},
        {"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                         "function": {"name": "send", "arguments": '{"to": "<EMAIL_1>"}'}}]},
        finish="tool_calls")))
    body = {"model": "coder", "max_tokens": 40, "stream": True, "tools": [WEATHER],
            "messages": [{"role": "user", "content": f"Mail {EMAIL}"}]}
    seen = []
    for _ in range(2):
        async with http.post(sidecar.v1 + "/messages", json=body,
                             headers={"x-api-key": "sk-local-1"}) as response:
            assert response.status == 200
            seen.append((response.headers["x-sidecar-cache"], await response.read()))
    assert [status for status, _ in seen] == ["MISS", "HIT"] and seen[0][1] == seen[1][1]
    events = events_of(seen[0][1])
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    pieces = "".join(e["delta"].get("text", "") + e["delta"].get("partial_json", "")
                     for e in events if e["type"] == "content_block_delta")
    assert pieces == f'Mailing {EMAIL}.{{"to": "{EMAIL}"}}'
    assert EMAIL not in upstream.last.body.decode() and len(upstream.requests) == 1
    await flush(sidecar)
    billed, hit = rows(tmp_path / "ledger.db")
    assert billed["cost_nusd"] > 0 and billed["key_name"] == "dev"
    assert hit["cache_hit"] and hit["cost_nusd"] == 0 and hit["saved_nusd"] == billed["cost_nusd"]
