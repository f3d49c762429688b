"""Budgets and rate limits end to end: block with 402 and its metadata, warn, capping the
completion limit to what a budget can pay, ending a stream at its reservation, windows rolling
on the UTC calendar (injected clock), per-scope budgets, and rate limits with Retry-After."""

from __future__ import annotations

import calendar
import time
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from tests.conftest import RunningSidecar, StartSidecar
from tests.fakes.metered import Metered
from tests.fakes.profiles import ALL, fresh
from tests.fakes.spend import MODEL, Clock, flush, get_json, ledger_of, rows, sse_events
from tests.fakes.waits import wait_until

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

# The cache off in the module profile (start_sidecar merges SIDECAR_BASE under each config):
# each request must be billed (a hit costs 0); in the others each sends a prompt of its own.
SIDECAR_BASE = {"cache": {"backend": "off"}}


def messages() -> list[dict[str, str]]:
    """A prompt of its own for each request (the cache, on in most profiles, answers none)."""
    return [{"role": "user", "content": fresh("Spend it.")}]


def utc(text: str) -> float:
    """Unix time of an RFC 3339 UTC time."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def config(metered: Metered, *budgets: dict[str, Any], **spend: Any) -> dict[str, Any]:
    """Completion tokens at 1 micro-USD and free prompts: a request with max_tokens=N holds and
    costs exactly N micro-USD, so budgets can be written in requests."""
    return {"upstream": {"url": metered.url},
            "spend": {"prices": {MODEL: {"prompt": 0, "completion": 1e-6}},
                      "budgets": list(budgets), **spend}}


async def chat(sidecar: RunningSidecar, **body: Any) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as session, session.post(
            sidecar.v1 + "/chat/completions",
            json={"model": MODEL, "messages": messages(), **body}) as response:
        return response.status, dict(response.headers), orjson.loads(await response.read())


async def test_blocking_budget_refuses_with_402_and_its_metadata(
        start_sidecar: StartSidecar, metered: Metered) -> None:
    """Three 10-token requests fit a 30 micro-USD budget; the fourth gets 402 budget_exceeded
    naming the budget, never reaches the upstream, and the SDK does not retry it."""
    clock = Clock(utc("2026-11-18T10:20:30Z"))
    sidecar = await start_sidecar(config(metered, {"name": "cap", "limit_usd": 30e-6}))
    ledger_of(sidecar).clock = clock
    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="k")  # default retries on
    try:
        for _ in range(3):
            await sdk.chat.completions.create(model=MODEL, messages=messages(), max_tokens=10)
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.chat.completions.create(model=MODEL, messages=messages(), max_tokens=10)
    finally:
        await sdk.close()
    assert caught.value.status_code == 402
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "budget_exceeded"
    assert error["metadata"] == {"budget": "cap", "scope": "global", "scope_value": "",
                                 "window": "day", "limit_usd": 30e-6, "spent_usd": 30e-6,
                                 "held_usd": 0.0, "needed_usd": 1e-6,
                                 "resets_at": "2026-11-19T00:00:00Z"}
    assert "Budget 'cap'" in error["message"] and "2026-11-19T00:00:00Z" in error["message"]
    assert len(metered.bodies) == 3


async def test_warn_budget_serves_and_says_so(start_sidecar: StartSidecar,
                                             metered: Metered) -> None:
    """A warn budget never refuses: requests past it are served with x-sidecar-budget-warning
    and counted as warned."""
    sidecar = await start_sidecar(config(metered, {"name": "soft", "limit_usd": 15e-6,
                                                   "action": "warn"}))
    results = [await chat(sidecar, max_tokens=10) for _ in range(3)]
    assert [status for status, _, _ in results] == [200, 200, 200]
    assert [h.get("x-sidecar-budget-warning") for _, h, _ in results] == [None, "soft", "soft"]
    assert [h["x-sidecar-budget-remaining-usd"] for _, h, _ in results] == [
        "0.000005", "-0.000005", "-0.000015"]
    async with aiohttp.ClientSession() as session, session.get(sidecar.url + "/metrics") as r:
        text = await r.text()
    assert 'llm_sidecar_budget_decisions_total{decision="warned"} 2.0' in text


async def test_remaining_header_on_bodies_and_streams(start_sidecar: StartSidecar,
                                                      metered: Metered) -> None:
    """x-sidecar-budget-remaining-usd is the tightest budget's room: after settling for a body,
    after holding the worst case for a stream (whose headers leave first)."""
    sidecar = await start_sidecar(config(metered, {"name": "wide", "limit_usd": 1},
                                         {"name": "tight", "limit_usd": 100e-6},
                                         flush_interval_s=0.05))
    _, headers, _ = await chat(sidecar, max_tokens=10)
    assert headers["x-sidecar-budget-remaining-usd"] == "0.00009"
    assert headers["x-sidecar-cost-usd"] == "0.00001"
    async with aiohttp.ClientSession() as session, session.post(
            sidecar.v1 + "/chat/completions", json={"model": MODEL, "messages": messages(),
                                                    "max_tokens": 30, "stream": True}) as r:
        assert r.headers["x-sidecar-budget-remaining-usd"] == "0.00006"
        await r.read()
    budgets = await get_json(sidecar.url + "/sidecar/budgets")
    tight = next(b for b in budgets["budgets"] if b["name"] == "tight")
    assert (tight["spent_usd"], tight["remaining_usd"]) == (40e-6, 60e-6)
    text = ""

    async def gauge_set() -> bool:  # the gauges follow each flush interval
        nonlocal text
        async with aiohttp.ClientSession() as session, session.get(
                sidecar.url + "/metrics") as response:
            text = await response.text()
        return 'llm_sidecar_budget_remaining_usd{budget="tight"} 6e-05' in text

    await wait_until(gauge_set, "the budget_remaining gauge shows the tight budget's room")
    assert 'llm_sidecar_cost_usd_total{model="test/model"} 4e-05' in text


async def test_a_limit_written_as_a_float_is_the_clients_own(start_sidecar: StartSidecar,
                                                              metered: Metered) -> None:
    """`max_tokens: 10.0` is the number 10 (the cache key says so too): under a blocking
    budget the upstream is told the client's 10, never the larger reserve it would bill."""
    sidecar = await start_sidecar(config(metered, {"name": "cap", "limit_usd": 1},
                                         reserve_max_tokens=1000))
    status, _, _ = await chat(sidecar, max_tokens=10.0)
    assert status == 200
    assert metered.bodies[-1]["max_tokens"] == 10


