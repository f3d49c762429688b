"""Redaction end to end: the openai SDK → the real sidecar → an upstream that echoes what it
received (and records it). No entity reaches the upstream; originals come back to the client."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from sidecar.live import LIVE
from tests.conftest import RunningSidecar, StartSidecar
from tests.fakes.echo import EchoUpstream
from tests.fakes.profiles import ALL
from tests.fakes.upstream import FakeUpstream, Script

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

VALUES = {
    "EMAIL": "jane.doe@example.com",
    "PHONE": "+44 20 7946 0958",
    "CREDIT_CARD": "4111 1111 1111 1111",
    "IBAN": "DE89 3704 0044 0532 0130 00",
    "US_SSN": "536-22-4187",
    "IP_ADDRESS": "203.0.113.42",
    "SECRET": "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
}
TEXT = ("Mail " + VALUES["EMAIL"] + " or call " + VALUES["PHONE"] + "; card "
        + VALUES["CREDIT_CARD"] + ", IBAN " + VALUES["IBAN"] + ", SSN " + VALUES["US_SSN"]
        + ", from " + VALUES["IP_ADDRESS"] + " with key " + VALUES["SECRET"] + ". Again: "
        + VALUES["EMAIL"] + ".")
PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+>")
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"echo": {"type": "string"}}}}}]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = EchoUpstream()
    await fake.start()
    yield fake
    await fake.close()


async def private(start_sidecar: StartSidecar, mode: str, **redact: Any) -> RunningSidecar:
    return await start_sidecar({"privacy": {"redact": {"mode": mode, **redact}}})


def client(sidecar: RunningSidecar) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)


def assert_clean(data: bytes) -> None:
    text = data.decode()
    leaked = [entity for entity, value in VALUES.items()
              if value in text or orjson.dumps(value).decode()[1:-1] in text]
    assert leaked == []


CONVERSATION: list[Any] = [
    {"role": "system", "content": "The operator is " + VALUES["EMAIL"]},
    {"role": "user", "content": [{"type": "text", "text": TEXT},
                                 {"type": "image_url", "image_url": {
                                     "url": "data:image/png;base64,iVBORw0KGgo="}}]},
    {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_0", "type": "function", "function": {
            "name": "lookup", "arguments": orjson.dumps({"q": TEXT}).decode()}}]},
    {"role": "tool", "tool_call_id": "call_0", "content": "Found " + VALUES["IBAN"]},
    {"role": "user", "content": TEXT},
]


@pytest.mark.parametrize("mode", ["mask", "pseudonymize"])
async def test_no_entity_reaches_the_upstream_from_a_conversation(
        start_sidecar: StartSidecar, upstream: FakeUpstream, mode: str) -> None:
    """System prompt, text parts, tool-call arguments and tool results all arrive redacted;
    the image part arrives exactly as sent."""
    sidecar = await private(start_sidecar, mode)
    async with client(sidecar) as sdk:
        await sdk.chat.completions.create(model="m", messages=CONVERSATION, user=VALUES["EMAIL"])
    sent = upstream.last.body
    assert_clean(sent)
    body = orjson.loads(sent)
    assert body["messages"][1]["content"][1] == CONVERSATION[1]["content"][1]
    arguments = orjson.loads(body["messages"][2]["tool_calls"][0]["function"]["arguments"])
    assert set(arguments) == {"q"}  # still valid JSON, value redacted
    tag = "[EMAIL]" if mode == "mask" else "<EMAIL_1>"
    assert body["messages"][0]["content"] == "The operator is " + tag
    assert body["user"] == tag


@pytest.mark.parametrize("mode", ["mask", "pseudonymize"])
@pytest.mark.parametrize("endpoint", ["embeddings", "completions", "responses"])
async def test_no_entity_reaches_the_upstream_from_other_endpoints(
        start_sidecar: StartSidecar, upstream: FakeUpstream, mode: str, endpoint: str) -> None:
    """Embeddings input (a list), a completions prompt and a Responses input are redacted."""
    sidecar = await private(start_sidecar, mode)
    async with client(sidecar) as sdk:
        if endpoint == "embeddings":
            await sdk.embeddings.create(model="e", input=[TEXT, "plain", TEXT])
        elif endpoint == "completions":
            await sdk.completions.create(model="m", prompt=TEXT)
        else:
            await sdk.responses.create(model="m", input=TEXT, instructions=TEXT)
    assert upstream.last.path == "/" + endpoint
    assert_clean(upstream.last.body)


async def test_pseudonymized_answer_comes_back_with_the_originals(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """The upstream sees placeholders (the same value twice → the same placeholder) and the
    client reads its own values in the echoed answer, with the redaction count."""
    sidecar = await private(start_sidecar, "pseudonymize")
    async with client(sidecar) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": TEXT}])
    sent = orjson.loads(upstream.last.body)["messages"][0]["content"]
    assert sent.count("<EMAIL_1>") == 2 and "<EMAIL_2>" not in sent
    assert set(PLACEHOLDER.findall(sent)) == {f"<{e}_1>" for e in VALUES}
    assert raw.parse().choices[0].message.content == TEXT
    assert raw.headers["x-sidecar-redactions"] == "8"


async def test_stream_of_one_character_per_chunk_is_restored(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """Every placeholder arrives split over single-character events; the client's deltas
    join to the original text and none of them shows a placeholder or a piece of one."""
    sidecar = await private(start_sidecar, "pseudonymize")
    async with client(sidecar) as sdk:
        stream = await sdk.chat.completions.create(
            model="m", stream=True, messages=[{"role": "user", "content": TEXT}])
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces) == TEXT
    assert not any("<" in piece for piece in pieces)
    # Held back: only placeholder characters. Every other character left in its own chunk,
    # and each placeholder as one piece, the moment its `>` arrived.
    sent = orjson.loads(upstream.last.body)["messages"][0]["content"]
    placeholders = PLACEHOLDER.findall(sent)
    assert len([p for p in pieces if p]) == len(PLACEHOLDER.sub("", sent)) + len(placeholders)


async def test_the_blocking_sdk_streams_restored_text_too(start_sidecar: StartSidecar,
                                                          upstream: FakeUpstream) -> None:
    """The synchronous client (in a thread) reads the same restored stream."""
    sidecar = await private(start_sidecar, "pseudonymize")

    def consume() -> str:
        with openai.OpenAI(base_url=sidecar.v1, api_key="k", max_retries=0) as sdk:
            stream = sdk.chat.completions.create(
                model="m", stream=True, messages=[{"role": "user", "content": TEXT}])
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    assert await asyncio.to_thread(consume) == TEXT


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_arguments_are_restored(start_sidecar: StartSidecar,
                                                upstream: FakeUpstream, stream: bool) -> None:
    """A tool call whose arguments carry placeholders reaches the client with the original
    values, as valid JSON, in a JSON answer and streamed one character at a time."""
    sidecar = await private(start_sidecar, "pseudonymize")
    quoted = TEXT + " and password='p\"w0rd!'"  # a quote inside: JSON-escaped when restored
    async with client(sidecar) as sdk:
        if stream:
            chunks = await sdk.chat.completions.create(
                model="m", stream=True, tools=TOOLS,
                messages=[{"role": "user", "content": quoted}])
            pieces = [call.function.arguments or "" async for c in chunks if c.choices
                      for call in c.choices[0].delta.tool_calls or [] if call.function]
            assert not any("<" in piece for piece in pieces)
            arguments = "".join(pieces)
        else:
            answer = await sdk.chat.completions.create(
                model="m", tools=TOOLS, messages=[{"role": "user", "content": quoted}])
            calls = answer.choices[0].message.tool_calls
            assert calls is not None and calls[0].type == "function"
            arguments = calls[0].function.arguments
    assert 'p\\"w0rd!' not in upstream.last.body.decode()
    assert orjson.loads(arguments) == {"echo": quoted}


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_api_answers_are_restored(start_sidecar: StartSidecar,
                                                  upstream: FakeUpstream, stream: bool) -> None:
    """Responses: output_text deltas, the done event and the final response all carry the
    originals."""
    sidecar = await private(start_sidecar, "pseudonymize")
    async with client(sidecar) as sdk:
        if stream:
            async with sdk.responses.stream(model="m", input=TEXT) as events:
                deltas = [e.delta async for e in events if e.type == "response.output_text.delta"]
                final = await events.get_final_response()
            assert "".join(deltas) == TEXT
            assert not any("<" in delta for delta in deltas)
        else:
            final = await sdk.responses.create(model="m", input=TEXT)
    assert final.output_text == TEXT


async def test_completions_answer_is_restored(start_sidecar: StartSidecar,
                                              upstream: FakeUpstream) -> None:
    """A legacy completion's text comes back with the originals."""
    sidecar = await private(start_sidecar, "pseudonymize")
    async with client(sidecar) as sdk:
        answer = await sdk.completions.create(model="m", prompt=TEXT)
    assert answer.choices[0].text == TEXT


