"""The official openai SDK (sync, async, streaming) against the real sidecar and a fake upstream."""

from __future__ import annotations

import asyncio

import openai
import orjson
import pytest

from tests.conftest import Profile
from tests.fakes.profiles import ALL
from tests.fakes.upstream import FakeUpstream, Script

PROFILES = ALL  # each test runs in the module, defaults and everything profiles


async def test_async_chat_completion(async_client: openai.AsyncOpenAI,
                                     upstream: FakeUpstream) -> None:
    """An async chat completion goes upstream unchanged and its answer comes back."""
    answer = await async_client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Hello from the fake upstream."
    assert answer.usage is not None and answer.usage.total_tokens == 13
    assert upstream.last.path == "/chat/completions"
    assert orjson.loads(upstream.last.body)["messages"] == [{"role": "user", "content": "hi"}]


async def test_body_reaches_upstream_byte_for_byte(async_client: openai.AsyncOpenAI,
                                                   upstream: FakeUpstream,
                                                   profile: Profile) -> None:
    """No stage edits a body that needs no edit, so the upstream gets the client's exact bytes
    (OpenRouter's routing fields included, unless local providers take them)."""
    routing = None if profile.name == "everything" else {"provider": {"order": ["a"]}}
    raw = await async_client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "x"}], temperature=0.5,
        max_tokens=50,  # told, so that a blocking budget need not tell its reserve
        extra_body=routing)
    assert raw.http_request.content == upstream.last.body


async def test_sync_chat_completion(sync_client: openai.OpenAI) -> None:
    """The blocking SDK client works through the sidecar too."""
    answer = await asyncio.to_thread(
        sync_client.chat.completions.create, model="m",
        messages=[{"role": "user", "content": "x"}])
    assert answer.model == "m"
    assert answer.choices[0].finish_reason == "stop"


async def test_async_streaming_chat(async_client: openai.AsyncOpenAI) -> None:
    """An async streamed chat arrives as chunks, usage chunk included."""
    stream = await async_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True,
        stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from fake."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


async def test_sync_streaming_chat(sync_client: openai.OpenAI) -> None:
    """A blocking streamed chat arrives chunk by chunk."""
    def consume() -> str:
        stream = sync_client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True)
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    assert await asyncio.to_thread(consume) == "Hello from fake."


async def test_completions(async_client: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    """Legacy text completions go through the model pipeline."""
    answer = await async_client.completions.create(model="m", prompt="Tell me a story")
    assert answer.choices[0].text == "Once upon a time"
    assert upstream.last.path == "/completions"


async def test_embeddings(async_client: openai.AsyncOpenAI, sync_client: openai.OpenAI,
                          upstream: FakeUpstream) -> None:
    """Embeddings work with the SDK's default base64 encoding and with floats."""
    default = await async_client.embeddings.create(model="e", input=["a", "b"])
    assert [d.embedding for d in default.data] == [[0.25, -0.5, 0.75]] * 2
    assert orjson.loads(upstream.last.body)["encoding_format"] == "base64"
    floats = await asyncio.to_thread(sync_client.embeddings.create, model="e", input="a",
                                     encoding_format="float")
    assert floats.data[0].embedding == [0.25, -0.5, 0.75]


async def test_unknown_path_passes_through(async_client: openai.AsyncOpenAI,
                                           upstream: FakeUpstream) -> None:
    """A path the sidecar has no pipeline for (models, a custom route) goes through untouched."""
    models = await async_client.models.list()
    assert [m.id for m in models.data] == ["fake/model-a"]
    echoed = await async_client.get("/vector_stores/vs_1/files?limit=2", cast_to=object)
    assert echoed == {"method": "GET", "path": "/vector_stores/vs_1/files?limit=2",
                      "body_bytes": 0}


async def test_upstream_error_reaches_the_sdk_as_is(async_client: openai.AsyncOpenAI,
                                                    upstream: FakeUpstream) -> None:
    """An upstream 429 arrives with its own status, body and headers (the SDK raises it)."""
    upstream.script("/chat/completions", Script(
        status=429, headers={"Retry-After": "7"},
        json={"error": {"message": "slow down", "code": 429}}))
    with pytest.raises(openai.RateLimitError) as caught:
        await async_client.chat.completions.create(model="m", messages=[])
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body == {"message": "slow down", "code": 429}
