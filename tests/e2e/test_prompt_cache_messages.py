"""Provider prompt caching for Anthropic-format clients: the official anthropic SDK → the real
sidecar's /v1/messages → natively to an Anthropic-format fake, or translated to OpenRouter's
chat, both fakes keeping a prompt cache (bench/provider_cache.py). Breakpoints are added where
the client set none, left alone where it did, billed and reported. Cache off and defaults on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.provider_cache import ProviderCache
from tests.conftest import RunningSidecar, StartSidecar, merge
from tests.e2e.messages_helpers import client_for
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.proxy import FakeProxy
from tests.fakes.spend import get_json
from tests.fakes.upstream import FakeUpstream

CLAUDE = "anthropic/claude-sonnet-4.5"
SYSTEM = "You are the support agent of ACME Corp. Answer from the policy below. " * 70
CONFIGS = [{"cache": {"backend": "off"}}, {}]
CONFIG_IDS = ["cache_off", "defaults_on"]
PRICE = {"prompt": 3e-6, "completion": 15e-6, "input_cache_read": 0.3e-6,
         "input_cache_write": 3.75e-6}


@pytest.fixture
async def anthropic() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic(prompt_cache=ProviderCache())
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def openrouter(upstream: FakeUpstream) -> AsyncIterator[FakeProxy]:
    upstream.prompt_cache = ProviderCache()
    proxy = FakeProxy({"openrouter.ai": ("127.0.0.1", int(upstream.url.rsplit(":", 1)[1]))})
    await proxy.start()
    yield proxy
    await proxy.close()


def native(url: str) -> dict[str, Any]:
    return {"providers": [{"name": "claude", "base_url": url, "format": "anthropic",
                           "api_key": "sk-ant", "models": ["anthropic/*"],
                           "strip_prefix": True}],
            "spend": {"prices": {CLAUDE: PRICE}}}


def translated(proxy: FakeProxy) -> dict[str, Any]:
    return {"providers": [{"name": "openrouter", "base_url": "http://openrouter.ai",
                           "proxy": proxy.url}]}


def text_of(answer: Any) -> str:
    text: str = answer.content[0].text
    return text


async def converse(sidecar: RunningSidecar, turns: int, system: Any = SYSTEM) -> list[Any]:
    """`turns` turns of one conversation with the Anthropic SDK; answers go back in."""
    client = client_for(sidecar)
    messages: list[Any] = []
    answers = []
    try:
        for turn in range(turns):
            messages.append({"role": "user", "content": f"Question {turn}: where is my order?"})
            answer = await client.messages.create(model=CLAUDE, max_tokens=64, system=system,
                                                  messages=messages)
            messages.append({"role": "assistant", "content": text_of(answer)})
            answers.append(answer)
    finally:
        await client.close()
    return answers


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
async def test_native_messages_get_breakpoints_and_read_the_cache(
        start_sidecar: StartSidecar, anthropic: FakeAnthropic, config: dict[str, Any]) -> None:
    """/v1/messages to an Anthropic-format provider: the system prompt, then the answer before
    the newest question, are marked; each turn reads what the turn before wrote, as the
    client's usage and the sidecar's report say."""
    sidecar = await start_sidecar(merge(native(anthropic.url), config))
    answers = await converse(sidecar, 3)
    assert [r.markers for r in anthropic.requests] == [
        ["system[0]"], ["system[0]", "messages[1].content[0]"],
        ["system[0]", "messages[3].content[0]"]]
    assert anthropic.requests[0].json["system"] == [
        {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    for answer, billed in zip(answers, anthropic.billed, strict=True):
        assert (answer.usage.cache_read_input_tokens,
                answer.usage.cache_creation_input_tokens) == (billed.read, billed.written)
    assert anthropic.billed[2].read == anthropic.billed[1].read + anthropic.billed[1].written
    report = await get_json(sidecar.url + "/sidecar/usage?window=all&by=model")
    read = sum(b.read for b in anthropic.billed)
    assert report["total_cached_tokens"] == read
    assert report["total_provider_cache_hit_rate"] == round(
        read / sum(b.prompt for b in anthropic.billed), 4)


async def test_native_messages_with_the_clients_own_breakpoints_go_as_sent(
        start_sidecar: StartSidecar, anthropic: FakeAnthropic) -> None:
    """A client (Claude Code does) that marks its own blocks: the body goes untouched but for
    the model's name there."""
    sidecar = await start_sidecar(native(anthropic.url))
    system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    await converse(sidecar, 2, system=system)
    assert [r.markers for r in anthropic.requests] == [["system[0]"], ["system[0]"]]
    assert anthropic.last.json["messages"][1] == {"role": "assistant",
                                                  "content": "Hello from Claude."}


async def test_native_messages_below_the_minimum_go_as_sent(
        start_sidecar: StartSidecar, anthropic: FakeAnthropic) -> None:
    """A short conversation: nothing to mark, the body as sent."""
    sidecar = await start_sidecar(native(anthropic.url))
    await converse(sidecar, 2, system="Be brief.")
    assert [r.markers for r in anthropic.requests] == [[], []]


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
async def test_messages_translated_for_openrouter_get_breakpoints(
        start_sidecar: StartSidecar, upstream: FakeUpstream, openrouter: FakeProxy,
        config: dict[str, Any]) -> None:
    """/v1/messages for a Claude model on OpenRouter: the translated chat carries the markers
    on its content parts, and the client's usage shows the cache reads."""
    sidecar = await start_sidecar(merge(translated(openrouter), config))
    answers = await converse(sidecar, 3)
    assert [r.markers for r in upstream.requests] == [
        ["messages[0].content[0]"], ["messages[0].content[0]", "messages[2].content[0]"],
        ["messages[0].content[0]", "messages[4].content[0]"]]
    assert [b.read > 0 for b in upstream.billed] == [False, True, True]
    assert answers[2].usage.cache_read_input_tokens == upstream.billed[2].read


async def test_messages_translated_for_openai_models_get_a_cache_key(
        start_sidecar: StartSidecar, upstream: FakeUpstream, openrouter: FakeProxy) -> None:
    """An Anthropic-format client talking to openai/* on OpenRouter: one prompt_cache_key for
    the conversation, no markers."""
    sidecar = await start_sidecar(merge(translated(openrouter), CONFIGS[0]))
    client = client_for(sidecar)
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    for _ in range(2):
        answer = await client.messages.create(model="openai/gpt-4o", max_tokens=64,
                                              system=SYSTEM, messages=messages)
        messages += [{"role": "assistant", "content": text_of(answer)},
                     {"role": "user", "content": "more"}]
    await client.close()
    keys = {r.json["prompt_cache_key"] for r in upstream.requests}
    assert len(keys) == 1 and all(r.markers == [] for r in upstream.requests)
