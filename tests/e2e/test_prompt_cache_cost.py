"""Provider prompt caching, priced and reported: cache reads and writes billed at their own
prices on both formats, streamed or not (exactly tokens x prices), the saving against uncached
input, the hit rate in /sidecar/usage and `llm-sidecar usage`, and hits of the sidecar's own
cache kept apart."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from tests.conftest import RunningSidecar, StartSidecar, merge
from tests.fakes.anthropic import Answer, FakeAnthropic, message, stream_events, text
from tests.fakes.redis import RedisServer
from tests.fakes.spend import flush, get_json, rows
from tests.fakes.upstream import FakeUpstream, Script, chat_answer, chat_chunks

MODEL = "anthropic/claude-sonnet-4.5"
PRICE = {"prompt": 3e-6, "completion": 15e-6, "input_cache_read": 0.3e-6,
         "input_cache_write": 3.75e-6}
FRESH, WRITTEN, READ, OUTPUT = 100, 2000, 3000, 50
PROMPT = FRESH + WRITTEN + READ
COST = (FRESH * PRICE["prompt"] + WRITTEN * PRICE["input_cache_write"]
        + READ * PRICE["input_cache_read"] + OUTPUT * PRICE["completion"])
# against the same input uncached: reads saved (3 - 0.3) µUSD each, writes cost 0.75 more
SAVED = (READ * (PRICE["prompt"] - PRICE["input_cache_read"])
         + WRITTEN * (PRICE["prompt"] - PRICE["input_cache_write"]))
ANTHROPIC_USAGE = {"input_tokens": FRESH, "output_tokens": OUTPUT,
                   "cache_creation_input_tokens": WRITTEN, "cache_read_input_tokens": READ}
OPENAI_USAGE = {"prompt_tokens": PROMPT, "completion_tokens": OUTPUT,
                "total_tokens": PROMPT + OUTPUT,
                "prompt_tokens_details": {"cached_tokens": READ, "cache_write_tokens": WRITTEN}}
CONFIGS = [{"cache": {"backend": "off"}}, {}]
CONFIG_IDS = ["cache_off", "defaults_on"]
BIN = str(Path(sys.executable).with_name("llm-sidecar"))


@pytest.fixture
async def anthropic() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    await fake.start()
    yield fake
    await fake.close()


async def start(start_sidecar: StartSidecar, fmt: str, anthropic: FakeAnthropic,
                upstream: FakeUpstream, config: dict[str, Any]) -> RunningSidecar:
    spend = {"spend": {"prices": {MODEL: PRICE}}}
    if fmt == "anthropic":
        return await start_sidecar(merge(merge({"providers": [
            {"name": "claude", "base_url": anthropic.url, "format": "anthropic",
             "api_key": "sk-ant", "models": ["anthropic/*"], "strip_prefix": True}]}, spend),
            config))
    return await start_sidecar(merge(spend, config))


def script(fmt: str, stream: bool, anthropic: FakeAnthropic, upstream: FakeUpstream) -> None:
    """The next answer, with 100 fresh, 2000 written, 3000 read prompt tokens and 50 out."""
    if fmt == "anthropic":
        reply = message(text("Cached answer."), usage=ANTHROPIC_USAGE)
        anthropic.answer(Answer(events=stream_events(reply)) if stream else Answer(json=reply))
    elif stream:
        events = chat_chunks(MODEL, ["Cached", " answer."], usage=False)
        upstream.script("/chat/completions", Script(sse=[
            *events, {**events[-1], "choices": [], "usage": OPENAI_USAGE}]))
    else:
        upstream.script("/chat/completions", Script(json={**chat_answer(MODEL),
                                                          "usage": OPENAI_USAGE}))


async def ask(sidecar: RunningSidecar, stream: bool) -> float | None:
    """One chat; the cost the client was told (header, or the usage chunk's usage.cost)."""
    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)
    messages: Any = [{"role": "user", "content": "Where is my order?"}]
    try:
        if not stream:
            raw = await sdk.chat.completions.with_raw_response.create(model=MODEL,
                                                                      messages=messages)
            return float(raw.headers["x-sidecar-cost-usd"])
        chunks = [c async for c in await sdk.chat.completions.create(
            model=MODEL, messages=messages, stream=True,
            stream_options={"include_usage": True})]
        usage = chunks[-1].usage
        assert usage is not None and usage.prompt_tokens == PROMPT
        assert usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens == READ
        cost: float = (usage.model_extra or {})["cost"]
        return cost
    finally:
        await sdk.close()


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fmt", ["anthropic", "openai"])
async def test_cache_reads_and_writes_cost_tokens_times_their_prices(
        start_sidecar: StartSidecar, anthropic: FakeAnthropic, upstream: FakeUpstream,
        tmp_path: Path, fmt: str, stream: bool, config: dict[str, Any]) -> None:
    """Fresh input at the prompt price, writes at input_cache_write, reads at
    input_cache_read: the client, the ledger row and the report all say exactly that, and the
    report adds the hit rate and the saving against uncached input."""
    sidecar = await start(start_sidecar, fmt, anthropic, upstream, config)
    script(fmt, stream, anthropic, upstream)
    assert await ask(sidecar, stream) == pytest.approx(COST, rel=1e-9)
    await flush(sidecar)
    (row,) = rows(tmp_path / "ledger.db")
    assert (row["prompt_tokens"], row["cached_tokens"], row["cache_write_tokens"],
            row["estimated"]) == (PROMPT, READ, WRITTEN, 0)
    assert row["cost_nusd"] == round(COST * 1e9)
    assert row["provider_cache_saved_nusd"] == round(SAVED * 1e9)
    report = await get_json(sidecar.url + "/sidecar/usage?window=all&by=model")
    (line,) = report["rows"]
    assert (line["cached_tokens"], line["cache_write_tokens"]) == (READ, WRITTEN)
    assert line["provider_cache_hit_rate"] == round(READ / PROMPT, 4)
    assert line["provider_cache_saved_usd"] == pytest.approx(SAVED)
    assert report["total_provider_cache_hit_rate"] == round(READ / PROMPT, 4)
    assert report["total_provider_cache_saved_usd"] == pytest.approx(SAVED)
    assert report["total_cost_usd"] == pytest.approx(COST)


