"""The cache's HTTP semantics end to end: Cache-Control directives, per-request TTL, expiry on
an injected clock, LRU eviction, the temperature rule, accounting, the admin purge, and the
other model endpoints."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import orjson
import pytest

from sidecar.deps import DEPS
from tests.conftest import RunningSidecar, StartSidecar
from tests.e2e.test_cache import CHAT, chat_calls, post
from tests.fakes.cache import FakeClock, tool_answer
from tests.fakes.upstream import FakeUpstream, Script


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def start(start_sidecar: StartSidecar, clock: FakeClock,
                config: dict[str, Any] | None = None) -> RunningSidecar:
    sidecar = await start_sidecar(config)
    store = sidecar.app[DEPS].cache
    assert store is not None
    store.clock = clock
    return sidecar


@pytest.fixture
async def cached(start_sidecar: StartSidecar, clock: FakeClock) -> RunningSidecar:
    return await start(start_sidecar, clock)


async def test_no_cache_skips_the_lookup_and_stores_the_fresh_answer(
        cached: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """no-cache goes upstream even with an entry (BYPASS, fwd=request), and its fresh answer
    replaces the entry: the next plain request hits it."""
    await post(http, cached, CHAT)
    upstream.script("/chat/completions", Script(json=tool_answer()))
    _, headers, fresh = await post(http, cached, CHAT, {"Cache-Control": "no-cache"})
    assert headers["x-sidecar-cache"] == "BYPASS"
    assert headers["cache-status"] == "llm-sidecar; fwd=request; stored"
    _, headers, again = await post(http, cached, CHAT)
    assert (headers["x-sidecar-cache"], again) == ("HIT", fresh)
    assert chat_calls(upstream) == 2


async def test_no_store_neither_looks_up_nor_stores(cached: RunningSidecar,
                                                    upstream: FakeUpstream,
                                                    http: aiohttp.ClientSession) -> None:
    """no-store: upstream every time, nothing kept (the next plain request is a MISS)."""
    for _ in range(2):
        _, headers, _ = await post(http, cached, CHAT, {"Cache-Control": "no-store"})
        assert (headers["x-sidecar-cache"], headers["cache-status"]) == (
            "BYPASS", "llm-sidecar; fwd=request")
    _, headers, _ = await post(http, cached, CHAT)
    assert headers["x-sidecar-cache"] == "MISS"
    assert chat_calls(upstream) == 3


async def test_max_age_accepts_only_young_enough_entries(
        cached: RunningSidecar, upstream: FakeUpstream, clock: FakeClock,
        http: aiohttp.ClientSession) -> None:
    """max-age=N: an entry at most N s old is a HIT; an older one is a MISS (fwd=stale) whose
    fresh answer replaces it."""
    await post(http, cached, CHAT)
    clock.advance(30)
    _, headers, _ = await post(http, cached, CHAT, {"Cache-Control": "max-age=30"})
    assert (headers["x-sidecar-cache"], headers["age"]) == ("HIT", "30")
    _, headers, _ = await post(http, cached, CHAT, {"Cache-Control": "max-age=29"})
    assert (headers["x-sidecar-cache"], headers["cache-status"]) == (
        "MISS", "llm-sidecar; fwd=stale; stored")
    _, headers, _ = await post(http, cached, CHAT, {"Cache-Control": "max-age=0"})
    assert (headers["x-sidecar-cache"], headers["age"]) == ("HIT", "0")
    assert chat_calls(upstream) == 2


async def test_only_if_cached_answers_504_cache_miss_without_an_entry(
        cached: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """only-if-cached never goes upstream: 504 cache_miss (OpenAI's error shape) when there is
    no fresh entry, the entry when there is; the SDK raises the 504 as an APIStatusError."""
    status, headers, body = await post(http, cached, CHAT, {"Cache-Control": "only-if-cached"})
    assert status == 504
    assert orjson.loads(body)["error"]["code"] == "cache_miss"
    assert headers["x-sidecar-cache"] == "MISS"
    assert chat_calls(upstream) == 0
    async with openai.AsyncOpenAI(base_url=cached.v1, api_key="sk-client",
                                  max_retries=0) as sdk:
        with pytest.raises(openai.APIStatusError) as raised:
            await sdk.chat.completions.create(
                **CHAT, extra_headers={"Cache-Control": "only-if-cached, max-age=60"})
    assert raised.value.status_code == 504
    await post(http, cached, CHAT)
    status, headers, _ = await post(http, cached, CHAT, {"Cache-Control": "only-if-cached"})
    assert (status, headers["x-sidecar-cache"]) == (200, "HIT")
    assert chat_calls(upstream) == 1


async def test_entries_expire_after_the_ttl(cached: RunningSidecar, upstream: FakeUpstream,
                                            clock: FakeClock,
                                            http: aiohttp.ClientSession) -> None:
    """cache.ttl_s (3600) later the entry is gone: a MISS that stores again."""
    await post(http, cached, CHAT)
    clock.advance(3599)
    _, headers, _ = await post(http, cached, CHAT)
    assert (headers["x-sidecar-cache"], headers["cache-status"]) == (
        "HIT", "llm-sidecar; hit; ttl=1")
    clock.advance(1)
    _, headers, _ = await post(http, cached, CHAT)
    assert headers["x-sidecar-cache"] == "MISS"
    assert chat_calls(upstream) == 2


async def test_the_ttl_header_sets_how_long_an_answer_is_kept(
        cached: RunningSidecar, upstream: FakeUpstream, clock: FakeClock,
        http: aiohttp.ClientSession) -> None:
    """x-sidecar-cache-ttl: 10 keeps the answer 10 s; 0 does not store it."""
    await post(http, cached, CHAT, {"x-sidecar-cache-ttl": "10"})
    clock.advance(9)
    _, headers, _ = await post(http, cached, CHAT)
    assert headers["cache-status"] == "llm-sidecar; hit; ttl=1"
    clock.advance(1)
    other = {**CHAT, "seed": 3}
    for expected in ("MISS", "MISS"):
        _, headers, _ = await post(http, cached, other, {"x-sidecar-cache-ttl": "0"})
        assert headers["x-sidecar-cache"] == expected
    _, headers, _ = await post(http, cached, CHAT)
    assert headers["x-sidecar-cache"] == "MISS"
    assert chat_calls(upstream) == 4


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", ""])
async def test_a_bad_ttl_header_is_a_400(cached: RunningSidecar, upstream: FakeUpstream,
                                         http: aiohttp.ClientSession, value: str) -> None:
    """x-sidecar-cache-ttl must be a number of seconds: otherwise 400 invalid_request."""
    status, _, body = await post(http, cached, CHAT, {"x-sidecar-cache-ttl": value})
    assert status == 400
    error = orjson.loads(body)["error"]
    assert error["code"] == "invalid_request" and "x-sidecar-cache-ttl" in error["message"]
    assert chat_calls(upstream) == 0


async def test_least_recently_used_entries_are_evicted_by_bytes(
        start_sidecar: StartSidecar, clock: FakeClock, upstream: FakeUpstream,
        http: aiohttp.ClientSession) -> None:
    """With room for two answers (cache.max_bytes), a third evicts the least recently used."""
    sidecar = await start(start_sidecar, clock, {"cache": {"max_bytes": 2000}})
    a, b, c = ({**CHAT, "seed": n} for n in range(3))
    await post(http, sidecar, a)
    await post(http, sidecar, b)
    await post(http, sidecar, a)  # a is now the most recently used
    await post(http, sidecar, c)  # evicts b
    results = {}
    for name, body in (("a", a), ("c", c), ("b", b)):
        _, headers, _ = await post(http, sidecar, body)
        results[name] = headers["x-sidecar-cache"]
    assert results == {"a": "HIT", "c": "HIT", "b": "MISS"}
    store = sidecar.app[DEPS].cache
    assert store is not None and store.cache.bytes <= 2000  # type: ignore[attr-defined]


@pytest.mark.parametrize(("temperature", "cached_"), [(None, False), (0, True), (0.0, True),
                                                      (0.3, True), (0.31, False)])
async def test_skip_when_temperature_above(start_sidecar: StartSidecar, clock: FakeClock,
                                           upstream: FakeUpstream,
                                           http: aiohttp.ClientSession,
                                           temperature: float | None, cached_: bool) -> None:
    """skip_when_temperature_above: 0.3 caches requests at 0.3 or below; a request without a
    temperature runs at the provider's default (1.0) and is not cached (BYPASS, fwd=bypass)."""
    sidecar = await start(start_sidecar, clock,
                          {"cache": {"skip_when_temperature_above": 0.3}})
    body = {k: v for k, v in CHAT.items() if k != "temperature"}
    if temperature is not None:
        body["temperature"] = temperature
    await post(http, sidecar, body)
    _, headers, _ = await post(http, sidecar, body)
    if cached_:
        assert headers["x-sidecar-cache"] == "HIT"
    else:
        assert (headers["x-sidecar-cache"], headers["cache-status"]) == (
            "BYPASS", "llm-sidecar; fwd=bypass")
    assert chat_calls(upstream) == (1 if cached_ else 2)


async def test_a_hit_records_what_it_saved(cached: RunningSidecar, upstream: FakeUpstream,
                                           http: aiohttp.ClientSession,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A hit reports the tokens it did not spend as its usage, adds them and the upstream's
    reported cost to the saved metrics, and the access line says HIT."""
    upstream.script("/chat/completions", Script(json=tool_answer()))
    await post(http, cached, CHAT)
    await post(http, cached, CHAT)
    metrics = cached.app[DEPS].metrics
    assert metrics.cache_saved_tokens.labels().value == 42
    assert metrics.cache_saved_usd.labels().value == pytest.approx(0.0021)
    assert metrics.cache_lookups.labels("hit").value == 1
    assert metrics.cache_lookups.labels("miss").value == 1
    cached.app[DEPS].access.flush()
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith('{"request_id"') and '"endpoint"' in line]
    assert [(line["cache"], line["prompt_tokens"], line["attempts"]) for line in lines] == [
        ("MISS", 30, 1), ("HIT", 30, 0)]


async def test_embeddings_and_completions_are_cached(cached: RunningSidecar,
                                                     upstream: FakeUpstream,
                                                     http: aiohttp.ClientSession) -> None:
    """Embeddings (complete when `data` is a list) and legacy completions are cached; a
    streamed completion folds into the JSON one."""
    embed = {"model": "text-embedding-3-small", "input": ["a", "b"]}
    for _ in range(2):
        status, headers, body = await post(http, cached, embed, path="/embeddings")
    assert (status, headers["x-sidecar-cache"]) == (200, "HIT")
    assert len(orjson.loads(body)["data"]) == 2
    upstream.script("/completions", Script(sse=[
        {"id": "c1", "object": "text_completion", "created": 1, "model": "m",
         "choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": reason}]}
        for piece, reason in (("Once", None), (" upon", "stop"))]))
    legacy = {"model": "m", "prompt": "Tell me"}
    await post(http, cached, {**legacy, "stream": True}, path="/completions")
    status, headers, body = await post(http, cached, legacy, path="/completions")
    assert headers["x-sidecar-cache"] == "HIT"
    answer = orjson.loads(body)
    assert answer["object"] == "text_completion"
    assert answer["choices"] == [{"index": 0, "text": "Once upon", "logprobs": None,
                                  "finish_reason": "stop"}]
    paths = [r.path for r in upstream.requests]
    assert paths == ["/embeddings", "/completions"]


async def test_responses_api_keeps_each_shape_in_its_own_entry(
        cached: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """/responses: the JSON answer and the event stream are cached separately (their shapes
    are not converted); each repeats as a HIT."""
    upstream.script("/responses", Script(json={"id": "resp_1", "object": "response",
                                               "status": "completed", "output": []}),
                    Script(sse=[{"type": "response.completed", "response": {
                        "id": "resp_1", "status": "completed", "output": []}}], done=False))
    body = {"model": "m", "input": "hi"}
    results = []
    for streamed in (False, True, False, True):
        _, headers, _ = await post(http, cached, {**body, "stream": streamed},
                                   path="/responses")
        results.append(headers["x-sidecar-cache"])
    assert results == ["MISS", "MISS", "HIT", "HIT"]


async def test_purge_removes_all_or_the_models_matching_a_glob(
        cached: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """DELETE /sidecar/cache?model=GLOB removes that model's entries and answers how many;
    without ?model it removes everything; an empty glob is a 400."""
    for model in ("openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"):
        await post(http, cached, {**CHAT, "model": model})
    async with http.delete(cached.url + "/sidecar/cache?model=openai/*") as response:
        assert (response.status, await response.json()) == (200, {"deleted": 2})
    _, headers, _ = await post(http, cached, {**CHAT, "model": "anthropic/claude-3-5-haiku"})
    assert headers["x-sidecar-cache"] == "HIT"
    async with http.delete(cached.url + "/sidecar/cache") as response:
        assert await response.json() == {"deleted": 1}
    async with http.delete(cached.url + "/sidecar/cache?model=") as response:
        assert response.status == 400
    _, headers, _ = await post(http, cached, {**CHAT, "model": "anthropic/claude-3-5-haiku"})
    assert headers["x-sidecar-cache"] == "MISS"


async def test_purge_needs_the_admin_token(start_sidecar: StartSidecar,
                                           http: aiohttp.ClientSession) -> None:
    """DELETE /sidecar/cache is an admin route: 401 without admin.token."""
    sidecar = await start_sidecar({"admin": {"token": "adm"}})
    async with http.delete(sidecar.url + "/sidecar/cache") as response:
        assert response.status == 401
    async with http.delete(sidecar.url + "/sidecar/cache",
                           headers={"Authorization": "Bearer adm"}) as response:
        assert (response.status, await response.json()) == (200, {"deleted": 0})


@pytest.mark.parametrize("config", [{"cache": {"backend": "off"}}, {"privacy": {"zdr": True}}],
                         ids=["backend off", "zero retention"])
async def test_with_the_cache_off_every_request_goes_upstream(
        start_sidecar: StartSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession,
        config: dict[str, Any]) -> None:
    """cache.backend: off (or zero retention without zdr_allow_memory_cache): no cache stage,
    `x-sidecar-cache: OFF` and no Cache-Status, every request upstream; a purge has nothing
    to remove."""
    sidecar = await start_sidecar(config)
    for _ in range(2):
        _, headers, _ = await post(http, sidecar, CHAT)
        assert headers["x-sidecar-cache"] == "OFF" and "cache-status" not in headers
    assert chat_calls(upstream) == 2
    async with http.delete(sidecar.url + "/sidecar/cache") as response:
        assert await response.json() == {"deleted": 0}


async def test_zero_retention_may_allow_the_memory_cache(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        http: aiohttp.ClientSession) -> None:
    """privacy.zdr with zdr_allow_memory_cache keeps the in-process cache."""
    sidecar = await start_sidecar({"privacy": {"zdr": True, "zdr_allow_memory_cache": True}})
    for _ in range(2):
        await post(http, sidecar, CHAT)
    assert chat_calls(upstream) == 1

