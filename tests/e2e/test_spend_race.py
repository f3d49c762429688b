"""Race-free admission: 100 concurrent requests (the openai SDK) against a budget that fits
10.5 of them never spend past it (the refused are told 429 budget_held: the money is held),
with or without max_tokens, in one sidecar (memory) and across two sidecar apps sharing one
real Redis. The upstream bills every request its exact worst case
(prompt tokens = the sidecar's bound, completion = the granted limit), so any over-admission
would show as overspend. Also: a dead Redis gives the configured failure mode, and recovers."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import RunningSidecar, StartSidecar
from tests.fakes.metered import Metered
from tests.fakes.profiles import ALL, fresh
from tests.fakes.redis import RedisServer
from tests.fakes.spend import MODEL, flush, get_json
from tests.fakes.waits import wait_until

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

PROMPT_NANO, COMPLETION_NANO = 1_000, 2_000  # 1 and 2 micro-USD a token
RESERVE = 100  # spend.reserve_max_tokens: the limit of requests that set none

# The cache off in the module profile (start_sidecar merges SIDECAR_BASE under each config):
# racing requests must each reach the metered upstream; in the others each sends a prompt of
# its own (of one size: every request holds the same).
SIDECAR_BASE = {"cache": {"backend": "off"}}


def messages() -> list[dict[str, str]]:
    """A prompt of its own for each request (the cache, on in most profiles, answers none)."""
    return [{"role": "user", "content": fresh("Race for the last dollar.")}]


def spend_config(metered: Metered, limit_usd: float, ledger: str | None) -> dict[str, Any]:
    spend: dict[str, Any] = {
        "prices": {MODEL: {"prompt": PROMPT_NANO / 1e9, "completion": COMPLETION_NANO / 1e9}},
        "reserve_max_tokens": RESERVE, "hold_wait_s": 0,  # refused at once: atomicity alone
        "budgets": [{"name": "shared", "window": "day", "limit_usd": limit_usd}]}
    if ledger is not None:
        spend["ledger"] = ledger
        # The test's clients, its sidecars and the upstream share one event loop: on a busy
        # machine, 100 admissions at once can lag it past the default 0.5 s, and a Redis
        # answer read late is an outage (503). The race is about atomicity, not that timeout.
        spend["redis_timeout_s"] = 3.0
    return {"upstream": {"url": metered.url}, "spend": spend}


async def ask(sdk: openai.AsyncOpenAI, max_tokens: int | None) -> int:
    """One chat request; its HTTP status."""
    extra = {} if max_tokens is None else {"max_tokens": max_tokens}
    try:
        await sdk.chat.completions.create(model=MODEL, messages=messages(), **extra)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


async def held_by_one(start_sidecar: StartSidecar, metered: Metered, max_tokens: int | None,
                      ledger: str | None) -> int:
    """The nano-dollars one such request holds, read from /sidecar/budgets while it waits."""
    probe = await start_sidecar(spend_config(metered, 1000.0, ledger))
    metered.gate = asyncio.Event()
    sdk = openai.AsyncOpenAI(base_url=probe.v1, api_key="k", max_retries=0)
    try:
        task = asyncio.ensure_future(ask(sdk, max_tokens))
        await metered.arrived(1)
        budget = (await get_json(probe.url + "/sidecar/budgets"))["budgets"][0]
        metered.gate.set()
        assert await task == 200
    finally:
        await sdk.close()
    await flush(probe)
    metered.bodies.clear()
    return round(budget["entries"][0]["reserved_usd"] * 1e9)


async def race(sidecars: list[RunningSidecar], metered: Metered, requests: int,
               max_tokens: int | None, limit_nano: int) -> list[int]:
    """`requests` concurrent requests spread over the sidecars, all held upstream until every
    refusal is back; checks that spent + held never passed the limit meanwhile."""
    metered.gate = asyncio.Event()
    sdks = [openai.AsyncOpenAI(base_url=s.v1, api_key="k", max_retries=0) for s in sidecars]
    try:
        tasks = [asyncio.ensure_future(ask(sdks[i % len(sdks)], max_tokens))
                 for i in range(requests)]
        await wait_until(
            lambda: sum(task.done() for task in tasks) + len(metered.bodies) == requests,
            "every request is either refused or held upstream", 30)
        for sidecar in sidecars:
            budget = (await get_json(sidecar.url + "/sidecar/budgets"))["budgets"][0]
            held = sum(e["spent_usd"] + e["reserved_usd"] for e in budget["entries"])
            assert round(held * 1e9) <= limit_nano
        metered.gate.set()
        return list(await asyncio.gather(*tasks))
    finally:
        for sdk in sdks:
            await sdk.close()


@pytest.mark.parametrize("max_tokens", [RESERVE, None], ids=["max_tokens", "no_max_tokens"])
@pytest.mark.parametrize("backend", ["sqlite", "redis", "redis_two_apps"])
async def test_concurrent_requests_never_overspend(
        start_sidecar: StartSidecar, metered: Metered, request: pytest.FixtureRequest,
        tmp_path: Path, backend: str, max_tokens: int | None) -> None:
    """100 racing requests, a budget of 10.5 worst cases: exactly 10 are admitted in full and
    one capped to the half that is left, the other 89 get 429 budget_held (the money is held,
    not spent: they may retry), and what was spent (each request billed its exact worst case)
    is at most the limit: overshoot 0."""
    probe_ledger, ledger = None, f"sqlite:///{tmp_path}/race.db"
    if backend != "sqlite":  # the probe and the race in two databases of one Redis
        url = request.getfixturevalue("redis_server").url
        probe_ledger, ledger = url, url.removesuffix("/0") + "/1"
    held = await held_by_one(start_sidecar, metered, max_tokens, probe_ledger)
    bound = (held - RESERVE * COMPLETION_NANO) // PROMPT_NANO
    metered.prompt_tokens = bound  # the upstream bills the bound: the worst case, exactly
    limit_nano = 10 * held + held // 2
    config = spend_config(metered, limit_nano / 1e9, ledger)
    sidecars = [await start_sidecar(config)]
    if backend == "redis_two_apps":
        sidecars.append(await start_sidecar(config))
    statuses = await race(sidecars, metered, 100, max_tokens, limit_nano)

    assert Counter(statuses) == {200: 11, 429: 89}
    limits = sorted(body["max_tokens"] for body in metered.bodies)
    capped = (limit_nano - 10 * held - bound * PROMPT_NANO) // COMPLETION_NANO
    assert limits == [capped] + [RESERVE] * 10
    for sidecar in sidecars:
        await flush(sidecar)
    report = await get_json(sidecars[0].url + "/sidecar/usage?window=day")
    spent = round(report["total_cost_usd"] * 1e9)
    assert spent == 10 * held + bound * PROMPT_NANO + capped * COMPLETION_NANO
    overshoot = max(0, spent - limit_nano)
    assert overshoot == 0
    budget = (await get_json(sidecars[-1].url + "/sidecar/budgets"))["budgets"][0]
    assert round(budget["spent_usd"] * 1e9) == spent and budget["entries"][0][
        "reserved_usd"] == 0


@pytest.mark.parametrize(("mode", "status"), [("fail_closed", 503), ("fail_open", 200)])
async def test_redis_down_gives_the_configured_failure_mode_then_recovers(
        start_sidecar: StartSidecar, metered: Metered, redis_server: RedisServer,
        mode: str, status: int) -> None:
    """With Redis killed, fail_closed refuses (503 ledger_unavailable, /readyz says why) and
    fail_open serves unguarded, without waiting on Redis; once Redis is back the budget guards
    again."""
    config = spend_config(metered, 1.0, redis_server.url)
    config["spend"].update(on_ledger_error=mode, flush_interval_s=0.05)
    sidecar = await start_sidecar(config)
    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="k", max_retries=0)
    try:
        assert await ask(sdk, 10) == 200
        redis_server.stop()
        assert await ask(sdk, 10) in (status, 503)  # the request that finds Redis gone
        assert await ask(sdk, 10) == status
        async with aiohttp.ClientSession() as session:
            async with session.get(sidecar.url + "/readyz") as response:
                assert response.status == (503 if mode == "fail_closed" else 200)
            redis_server.start()

            async def guarding_again() -> bool:  # the ledger pings Redis every flush interval
                async with session.get(sidecar.url + "/readyz") as response:
                    return response.status == 200 and await ask(sdk, 10) == 200

            await wait_until(guarding_again, "the ledger recovered")
            async with session.get(sidecar.url + "/metrics") as response:
                assert 'llm_sidecar_ledger_errors_total{operation="admit"}' in (
                    await response.text())
    finally:
        await sdk.close()
