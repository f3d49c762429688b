"""The auto router and money, end to end with the openai SDK: the cascade one tier up (billed
as both calls in one ledger row), budget-aware downgrading under a tiny budget, the ledger's
tier and baseline columns, savings equal to the baseline's price minus the real price for the
same tokens in /sidecar/usage, `llm-sidecar usage --by tier` and the inspector, on SQLite and
on Redis."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
import yaml

from tests.conftest import StartSidecar
from tests.fakes.auto import ASKS, NANO, ROUTER, VARIANTS, ask, auto_config, sdk
from tests.fakes.redis import RedisServer
from tests.fakes.spend import flush, get_json, rows
from tests.fakes.upstream import FakeUpstream, Script, chat_answer, chat_chunks

BIN = str(Path(sys.executable).with_name("llm-sidecar"))
variants = pytest.mark.parametrize("variant", list(VARIANTS))


def sent_models(upstream: FakeUpstream) -> list[str]:
    return [orjson.loads(r.body)["model"] for r in upstream.requests]


def cost(model: str, prompt: int = 7, completion: int = 6) -> int:
    """Nano-dollars for these tokens at the model's configured price."""
    return prompt * NANO[model][0] + completion * NANO[model][1]


def cut_short(model: str) -> dict[str, Any]:
    """An answer that stopped at its length limit before any content (50 tokens thinking)."""
    answer = chat_answer(model, text="")
    answer["choices"][0]["finish_reason"] = "length"
    answer["usage"] = {"prompt_tokens": 7, "completion_tokens": 50, "total_tokens": 57}
    return answer


@variants
async def test_cascade_on_length_goes_one_tier_up_billed_as_both(
        start_sidecar: StartSidecar, upstream: FakeUpstream, variant: str) -> None:
    """simple's answer ends with `length` before any content: medium answers; the client gets
    medium's answer, the headers say why, and one ledger row bills both calls."""
    upstream.script("/chat/completions", Script(json=cut_short("test/small")))
    sidecar = await start_sidecar(auto_config(variant, upstream.url, cascade=True))
    async with sdk(sidecar) as client:
        raw = await ask(client, "simple")
    assert sent_models(upstream) == ["test/small", "test/mid"]
    assert raw.parse().model == "test/mid"
    assert raw.headers["x-sidecar-auto-tier"] == "medium"
    assert raw.headers["x-sidecar-auto-reason"].startswith("cascade:length,")
    if variant != "bare":
        both = cost("test/small", 7, 50) + cost("test/mid")
        assert raw.headers["x-sidecar-cost-usd"] == f"0.{both:09d}".rstrip("0")
        await flush(sidecar)
        [row] = rows(sidecar.settings.state_dir / "ledger.db")
        assert (row["model"], row["auto_tier"], row["cost_nusd"]) == ("test/mid", "medium",
                                                                       both)
        assert row["baseline_nusd"] == cost("test/big")


@pytest.mark.parametrize("first", [
    Script(status=500, json={"error": {"message": "boom"}}),
    Script(status=400, json={"error": {"message": "maximum context length is 8192 tokens",
                                       "code": "context_length_exceeded"}}),
    Script(json={**chat_answer("test/small", "I'm sorry, but I can't help with that.")}),
], ids=["upstream_error", "context_error", "refusal"])
async def test_cascade_on_error_and_refusal(start_sidecar: StartSidecar,
                                            upstream: FakeUpstream, first: Script) -> None:
    """An upstream error, a context-length error or a refusal from simple goes up to medium."""
    upstream.script("/chat/completions", first)
    sidecar = await start_sidecar(auto_config("bare", cascade=True))
    async with sdk(sidecar) as client:
        raw = await ask(client, "simple")
    assert sent_models(upstream) == ["test/small", "test/mid"]
    assert (raw.parse().model, raw.headers["x-sidecar-auto-tier"]) == ("test/mid", "medium")


async def test_cascade_never_makes_the_answer_worse(start_sidecar: StartSidecar,
                                                    upstream: FakeUpstream) -> None:
    """When the tier up fails, the first answer stands (with its model and tier), still
    billed for both calls."""
    upstream.script("/chat/completions", Script(json=cut_short("test/small")),
                    Script(status=503, json={"error": {"message": "down"}}))
    sidecar = await start_sidecar(auto_config("defaults", cascade=True))
    async with sdk(sidecar) as client:
        raw = await ask(client, "simple")
    assert raw.parse().model == "test/small"
    assert raw.headers["x-sidecar-auto-tier"] == "simple"
    assert raw.headers["x-sidecar-auto-reason"].startswith("cascade:length:kept")
    assert raw.headers["x-sidecar-cache"] in ("MISS", "BYPASS")
    await flush(sidecar)
    [row] = rows(sidecar.settings.state_dir / "ledger.db")
    assert (row["model"], row["auto_tier"], row["cost_nusd"]) == (
        "test/small", "simple", cost("test/small", 7, 50))