async def test_mask_mode_sends_tags_and_restores_nothing(start_sidecar: StartSidecar,
                                                         upstream: FakeUpstream) -> None:
    """mask replaces values with [ENTITY] tags, irreversibly."""
    sidecar = await private(start_sidecar, "mask")
    async with client(sidecar) as sdk:
        answer = await sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Mail " + VALUES["EMAIL"]}])
    assert answer.choices[0].message.content == "Mail [EMAIL]"


async def test_a_placeholder_the_client_wrote_is_never_reused(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """Text shaped like `<EMAIL_1>` in the request keeps its meaning: the real address gets
    another placeholder, and the echo restores only that one."""
    sidecar = await private(start_sidecar, "pseudonymize")
    text = "Template <EMAIL_1> vs " + VALUES["EMAIL"]
    async with client(sidecar) as sdk:
        answer = await sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": text}])
    assert orjson.loads(upstream.last.body)["messages"][0]["content"] == (
        "Template <EMAIL_1> vs <EMAIL_2>")
    assert answer.choices[0].message.content == text


async def test_custom_patterns_and_entity_selection(start_sidecar: StartSidecar,
                                                    upstream: FakeUpstream) -> None:
    """Only the configured entities are redacted, plus custom named patterns."""
    sidecar = await private(start_sidecar, "mask", entities=["EMAIL"],
                            custom=[{"name": "employee_id", "pattern": r"EMP-\d{6}"}])
    async with client(sidecar) as sdk:
        await sdk.chat.completions.create(model="m", messages=[{
            "role": "user", "content": f"EMP-123456 {VALUES['EMAIL']} {VALUES['PHONE']}"}])
    assert orjson.loads(upstream.last.body)["messages"][0]["content"] == (
        f"[EMPLOYEE_ID] [EMAIL] {VALUES['PHONE']}")


async def test_block_mode_refuses_without_echoing_values(start_sidecar: StartSidecar,
                                                         upstream: FakeUpstream) -> None:
    """block: 400 pii_detected naming the entity types and counts, never a value; nothing
    goes upstream. A clean request passes."""
    sidecar = await private(start_sidecar, "block")
    async with client(sidecar) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(
                model="m", messages=[{"role": "user", "content": TEXT}])
        clean = await sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "nothing personal"}])
    error = caught.value
    assert error.code == "pii_detected"
    assert isinstance(error.body, dict)
    assert error.body["metadata"] == {"entities": {
        "CREDIT_CARD": 1, "EMAIL": 2, "IBAN": 1, "IP_ADDRESS": 1, "PHONE": 1, "SECRET": 1,
        "US_SSN": 1}}
    assert "EMAIL (2)" in error.message
    assert_clean(orjson.dumps(error.body))
    assert len(upstream.forwarded) == 1
    assert clean.choices[0].message.content == "nothing personal"


