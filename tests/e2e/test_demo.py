"""The built-in offline demo upstream, through the real sidecar and the openai SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from sidecar.upstream.demo import MODELS, embedding, start_demo
from tests.conftest import StartSidecar


@pytest.fixture
async def demo_client(start_sidecar: StartSidecar) -> AsyncIterator[openai.AsyncOpenAI]:
    runner, url = await start_demo()
    sidecar = await start_sidecar({"upstream": {"url": url}})
    async with openai.AsyncOpenAI(base_url=sidecar.v1, api_key="none", max_retries=0) as client:
        yield client
    await runner.cleanup()


async def test_chat_echoes_with_usage(demo_client: openai.AsyncOpenAI) -> None:
    """A chat answer echoes the last user message, deterministically, with token usage."""
    messages = [{"role": "system", "content": "be brief"},
                {"role": "user", "content": "hello demo world"}]
    first = await demo_client.chat.completions.create(model="openai/gpt-4o-mini",
                                                      messages=messages)  # type: ignore[arg-type]
    again = await demo_client.chat.completions.create(model="openai/gpt-4o-mini",
                                                      messages=messages)  # type: ignore[arg-type]
    assert first.choices[0].message.content == "Echo: hello demo world"
    assert first.id == again.id
    assert first.usage is not None
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (14, 4)


async def test_streaming_token_by_token(demo_client: openai.AsyncOpenAI) -> None:
    """A streamed answer arrives a token at a time and ends with the usage chunk."""
    stream = await demo_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "one two three"}], stream=True,
        stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and
              c.choices[0].delta.content]
    assert pieces == ["Echo: ", "one ", "two ", "three"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


async def test_max_tokens_truncates(demo_client: openai.AsyncOpenAI) -> None:
    """max_tokens shortens the answer and reports finish_reason length."""
    answer = await demo_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "a b c d e"}], max_tokens=2)
    assert answer.choices[0].message.content == "Echo: a "
    assert answer.choices[0].finish_reason == "length"


async def test_completions_and_embeddings(demo_client: openai.AsyncOpenAI) -> None:
    """Completions echo the prompt; embeddings are deterministic unit vectors (base64 or float)."""
    completion = await demo_client.completions.create(model="m", prompt="tell me")
    assert completion.choices[0].text == "Echo: tell me"
    vectors = await demo_client.embeddings.create(model="e", input=["alpha", "beta"])
    floats = await demo_client.embeddings.create(model="e", input="alpha",
                                                 encoding_format="float")
    assert vectors.data[0].embedding == pytest.approx(embedding("alpha"), abs=1e-6)
    assert floats.data[0].embedding == pytest.approx(embedding("alpha"))
    assert sum(x * x for x in floats.data[0].embedding) == pytest.approx(1.0)


async def test_responses(demo_client: openai.AsyncOpenAI) -> None:
    """The Responses API answers too, streamed or not."""
    response = await demo_client.responses.create(model="m", input="what is up")
    assert response.output_text == "Echo: what is up"
    stream = await demo_client.responses.create(model="m", input="hi", stream=True)
    kinds = [event.type async for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


async def test_models_carry_prices(demo_client: openai.AsyncOpenAI) -> None:
    """/models lists the demo models with OpenRouter-style string prices."""
    models = await demo_client.models.list()
    assert [m.id for m in models.data] == list(MODELS)
    gpt = next(m for m in models.data if m.id == "openai/gpt-4o")
    assert gpt.model_extra is not None
    assert gpt.model_extra["pricing"]["prompt"] == "0.0000025"


async def test_error_models(demo_client: openai.AsyncOpenAI) -> None:
    """demo/error-<status> answers with that status, so upstream errors can be tried out."""
    with pytest.raises(openai.RateLimitError):
        await demo_client.chat.completions.create(model="demo/error-429", messages=[])