@pytest.mark.parametrize(("field", "asked", "sent"), [
    ("max_tokens", 10, 5), ("max_completion_tokens", 10, 5), ("max_tokens", None, 5)],
    ids=["max_tokens", "max_completion_tokens", "no_limit_set"])
async def test_budget_caps_the_completion_limit_it_cannot_pay(
        start_sidecar: StartSidecar, metered: Metered, tmp_path: Any, field: str,
        asked: int | None, sent: int) -> None:
    """With 5 tokens' worth left the request goes upstream capped to 5 (in the field the client
    used; max_tokens when it set none), ends with finish_reason length, the row is capped; a
    request that cannot pay one token gets 402."""
    sidecar = await start_sidecar(config(metered, {"name": "cap", "limit_usd": 25e-6},
                                         reserve_max_tokens=10))
    limit = {field: asked} if asked else {}
    assert (await chat(sidecar, **limit))[0] == 200
    assert (await chat(sidecar, **limit))[0] == 200
    status, _, answer = await chat(sidecar, **limit)
    assert status == 200 and answer["choices"][0]["finish_reason"] == "length"
    assert metered.bodies[-1][field] == sent
    assert metered.bodies[0].get(field) == 10  # the reserve, told upstream, or the client's own
    assert (await chat(sidecar, **limit))[0] == 402
    await flush(sidecar)
    assert [r["capped"] for r in rows(tmp_path / "ledger.db")] == [0, 0, 1]


