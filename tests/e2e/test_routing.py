"""Routing end to end: providers chosen by model, fallbacks and retries, preferences, with the
openai SDK against the real sidecar and one fake upstream per provider."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from tests.conftest import Profile, StartSidecar, free_port
from tests.e2e.routing_helpers import (
    CHAT,
    MakeUpstreams,
    chat,
    models_asked,
    provider,
)
from tests.fakes.clock import FakeClock
from tests.fakes.profiles import ALL, fresh
from tests.fakes.upstream import FakeUpstream, Script, chat_chunks

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

# The cache off in the module profile (start_sidecar merges SIDECAR_BASE under each config):
# routing tests repeat requests; in the others, those whose every request must reach a
# provider send prompts of their own (routing_helpers.chat does).
SIDECAR_BASE = {"cache": {"backend": "off"}}


def client(sidecar: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)


async def test_routing_by_prefix(start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """anthropic/* goes to the direct provider (prefix stripped), the rest to the broad one."""
    direct, broad = await upstreams(2)
    sidecar = await start_sidecar({"providers": [
        provider("anthropic", direct, "anthropic/*", strip_prefix=True),
        provider("openrouter", broad, "*")]})
    async with client(sidecar) as sdk:
        assert await chat(sdk, "anthropic/claude-x") == ("anthropic", 1, "claude-x")
        assert await chat(sdk, "openai/gpt-4o") == ("openrouter", 1, "openai/gpt-4o")
    assert models_asked(direct) == ["claude-x"]
    assert models_asked(broad) == ["openai/gpt-4o"]  # an OpenRouter-type provider: full slug


async def test_no_provider_for_the_model_is_400(start_sidecar: StartSidecar,
                                                upstreams: MakeUpstreams) -> None:
    """A model no provider's globs match is 400 no_provider_available naming the providers."""
    (only,) = await upstreams(1)
    sidecar = await start_sidecar({"providers": [provider("oai", only, "openai/*")]})
    async with client(sidecar) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(model="mistral/large", messages=CHAT)
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "no_provider_available"
    assert "'mistral/large'" in error["message"] and "oai: openai/*" in error["message"]
    assert only.forwarded == []


def _refused_port() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize("failure", ["503", "429", "timeout", "refused", "dropped"])
async def test_fallback_provider_serves_when_the_primary_fails(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams, failure: str) -> None:
    """A primary failing before its answer (status, timeout, refused, dropped) hands over to
    the broader provider; the response says which provider served and after how many tries."""
    primary, fallback = await upstreams(2)
    first = provider("primary", primary, "openai/*")
    script = {"503": Script(status=503, json={"error": {"message": "overloaded"}}),
              "429": Script(status=429, headers={"Retry-After": "1"}, json={}),
              "timeout": Script(delay_s=3, json={}),
              "dropped": Script(close_before_headers=True)}.get(failure)
    if script is not None:
        primary.script("/chat/completions", script)
    if failure == "refused":
        first["base_url"] = _refused_port()
    sidecar = await start_sidecar({
        "upstream": {"read_timeout_s": 0.3},
        "providers": [first, provider("fallback", fallback, "*")],
        "retry": {"attempts": 2}}, clock=FakeClock())
    async with client(sidecar) as sdk:
        assert await chat(sdk, "openai/gpt-4o") == ("fallback", 2, "openai/gpt-4o")
    assert models_asked(fallback) == ["openai/gpt-4o"]


async def test_retry_after_is_honoured_on_the_same_provider(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """A lone provider's 429 with Retry-After (seconds, or an HTTP date) is retried after
    exactly that wait; one asking for more than max_backoff_s is passed to the client as is."""
    (only,) = await upstreams(1)
    clock = FakeClock()
    sidecar = await start_sidecar({"providers": [provider("only", only)],
                                   "retry": {"max_backoff_s": 10}}, clock=clock)
    date = email.utils.formatdate(time.time() + 6, usegmt=True)
    only.script("/chat/completions",
                Script(status=429, headers={"Retry-After": "2"}, json={}),
                Script(status=429, headers={"Retry-After": date}, json={}))
    async with client(sidecar) as sdk:
        assert await chat(sdk, "m") == ("only", 3, "m")
        assert clock.slept[0] == 2.0
        assert 4.0 < clock.slept[1] <= 6.0  # an HTTP date has whole seconds
        only.script("/chat/completions",
                    Script(status=429, headers={"Retry-After": "60"}, json={"error": "later"}))
        with pytest.raises(openai.RateLimitError) as caught:
            await sdk.chat.completions.create(model="m", messages=CHAT)
    assert caught.value.response.headers["retry-after"] == "60"
    assert caught.value.response.headers["x-sidecar-attempts"] == "1"
    assert len(clock.slept) == 2


async def test_backoff_is_exponential_with_full_jitter(start_sidecar: StartSidecar,
                                                       upstreams: MakeUpstreams) -> None:
    """Retries of one provider wait a random time under backoff_s · 2^n, capped by
    max_backoff_s; after retry.attempts the last upstream error is what the client gets."""
    (only,) = await upstreams(1)
    clock = FakeClock()
    sidecar = await start_sidecar({"providers": [provider("only", only)], "retry": {
        "attempts": 5, "backoff_s": 1, "max_backoff_s": 3}}, clock=clock)
    only.script("/chat/completions", *[Script(status=503, json={"n": n}) for n in range(5)])
    async with client(sidecar) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            await sdk.chat.completions.create(model="m", messages=CHAT)
    assert caught.value.response.json() == {"n": 4}
    assert len(only.forwarded) == 5
    caps = [1, 2, 3, 3]
    assert len(clock.slept) == 4
    assert all(0 <= wait <= cap for wait, cap in zip(clock.slept, caps, strict=True))
    assert len(set(clock.slept)) == 4  # jittered, not a fixed schedule


async def test_deadline_stops_retries(start_sidecar: StartSidecar,
                                      upstreams: MakeUpstreams) -> None:
    """No try starts and no wait is slept past retry.deadline_s, whatever attempts allows."""
    (only,) = await upstreams(1)
    clock = FakeClock()
    sidecar = await start_sidecar({"providers": [provider("only", only)], "retry": {
        "attempts": 10, "deadline_s": 2.5, "max_backoff_s": 5}}, clock=clock)
    only.script("/chat/completions",
                *[Script(status=503, headers={"Retry-After": "1"}, json={}) for _ in range(10)])
    async with client(sidecar) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            await sdk.chat.completions.create(model="m", messages=CHAT)
    assert caught.value.status_code == 503
    assert len(only.forwarded) == 3  # at 0, 1 and 2 s; the next would start at 3 s > 2.5 s
    assert clock.slept == [1.0, 1.0]


async def test_transport_failures_everywhere_name_each_provider(
        start_sidecar: StartSidecar) -> None:
    """When no attempt got an answer, 502 upstream_unavailable names every provider tried."""
    sidecar = await start_sidecar({"providers": [
        {"name": "a", "base_url": _refused_port()}, {"name": "b", "base_url": _refused_port()}],
        "retry": {"attempts": 2}}, clock=FakeClock())
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.v1 + "/chat/completions", json={"model": "m"}) as response:
        assert response.status == 502
        assert response.headers["x-sidecar-attempts"] == "2"
        error = (await response.json())["error"]
    assert error["code"] == "upstream_unavailable"
    assert "'a': Cannot connect" in error["message"] and "'b': Cannot connect" in error["message"]


async def test_timeouts_everywhere_are_504(start_sidecar: StartSidecar,
                                           upstreams: MakeUpstreams) -> None:
    """When every attempt timed out, the answer is 504 upstream_timeout."""
    (slow,) = await upstreams(1)
    slow.script("/chat/completions", Script(delay_s=3, json={}), Script(delay_s=3, json={}))
    sidecar = await start_sidecar({"upstream": {"read_timeout_s": 0.2},
                                   "providers": [provider("slow", slow)],
                                   "retry": {"attempts": 2}}, clock=FakeClock())
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.v1 + "/chat/completions", json={"model": "m"}) as response:
        assert response.status == 504
        assert (await response.json())["error"]["code"] == "upstream_timeout"


async def test_no_retry_after_the_first_streamed_byte(start_sidecar: StartSidecar,
                                                      upstreams: MakeUpstreams) -> None:
    """A stream that broke after it started is never retried: the client gets what came and an
    error event; neither the fallback provider nor the fallback model is asked."""
    primary, fallback = await upstreams(2)
    primary.script("/chat/completions", Script(sse=chat_chunks("m", ["a", "b", "c"]),
                                               drop_after=2))
    sidecar = await start_sidecar({"providers": [provider("primary", primary, "m"),
                                                 provider("fallback", fallback, "*")]})
    pieces = []
    async with client(sidecar) as sdk:
        stream = await sdk.chat.completions.create(model="m", messages=CHAT, stream=True,
                                                   extra_body={"models": ["other"]})
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                pieces.append(chunk.choices[0].delta.content)
    assert pieces == ["a", "b"]
    assert fallback.forwarded == []
    assert len(primary.forwarded) == 1


async def test_models_field_falls_back_to_the_next_model(start_sidecar: StartSidecar,
                                                         upstreams: MakeUpstreams) -> None:
    """Body `models`: the next model is tried once the first failed on its providers; routing
    fields never reach a local provider."""
    (only,) = await upstreams(1)
    only.script("/chat/completions", Script(status=503, json={}), Script(status=503, json={}))
    sidecar = await start_sidecar({"providers": [provider("only", only)],
                                   "retry": {"attempts": 2}}, clock=FakeClock())
    async with client(sidecar) as sdk:
        messages = [{"role": "user", "content": fresh()}]
        served = await chat(sdk, "first", messages, models=["second", "third"],
                            provider={"sort": "price"}, route="fallback")
    assert served == ("only", 3, "second")
    assert models_asked(only) == ["first", "first", "second"]
    sent = orjson.loads(only.last.body)
    assert not {"models", "provider", "route"} & set(sent)
    assert sent["messages"] == messages


async def test_route_alias_tries_its_models_within_the_key_allowance(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """A routes alias is an ordered candidate list; a local key only ever reaches the candidates
    its allowed_models match, and one allowed none of them gets 403."""
    (only,) = await upstreams(1)
    only.script("/chat/completions", Script(status=503, json={}))
    sidecar = await start_sidecar({
        "providers": [provider("only", only)], "retry": {"attempts": 1},
        "routes": {"fast": ["openai/gpt-4o-mini", "vendor/blocked", "openai/gpt-4o"]},
        "auth": {"required": True, "keys": [
            {"name": "a", "token": "tok-a", "allowed_models": ["openai/*"]},
            {"name": "b", "token": "tok-b", "allowed_models": ["other/*"]}]}})
    async with openai.AsyncOpenAI(base_url=sidecar.v1, api_key="tok-a", max_retries=0) as sdk:
        assert await chat(sdk, "fast") == ("only", 2, "openai/gpt-4o")
    assert models_asked(only) == ["openai/gpt-4o-mini", "openai/gpt-4o"]
    async with openai.AsyncOpenAI(base_url=sidecar.v1, api_key="tok-b", max_retries=0) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await sdk.chat.completions.create(model="fast", messages=CHAT)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "model_not_allowed"


@pytest.mark.parametrize(("body", "param"), [
    ({"models": "m2"}, "models"),
    ({"models": [1]}, "models"),
    ({"provider": {"sort": "fastest"}}, "provider.sort"),
    ({"provider": {"only": "a"}}, "provider.only"),
    ({"provider": {"allow_fallbacks": "no"}}, "provider.allow_fallbacks"),
    ({"provider": {"max_price": {"prompt": -1}}}, "provider.max_price.prompt"),
    ({"provider": []}, "provider"),
])
async def test_malformed_routing_fields_are_400(start_sidecar: StartSidecar,
                                                upstreams: MakeUpstreams,
                                                body: dict[str, Any], param: str) -> None:
    """Routing fields of the wrong shape are 400 invalid_request naming the field."""
    (only,) = await upstreams(1)
    sidecar = await start_sidecar({"providers": [provider("only", only)]})
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.v1 + "/chat/completions", json={"model": "m", **body}) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert (error["code"], error["param"]) == ("invalid_request", param)
    assert only.forwarded == []


async def test_weighted_split(start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """Two providers of one pool, weights 3 and 1, share 400 requests 3:1 within ±10 % of all
    requests (about 4.6 standard deviations of the binomial split)."""
    heavy, light = await upstreams(2)
    sidecar = await start_sidecar({"providers": [provider("heavy", heavy, weight=3),
                                                 provider("light", light, weight=1)]},
                                  clock=FakeClock(seed=11))
    async with client(sidecar) as sdk:
        for _ in range(400):  # prompts of their own: a cache hit would go nowhere
            await sdk.chat.completions.create(model="m", messages=[
                {"role": "user", "content": fresh()}])
    assert abs(len(heavy.forwarded) - 300) <= 40
    assert len(heavy.forwarded) + len(light.forwarded) == 400


PRICED = {"cheap": {"prompt": 0.000001, "completion": 0.000002},  # $1/M, $2/M
          "dear": {"prompt": 0.000003, "completion": 0.00001}}


async def _priced(start_sidecar: StartSidecar, upstreams: MakeUpstreams
                  ) -> tuple[Any, FakeUpstream, FakeUpstream, FakeUpstream]:
    dear, cheap, unpriced = await upstreams(3)
    sidecar = await start_sidecar({"providers": [
        provider("dear", dear, prices={"m*": PRICED["dear"]}),
        provider("cheap", cheap, prices={"m*": PRICED["cheap"]}),
        provider("unpriced", unpriced)]}, clock=FakeClock())
    return sidecar, dear, cheap, unpriced


async def test_sort_by_price_and_floor_pick_the_cheapest(start_sidecar: StartSidecar,
                                                         upstreams: MakeUpstreams) -> None:
    """provider.sort=price and the :floor suffix both send every request to the cheapest known
    price; the suffix never reaches the upstream."""
    sidecar, dear, cheap, unpriced = await _priced(start_sidecar, upstreams)
    async with client(sidecar) as sdk:
        for _ in range(5):
            assert (await chat(sdk, "m", provider={"sort": "price"}))[0] == "cheap"
            assert (await chat(sdk, "m:floor"))[0] == "cheap"
    assert set(models_asked(cheap)) == {"m"}
    assert dear.forwarded == unpriced.forwarded == []


async def test_max_price_filters_and_refuses(start_sidecar: StartSidecar,
                                             upstreams: MakeUpstreams) -> None:
    """max_price (USD per million tokens) keeps only providers known to be within it; with none,
    400 no_provider_available names the cheapest known price."""
    sidecar, dear, cheap, unpriced = await _priced(start_sidecar, upstreams)
    async with client(sidecar) as sdk:
        for _ in range(5):
            served = await chat(sdk, "m", provider={"max_price": {"prompt": 2, "completion": 5}})
            assert served[0] == "cheap"
        assert len(cheap.forwarded) == 5
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(
                model="m", messages=CHAT, extra_body={"provider": {"max_price": {"prompt": 0.5}}})
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "no_provider_available"
    assert error["param"] == "provider.max_price"
    assert "prompt ≤ $0.5/M" in error["message"]
    assert "the cheapest known is 'cheap' at $1/M prompt, $2/M completion" in error["message"]
    assert dear.forwarded == unpriced.forwarded == []


async def test_order_only_ignore_and_allow_fallbacks(start_sidecar: StartSidecar,
                                                     upstreams: MakeUpstreams) -> None:
    """provider.order goes first and falls back to the rest; allow_fallbacks=false stops there;
    only/ignore filter; a filter that leaves nobody is 400 no_provider_available."""
    a, b = await upstreams(2)
    a.script("/chat/completions", *[Script(status=503, json={}) for _ in range(3)])
    sidecar = await start_sidecar({"providers": [provider("a", a), provider("b", b)],
                                   "retry": {"attempts": 2}}, clock=FakeClock())
    async with client(sidecar) as sdk:
        assert (await chat(sdk, "m", provider={"order": ["b"]}))[:2] == ("b", 1)
        assert (await chat(sdk, "m", provider={"order": ["A"]}))[:2] == ("b", 2)
        with pytest.raises(openai.InternalServerError):
            await sdk.chat.completions.create(model="m", messages=CHAT, extra_body={
                "provider": {"order": ["a"], "allow_fallbacks": False}})
        assert (await chat(sdk, "m", provider={"only": ["b"]}))[0] == "b"
        assert (await chat(sdk, "m", provider={"ignore": ["a"]}))[0] == "b"
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(model="m", messages=CHAT, extra_body={
                "provider": {"only": ["a"], "ignore": ["a"]}})
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "no_provider_available"


async def test_nitro_and_sort_by_throughput(start_sidecar: StartSidecar,
                                            upstreams: MakeUpstreams) -> None:
    """:nitro (sort by throughput) prefers the provider that produced tokens faster."""
    slow, fast = await upstreams(2)
    slow.script("/chat/completions", Script(delay_s=0.3, json=_answer("m")))
    sidecar = await start_sidecar({"providers": [provider("slow", slow),
                                                 provider("fast", fast)]})
    async with client(sidecar) as sdk:
        await chat(sdk, "m", provider={"only": ["slow"]})  # 6 tokens in 0.3 s
        await chat(sdk, "m", provider={"only": ["fast"]})  # 6 tokens in a few ms
        for _ in range(5):
            assert (await chat(sdk, "m:nitro"))[0] == "fast"
            assert (await chat(sdk, "m", provider={"sort": "throughput"}))[0] == "fast"
    assert set(models_asked(fast)) == {"m"}


async def test_sort_by_latency_follows_a_provider_that_gets_slower(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """sort=latency prefers the lower time to first byte, and moves away from a provider on its
    first slow answer (peak-sensitive average)."""
    a, b = await upstreams(2)
    b.script("/chat/completions", Script(delay_s=0.2, json=_answer("m")))
    sidecar = await start_sidecar({"providers": [provider("a", a), provider("b", b)]})
    latency = {"sort": "latency"}
    async with client(sidecar) as sdk:
        await chat(sdk, "m", provider={"only": ["a"]})
        await chat(sdk, "m", provider={"only": ["b"]})  # b: 0.2 s
        for _ in range(3):
            assert (await chat(sdk, "m", provider=latency))[0] == "a"
        a.script("/chat/completions", Script(delay_s=0.5, json=_answer("m")))
        await chat(sdk, "m", provider={"only": ["a"]})  # a: now 0.5 s
        for _ in range(3):
            assert (await chat(sdk, "m", provider=latency))[0] == "b"


def _answer(model: str) -> dict[str, Any]:
    from tests.fakes.upstream import chat_answer
    return chat_answer(model)


async def test_openrouter_alone_gets_routing_fields_unchanged(
        start_sidecar: StartSidecar, upstream: FakeUpstream, profile: Profile) -> None:
    """With OpenRouter as the only provider, models/provider and suffixes go upstream as sent
    (OpenRouter applies them) and no fallback stage runs."""
    from tests.fakes.proxy import FakeProxy
    port = int(upstream.url.rsplit(":", 1)[1])
    proxy = FakeProxy({"openrouter.ai": ("127.0.0.1", port)})
    await proxy.start()
    try:
        sidecar = await start_sidecar({"providers": [
            {"name": "openrouter", "base_url": "http://openrouter.ai", "proxy": proxy.url}]})
        async with client(sidecar) as sdk:
            raw = await sdk.chat.completions.with_raw_response.create(
                model="openai/gpt-4o:nitro", messages=CHAT, max_tokens=50,  # a budget adds none
                extra_body={"models": ["anthropic/claude-x"], "provider": {"sort": "price"}})
    finally:
        await proxy.close()
    # as sent, but for the prompt_cache_key an OpenAI model gets (docs/prompt-cache.md)
    sent = orjson.loads(upstream.last.body)
    assert len(sent.pop("prompt_cache_key")) == 32
    assert sent == orjson.loads(raw.http_request.content)
    assert proxy.seen == ["POST http://openrouter.ai/chat/completions"]
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.url + "/sidecar/config") as response:
        stages = (await response.json())["stages"]
    privacy = ["privacy"] if profile.name == "everything" else []  # what the profile turns on
    # the cache detaches its misses; without it, spend's detach stage does
    cache = ["detach"] if profile.name == "module" else ["cache"]
    assert stages == ["telemetry", "inspect", "read_body", *privacy, "spend", *cache,
                      "answer", "route"]
