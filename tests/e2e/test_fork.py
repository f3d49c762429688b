"""The cache's fork, end to end with the cache ON (the default): a miss runs the upstream call on
`call.fork()` in a single flight, and the client's request must judge, trace and bill it exactly
as it would with the cache off. Two defects lived here: the CLIENT span of every miss had no
`gen_ai.response.id`, and a stream the provider cut counted as a breaker success."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import StartSidecar
from tests.e2e.routing_helpers import MakeUpstreams, provider
from tests.fakes.clock import FakeClock
from tests.fakes.otlp import HttpReceiver, attributes
from tests.fakes.telemetry import CLIENT, by_kind, client, flush
from tests.fakes.upstream import Script, chat_chunks


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_cache_miss_span_carries_the_response_id(
        http_receiver: HttpReceiver, start_sidecar: StartSidecar, stream: bool) -> None:
    """With the cache on, a miss's CLIENT span has the answer's id, model, finish reason and
    usage (the answer record moves from the flight's fork to the client's call whole)."""
    sidecar = await start_sidecar({"telemetry": {"exporters": [
        {"protocol": "http", "endpoint": http_receiver.endpoint, "signals": ["traces"]}]}})
    async with client(sidecar) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": f"id {stream}"}],
            stream=stream, stream_options={"include_usage": True} if stream else None)
        assert raw.headers["x-sidecar-cache"] == "MISS"
        if stream:
            async for _ in raw.parse():
                pass
    await flush(sidecar)
    (span,) = by_kind(http_receiver.spans(), CLIENT)
    got = attributes(span.attributes)
    assert got["gen_ai.response.id"] == "chatcmpl-fake"
    assert got["gen_ai.response.model"] == "openai/gpt-4o-mini"
    assert got["gen_ai.response.finish_reasons"] == ["stop"]
    assert got["gen_ai.usage.input_tokens"] == 7


async def test_streams_the_provider_cuts_open_the_breaker_with_the_cache_on(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """With the cache on, two streams broken mid-way by the provider open its breaker (failures
    2): the flight's fork judges its exchange by the flight's own outcome, upstream_broke."""
    (only,) = await upstreams(1)
    sidecar = await start_sidecar({"providers": [provider("only", only)],
                                   "breaker": {"failures": 2, "open_s": 30},
                                   "retry": {"attempts": 1}}, clock=FakeClock())
    events = chat_chunks("m", ["a", "b", "c"])
    only.script("/chat/completions", *[Script(sse=events, drop_after=1) for _ in range(2)])
    async with client(sidecar) as sdk:
        for attempt in range(2):
            stream = await sdk.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"cut {attempt}"}],
                stream=True)
            with pytest.raises(openai.APIError):
                async for _ in stream:
                    pass
        with pytest.raises(openai.InternalServerError) as caught:
            await sdk.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "after"}])
    assert caught.value.status_code == 502 and "circuit open" in str(caught.value.body)
    assert len(only.requests) == 2  # the third never reached it
