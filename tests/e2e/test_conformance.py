"""What the openai SDK's own generated suite found through the sidecar (bench/conformance.py),
each as a test of its own, with the defaults on (memory cache, SQLite ledger, metrics, the
inspector) and with every feature on (local keys, a blocking budget, redaction, Prometheus):

- `POST /v1/responses` without `model` (a stored prompt names it) is routed to the first
  provider and priced by the model its answer names;
- paths and queries go upstream byte for byte (`%2A %2F %21 %27 %28 %29` stay escaped);
- a cache hit carries the upstream headers its entry was stored with (in memory and in Redis);
- `max_tokens: 0` is never rewritten to the default under a blocking budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
import redis.asyncio as aioredis
import yarl

from sidecar.cache.entry import Entry, decode, encode
from sidecar.call import Answer
from tests.conftest import RunningSidecar, StartSidecar
from tests.e2e.test_cache_redis import redis_config, stored
from tests.fakes.redis import RedisServer
from tests.fakes.spend import flush, rows
from tests.fakes.upstream import FakeUpstream, Script, chat_answer

KEY = "sk-local-conformance"
STORED_MODEL = "openai/gpt-4o-mini"
PRICES = {STORED_MODEL: {"prompt": 1e-6, "completion": 2e-6}}


def every_feature(upstream: FakeUpstream) -> dict[str, Any]:
    return {"auth": {"required": True, "keys": [{"name": "dev", "token": KEY}]},
            "cache": {"backend": "memory"},
            "spend": {"prices": PRICES, "unknown_model_price": "free",
                      "budgets": [{"name": "cap", "limit_usd": 100, "action": "block"}]},
            "privacy": {"redact": {"mode": "pseudonymize"}},
            "telemetry": {"prometheus": True}}


CONFIGS = ["defaults", "every_feature"]


async def started(start_sidecar: StartSidecar, upstream: FakeUpstream, which: str,
                  **extra: Any) -> RunningSidecar:
    config = every_feature(upstream) if which == "every_feature" else {
        "spend": {"prices": PRICES}}
    for section, values in extra.items():
        config[section] = {**config.get(section, {}), **values}
    return await start_sidecar(config)


def client(sidecar: RunningSidecar) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sidecar.v1, api_key=KEY, max_retries=0)


def responses_answer(model: str = STORED_MODEL) -> dict[str, Any]:
    return {"id": "resp_stored", "object": "response", "created_at": 1700000000,
            "status": "completed", "model": model,
            "output": [{"type": "message", "id": "msg_1", "role": "assistant",
                        "status": "completed",
                        "content": [{"type": "output_text", "text": "From the stored prompt.",
                                     "annotations": []}]}],
            "usage": {"input_tokens": 100, "output_tokens": 50, "total_tokens": 150}}


@pytest.mark.parametrize("which", CONFIGS)
async def test_responses_without_model_is_routed_and_priced_by_the_answer(
        start_sidecar: StartSidecar, upstream: FakeUpstream, tmp_path: Path,
        which: str) -> None:
    """A stored prompt (`prompt: {id}`, no `model`) reaches the upstream as sent, and its
    ledger row is priced and named by the model the answer names."""
    sidecar = await started(start_sidecar, upstream, which)
    upstream.script("/responses", Script(json=responses_answer()))
    sdk = client(sidecar)
    answer = await sdk.responses.create(prompt={"id": "pmpt_123", "version": "2"})
    await sdk.close()
    assert answer.output_text == "From the stored prompt."
    sent = orjson.loads(upstream.last.body)
    assert "model" not in sent and sent["prompt"] == {"id": "pmpt_123", "version": "2"}
    await flush(sidecar)
    [row] = rows(tmp_path / "ledger.db")
    assert row["endpoint"] == "responses" and row["model"] == STORED_MODEL
    assert row["requested_model"] is None
    assert row["cost_nusd"] == 100 * 1000 + 50 * 2000  # nano-dollars: 1e-6 and 2e-6 a token


async def test_responses_without_model_goes_to_the_first_provider(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        upstreams: Any) -> None:
    """With several providers, none of which lists the (unknown) model, a model-less call
    goes to the first provider listed, like the paths without a model."""
    [second] = await upstreams(1)
    sidecar = await start_sidecar({"providers": [
        {"name": "first", "base_url": upstream.url, "models": ["openai/*"]},
        {"name": "second", "base_url": second.url, "models": ["*"]}]})
    upstream.script("/responses", Script(json=responses_answer()))
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.v1 + "/responses", json={"prompt": {"id": "pmpt_1"}}) as response:
        assert response.status == 200
        assert response.headers["x-sidecar-provider"] == "first"
    assert not second.requests


async def test_responses_without_model_under_a_blocking_budget_follows_the_unpriced_rule(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """Under a blocking budget with `unknown_model_price: block` (the default), a call that
    names no model cannot be held: 403 saying why, and nothing goes upstream."""
    sidecar = await start_sidecar({"spend": {
        "budgets": [{"name": "cap", "limit_usd": 1, "action": "block"}]}})
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.v1 + "/responses", json={"prompt": {"id": "pmpt_1"}}) as response:
        body = await response.json()
    assert response.status == 403
    assert body["error"]["code"] == "model_not_allowed"
    assert "names no model" in body["error"]["message"]
    assert not upstream.requests


async def test_responses_without_model_and_a_restricted_key_is_refused(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """A key limited to some models cannot send a call whose model it cannot check: 403."""
    sidecar = await start_sidecar({"auth": {"required": True, "keys": [
        {"name": "narrow", "token": KEY, "allowed_models": ["openai/*"]}]}})
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.v1 + "/responses", json={"prompt": {"id": "pmpt_1"}},
            headers={"Authorization": f"Bearer {KEY}"}) as response:
        body = await response.json()
    assert response.status == 403 and "without 'model'" in body["error"]["message"]
    assert not upstream.requests


async def test_chat_without_model_is_still_refused(sidecar: RunningSidecar,
                                                   upstream: FakeUpstream) -> None:
    """Only /v1/responses may leave `model` out: chat completions still answer 400."""
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.v1 + "/chat/completions", json={"messages": []}) as response:
        body = await response.json()
    assert response.status == 400 and body["error"]["param"] == "model"
    assert not upstream.requests


ESCAPED = "/files/a%2Ab%2Fc%21%27%28%29?q=%2A%2F%21%27%28%29&x=1+2"


@pytest.mark.parametrize("which", CONFIGS)
async def test_passthrough_path_and_query_exactly_as_sent(
        start_sidecar: StartSidecar, upstream: FakeUpstream, which: str) -> None:
    """%2A %2F %21 %27 %28 %29 stay escaped in the path and the query of a passthrough."""
    sidecar = await started(start_sidecar, upstream, which)
    async with aiohttp.ClientSession() as http, http.get(
            yarl.URL(sidecar.v1 + ESCAPED, encoded=True),
            headers={"Authorization": f"Bearer {KEY}"}) as response:
        assert response.status == 200
    assert upstream.last.path == ESCAPED


@pytest.mark.parametrize("which", CONFIGS)
async def test_model_endpoint_query_exactly_as_sent(
        start_sidecar: StartSidecar, upstream: FakeUpstream, which: str) -> None:
    """A model endpoint's query goes upstream byte for byte too."""
    sidecar = await started(start_sidecar, upstream, which)
    query = "?api-version=2024%2A&tag=%28x%29%21%27"
    async with aiohttp.ClientSession() as http, http.post(
            yarl.URL(sidecar.v1 + "/chat/completions" + query, encoded=True),
            json={"model": STORED_MODEL, "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {KEY}"}) as response:
        assert response.status == 200
    assert upstream.last.path == "/chat/completions" + query


