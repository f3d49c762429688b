"""Provider prompt caching end to end: the official openai SDK → the real sidecar → fakes that
keep a prompt cache as Anthropic does (bench/provider_cache.py) and record the breakpoints they
received. Breakpoints injected where expected (Anthropic's format, and OpenRouter's), none when
the client set one or below the minimum length, prompt_cache_key for OpenAI models, the
client's request untouched for the sidecar's own cache, stable under redaction, and shown in
the inspector and the spans. Each runs with the cache off and with the defaults on (cache,
spend, metrics, inspector)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from bench.provider_cache import ProviderCache
from tests.conftest import RunningSidecar, StartSidecar, merge
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.metered import Metered
from tests.fakes.otlp import GrpcReceiver, attributes
from tests.fakes.proxy import FakeProxy
from tests.fakes.telemetry import CLIENT, by_kind, flush
from tests.fakes.upstream import FakeUpstream

CLAUDE = "anthropic/claude-sonnet-4.5"
# ~5,000 characters: ~1,250 tokens for the fakes' tokenizer, above Sonnet's 1,024 minimum
SYSTEM = "You are the support agent of ACME Corp. Answer from the policy below. " * 70
CONFIGS = [{"cache": {"backend": "off"}}, {}]
CONFIG_IDS = ["cache_off", "defaults_on"]


@pytest.fixture
async def anthropic() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic(prompt_cache=ProviderCache())
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def openrouter(upstream: FakeUpstream) -> AsyncIterator[FakeProxy]:
    """openrouter.ai, reached through an egress proxy that sends it to the fake upstream."""
    upstream.prompt_cache = ProviderCache()
    proxy = FakeProxy({"openrouter.ai": ("127.0.0.1", int(upstream.url.rsplit(":", 1)[1]))})
    await proxy.start()
    yield proxy
    await proxy.close()


def anthropic_provider(url: str, **extra: Any) -> dict[str, Any]:
    return {"providers": [{"name": "claude", "base_url": url, "format": "anthropic",
                           "api_key": "sk-ant", "models": ["anthropic/*"], "strip_prefix": True,
                           **extra}]}


def openrouter_provider(proxy: FakeProxy, **extra: Any) -> dict[str, Any]:
    return {"providers": [{"name": "openrouter", "base_url": "http://openrouter.ai",
                           "proxy": proxy.url, **extra}]}


async def converse(sidecar: RunningSidecar, model: str, turns: int, system: str = SYSTEM,
                   **extra: Any) -> list[Any]:
    """`turns` turns of one conversation; each answer goes back into the next request."""
    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)
    messages: list[Any] = [{"role": "system", "content": system}]
    answers = []
    try:
        for turn in range(turns):
            messages.append({"role": "user", "content": f"Question {turn}: where is my order?"})
            answer = await sdk.chat.completions.create(model=model, messages=messages, **extra)
            messages.append({"role": "assistant", "content": answer.choices[0].message.content})
            answers.append(answer)
    finally:
        await sdk.close()
    return answers


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
async def test_anthropic_format_gets_breakpoints_and_reads_its_cache(
        start_sidecar: StartSidecar, anthropic: FakeAnthropic, config: dict[str, Any]) -> None:
    """Turn 1: the system prompt is marked and written; later turns mark the answer before the
    newest question too, and read what the turn before wrote, as the client's usage shows."""
    sidecar = await start_sidecar(merge(anthropic_provider(anthropic.url), config))
    answers = await converse(sidecar, CLAUDE, 3)
    assert [r.markers for r in anthropic.requests] == [
        ["system[0]"], ["system[0]", "messages[1].content[0]"],
        ["system[0]", "messages[3].content[0]"]]
    billed = anthropic.billed
    assert billed[0].read == 0 and billed[0].written > 1024
    assert billed[1].read == billed[0].written and billed[1].written > 0
    assert billed[2].read == billed[1].read + billed[1].written
    for answer, bill in zip(answers, billed, strict=True):
        details = answer.usage.prompt_tokens_details
        assert (answer.usage.prompt_tokens, details.cached_tokens) == (bill.prompt, bill.read)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