@pytest.mark.parametrize("cascade", [False, True])
async def test_streams_and_cascade_off_are_not_cascaded(
        start_sidecar: StartSidecar, upstream: FakeUpstream, cascade: bool) -> None:
    """A stream that started is the client's (even with cascade on), and cascade off never
    retries: one upstream call each."""
    events = chat_chunks("test/small", [])
    events[0]["choices"][0]["finish_reason"] = "length"  # type: ignore[index]
    upstream.script("/chat/completions", Script(sse=events),
                    Script(json=cut_short("test/small")))
    sidecar = await start_sidecar(auto_config("bare", cascade=cascade))
    async with sdk(sidecar) as client:
        stream = await client.chat.completions.create(
            model=ROUTER, messages=ASKS["simple"]["messages"], stream=True)
        assert [c async for c in stream]
        if not cascade:
            assert (await ask(client, "simple")).parse().model == "test/small"
    assert sent_models(upstream) == ["test/small"] * (1 if cascade else 2)


def tight(budget_usd: float, **router: Any) -> dict[str, Any]:
    """The router under one blocking budget (the defaults on)."""
    config = auto_config("defaults", **router)
    config["spend"]["budgets"] = [{"name": "tiny", "limit_usd": budget_usd}]
    return config


async def test_a_budget_that_cannot_pay_the_tier_is_served_a_cheaper_tier(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """Under a budget of 0.0001 USD a complex request cannot be held at test/big, nor one
    tier down at test/mid: it is served by test/small, says so, and is recorded in its served
    tier; no refused tier reaches the upstream."""
    sidecar = await start_sidecar(tight(1e-4))
    async with sdk(sidecar) as client:
        raw = await ask(client, "complex")
    assert sent_models(upstream) == ["test/small"]
    assert raw.headers["x-sidecar-auto-tier"] == "simple"
    assert raw.headers["x-sidecar-auto-reason"].startswith("budget:complex->simple,")
    await flush(sidecar)
    [row] = rows(sidecar.settings.state_dir / "ledger.db")
    assert (row["auto_tier"], row["model"], row["status"]) == ("simple", "test/small", 200)


async def test_downgrade_off_answers_402(start_sidecar: StartSidecar,
                                         upstream: FakeUpstream) -> None:
    """downgrade_on_budget: false keeps the budget's 402 budget_exceeded."""
    sidecar = await start_sidecar(tight(1e-4, downgrade_on_budget=False))
    async with sdk(sidecar) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await ask(client, "complex")
    assert caught.value.status_code == 402
    assert caught.value.response.headers["x-sidecar-auto-tier"] == "complex"
    assert upstream.requests == []


async def test_when_no_tier_fits_the_budget_the_402_stands(start_sidecar: StartSidecar,
                                                            upstream: FakeUpstream) -> None:
    """A budget too small for every tier: 402, nothing sent upstream."""
    sidecar = await start_sidecar(tight(1e-12))
    async with sdk(sidecar) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await ask(client, "complex")
    assert caught.value.status_code == 402 and upstream.requests == []


@pytest.fixture
async def served(start_sidecar: StartSidecar, upstream: FakeUpstream) -> Any:
    """A sidecar (defaults on) that served one request per tier, then a direct one."""
    sidecar = await start_sidecar(auto_config("defaults"))
    async with sdk(sidecar) as client:
        for tier in ASKS:
            await ask(client, tier)
        await client.chat.completions.create(model="test/mid", messages=[
            {"role": "user", "content": "named"}])
    await flush(sidecar)
    return sidecar


TIER_MODEL = {"simple": "test/small", "medium": "test/mid", "complex": "test/big",
              "reasoning": "test/think"}


async def test_rows_record_the_tier_and_the_baselines_cost(served: Any) -> None:
    """Each routed row has its tier, its real cost, and the baseline's cost for the same
    tokens (7 prompt, 6 completion at test/big's price); the direct request has neither."""
    found = rows(served.settings.state_dir / "ledger.db")
    routed = {r["auto_tier"]: r for r in found if r["auto_tier"]}
    assert set(routed) == set(TIER_MODEL)
    for tier, row in routed.items():
        assert (row["model"], row["requested_model"]) == (TIER_MODEL[tier], ROUTER)
        assert row["cost_nusd"] == cost(TIER_MODEL[tier])
        assert row["baseline_nusd"] == cost("test/big") == 7 * 2500 + 6 * 10_000
    [direct] = [r for r in found if not r["auto_tier"]]
    assert (direct["model"], direct["baseline_nusd"]) == ("test/mid", None)


async def test_usage_by_tier_shows_saved_vs_baseline(served: Any, tmp_path: Path) -> None:
    """/sidecar/usage?by=tier: per tier, requests, cost, and saved vs baseline = the
    baseline's price minus the real price for the same tokens; totals count every request,
    the direct one too. `llm-sidecar usage --by tier --json` prints the same object."""
    report = await get_json(served.url + "/sidecar/usage?window=all&by=tier")
    by_tier = {r["key"]: r for r in report["rows"]}
    assert set(by_tier) == set(TIER_MODEL)
    for tier, row in by_tier.items():
        assert row["requests"] == 1
        assert round(row["cost_usd"] * 1e9) == cost(TIER_MODEL[tier])
        assert round(row["baseline_usd"] * 1e9) == cost("test/big")
        assert round(row["saved_vs_baseline_usd"] * 1e9) == cost("test/big") - cost(
            TIER_MODEL[tier])
    assert report["total_requests"] == 5
    assert round(report["total_saved_vs_baseline_usd"] * 1e9) == sum(
        cost("test/big") - cost(m) for m in TIER_MODEL.values())
    config = tmp_path / "sidecar.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(served.settings.state_dir)}))
    proc = await asyncio.create_subprocess_exec(
        BIN, "usage", "--window", "all", "--by", "tier", "--json", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ))
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err
    assert orjson.loads(out) == report
    proc = await asyncio.create_subprocess_exec(
        BIN, "usage", "--window", "all", "--by", "tier", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ))
    table, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert b"saved vs baseline USD" in table and b"reasoning" in table


