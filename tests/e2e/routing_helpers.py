"""Shared pieces of the routing tests: several fake upstreams, provider configs, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import orjson

from tests.conftest import RunningSidecar
from tests.fakes.profiles import fresh
from tests.fakes.upstream import FakeUpstream

MakeUpstreams = Callable[[int], Awaitable[list[FakeUpstream]]]
CHAT = [{"role": "user", "content": "hi"}]


def provider(name: str, fake: FakeUpstream, *models: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "base_url": fake.url, "models": list(models or ["*"]), **extra}


def models_asked(fake: FakeUpstream) -> list[str]:
    return [orjson.loads(r.body)["model"] for r in fake.requests if r.body]


async def client_for(sidecar: RunningSidecar) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)
    yield client
    await client.close()


async def chat(client: openai.AsyncOpenAI, model: str,
               messages: list[dict[str, str]] | None = None, **extra_body: Any
               ) -> tuple[str, int, str]:
    """(provider, attempts, answered model) of one chat completion through the sidecar, with a
    prompt of its own unless `messages` are given (the cache, on in most profiles, answers
    none of them)."""
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=messages or [{"role": "user", "content": fresh()}],
        extra_body=extra_body or None)
    answer = raw.parse()
    return (raw.headers["x-sidecar-provider"], int(raw.headers["x-sidecar-attempts"]),
            answer.model)