async def test_upstream_errors_are_restored_too(start_sidecar: StartSidecar,
                                                upstream: FakeUpstream) -> None:
    """An upstream error that quotes the (redacted) prompt reaches the client with its own
    values back, status and shape unchanged."""
    sidecar = await private(start_sidecar, "pseudonymize")
    upstream.script("/chat/completions", Script(status=400, json={
        "error": {"message": "bad address <EMAIL_1>", "code": "invalid"}}))
    async with client(sidecar) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(
                model="m", messages=[{"role": "user", "content": VALUES["EMAIL"]}])
    assert caught.value.body == {"message": "bad address " + VALUES["EMAIL"], "code": "invalid"}


async def test_redaction_header_metric_and_policy_route(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        http: aiohttp.ClientSession) -> None:
    """x-sidecar-redactions counts (0 when nothing was found), the metric counts by entity,
    and GET /sidecar/privacy reports the effective policy."""
    sidecar = await private(start_sidecar, "pseudonymize",
                            custom=[{"name": "TICKET", "pattern": r"TCK-\d+"}])
    request = {"model": "m", "messages": [{"role": "user", "content": TEXT}]}
    async with http.post(sidecar.v1 + "/chat/completions", json=request) as response:
        assert response.headers["x-sidecar-redactions"] == "8"
    request["messages"][0]["content"] = "hello"
    async with http.post(sidecar.v1 + "/chat/completions", json=request) as response:
        assert response.headers["x-sidecar-redactions"] == "0"
        assert "x-sidecar-zdr" not in response.headers
    async with http.get(sidecar.url + "/metrics") as response:
        metrics = await response.text()
    assert 'llm_sidecar_redactions_total{entity="EMAIL"} 2.0' in metrics
    assert 'llm_sidecar_redactions_total{entity="SECRET"} 1.0' in metrics
    async with http.get(sidecar.url + "/sidecar/privacy") as response:
        policy = orjson.loads(await response.read())
    assert policy["redact"]["mode"] == "pseudonymize"
    assert policy["redact"]["entities"] == list(VALUES)
    assert policy["redact"]["custom"] == ["TICKET"]
    assert policy["zdr"] is False and policy["upstream_data_policy"] is None
    assert "placeholders" in policy["kept"]


