"""The auto router on /v1/messages with the official Anthropic SDK: a tier served by an
OpenAI-format provider (translated) and one by an Anthropic-format provider (native), the
answer naming the model that ran, count_tokens counted by the tier's model, and the cascade
on an answer cut at max_tokens before any content."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.conftest import StartSidecar, merge
from tests.e2e.messages_helpers import CLAUDE, GPT, client_for, completion, providers
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.auto import VARIANTS
from tests.fakes.upstream import FakeUpstream, Script

ROUTER = {"auto": {"routers": {"sidecar/auto": {
    "tiers": {"simple": [GPT], "medium": ["chat/model-2"], "reasoning": [CLAUDE]},
    "cascade": True}}}}


def config(anthropic_fake: FakeAnthropic, upstream: FakeUpstream,
           variant: str) -> dict[str, Any]:
    return merge(merge(providers(anthropic_fake.url, upstream.url), ROUTER), VARIANTS[variant])


@pytest.mark.parametrize("variant", ["bare", "defaults"])
async def test_tiers_on_both_kinds_of_provider(start_sidecar: StartSidecar,
                                               anthropic_fake: FakeAnthropic,
                                               upstream: FakeUpstream, variant: str) -> None:
    """'hi' goes to the OpenAI-format provider as a chat completion for the simple model; a
    request with thinking goes to the Anthropic provider natively for the reasoning model; each
    answer names the model that ran and the headers the tier."""
    sidecar = await start_sidecar(config(anthropic_fake, upstream, variant))
    client = client_for(sidecar)
    try:
        raw = await client.messages.with_raw_response.create(
            model="sidecar/auto", max_tokens=100,
            messages=[{"role": "user", "content": "hi"}])
        simple = await raw.parse()
        thought = await client.messages.with_raw_response.create(
            model="sidecar/auto", max_tokens=4000,
            thinking={"type": "enabled", "budget_tokens": 2000},
            messages=[{"role": "user", "content": "Is 2^61 - 1 prime?"}])
        reasoning = await thought.parse()
    finally:
        await client.close()
    assert (simple.model, raw.headers["x-sidecar-auto-tier"]) == (GPT, "simple")
    assert upstream.last.path == "/chat/completions"
    assert orjson.loads(upstream.last.body)["model"] == GPT
    assert thought.headers["x-sidecar-auto-tier"] == "reasoning"
    assert thought.headers["x-sidecar-auto-reason"] == "reasoning=budget"
    assert anthropic_fake.last.json["model"] == "claude-test-1"
    assert reasoning.model == "claude-test-1"  # as the Anthropic provider named it


async def test_count_tokens_is_counted_by_the_tiers_model(
        start_sidecar: StartSidecar, anthropic_fake: FakeAnthropic,
        upstream: FakeUpstream) -> None:
    """count_tokens for sidecar/auto is routed like the message it counts: a proof goes to the
    reasoning tier's Anthropic model, which counts it."""
    sidecar = await start_sidecar(config(anthropic_fake, upstream, "defaults"))
    client = client_for(sidecar)
    try:
        counted = await client.messages.count_tokens(
            model="sidecar/auto",
            messages=[{"role": "user", "content": "Prove that there are infinitely many primes."}])
    finally:
        await client.close()
    assert counted.input_tokens == 10
    assert anthropic_fake.last.path == "/v1/messages/count_tokens"
    assert anthropic_fake.last.json["model"] == "claude-test-1"


async def test_an_answer_cut_before_any_content_goes_one_tier_up(
        start_sidecar: StartSidecar, anthropic_fake: FakeAnthropic,
        upstream: FakeUpstream) -> None:
    """The simple model stops at max_tokens with no text (stop_reason max_tokens once
    translated): medium answers, and the client gets medium's message."""
    upstream.script("/chat/completions", Script(json=completion({"content": ""}, "length")))
    sidecar = await start_sidecar(config(anthropic_fake, upstream, "defaults"))
    client = client_for(sidecar)
    try:
        raw = await client.messages.with_raw_response.create(
            model="sidecar/auto", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
        answer = await raw.parse()
    finally:
        await client.close()
    models = [orjson.loads(r.body)["model"] for r in upstream.requests]
    assert models == [GPT, "chat/model-2"]
    assert raw.headers["x-sidecar-auto-reason"].startswith("cascade:length")
    assert answer.content[0].text == "Hello from the fake upstream."  # type: ignore[union-attr]