@pytest.mark.parametrize("asked_usage", [False, True], ids=["no_usage", "usage"])
async def test_stream_ends_at_its_reservation(start_sidecar: StartSidecar, metered: Metered,
                                             tmp_path: Any, asked_usage: bool) -> None:
    """An upstream that ignores max_tokens is cut at the reservation: the client gets the 5
    paid-for tokens, a final chunk with finish_reason length, usage if it asked, [DONE]; the
    row is capped and estimated, and spend stays within the budget."""
    metered.overrun = 100
    sidecar = await start_sidecar(config(metered, {"name": "cap", "limit_usd": 5e-6}))
    body: dict[str, Any] = {"max_tokens": 50, "stream": True}
    if asked_usage:
        body["stream_options"] = {"include_usage": True}
    async with aiohttp.ClientSession() as session, session.post(
            sidecar.v1 + "/chat/completions",
            json={"model": MODEL, "messages": messages(), **body}) as response:
        events = await sse_events(response)
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "aaaaa"
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish == [None] * 5 + ["length"]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert usage == ([{"prompt_tokens": usage[0]["prompt_tokens"], "completion_tokens": 5,
                       "total_tokens": usage[0]["prompt_tokens"] + 5, "cost": 5e-6}]
                     if asked_usage else [])
    await flush(sidecar)
    (row,) = rows(tmp_path / "ledger.db")
    assert (row["capped"], row["estimated"], row["cost_nusd"]) == (1, 1, 5000)


async def test_compliant_upstream_at_the_cap_keeps_its_own_usage(
        start_sidecar: StartSidecar, metered: Metered, tmp_path: Any) -> None:
    """An upstream that stops at the capped max_tokens is not cut: its own finish, usage and
    [DONE] pass through and the row is billed from real usage (capped, not estimated)."""
    sidecar = await start_sidecar(config(metered, {"name": "cap", "limit_usd": 5e-6}))
    async with aiohttp.ClientSession() as session, session.post(
            sidecar.v1 + "/chat/completions",
            json={"model": MODEL, "messages": messages(), "max_tokens": 50, "stream": True,
                  "stream_options": {"include_usage": True}}) as response:
        events = await sse_events(response)
    usage = orjson.loads(events[-2])["usage"]
    assert (usage["completion_tokens"], usage["cost"]) == (5, 5e-6)
    await flush(sidecar)
    (row,) = rows(tmp_path / "ledger.db")
    assert (row["capped"], row["estimated"], row["completion_tokens"]) == (1, 0, 5)


# Wednesday 2027-11-17 10:20:30 UTC, and when each window holding it ends. (In the future: the
# Redis ledger's keys expire at their window's end in Redis's own clock.)
T1 = "2027-11-17T10:20:30Z"
ROLLS = {"minute": "2027-11-17T10:21:00Z", "hour": "2027-11-17T11:00:00Z",
         "day": "2027-11-18T00:00:00Z", "week": "2027-11-22T00:00:00Z",
         "month": "2027-12-01T00:00:00Z"}


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
@pytest.mark.parametrize("window", [*ROLLS, "total"])
async def test_every_window_rolls_over_on_the_utc_calendar(
        start_sidecar: StartSidecar, metered: Metered, request: pytest.FixtureRequest,
        window: str, backend: str) -> None:
    """A spent budget stays spent until its window's UTC calendar end (a second before it: still
    402, naming that reset time), then starts again from zero; a total budget never resets."""
    clock = Clock(utc(T1))
    extra = {"ledger": request.getfixturevalue("redis_server").url} if backend == "redis" else {}
    sidecar = await start_sidecar(config(metered, {"name": "w", "window": window,
                                                   "limit_usd": 10e-6}, **extra))
    ledger_of(sidecar).clock = clock
    assert (await chat(sidecar, max_tokens=10))[0] == 200
    await flush(sidecar)  # Redis: the settlement reaches Redis
    status, _, error = await chat(sidecar, max_tokens=10)
    assert status == 402
    assert error["error"]["metadata"]["resets_at"] == ROLLS.get(window)
    clock.now = utc(ROLLS[window]) - 1 if window in ROLLS else utc("2037-01-01T00:00:00Z")
    assert (await chat(sidecar, max_tokens=10))[0] == 402
    if window in ROLLS:
        clock.now = utc(ROLLS[window])
        assert (await chat(sidecar, max_tokens=10))[0] == 200


