"""What each request cost, end to end with the openai SDK: tokens times price for every
endpoint and token kind, the upstream's usage.cost winning, streamed usage always counted and
shown only to clients that asked, failures costing nothing, where prices come from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from sidecar import __version__
from tests.conftest import StartSidecar
from tests.fakes.metered import Metered
from tests.fakes.profiles import ALL, fresh
from tests.fakes.spend import MODEL, flush, get_json, priced, rows, sse_events
from tests.fakes.upstream import FakeUpstream, Script, chat_chunks
from tests.fakes.waits import wait_idle

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

# The cache off in the module profile (start_sidecar merges SIDECAR_BASE under each config):
# each request must be billed (a hit costs 0); in the others each sends a prompt of its own.
SIDECAR_BASE = {"cache": {"backend": "off"}}


def messages() -> list[dict[str, str]]:
    """A prompt of its own for each request (the cache, on in most profiles, answers none)."""
    return [{"role": "user", "content": fresh("How much?")}]


def on_metered(metered: Metered, **price: float) -> dict[str, Any]:
    """MODEL priced (priced()) on the metered upstream, which answers `default_tokens` to a
    request without a completion limit. Under a blocking budget (the everything profile) such
    a request goes out with the reserve as its max_tokens, which the metered upstream fills
    (it bills the worst case): the reserve is its answer's length, so the bill is the same."""
    return {**priced({"reserve_max_tokens": metered.default_tokens}, **price),
            "upstream": {"url": metered.url}}


@pytest.fixture
async def sdks() -> AsyncIterator[list[openai.AsyncOpenAI]]:
    made: list[openai.AsyncOpenAI] = []
    yield made
    for sdk in made:
        await sdk.close()


@pytest.fixture
def client(sdks: list[openai.AsyncOpenAI]) -> Any:
    """client(url): an async SDK client on the sidecar at url, closed after the test."""
    def make(url: str) -> openai.AsyncOpenAI:
        sdks.append(openai.AsyncOpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0))
        return sdks[-1]
    return make


async def total_cost(url: str) -> float:
    report = await get_json(url + "/sidecar/usage?window=all&by=model")
    cost: float = report["total_cost_usd"]
    return cost


@dataclass
class Case:
    name: str
    endpoint: str
    expected_usd: float
    price: dict[str, float] = field(default_factory=dict)
    upstream: dict[str, Any] = field(default_factory=dict)


# The metered upstream answers 10 prompt tokens and 20 completion tokens; prices are 1 and 2
# micro-USD a token unless the case says otherwise.
CASES = [
    Case("chat", "chat", 10e-6 + 40e-6),
    Case("completions", "completions", 10e-6 + 40e-6),
    Case("embeddings", "embeddings", 10e-6),
    Case("responses", "responses", 10e-6 + 40e-6),
    Case("cached_input", "chat", 6e-6 + 4 * 0.25e-6 + 40e-6,
         price={"input_cache_read": 0.25e-6}, upstream={"cached_tokens": 4}),
    Case("reasoning_as_completion", "chat", 10e-6 + 40e-6, upstream={"reasoning_tokens": 5}),
    Case("reasoning_own_price", "chat", 10e-6 + 15 * 2e-6 + 5 * 4e-6,
         price={"internal_reasoning": 4e-6}, upstream={"reasoning_tokens": 5}),
    Case("request_fee", "chat", 50e-6 + 0.001, price={"request": 0.001}),
]


async def call_endpoint(sdk: openai.AsyncOpenAI, endpoint: str) -> Any:
    if endpoint == "chat":
        return await sdk.chat.completions.with_raw_response.create(model=MODEL,
                                                                   messages=messages())
    if endpoint == "completions":
        return await sdk.completions.with_raw_response.create(model=MODEL, prompt="How much?")
    if endpoint == "embeddings":
        return await sdk.embeddings.with_raw_response.create(model=MODEL, input="How much?")
    return await sdk.responses.with_raw_response.create(model=MODEL, input="How much?")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_cost_is_tokens_times_price(start_sidecar: StartSidecar, metered: Metered,
                                          case: Case, client: Any) -> None:
    """Each endpoint and token kind is billed at its own price: the response's
    x-sidecar-cost-usd and the ledger both say tokens x price."""
    for name, value in case.upstream.items():
        setattr(metered, name, value)
    sidecar = await start_sidecar(on_metered(metered, **case.price))
    raw = await call_endpoint(client(sidecar.url), case.endpoint)
    assert float(raw.headers["x-sidecar-cost-usd"]) == pytest.approx(case.expected_usd)
    assert await total_cost(sidecar.url) == pytest.approx(case.expected_usd)