async def test_privacy_runs_right_after_read_body(start_sidecar: StartSidecar) -> None:
    """The stage sits before every stage that could keep content (fallback, spend, cache)."""
    sidecar = await private(start_sidecar, "mask")
    names = sidecar.app[LIVE].pipelines.stage_names
    assert names[names.index("read_body") + 1] == "privacy"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_cache_hit_restores_this_requests_own_values(
        start_sidecar: StartSidecar, upstream: FakeUpstream, stream: bool) -> None:
    """Two prompts that differ only in their email redact to the same request, so the second
    is a cache hit of the first's answer; each client still reads its own email back, never
    the other's (the entry holds placeholders; restoration is per request)."""
    # Spend off: it asks every stream for usage, which this echoing upstream never sends, and
    # an entry without usage cannot serve a stream that asked for it.
    sidecar = await start_sidecar({"privacy": {"redact": {"mode": "pseudonymize"}},
                                   "cache": {"backend": "memory"}, "spend": {"ledger": "off"}})
    answers, statuses = [], []
    async with client(sidecar) as sdk:
        for who in ("alice@example.com", "bob@example.org"):
            prompt = f"Write to {who} today."
            if stream:
                raw = await sdk.chat.completions.with_raw_response.create(
                    model="m", messages=[{"role": "user", "content": prompt}], stream=True)
                text = "".join([c.choices[0].delta.content or "" async for c in raw.parse()
                                if c.choices])
            else:
                raw = await sdk.chat.completions.with_raw_response.create(
                    model="m", messages=[{"role": "user", "content": prompt}])
                text = raw.parse().choices[0].message.content or ""
            answers.append(text)
            statuses.append(raw.headers["x-sidecar-cache"])
    assert statuses == ["MISS", "HIT"]
    assert len([r for r in upstream.forwarded if r.path == "/chat/completions"]) == 1
    assert "alice@example.com" in answers[0] and "bob@example.org" not in answers[0]
    assert "bob@example.org" in answers[1] and "alice@example.com" not in answers[1]