async def test_scoped_budgets_apply_per_value(start_sidecar: StartSidecar,
                                              metered: Metered) -> None:
    """A key-scoped budget gives each key its own limit; a tag budget with `match` applies to
    the matching tag only; a request without a key counts under one shared anonymous value."""
    keys = [{"name": "team-a", "token": "tok-a"}, {"name": "team-b", "token": "tok-b"}]
    cfg = config(metered, {"name": "per-key", "scope": "key", "limit_usd": 10e-6},
                 {"name": "batch", "scope": "tag", "match": ["batch"], "limit_usd": 20e-6})
    sidecar = await start_sidecar({**cfg, "auth": {"required": True, "keys": keys}})

    async def as_key(token: str, tags: str = "") -> int:
        async with aiohttp.ClientSession() as session, session.post(
                sidecar.v1 + "/chat/completions", headers={
                    "Authorization": f"Bearer {token}", "x-sidecar-tags": tags},
                json={"model": MODEL, "messages": messages(), "max_tokens": 10}) as response:
            return response.status

    assert [await as_key("tok-a", "batch"), await as_key("tok-a")] == [200, 402]
    assert [await as_key("tok-b", "other"), await as_key("tok-b")] == [200, 402]
    budgets = {b["name"]: b for b in (await get_json(sidecar.url + "/sidecar/budgets"))[
        "budgets"]}
    assert [e["value"] for e in budgets["per-key"]["entries"]] == ["team-a", "team-b"]
    assert [(e["value"], e["spent_usd"]) for e in budgets["batch"]["entries"]] == [
        ("batch", 10e-6)]


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
@pytest.mark.parametrize(("limit", "retry_after"), [({"rpm": 2}, "30"), ({"tpm": 100}, "60")],
                         ids=["rpm", "tpm"])
async def test_rate_limit_answers_429_with_retry_after(
        start_sidecar: StartSidecar, metered: Metered, request: pytest.FixtureRequest,
        limit: dict[str, int], retry_after: str, backend: str) -> None:
    """Past a rate limit the answer is 429 rate_limit_exceeded with Retry-After: the seconds
    until the bucket has room; after that long the request passes."""
    clock = Clock(utc(T1))
    metered.prompt_tokens = 200  # uses every token it held: nothing is given back
    extra = {"ledger": request.getfixturevalue("redis_server").url} if backend == "redis" else {}
    sidecar = await start_sidecar({**config(metered), "spend": {
        **config(metered)["spend"], **extra, "rate_limits": [{"scope": "global", **limit}]}})
    ledger_of(sidecar).clock = clock
    allowed = 2 if "rpm" in limit else 1  # a request's tokens: its prompt bound + max_tokens
    for _ in range(allowed):
        assert (await chat(sidecar, max_tokens=80))[0] == 200
        await flush(sidecar)
    status, headers, error = await chat(sidecar, max_tokens=80)
    assert (status, headers["Retry-After"]) == (429, retry_after)
    assert error["error"]["code"] == "rate_limit_exceeded"
    clock.now += float(retry_after) - 1
    assert (await chat(sidecar, max_tokens=80))[0] == 429
    clock.now += 1
    assert (await chat(sidecar, max_tokens=80))[0] == 200


async def test_tokens_per_minute_are_given_back_when_unused(
        start_sidecar: StartSidecar, metered: Metered) -> None:
    """A tpm hold is the worst case; settling returns what the answer did not use."""
    metered.default_tokens = 1
    clock = Clock(utc(T1))
    sidecar = await start_sidecar({**config(metered), "spend": {
        **config(metered)["spend"], "rate_limits": [{"scope": "global", "tpm": 1000}]}})
    ledger_of(sidecar).clock = clock
    metered.overrun = -499  # answers 1 token for max_tokens=500
    statuses = [(await chat(sidecar, max_tokens=500))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 200]


@pytest.mark.parametrize(("model", "field"), [("o3-mini", "max_completion_tokens"),
                                              (MODEL, "max_tokens")])
async def test_the_cap_goes_in_the_field_the_provider_takes(
        start_sidecar: StartSidecar, metered: Metered, model: str, field: str) -> None:
    """A request with no limit under a blocking budget is capped: an OpenAI reasoning model
    gets max_completion_tokens (it refuses max_tokens), another model max_tokens; the client's
    body is otherwise sent as it was."""
    settings = config(metered, {"name": "cap", "limit_usd": 1.0}, reserve_max_tokens=64)
    settings["spend"]["prices"][model] = {"prompt": 0, "completion": 1e-6}
    sidecar = await start_sidecar(settings)
    status, _, _ = await chat(sidecar, model=model)
    assert status == 200
    [sent] = metered.bodies
    assert sent[field] == 64 and ({"max_tokens", "max_completion_tokens"} - {field}).isdisjoint(
        sent)