async def test_streamed_responses_are_billed_from_their_usage(
        start_sidecar: StartSidecar, metered: Metered, client: Any, tmp_path: Path) -> None:
    """A Responses stream carries its usage inside `response.completed`, not in a chunk of
    its own: that usage is the bill, not an estimate."""
    sidecar = await start_sidecar(on_metered(metered))
    stream = await client(sidecar.url).responses.create(model=MODEL, input="How much?",
                                                        stream=True)
    kinds = [event.type async for event in stream]
    assert kinds[-1] == "response.completed"
    assert await total_cost(sidecar.url) == pytest.approx(10e-6 + 40e-6)
    await flush(sidecar)
    (row,) = rows(tmp_path / "ledger.db")
    assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == (10, 20, 0)


async def test_upstream_usage_cost_wins(start_sidecar: StartSidecar, metered: Metered,
                                        client: Any) -> None:
    """When the upstream reports usage.cost (OpenRouter does), that figure is the cost."""
    metered.cost = 0.0123
    sidecar = await start_sidecar(on_metered(metered))
    sdk = client(sidecar.url)
    raw = await sdk.chat.completions.with_raw_response.create(model=MODEL, messages=messages())
    assert raw.headers["x-sidecar-cost-usd"] == "0.0123"
    stream = await sdk.chat.completions.create(model=MODEL, messages=messages(), stream=True,
                                               stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_extra == {"cost": 0.0123}  # the upstream's, untouched
    assert await total_cost(sidecar.url) == pytest.approx(0.0246)


async def test_streamed_usage_is_counted_and_given_its_cost(
        start_sidecar: StartSidecar, metered: Metered, client: Any) -> None:
    """A stream is billed from the usage the sidecar asked for; a client that asked for usage
    gets usage.cost in its usage chunk."""
    sidecar = await start_sidecar(on_metered(metered))
    sdk = client(sidecar.url)
    plain = await sdk.chat.completions.create(model=MODEL, messages=messages(), stream=True)
    assert [chunk.usage async for chunk in plain] == [None] * 21
    asked = await sdk.chat.completions.create(model=MODEL, messages=messages(), stream=True,
                                              stream_options={"include_usage": True})
    chunks = [chunk async for chunk in asked]
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 20
    assert usage.model_extra == {"cost": pytest.approx(50e-6)}
    assert await total_cost(sidecar.url) == pytest.approx(100e-6)


@pytest.mark.parametrize("always", [False, True], ids=["on_request", "always_like_openrouter"])
async def test_client_that_did_not_ask_never_sees_a_usage_chunk(
        start_sidecar: StartSidecar, metered: Metered, always: bool) -> None:
    """The sidecar asks upstream for usage and removes it before it reaches a client that did
    not ask: no event carries usage, and the stream still ends with [DONE]."""
    metered.usage_always = always
    sidecar = await start_sidecar(on_metered(metered))
    async with aiohttp.ClientSession() as session, session.post(
            sidecar.url + "/v1/chat/completions",
            json={"model": MODEL, "messages": messages(), "stream": True,
                  "stream_options": {"include_obfuscation": False}}) as response:
        events = await sse_events(response)
    assert events[-1] == b"[DONE]"
    assert not any(b'"usage"' in event for event in events)
    assert metered.bodies[-1]["stream_options"] == {"include_obfuscation": False,
                                                    "include_usage": True}
    assert await total_cost(sidecar.url) == pytest.approx(50e-6)


@pytest.mark.parametrize(("reported", "cost"), [(None, "0"), (0.0007, "0.0007")],
                         ids=["nothing_reported", "usage_reported"])
async def test_failed_request_costs_what_the_upstream_reported(
        start_sidecar: StartSidecar, metered: Metered, client: Any, reported: float | None,
        cost: str) -> None:
    """An upstream error costs what its answer's usage says, else 0, and is still one ledger
    row with its status."""
    metered.status, metered.cost = 500, reported
    sidecar = await start_sidecar(on_metered(metered))
    with pytest.raises(openai.InternalServerError) as caught:
        await client(sidecar.url).chat.completions.create(model=MODEL, messages=messages())
    assert caught.value.response.headers["x-sidecar-cost-usd"] == cost
    report = await get_json(sidecar.url + "/sidecar/usage?window=all")
    assert (report["total_requests"], report["total_cost_usd"]) == (1, float(cost))


async def test_stream_the_upstream_broke_is_billed_from_what_was_seen(
        start_sidecar: StartSidecar, metered: Metered, tmp_path: Any, client: Any) -> None:
    """A stream that ends without usage is billed for the prompt's bound and the output seen,
    and marked estimated."""
    metered.drop_after = 5
    sidecar = await start_sidecar(on_metered(metered))
    stream = await client(sidecar.url).chat.completions.create(
        model=MODEL, messages=messages(), stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    await flush(sidecar)
    (row,) = rows(tmp_path / "ledger.db")
    assert (row["estimated"], row["completion_tokens"], row["outcome"]) == (1, 5,
                                                                           "upstream_broke")
    assert row["prompt_tokens"] >= 10  # the bound, never under the real count
    assert row["cost_nusd"] == row["prompt_tokens"] * 1000 + 5 * 2000


async def test_client_that_left_is_billed_from_what_was_seen(
        start_sidecar: StartSidecar, upstream: FakeUpstream, tmp_path: Any) -> None:
    """A client leaving mid-stream closes the upstream request; the row is estimated from the
    events that had passed."""
    upstream.script("/chat/completions", Script(sse=chat_chunks(MODEL, ["a"] * 1000),
                                                sse_interval_s=0.02))
    sidecar = await start_sidecar(priced())
    async with aiohttp.ClientSession() as session:
        response = await session.post(sidecar.url + "/v1/chat/completions", json={
            "model": MODEL, "messages": messages(), "stream": True})
        for _ in range(3):
            await response.content.readuntil(b"\n\n")
        response.close()
    await wait_idle(sidecar.app)  # the disconnect reaches the sidecar asynchronously
    await flush(sidecar)
    (row,) = rows(tmp_path / "ledger.db")
    assert (row["estimated"], row["outcome"]) == (1, "client_disconnected")
    assert row["completion_tokens"] >= 3


@pytest.mark.parametrize(("unknown", "budget", "status", "cost"), [
    ("block", True, 403, None), ("block", False, 200, 0.0), ("free", True, 200, 0.0),
    ({"prompt": 1e-6, "completion": 1e-6}, False, 200, 30e-6)],
    ids=["block_under_budget", "block_without_budget", "free", "default_price"])
async def test_unknown_model_price(start_sidecar: StartSidecar, metered: Metered,
                                   unknown: Any, budget: bool, status: int,
                                   cost: float | None) -> None:
    """A model with no price follows spend.unknown_model_price; `block` refuses it only where a
    blocking budget applies (its cost could not be held against it)."""
    # No price and no budget but the case's own, whatever the profile has
    spend: dict[str, Any] = {"unknown_model_price": unknown, "prices": {},
                             "budgets": [{"name": "cap", "limit_usd": 10}] if budget else [],
                             "reserve_max_tokens": metered.default_tokens}
    sidecar = await start_sidecar({"spend": spend, "upstream": {"url": metered.url}})
    async with aiohttp.ClientSession() as session, session.post(
            sidecar.url + "/v1/chat/completions",
            json={"model": "nobody/knows", "messages": messages()}) as response:
        assert response.status == status
        if status == 403:
            error = orjson.loads(await response.read())["error"]
            assert error["code"] == "model_not_allowed" and "no known price" in error["message"]
            assert metered.bodies == []
        else:
            assert float(response.headers["x-sidecar-cost-usd"]) == pytest.approx(cost)


async def test_prices_come_from_the_upstream_models_list(start_sidecar: StartSidecar,
                                                         metered: Metered, client: Any) -> None:
    """At start the price book reads the upstream's GET /models (OpenRouter's string prices);
    spend.prices still wins over it."""
    metered.models = [{"id": MODEL, "pricing": {"prompt": "0.000003", "completion": "0.000004"}},
                      {"id": "other/model", "pricing": {"prompt": "0.000003",
                                                        "completion": "0.000004"}}]
    sidecar = await start_sidecar({"upstream": {"url": metered.url}, "spend": {
        "fetch_prices": True, "prices": {"other/*": {"prompt": 1e-6, "completion": 1e-6}},
        "reserve_max_tokens": metered.default_tokens}})
    assert metered.model_fetches == 1
    assert metered.model_fetch_agent == f"llm-sidecar/{__version__}"
    sdk = client(sidecar.url)
    raw = await sdk.chat.completions.with_raw_response.create(model=MODEL, messages=messages())
    assert float(raw.headers["x-sidecar-cost-usd"]) == pytest.approx(30e-6 + 80e-6)
    raw = await sdk.chat.completions.with_raw_response.create(model="other/model",
                                                              messages=messages())
    assert float(raw.headers["x-sidecar-cost-usd"]) == pytest.approx(30e-6)


async def test_bundled_prices_when_the_upstream_lists_none(start_sidecar: StartSidecar,
                                                          metered: Metered, client: Any) -> None:
    """An upstream without prices (or unreachable at start) leaves the bundled table: common
    models are priced offline."""
    sidecar = await start_sidecar({"upstream": {"url": metered.url}, "spend": {
        "fetch_prices": True, "prices": {}, "reserve_max_tokens": metered.default_tokens}})
    raw = await client(sidecar.url).chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=messages())
    # gpt-4o in the bundled table: 2.5 and 10 USD per million tokens
    assert float(raw.headers["x-sidecar-cost-usd"]) == pytest.approx(10 * 2.5e-6 + 20 * 1e-5)
