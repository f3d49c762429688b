"""Sticky pools end to end: a 50/50 pool of two providers, each a fake with its own prompt
cache (bench/provider_cache.py), the routing clock seeded and moved by the test. One
conversation stays on the provider that holds its cache; different conversations still split
by weight; a failing provider, or one whose breaker opened, releases the conversation, which is
pinned again where it lands; an idle pin expires."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from bench.provider_cache import ProviderCache
from tests.conftest import RunningSidecar, StartSidecar, merge
from tests.fakes.clock import FakeClock
from tests.fakes.upstream import FakeUpstream, Script

MODEL = "anthropic/claude-sonnet-4.5"
SYSTEM = "You are the support agent of ACME Corp. Answer from the policy below. " * 70
CONFIGS = [{"cache": {"backend": "off"}}, {}]
CONFIG_IDS = ["cache_off", "defaults_on"]
MakeUpstreams = Callable[[int], Awaitable[list[FakeUpstream]]]


async def pool(upstreams: MakeUpstreams, start_sidecar: StartSidecar, clock: FakeClock,
               config: dict[str, Any] | None = None
               ) -> tuple[RunningSidecar, dict[str, FakeUpstream]]:
    """Providers a and b, one glob, weight 1 each; `prompt_cache: on` (the fakes are on
    loopback, not on OpenRouter's host) so their caches get breakpoints."""
    fakes = await upstreams(2)
    for fake in fakes:
        fake.prompt_cache = ProviderCache()
    providers = [{"name": name, "base_url": fake.url, "models": ["anthropic/*"],
                  "prompt_cache": "on"} for name, fake in zip("ab", fakes, strict=True)]
    sidecar = await start_sidecar(merge({"providers": providers}, config or {}), clock=clock)
    return sidecar, dict(zip("ab", fakes, strict=True))


class Conversation:
    """One conversation through the official SDK; each answer goes into the next turn."""

    def __init__(self, sidecar: RunningSidecar, first: str = "Where is my order?") -> None:
        self.sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)
        self.messages: list[Any] = [{"role": "system", "content": SYSTEM},
                                    {"role": "user", "content": first}]
        self.providers: list[str] = []

    async def turn(self, **extra: Any) -> Any:
        raw = await self.sdk.chat.completions.with_raw_response.create(
            model=MODEL, messages=self.messages, extra_body=extra or None)
        answer = raw.parse()
        self.providers.append(raw.headers["x-sidecar-provider"])
        self.messages += [{"role": "assistant", "content": answer.choices[0].message.content},
                          {"role": "user", "content": f"And then? ({len(self.providers)})"}]
        return answer

    async def close(self) -> None:
        await self.sdk.close()


async def pinned(sidecar: RunningSidecar) -> dict[str, int]:
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.url + "/sidecar/providers") as response:
        data = orjson.loads(await response.read())
    return {p["name"]: p["pinned_conversations"] for p in data["providers"]}


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
async def test_one_conversation_stays_on_one_provider(
        upstreams: MakeUpstreams, start_sidecar: StartSidecar, config: dict[str, Any]) -> None:
    """20 turns of one conversation in a 50/50 pool: all on the provider that served the
    first, which reads its cache on every later turn; the inspector says they were pinned."""
    sidecar, fakes = await pool(upstreams, start_sidecar, FakeClock(seed=3), config)
    talk = Conversation(sidecar)
    for _ in range(20):
        await talk.turn()
    await talk.close()
    home = talk.providers[0]
    assert talk.providers == [home] * 20
    billed = fakes[home].billed
    assert len(billed) == 20 and all(b.read > 0 for b in billed[1:])
    assert await pinned(sidecar) == {"a": int(home == "a"), "b": int(home == "b")}
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.url + "/sidecar/requests?limit=20") as response:
        records = orjson.loads(await response.read())["requests"]
    assert sum(r["sticky"] for r in records) == 19