async def test_the_inspector_shows_the_tier_and_the_saving(served: Any) -> None:
    """Each routed request's record carries its tier, why, the model that ran and what it
    saved against the baseline; the direct one carries none."""
    records = (await get_json(served.url + "/sidecar/requests"))["requests"]
    routed = [r for r in records if r["tier"]]
    assert {r["tier"]: r["response_model"] for r in routed} == TIER_MODEL
    for record in routed:
        assert record["model"] == ROUTER and record["auto_reason"]
        expected = (cost("test/big") - cost(TIER_MODEL[record["tier"]])) * 1e-9
        assert record["saved_vs_baseline_usd"] == pytest.approx(expected, abs=1e-12)
    [direct] = [r for r in records if not r["tier"]]
    assert direct["saved_vs_baseline_usd"] is None and direct["auto_reason"] is None


async def test_a_cache_hit_saves_nothing_against_the_baseline(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """The same request twice: the hit costs 0 and its baseline cost is 0 too (the baseline
    would have been a hit as well), so only the first counts in saved vs baseline."""
    sidecar = await start_sidecar(auto_config("defaults"))
    async with sdk(sidecar) as client:
        await ask(client, "simple")
        assert (await ask(client, "simple")).headers["x-sidecar-cache"] == "HIT"
    await flush(sidecar)
    found = rows(sidecar.settings.state_dir / "ledger.db")
    assert [(r["cache_hit"], r["cost_nusd"], r["baseline_nusd"]) for r in found] == [
        (0, cost("test/small"), cost("test/big")), (1, 0, 0)]
    assert len(upstream.requests) == 1


async def test_redis_ledger_reports_by_tier(start_sidecar: StartSidecar,
                                            upstream: FakeUpstream,
                                            redis_server: RedisServer) -> None:
    """With the Redis ledger, rows carry the tier and the baseline and by=tier reports the
    same savings as SQLite does."""
    sidecar = await start_sidecar({**auto_config("defaults"),
                                   "spend": {**auto_config()["spend"],
                                             "ledger": redis_server.url}})
    async with sdk(sidecar, **{"Cache-Control": "no-store"}) as client:
        for tier in ("simple", "reasoning", "simple"):
            await ask(client, tier)
    await flush(sidecar)
    report = await get_json(sidecar.url + "/sidecar/usage?window=day&by=tier")
    got = {r["key"]: (r["requests"], round(r["saved_vs_baseline_usd"] * 1e9))
           for r in report["rows"]}
    assert got == {"simple": (2, 2 * (cost("test/big") - cost("test/small"))),
                   "reasoning": (1, cost("test/big") - cost("test/think"))}
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.url + "/sidecar/usage?by=tier&window=all") as response:
        assert response.status == 200
