"""A burst uses the budget (issue 18): 50 concurrent openai SDK requests against a day cap that
their real cost fills about 40 times over. Holds are close to the cost (the prompt bounded by
its text), a request refused only because money is held waits for the holds in flight to
settle, so the budget is spent to at least 80 %, never past it to the nano-dollar, and a 402
comes only when what is spent leaves no room. In one sidecar (memory) and on two sidecar apps
sharing one real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import RunningSidecar, StartSidecar
from tests.fakes.metered import Metered
from tests.fakes.spend import MODEL, flush, get_json

SIDECAR_BASE = {"cache": {"backend": "off"}}
PROMPT_NANO, COMPLETION_NANO = 1_000, 2_000  # 1 and 2 micro-USD a token
# A realistic short request: a system prompt and a question (about 250 characters), an
# answer of 120 tokens under a limit of 200.
MESSAGES = [{"role": "system", "content": "You are a helpful assistant. Answer in one short "
             "paragraph and cite nothing."},
            {"role": "user", "content": "Explain in plain words why the sky looks blue on a "
             "clear day, and why sunsets are red instead, for a curious ten year old."}]
PROMPT_TOKENS, ANSWER_TOKENS, MAX_TOKENS = 60, 120, 200
COST = PROMPT_TOKENS * PROMPT_NANO + ANSWER_TOKENS * COMPLETION_NANO  # 300,000 nano-USD
LIMIT = 40 * COST + COST // 3  # room for 40.3 answers
REQUESTS = 50


def config(metered: Metered, ledger: str) -> dict[str, Any]:
    return {"upstream": {"url": metered.url}, "spend": {
        "ledger": ledger, "hold_wait_s": 60,  # a bound, not a timing: holds settle in ms
        "prices": {MODEL: {"prompt": PROMPT_NANO / 1e9, "completion": COMPLETION_NANO / 1e9}},
        "budgets": [{"name": "day-cap", "window": "day", "limit_usd": LIMIT / 1e9}]}}


async def ask(sdk: openai.AsyncOpenAI) -> tuple[int, dict[str, Any] | None]:
    try:
        await sdk.chat.completions.create(model=MODEL, messages=MESSAGES,  # type: ignore[arg-type]
                                          max_tokens=MAX_TOKENS)
    except openai.APIStatusError as exc:
        return exc.status_code, exc.body if isinstance(exc.body, dict) else None
    return 200, None


async def burst(sidecars: list[RunningSidecar]) -> list[tuple[int, dict[str, Any] | None]]:
    sdks = [openai.AsyncOpenAI(base_url=s.v1, api_key="k", max_retries=0) for s in sidecars]
    try:
        return list(await asyncio.gather(*(ask(sdks[i % len(sdks)]) for i in range(REQUESTS))))
    finally:
        for sdk in sdks:
            await sdk.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis_two_apps"])
async def test_a_burst_spends_the_budget_and_never_past_it(
        start_sidecar: StartSidecar, metered: Metered, request: pytest.FixtureRequest,
        tmp_path: Path, backend: str) -> None:
    """50 concurrent requests, a cap of 40.3 real costs: at least 80 % of the cap is spent,
    spend never passes it (overshoot 0 to the nano-dollar), nothing is left held, and every
    402 says that what was spent (holds aside) left no room for the request."""
    metered.prompt_tokens, metered.answer_tokens = PROMPT_TOKENS, ANSWER_TOKENS
    ledger = f"sqlite:///{tmp_path}/burst.db"
    if backend != "sqlite":
        ledger = request.getfixturevalue("redis_server").url
    sidecars = [await start_sidecar(config(metered, ledger))]
    if backend == "redis_two_apps":
        sidecars.append(await start_sidecar(config(metered, ledger)))
    results = await burst(sidecars)
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 402}, statuses  # no 429: the waits outlast the holds
    for status, body in results:
        if status == 402:
            assert body is not None and body["code"] == "budget_exceeded"
            metadata = body["metadata"]  # needed: its prompt at most and one token
            assert round((metadata["spent_usd"] + metadata["needed_usd"]) * 1e9) > LIMIT
    for sidecar in sidecars:
        await flush(sidecar)
    report = await get_json(sidecars[0].url + "/sidecar/usage?window=day")
    spent = round(report["total_cost_usd"] * 1e9)
    assert spent <= LIMIT  # overshoot 0
    assert spent >= 0.8 * LIMIT, f"{spent / LIMIT:.0%} of the cap used"
    budget = (await get_json(sidecars[-1].url + "/sidecar/budgets"))["budgets"][0]
    assert round(budget["spent_usd"] * 1e9) == spent
    assert budget["entries"][0]["reserved_usd"] == 0