async def test_hits_of_the_sidecar_cache_are_not_provider_cache_reads(
        start_sidecar: StartSidecar, anthropic: FakeAnthropic, upstream: FakeUpstream) -> None:
    """The same request twice with the sidecar's cache on: the second is its own HIT (billed
    0); the provider's hit rate and saving count the one request that went upstream."""
    sidecar = await start(start_sidecar, "anthropic", anthropic, upstream, {})
    script("anthropic", False, anthropic, upstream)
    assert await ask(sidecar, False) == pytest.approx(COST)
    assert await ask(sidecar, False) == 0
    report = await get_json(sidecar.url + "/sidecar/usage?window=all&by=model")
    (line,) = report["rows"]
    assert (line["requests"], line["cache_hits"], line["cached_tokens"]) == (2, 1, READ)
    assert line["provider_cache_hit_rate"] == round(READ / PROMPT, 4)
    assert line["provider_cache_saved_usd"] == pytest.approx(SAVED)


async def test_usage_command_shows_the_provider_cache(
        start_sidecar: StartSidecar, anthropic: FakeAnthropic, upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """`llm-sidecar usage` reads the ledger file: the provider's cached tokens, hit rate and
    saving per model and in total; --json is the API's object."""
    sidecar = await start(start_sidecar, "anthropic", anthropic, upstream, CONFIGS[0])
    script("anthropic", False, anthropic, upstream)
    await ask(sidecar, False)
    await flush(sidecar)
    env = {**os.environ, "SIDECAR_STATE_DIR": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        BIN, "usage", "--window", "all", stdout=asyncio.subprocess.PIPE, env=env)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    table = out.decode()
    assert proc.returncode == 0, table
    line = next(line for line in table.splitlines() if MODEL in line)
    assert "3000" in line and "58.8 %" in line and "0.0066" in line
    proc = await asyncio.create_subprocess_exec(
        BIN, "usage", "--window", "all", "--json", stdout=asyncio.subprocess.PIPE, env=env)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.url + "/sidecar/usage?window=all&by=model") as response:
        assert orjson.loads(out) == orjson.loads(await response.read())


async def test_a_redis_ledger_reports_the_provider_cache(
        start_sidecar: StartSidecar, anthropic: FakeAnthropic, upstream: FakeUpstream,
        redis_server: RedisServer) -> None:
    """The shared (Redis) ledger sums the same figures: cached and written tokens, hit rate,
    saving."""
    sidecar = await start(start_sidecar, "anthropic", anthropic, upstream,
                          {**CONFIGS[0], "spend": {"ledger": redis_server.url}})
    script("anthropic", True, anthropic, upstream)
    assert await ask(sidecar, True) == pytest.approx(COST)
    report = await get_json(sidecar.url + "/sidecar/usage?window=day&by=model")
    (line,) = report["rows"]
    assert (line["cached_tokens"], line["cache_write_tokens"]) == (READ, WRITTEN)
    assert line["provider_cache_hit_rate"] == round(READ / PROMPT, 4)
    assert line["provider_cache_saved_usd"] == pytest.approx(SAVED)