async def test_openrouter_anthropic_models_get_breakpoints_on_content_parts(
        start_sidecar: StartSidecar, upstream: FakeUpstream, openrouter: FakeProxy,
        config: dict[str, Any]) -> None:
    """On OpenRouter, an Anthropic model's chat carries the markers on content parts (string
    content turned into a text part), and the provider's cache is read from the second turn."""
    sidecar = await start_sidecar(merge(openrouter_provider(openrouter), config))
    answers = await converse(sidecar, CLAUDE, 3)
    assert [r.markers for r in upstream.requests] == [
        ["messages[0].content[0]"], ["messages[0].content[0]", "messages[2].content[0]"],
        ["messages[0].content[0]", "messages[4].content[0]"]]
    sent = upstream.requests[1].json["messages"][2]
    assert sent == {"role": "assistant", "content": [{
        "type": "text", "text": answers[0].choices[0].message.content,
        "cache_control": {"type": "ephemeral"}}]}
    assert [b.read > 0 for b in upstream.billed] == [False, True, True]
    assert answers[2].usage.prompt_tokens_details.cached_tokens == upstream.billed[2].read


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
async def test_openrouter_openai_models_get_a_cache_key_and_others_nothing(
        start_sidecar: StartSidecar, upstream: FakeUpstream, openrouter: FakeProxy,
        config: dict[str, Any]) -> None:
    """openai/* gets one prompt_cache_key for the whole conversation and no markers; a model of
    neither family goes out as the client sent it, byte for byte."""
    sidecar = await start_sidecar(merge(openrouter_provider(openrouter), config))
    await converse(sidecar, "openai/gpt-4o", 2)
    keys = {r.json["prompt_cache_key"] for r in upstream.requests}
    assert len(keys) == 1 and all(r.markers == [] for r in upstream.requests)
    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)
    raw = await sdk.chat.completions.with_raw_response.create(
        model="meta/llama-3", messages=[{"role": "system", "content": SYSTEM},
                                        {"role": "user", "content": "hi"}])
    await sdk.close()
    assert upstream.last.body == raw.http_request.content


async def test_a_client_key_or_session_is_kept(start_sidecar: StartSidecar,
                                               upstream: FakeUpstream,
                                               openrouter: FakeProxy) -> None:
    """The client's own prompt_cache_key goes as it is; a session id gives the key."""
    # the sidecar's cache off: the key and the session id are not in its key (cache.md)
    sidecar = await start_sidecar(merge(openrouter_provider(openrouter), CONFIGS[0]))
    await converse(sidecar, "openai/gpt-4o", 1, extra_body={"prompt_cache_key": "mine"})
    assert upstream.last.json["prompt_cache_key"] == "mine"
    await converse(sidecar, "openai/gpt-4o", 1, extra_body={"session_id": "s-1"})
    first = upstream.last.json["prompt_cache_key"]
    await converse(sidecar, "openai/gpt-4o", 1, system="Other.",
                   extra_body={"session_id": "s-1"})
    assert upstream.last.json["prompt_cache_key"] == first


@pytest.mark.parametrize("fake", ["anthropic", "openrouter"])
async def test_none_when_the_client_set_one(start_sidecar: StartSidecar,
                                            anthropic: FakeAnthropic, upstream: FakeUpstream,
                                            openrouter: FakeProxy, fake: str) -> None:
    """A client that places its own breakpoints (four, Anthropic's limit) gets exactly those:
    nothing is added, nothing moved."""
    config = (anthropic_provider(anthropic.url) if fake == "anthropic"
              else openrouter_provider(openrouter))
    sidecar = await start_sidecar(config)
    mark = {"type": "ephemeral"}
    messages: list[Any] = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM, "cache_control": mark}]}]
    for turn in range(3):
        messages += [{"role": "user", "content": [{"type": "text", "text": f"q{turn}",
                                                   "cache_control": mark}]},
                     {"role": "assistant", "content": f"a{turn}"}]
    messages.append({"role": "user", "content": "last"})
    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)
    await sdk.chat.completions.create(model=CLAUDE, messages=messages)
    await sdk.close()
    recorded = anthropic.last if fake == "anthropic" else upstream.last
    prefix = "system[0]" if fake == "anthropic" else "messages[0].content[0]"
    shift = 0 if fake == "anthropic" else 1
    assert recorded.markers == [prefix, *(f"messages[{2 * t + shift}].content[0]"
                                          for t in range(3))]


@pytest.mark.parametrize("fake", ["anthropic", "openrouter"])
async def test_none_below_the_minimum_length(start_sidecar: StartSidecar,
                                             anthropic: FakeAnthropic, upstream: FakeUpstream,
                                             openrouter: FakeProxy, fake: str) -> None:
    """A short conversation is below the model's minimum: no marker, nothing written."""
    config = (anthropic_provider(anthropic.url) if fake == "anthropic"
              else openrouter_provider(openrouter))
    sidecar = await start_sidecar(config)
    await converse(sidecar, CLAUDE, 3, system="Be brief.")
    recorded = anthropic if fake == "anthropic" else upstream
    assert [r.markers for r in recorded.requests] == [[], [], []]
    assert all(b.written == 0 and b.read == 0 for b in recorded.billed)