async def test_without_stickiness_a_conversation_is_split(
        upstreams: MakeUpstreams, start_sidecar: StartSidecar) -> None:
    """The same 20 turns with sticky_idle_s 0: drawn by weight each turn, the conversation
    lands on both providers and loses its cache each time it changes."""
    sidecar, fakes = await pool(upstreams, start_sidecar, FakeClock(seed=3),
                                {"prompt_cache": {"sticky_idle_s": 0}})
    talk = Conversation(sidecar)
    for _ in range(20):
        await talk.turn()
    await talk.close()
    assert set(talk.providers) == {"a", "b"}
    queues = {name: list(fake.billed) for name, fake in fakes.items()}
    billed = [queues[name].pop(0) for name in talk.providers]  # in the order of the turns
    switched = [i for i in range(1, 20) if talk.providers[i] != talk.providers[i - 1]]
    assert switched
    for i in switched:  # the other provider never saw the turn before: a colder cache
        assert billed[i].read < billed[i - 1].read + billed[i - 1].written


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
async def test_conversations_still_split_by_weight(
        upstreams: MakeUpstreams, start_sidecar: StartSidecar, config: dict[str, Any]) -> None:
    """100 conversations of two turns: each keeps its provider, and the conversations split
    close to 50/50 (within 4 standard deviations)."""
    sidecar, _ = await pool(upstreams, start_sidecar, FakeClock(seed=11), config)
    homes = []
    for i in range(100):
        talk = Conversation(sidecar, first=f"Conversation {i}: where is my order?")
        await talk.turn()
        await talk.turn()
        await talk.close()
        assert talk.providers[0] == talk.providers[1]
        homes.append(talk.providers[0])
    assert 30 <= homes.count("a") <= 70


async def test_a_failing_provider_releases_the_conversation(
        upstreams: MakeUpstreams, start_sidecar: StartSidecar) -> None:
    """The pinned provider answers 503: the retry lands on the other, which writes the cache
    and keeps the conversation from then on, though the first is healthy again."""
    sidecar, fakes = await pool(upstreams, start_sidecar, FakeClock(seed=5))
    talk = Conversation(sidecar)
    await talk.turn()
    await talk.turn()
    home = talk.providers[0]
    other = "b" if home == "a" else "a"
    fakes[home].script("/chat/completions", Script(status=503, json={"error": {
        "message": "overloaded", "type": "server_error"}}))
    await talk.turn()
    for _ in range(5):
        await talk.turn()
    await talk.close()
    assert talk.providers == [home, home] + [other] * 6
    assert await pinned(sidecar) == {home: 0, other: 1}
    assert all(b.read > 0 for b in fakes[other].billed[1:])


async def test_an_open_breaker_releases_the_conversation(
        upstreams: MakeUpstreams, start_sidecar: StartSidecar) -> None:
    """Another request opened the pinned provider's breaker: the conversation's next turn goes
    straight to the other provider (no try on the open one) and is pinned there."""
    clock = FakeClock(seed=5)
    sidecar, fakes = await pool(upstreams, start_sidecar, clock,
                                {"breaker": {"failures": 1, "open_s": 30}})
    talk = Conversation(sidecar)
    await talk.turn()
    home = talk.providers[0]
    other = "b" if home == "a" else "a"
    fakes[home].script("/chat/completions", Script(status=503, json={"error": {
        "message": "overloaded", "type": "server_error"}}))
    stranger = Conversation(sidecar, first="Something else")
    with pytest.raises(openai.InternalServerError):
        await stranger.turn(provider={"only": [home], "allow_fallbacks": False})
    await stranger.close()
    seen = len(fakes[home].requests)
    await talk.turn()
    clock.advance(31)  # the breaker half-opens: the conversation stays where its cache is
    await talk.turn()
    await talk.close()
    assert talk.providers == [home, other, other]
    assert len(fakes[home].requests) == seen
    assert await pinned(sidecar) == {home: 0, other: 1}


async def test_an_idle_pin_expires(upstreams: MakeUpstreams, start_sidecar: StartSidecar
                                   ) -> None:
    """A conversation idle longer than sticky_idle_s is no longer pinned."""
    clock = FakeClock(seed=5)
    sidecar, _ = await pool(upstreams, start_sidecar, clock,
                            {"prompt_cache": {"sticky_idle_s": 120}})
    talk = Conversation(sidecar)
    await talk.turn()
    clock.advance(100)
    assert sum((await pinned(sidecar)).values()) == 1
    await talk.turn()  # used: 120 s more from now
    clock.advance(100)
    assert sum((await pinned(sidecar)).values()) == 1
    clock.advance(21)
    assert sum((await pinned(sidecar)).values()) == 0
    await talk.close()
