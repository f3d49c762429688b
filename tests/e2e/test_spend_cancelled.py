"""A cancelled non-streamed call is billed what the provider bills (issue 18): an SDK client
that times out on a slow answer leaves, the sidecar keeps reading the answer in the background,
holds the request's worst case until then, and bills the upstream's usage; a read that passes
its bound is cut and billed the worst case it held. The upstream is held by a gate the test
opens only after the client has gone: nothing depends on timing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest

from sidecar.background import BackgroundReads
from sidecar.deps import DEPS
from tests.conftest import RunningSidecar, StartSidecar
from tests.fakes.metered import Metered
from tests.fakes.profiles import ALL
from tests.fakes.spend import MODEL, flush, get_json, rows

MESSAGES = [{"role": "user", "content": "Take your time."}]
PROMPT_NANO, COMPLETION_NANO = 1_000, 2_000

PROFILES = ALL  # each test runs in the module, defaults and everything profiles


def config(metered: Metered, **spend: Any) -> dict[str, Any]:
    return {"upstream": {"url": metered.url}, "cache": {"backend": "off"}, "spend": {
        "prices": {MODEL: {"prompt": PROMPT_NANO / 1e9, "completion": COMPLETION_NANO / 1e9}},
        "budgets": [{"name": "day", "limit_usd": 1.0}], **spend}}


def background(sidecar: RunningSidecar) -> BackgroundReads:
    reads = sidecar.app[DEPS].background
    assert reads is not None
    return reads


async def held(sidecar: RunningSidecar) -> tuple[int, int]:
    """(spent, held) of the day budget, in nano-dollars."""
    entry = (await get_json(sidecar.url + "/sidecar/budgets"))["budgets"][0]["entries"][0]
    return round(entry["spent_usd"] * 1e9), round(entry["reserved_usd"] * 1e9)


async def leave(sidecar: RunningSidecar, metered: Metered,
                headers: dict[str, str] | None = None) -> None:
    """A client that gives up on its answer: the SDK's own timeout, while the upstream holds
    it; returns once the sidecar has handed the call to its background reads."""
    metered.gate = asyncio.Event()
    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="k", max_retries=0, timeout=0.5)
    try:
        with pytest.raises(openai.APITimeoutError):
            await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=50,
                                              extra_headers=headers)
    finally:
        await sdk.close()
    await background(sidecar).wait_adopted(1)


@pytest.mark.parametrize("cache", ["off", "memory", "no-store"])
async def test_a_client_that_times_out_is_billed_the_upstreams_usage(
        start_sidecar: StartSidecar, metered: Metered, tmp_path: Path, cache: str) -> None:
    """The client left; its worst case stays held while the answer is read in the background;
    then the ledger row has the upstream's usage and cost (not 0, not estimated), the budget
    counts it as spent, and nothing is left held. With the cache on too (the read goes on in the
    single flight the request leads), and for a request that bypasses it (`no-store`): the
    cache stage detaches both."""
    backend = "off" if cache == "off" else "memory"
    sidecar = await start_sidecar({**config(metered), "cache": {"backend": backend}})
    await leave(sidecar, metered, {"Cache-Control": "no-store"} if cache == "no-store" else None)
    spent, holding = await held(sidecar)
    assert spent == 0 and holding > 0  # cancelling gave nothing back yet
    assert metered.gate is not None
    metered.gate.set()
    await background(sidecar).wait_idle()
    await flush(sidecar)
    [row] = rows(tmp_path / "ledger.db")
    cost = metered.prompt_tokens * PROMPT_NANO + 50 * COMPLETION_NANO
    assert (row["prompt_tokens"], row["completion_tokens"], row["cost_nusd"]) == (
        metered.prompt_tokens, 50, cost)
    assert row["outcome"] == "client_disconnected" and not row["estimated"]
    assert await held(sidecar) == (cost, 0)


async def test_a_background_read_past_its_bound_is_billed_its_hold(
        start_sidecar: StartSidecar, metered: Metered, tmp_path: Path) -> None:
    """An upstream that never answers: the background read is cut at spend.cancelled_read_s,
    and the request is billed the worst case it held (estimated), since the provider bills a
    call whether or not anyone reads it; nothing stays held."""
    sidecar = await start_sidecar(config(metered, cancelled_read_s=0.2))
    await leave(sidecar, metered)
    _, holding = await held(sidecar)
    await background(sidecar).wait_idle()
    await flush(sidecar)
    [row] = rows(tmp_path / "ledger.db")
    assert row["estimated"] and row["cost_nusd"] == holding
    assert await held(sidecar) == (holding, 0)
    assert background(sidecar).cut == 1
    assert metered.gate is not None
    metered.gate.set()


async def test_cancelling_cannot_pass_a_budget(start_sidecar: StartSidecar, metered: Metered,
                                               tmp_path: Path) -> None:
    """A budget with room for one worst case (and a nano-dollar): once its client left, the call
    still holds it, so the next request is refused (429 budget_held: the money is held)
    instead of being served on money the first one will spend."""
    probe = await start_sidecar(config(metered))
    await leave(probe, metered)
    _, one = await held(probe)
    assert metered.gate is not None
    metered.gate.set()
    await background(probe).wait_idle()
    metered.bodies.clear()
    sidecar = await start_sidecar(config(metered, hold_wait_s=0, ledger=(
        f"sqlite:///{tmp_path}/second.db"),
        budgets=[{"name": "day", "limit_usd": (one + 1) / 1e9}]))
    await leave(sidecar, metered)
    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="k", max_retries=0)
    try:
        with pytest.raises(openai.RateLimitError) as caught:
            await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=50)
    finally:
        await sdk.close()
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "budget_held"
    assert len(metered.bodies) == 1
    metered.gate.set()
    await background(sidecar).wait_idle()