async def test_anthropic_provider_query_exactly_as_sent(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """An Anthropic-format provider's native paths keep their escapes as well."""
    sidecar = await start_sidecar({"providers": [
        {"name": "claude", "base_url": upstream.url, "format": "anthropic"}]})
    path = "/messages/batches/msgbatch_%2A%28x%29?beta=%21"
    async with aiohttp.ClientSession() as http, http.get(
            yarl.URL(sidecar.v1 + path, encoded=True)) as response:
        assert response.status == 200
    assert upstream.last.path == path


async def test_a_path_leaving_v1_is_still_refused(sidecar: RunningSidecar,
                                                  upstream: FakeUpstream) -> None:
    """Sent byte for byte, a path that climbs above /v1 is still refused (upstream/paths.py)."""
    async with aiohttp.ClientSession() as http, http.get(
            yarl.URL(sidecar.v1 + "/files/%2e%2e/%2e%2e/admin", encoded=True)) as response:
        assert response.status == 404
    assert not upstream.requests


UPSTREAM_HEADERS = {"x-request-id": "req_abc123", "openai-processing-ms": "412",
                    "x-ratelimit-remaining-requests": "4999",
                    "x-ratelimit-reset-tokens": "6ms", "openai-organization": "org-x",
                    "set-cookie": "__cf_bm=secret; path=/", "alt-svc": 'h3=":443"'}


async def _ask(sidecar: RunningSidecar, stream: bool) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as http, http.post(sidecar.v1 + "/chat/completions", json={
            "model": STORED_MODEL, "stream": stream,
            "messages": [{"role": "user", "content": "cache me"}]},
            headers={"Authorization": f"Bearer {KEY}"}) as response:
        await response.read()
        return response


async def _twice(sidecar: RunningSidecar, stream: bool) -> list[aiohttp.ClientResponse]:
    return [await _ask(sidecar, stream), await _ask(sidecar, stream)]


@pytest.mark.parametrize("which", CONFIGS)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_hit_carries_the_stored_headers(
        start_sidecar: StartSidecar, upstream: FakeUpstream, which: str, stream: bool) -> None:
    """A hit replays x-request-id, openai-processing-ms, x-ratelimit-* and
    openai-organization as stored, never Set-Cookie or Alt-Svc, with its own Content-Type."""
    sidecar = await started(start_sidecar, upstream, which)
    body = chat_answer(STORED_MODEL)
    upstream.script("/chat/completions", Script(json=body, headers=UPSTREAM_HEADERS))
    miss, hit = await _twice(sidecar, stream)
    assert len(upstream.requests) == 1
    assert (miss.headers["x-sidecar-cache"], hit.headers["x-sidecar-cache"]) == ("MISS", "HIT")
    for name in ("x-request-id", "openai-processing-ms", "x-ratelimit-remaining-requests",
                 "x-ratelimit-reset-tokens", "openai-organization"):
        assert hit.headers[name] == UPSTREAM_HEADERS[name], name
    assert "set-cookie" not in hit.headers and "alt-svc" not in hit.headers
    assert hit.headers["content-type"].startswith(
        "text/event-stream" if stream else "application/json")
    assert hit.headers["x-sidecar-request-id"] != miss.headers["x-sidecar-request-id"]


async def test_a_hit_from_redis_carries_the_stored_headers(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        redis_server: RedisServer) -> None:
    """Entries in Redis keep the headers too: a second app sharing it replays them."""
    first = await start_sidecar(redis_config(redis_server.url))
    second = await start_sidecar(redis_config(redis_server.url))
    upstream.script("/chat/completions", Script(json=chat_answer(STORED_MODEL),
                                                headers=UPSTREAM_HEADERS))
    miss = await _ask(first, False)
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        await stored(redis)
    finally:
        await redis.aclose()
    hit = await _ask(second, False)
    assert miss.headers["x-sidecar-cache"] == "MISS"
    assert hit.headers["x-sidecar-cache"] == "HIT"
    assert hit.headers["x-request-id"] == "req_abc123"
    assert hit.headers["x-ratelimit-remaining-requests"] == "4999"


def test_an_entry_written_before_headers_were_kept_still_decodes() -> None:
    """The byte form of an entry without headers (as older sidecars wrote it) decodes, with
    none; a new one round-trips its headers."""
    entry = Entry("json", b"{}", "m", 1.0, 2.0, Answer(None, "stop", "m", "id"),
                  headers=(("x-request-id", "r1"), ("x-ratelimit-limit-requests", "10")))
    data = encode(entry)
    assert decode(data).headers == entry.headers
    header_len = int.from_bytes(data[3:7], "big")
    meta = orjson.loads(data[7:7 + header_len])
    del meta["headers"]
    old_meta = orjson.dumps(meta)
    old = data[:3] + len(old_meta).to_bytes(4, "big") + old_meta + data[7 + header_len:]
    decoded = decode(old)
    assert decoded.headers == () and decoded.payload == b"{}"
    assert decoded.answer.finish_reason == "stop"


@pytest.mark.parametrize("which", CONFIGS)
async def test_completions_max_tokens_zero_is_sent_as_zero(
        start_sidecar: StartSidecar, upstream: FakeUpstream, which: str) -> None:
    """Legacy completions take `max_tokens: 0` (scoring a prompt with `echo`): under a
    blocking budget it goes upstream as 0, never as the default."""
    sidecar = await started(start_sidecar, upstream, which, spend={
        "prices": PRICES, "budgets": [{"name": "cap", "limit_usd": 100, "action": "block"}]})
    sdk = client(sidecar)
    await sdk.completions.create(model=STORED_MODEL, prompt="score me", max_tokens=0,
                                 echo=True, logprobs=1)
    await sdk.close()
    assert orjson.loads(upstream.last.body)["max_tokens"] == 0


@pytest.mark.parametrize("which", CONFIGS)
@pytest.mark.parametrize(("endpoint", "field", "body"), [
    ("chat/completions", "max_tokens", {"messages": [{"role": "user", "content": "hi"}]}),
    ("chat/completions", "max_completion_tokens",
     {"messages": [{"role": "user", "content": "hi"}]}),
    ("responses", "max_output_tokens", {"input": "hi"}),
])
async def test_a_zero_limit_the_endpoint_refuses_is_a_400(
        start_sidecar: StartSidecar, upstream: FakeUpstream, which: str, endpoint: str,
        field: str, body: dict[str, Any]) -> None:
    """Where the API refuses a limit of 0, a blocking budget answers 400 naming the field,
    rather than send the default (or a 0 a provider could read as no limit)."""
    sidecar = await started(start_sidecar, upstream, which, spend={
        "prices": PRICES, "budgets": [{"name": "cap", "limit_usd": 100, "action": "block"}]})
    async with aiohttp.ClientSession() as http, http.post(
            f"{sidecar.v1}/{endpoint}", json={"model": STORED_MODEL, field: 0, **body},
            headers={"Authorization": f"Bearer {KEY}"}) as response:
        error = (await response.json())["error"]
    assert response.status == 400
    assert error["param"] == field and "is 0" in error["message"]
    assert not upstream.requests


async def test_a_zero_limit_without_a_budget_is_the_upstreams_business(
        sidecar: RunningSidecar, upstream: FakeUpstream) -> None:
    """With no blocking budget, `max_tokens: 0` goes upstream as sent, untouched."""
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.v1 + "/chat/completions", json={
                "model": STORED_MODEL, "max_tokens": 0,
                "messages": [{"role": "user", "content": "hi"}]}) as response:
        assert response.status == 200
    assert orjson.loads(upstream.last.body)["max_tokens"] == 0