async def test_off_sends_the_body_as_the_client_sent_it(start_sidecar: StartSidecar,
                                                        upstream: FakeUpstream,
                                                        openrouter: FakeProxy) -> None:
    """providers[].prompt_cache: off: no marker, no key."""
    sidecar = await start_sidecar(openrouter_provider(openrouter, prompt_cache="off"))
    await converse(sidecar, CLAUDE, 2)
    await converse(sidecar, "openai/gpt-4o", 1)
    assert all(r.markers == [] and "prompt_cache_key" not in r.json for r in upstream.requests)


async def test_the_sidecar_cache_and_the_ledger_see_the_client_request(
        start_sidecar: StartSidecar, anthropic: FakeAnthropic, tmp_path: Any) -> None:
    """The sidecar's own cache key is the same with breakpoints injected or not (they are
    added when the provider renders its body), and an identical request is a HIT."""
    keys = []
    for mode in ("auto", "off"):
        sidecar = await start_sidecar(merge(anthropic_provider(anthropic.url, prompt_cache=mode),
                                            {"state_dir": str(tmp_path / mode)}))
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.post(sidecar.v1 + "/chat/completions", json={
                        "model": CLAUDE, "messages": [{"role": "system", "content": SYSTEM},
                                                      {"role": "user", "content": "hi"}]}) as r:
                    assert r.status == 200
                    keys.append((r.headers["x-sidecar-cache-key"], r.headers["x-sidecar-cache"]))
    assert [status for _, status in keys] == ["MISS", "HIT", "MISS", "HIT"]
    assert len({key for key, _ in keys}) == 1
    assert [r.markers for r in anthropic.requests] == [["system[0]"], []]


async def test_markers_on_redacted_text_are_stable(start_sidecar: StartSidecar,
                                                   anthropic: FakeAnthropic) -> None:
    """With pseudonyms, the provider sees placeholders, the same ones every turn: the marked
    prefix is identical, so the second turn reads what the first wrote."""
    sidecar = await start_sidecar(merge(anthropic_provider(anthropic.url),
                                        {"privacy": {"redact": {"mode": "pseudonymize"}}}))
    system = SYSTEM + " Escalations go to jane.doe@example.com."
    await converse(sidecar, CLAUDE, 2, system=system)
    first, second = (r.json["system"][0]["text"] for r in anthropic.requests)
    assert "jane.doe@example.com" not in first and first == second
    assert anthropic.requests[1].markers == ["system[0]", "messages[1].content[0]"]
    assert anthropic.billed[1].read == anthropic.billed[0].written > 0


async def test_inspector_and_spans_show_the_provider_cache(
        start_sidecar: StartSidecar, anthropic: FakeAnthropic,
        grpc_receiver: GrpcReceiver) -> None:
    """The inspector's record has the cache read/write tokens and the markers added; the
    CLIENT span carries gen_ai.usage.cache_read / cache_creation and the markers."""
    sidecar = await start_sidecar(merge(anthropic_provider(anthropic.url), {"telemetry": {
        "exporters": [{"protocol": "grpc", "endpoint": grpc_receiver.endpoint}]}}))
    await converse(sidecar, CLAUDE, 2, stream=False)
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.url + "/sidecar/requests?limit=5") as response:
        records = orjson.loads(await response.read())["requests"]
    latest = max(records, key=lambda r: r["seq"])
    second = anthropic.billed[1]
    assert (latest["cached_tokens"], latest["cache_write_tokens"], latest["cache_markers"]) == (
        second.read, second.written, 2)
    await flush(sidecar)
    spans = by_kind(grpc_receiver.spans(), CLIENT)
    got = attributes(spans[-1].attributes)
    assert got["gen_ai.usage.cache_read.input_tokens"] == second.read
    assert got["gen_ai.usage.cache_creation.input_tokens"] == second.written
    assert got["gen_ai.usage.input_tokens"] == second.prompt
    assert got["llm_sidecar.prompt_cache.markers"] == 2


async def test_breakpoints_keep_the_cap_in_the_providers_field(start_sidecar: StartSidecar,
                                                              metered: Metered) -> None:
    """Under a blocking budget, a body given breakpoints still carries spend's completion cap,
    in the field the provider takes (max_completion_tokens for an OpenAI reasoning model)."""
    sidecar = await start_sidecar({
        "providers": [{"name": "gateway", "base_url": metered.url, "prompt_cache": "on"}],
        "cache": {"backend": "off"},
        "spend": {"reserve_max_tokens": 64, "prices": {"o3-mini": {"prompt": 0,
                                                                   "completion": 1e-6}},
                  "budgets": [{"name": "cap", "limit_usd": 1.0}]}})
    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)
    await sdk.chat.completions.create(model="o3-mini", messages=[
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"}])
    await sdk.close()
    [sent] = metered.bodies
    assert sent["max_completion_tokens"] == 64 and "max_tokens" not in sent
    assert sent["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
