"""The official openai SDK (sync, async, streaming) against the real sidecar and a fake upstream."""

from __future__ import annotations

import asyncio

import openai

from tests.conftest import RunningSidecar
from tests.fakes.upstream import FakeUpstream


async def test_async_chat_completion(async_client: openai.AsyncOpenAI,
                                     upstream: FakeUpstream) -> None:
    """An async chat completion goes upstream unchanged and its answer comes back."""
    answer = await async_client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Hello from the fake upstream."
    assert answer.usage is not None and answer.usage.total_tokens == 13
    assert upstream.last.path == "/chat/completions"
    assert b'"content":"hi"' in upstream.last.body


async def test_sync_chat_completion(sync_client: openai.OpenAI) -> None:
    """The blocking SDK client works through the sidecar too."""
    answer = await asyncio.to_thread(
        sync_client.chat.completions.create, model="m", messages=[{"role": "user", "content": "x"}])
    assert answer.model == "m"
    assert answer.choices[0].finish_reason == "stop"
