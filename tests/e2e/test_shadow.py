"""Shadow rules end to end: primaries sent with the openai SDK through the real app (the default
features on: memory cache, spend with the SQLite ledger, the inspector), the primary model on
one fake provider and the candidate on another, so each is steered and gated on its own.

What a client gets never depends on the copy: the copy is launched by the primary's finisher,
after the answer went out, and the tests prove it with gates (a candidate held upstream while
the clients' calls all complete), never with time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
import yaml

from sidecar.compare.shadow_runner import ShadowRunner
from sidecar.deps import DEPS
from tests.conftest import RunningSidecar, StartSidecar, merge
from tests.e2e.routing_helpers import MakeUpstreams, provider
from tests.e2e.test_reload import Start, reloadable  # noqa: F401  (the fixture)
from tests.fakes.clock import FakeClock
from tests.fakes.metered import Metered
from tests.fakes.spend import flush, get_json, rows
from tests.fakes.upstream import FakeUpstream, Script, chat_answer

PRIMARY, CANDIDATE, JUDGE = "m/primary", "m/candidate", "m/judge"
PROMPT_NANO, COMPLETION_NANO = 1_000, 2_000
MESSAGES = [{"role": "user", "content": "Summarise the contract."}]
NO_STORE = {"Cache-Control": "no-store"}  # identical primaries each go upstream


def config(primary: Any, candidate: Any, **rule: Any) -> dict[str, Any]:
    return {
        "providers": [provider("prim", primary, PRIMARY), provider("cand", candidate,
                                                                   CANDIDATE, JUDGE)],
        "retry": {"attempts": 1},
        "spend": {"prices": {"m/*": {"prompt": PROMPT_NANO / 1e9,
                                     "completion": COMPLETION_NANO / 1e9}}},
        "shadow": [{"name": "r", "match": {"model": "m/prim*"}, "candidate": CANDIDATE,
                    "percent": 100, "budget_usd": 1.0, **rule}],
    }


def runner(sidecar: RunningSidecar) -> ShadowRunner:
    found = sidecar.app[DEPS].shadow
    assert found is not None
    return found


async def report(sidecar: RunningSidecar) -> dict[str, Any]:
    (rule,) = (await get_json(sidecar.url + "/sidecar/shadow"))["rules"]
    return rule  # type: ignore[no-any-return]


async def ask(sdk: openai.AsyncOpenAI, stream: bool = False, **extra: Any) -> str:
    """One chat completion, read to the end; its text."""
    if stream:
        chunks = await sdk.chat.completions.create(model=PRIMARY, messages=MESSAGES,
                                                   stream=True, **extra)
        return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    answer = await sdk.chat.completions.create(model=PRIMARY, messages=MESSAGES, **extra)
    return answer.choices[0].message.content or ""


def sdk_for(sidecar: RunningSidecar) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sidecar.v1, api_key="k", max_retries=0)


async def two(upstreams: MakeUpstreams) -> tuple[FakeUpstream, FakeUpstream]:
    primary, candidate = await upstreams(2)
    return primary, candidate


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_every_request_is_copied_to_the_candidate_after_the_answer(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams, stream: bool) -> None:
    """percent 100: each primary is answered as without the rule, and the candidate's provider
    then sees the same request with the candidate's model, not streamed; the pair is counted
    with both models, costs, tokens, finish reasons and agreement (the same text: exact)."""
    primary, candidate = await two(upstreams)
    text = "Hello from fake." if stream else "Hello from the fake upstream."
    candidate.script("/chat/completions", *[Script(json=chat_answer(CANDIDATE, f"  {text.upper()}"))
                                            for _ in range(3)])
    sidecar = await start_sidecar(config(primary, candidate))
    async with sdk_for(sidecar) as sdk:
        answers = [await ask(sdk, stream, extra_headers=NO_STORE) for _ in range(3)]
    assert answers == [text] * 3
    await runner(sidecar).settled(3)
    sent = [orjson.loads(r.body) for r in candidate.requests]
    assert len(sent) == 3
    for body in sent:
        assert body["model"] == CANDIDATE and body["messages"] == MESSAGES
        assert "stream" not in body and "stream_options" not in body
    rule = await report(sidecar)
    assert rule["matched"] == rule["sampled"] == rule["launched"] == rule["pairs"] == 3
    (pair, *_) = rule["recent"]
    assert pair["primary"]["model"] == PRIMARY and pair["candidate"]["model"] == CANDIDATE
    assert pair["primary"]["finish_reason"] == pair["candidate"]["finish_reason"] == "stop"
    assert pair["candidate"]["prompt_tokens"] == 7 and pair["candidate"]["completion_tokens"] == 6
    expected = (7 * PROMPT_NANO + 6 * COMPLETION_NANO) / 1e9
    assert pair["candidate"]["cost_usd"] == pytest.approx(expected)
    assert pair["exact"] is True and pair["similarity"] == 1.0
    assert rule["agreement"]["exact_rate"] == 1.0
    assert rule["candidate"]["total_cost_usd"] == pytest.approx(3 * expected)


async def test_a_slow_or_failing_candidate_changes_nothing_for_the_clients(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """While the candidate's provider holds the copies (gated), every client call completes
    with its usual answer; a candidate that then fails counts as a candidate error, not a
    pair, and the clients never saw it."""
    primary, candidate = await two(upstreams)
    gate = asyncio.Event()
    candidate.script("/chat/completions", Script(hold=gate, json=chat_answer(CANDIDATE)),
                     Script(hold=gate, status=500, json={"error": {"message": "down"}}))
    sidecar = await start_sidecar(config(primary, candidate))
    async with sdk_for(sidecar) as sdk:
        first = await ask(sdk, extra_headers=NO_STORE)
        await candidate.arrived(1)  # the first copy is held upstream ...
        second = await ask(sdk, extra_headers=NO_STORE)  # ... and a client is served meanwhile
        await candidate.arrived(2)
        assert first == second == "Hello from the fake upstream."
        assert (await report(sidecar))["in_flight"] == 2
        gate.set()
    await runner(sidecar).settled(2)
    rule = await report(sidecar)
    assert rule["pairs"] == 1 and rule["candidate"]["errors"] == 1
    assert rule["candidate"]["errors_by_code"] == {"500": 1}


async def test_the_in_flight_bound_skips_and_counts(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """With max_in_flight 1 and the first copy held, the next samples are skipped and counted
    (in_flight), never queued."""
    primary, candidate = await two(upstreams)
    gate = asyncio.Event()
    candidate.script("/chat/completions", Script(hold=gate, json=chat_answer(CANDIDATE)))
    sidecar = await start_sidecar(config(primary, candidate, max_in_flight=1))
    async with sdk_for(sidecar) as sdk:
        await ask(sdk, extra_headers=NO_STORE)
        await candidate.arrived(1)
        for _ in range(2):
            await ask(sdk, extra_headers=NO_STORE)
        shadow = runner(sidecar)
        await shadow.wait_for(lambda: shadow.offers >= 3)  # finishers run after the answers
        gate.set()
    await runner(sidecar).settled(3)
    rule = await report(sidecar)
    assert rule["launched"] == 1 and rule["skipped"]["in_flight"] == 2
    assert len(candidate.requests) == 1


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_the_rule_budget_stops_it_exactly_under_50_concurrent_primaries(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams, metered: Metered,
        tmp_path: Path, request: pytest.FixtureRequest, backend: str) -> None:
    """50 concurrent primaries, each copied, against a rule budget of 10.5 copies' worst case
    (the metered candidate bills each copy exactly its worst case): 10 copies are admitted in
    full and one capped to the half left, 39 are skipped for the budget; what the rule spent
    equals the ledger's rows tagged shadow:r and /sidecar/budgets to the nano-dollar, and
    overshoot is 0, with the SQLite ledger and with Redis. The clients all get their answers."""
    (primary,) = await upstreams(1)
    reserve = 100
    base = merge(config(primary, metered, max_in_flight=64),
                 {"spend": {"reserve_max_tokens": reserve}})
    ledgers = (f"sqlite:///{tmp_path}/p.db", f"sqlite:///{tmp_path}/race.db")
    if backend == "redis":  # the probe and the race in two databases of one Redis
        url = request.getfixturevalue("redis_server").url
        ledgers = (url, url.removesuffix("/0") + "/1")
        # a busy machine is not a Redis outage: 50 admissions at once, each with room
        base = merge(base, {"spend": {"redis_timeout_s": 10}})
    # The hold of one copy, read from /sidecar/budgets while it is held upstream.
    probe = await start_sidecar(merge(base, {"spend": {"ledger": ledgers[0]}}))
    metered.gate = asyncio.Event()
    async with sdk_for(probe) as sdk:
        await ask(sdk, extra_headers=NO_STORE)
    await metered.arrived(1)
    budget = next(b for b in (await get_json(probe.url + "/sidecar/budgets"))["budgets"]
                  if b["name"] == "shadow:r")
    held = round(budget["entries"][0]["reserved_usd"] * 1e9)
    metered.gate.set()
    await runner(probe).settled(1)
    metered.bodies.clear()
    bound = (held - reserve * COMPLETION_NANO) // PROMPT_NANO
    metered.prompt_tokens = bound  # each copy bills exactly what it held
    limit = 10 * held + held // 2

    sidecar = await start_sidecar(merge(base, {
        "spend": {"ledger": ledgers[1]},
        "shadow": [{**base["shadow"][0], "budget_usd": limit / 1e9}]}))
    metered.gate = asyncio.Event()
    async with sdk_for(sidecar) as sdk:
        answers = await asyncio.gather(*(ask(sdk, extra_headers=NO_STORE) for _ in range(50)))
    assert answers == ["Hello from the fake upstream."] * 50
    shadow = runner(sidecar)
    await metered.arrived(11)  # admitted: held upstream; the others refused by the budget
    await shadow.wait_for(lambda: shadow.stats["r"].skipped["budget"] >= 39)
    budget = next(b for b in (await get_json(sidecar.url + "/sidecar/budgets"))["budgets"]
                  if b["name"] == "shadow:r")
    assert round((budget["spent_usd"] + budget["entries"][0]["reserved_usd"]) * 1e9) <= limit
    metered.gate.set()
    await shadow.settled(50)

    capped = (limit - 10 * held - bound * PROMPT_NANO) // COMPLETION_NANO
    assert sorted(body["max_tokens"] for body in metered.bodies) == [capped] + [reserve] * 10
    rule = await report(sidecar)
    assert rule["skipped"]["budget"] == 39 and rule["pairs"] == 11
    spent = 10 * held + bound * PROMPT_NANO + capped * COMPLETION_NANO
    assert round(rule["spent_usd"]["total"] * 1e9) == spent
    await flush(sidecar)
    by_tag = await get_json(sidecar.url + "/sidecar/usage?window=all&by=tag")
    tagged = next(row for row in by_tag["rows"] if row["key"] == "shadow:r")
    assert round(tagged["cost_usd"] * 1e9) == spent and tagged["requests"] == 11
    budget = next(b for b in (await get_json(sidecar.url + "/sidecar/budgets"))["budgets"]
                  if b["name"] == "shadow:r")
    assert round(budget["spent_usd"] * 1e9) == spent
    assert max(0, spent - limit) == 0


async def test_the_report_equals_the_ledger_and_the_budget_is_rebuilt_at_start(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams, tmp_path: Path) -> None:
    """What /sidecar/shadow says the rule spent (candidates and judge) equals the ledger's rows
    tagged shadow:r; the judge's score is kept per pair; the primaries' rows are not tagged;
    a new sidecar on the same ledger starts the rule's budget where it was, and the client
    budgets (global, by model) where they were: without the rule's spend."""
    primary, candidate = await two(upstreams)
    candidate.script("/chat/completions",
                     *[s for _ in range(4) for s in (Script(json=chat_answer(CANDIDATE, "Hi")),
                                                     Script(json=chat_answer(JUDGE, "0.75")))])
    settings = merge(config(primary, candidate, judge={"model": JUDGE}), {"spend": {"budgets": [
        {"name": "all", "window": "total", "limit_usd": 100},
        {"name": "per-model", "scope": "model", "window": "total", "limit_usd": 100}]}})
    sidecar = await start_sidecar(settings)
    async with sdk_for(sidecar) as sdk:
        for _ in range(4):
            await ask(sdk, extra_headers=NO_STORE)
    await runner(sidecar).settled(4)
    rule = await report(sidecar)
    assert rule["pairs"] == 4 and rule["agreement"]["judged"] == 4
    assert rule["agreement"]["judge_mean"] == 0.75 and rule["recent"][0]["judge"] == 0.75
    judge_body = orjson.loads(candidate.requests[1].body)
    assert judge_body["model"] == JUDGE and "Hello from the fake upstream." in judge_body[
        "messages"][1]["content"]
    await flush(sidecar)
    ledger = rows(sidecar.settings.state_dir / "ledger.db")
    tagged = [row for row in ledger if row["tags"] == "shadow:r"]
    assert len(tagged) == 8 and {row["model"] for row in tagged} == {CANDIDATE, JUDGE}
    assert all(row["key_name"] is None and row["user_name"] is None for row in tagged)
    assert sum(row["cost_nusd"] for row in tagged) == round(rule["spent_usd"]["total"] * 1e9)
    assert sum(row["cost_nusd"] for row in tagged if row["model"] == JUDGE) == round(
        rule["spent_usd"]["judge"] * 1e9)
    assert [row["tags"] for row in ledger if row["model"] == PRIMARY] == [""] * 4

    before = {b["name"]: b for b in (await get_json(sidecar.url + "/sidecar/budgets"))[
        "budgets"]}
    primaries = sum(row["cost_nusd"] for row in ledger if row["model"] == PRIMARY)
    assert round(before["all"]["spent_usd"] * 1e9) == primaries

    restarted = await start_sidecar(settings)
    after = {b["name"]: b for b in (await get_json(restarted.url + "/sidecar/budgets"))[
        "budgets"]}
    assert round(after["shadow:r"]["spent_usd"] * 1e9) == round(
        rule["spent_usd"]["total"] * 1e9)
    assert after["shadow:r"]["scope"] == "tag" and after["shadow:r"]["window"] == "total"
    assert round(after["all"]["spent_usd"] * 1e9) == primaries
    spent_by_model = {e["value"]: round(e["spent_usd"] * 1e9)
                      for e in after["per-model"]["entries"]}
    assert spent_by_model.get(CANDIDATE, 0) == spent_by_model.get(JUDGE, 0) == 0
    assert spent_by_model[PRIMARY] == primaries


async def test_ten_percent_samples_about_a_tenth(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """percent 10 over 200 requests, drawn from the routing clock's seeded random source:
    between 8 and 36 sampled (the binomial's mean 20, four standard deviations either side),
    and exactly the sampled ones reach the candidate."""
    primary, candidate = await two(upstreams)
    sidecar = await start_sidecar(config(primary, candidate, percent=10, max_in_flight=200),
                                  clock=FakeClock(seed=19))
    async with sdk_for(sidecar) as sdk:
        for start in range(0, 200, 20):
            await asyncio.gather(*(ask(sdk, extra_headers=NO_STORE)
                                   for _ in range(start, start + 20)))
    shadow = runner(sidecar)
    sampled = shadow.stats["r"].sampled
    await shadow.settled(sampled)
    rule = await report(sidecar)
    assert rule["matched"] == 200
    assert 8 <= sampled <= 36
    assert len(candidate.requests) == rule["pairs"] == sampled


async def test_the_candidate_sees_the_redacted_text(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """With redaction on, the copy is of the body as the primary's upstream got it: the
    candidate's provider sees the placeholder, never the address."""
    primary, candidate = await two(upstreams)
    sidecar = await start_sidecar(merge(config(primary, candidate),
                                        {"privacy": {"redact": {"mode": "mask"}}}))
    async with sdk_for(sidecar) as sdk:
        await sdk.chat.completions.create(model=PRIMARY, messages=[
            {"role": "user", "content": "write to jane.doe@example.com"}])
    await runner(sidecar).settled(1)
    assert b"jane.doe@example.com" not in primary.last.body
    assert b"jane.doe@example.com" not in candidate.last.body
    assert orjson.loads(candidate.last.body)["messages"] == orjson.loads(
        primary.last.body)["messages"]


async def test_no_copy_of_an_error_a_refusal_or_a_cache_hit(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """An upstream error (500), a request its budget refuses (402) and a cache hit are not
    copied (counted as not eligible, and cache_hit); the candidate's provider sees nothing."""
    primary, candidate = await two(upstreams)
    primary.script("/chat/completions", Script(status=500, json={"error": {"message": "x"}}))
    sidecar = await start_sidecar(merge(config(primary, candidate), {"spend": {"budgets": [
        {"name": "tight", "scope": "user", "match": ["broke"], "limit_usd": 1e-9}]}}))
    async with sdk_for(sidecar) as sdk:
        with pytest.raises(openai.InternalServerError):
            await ask(sdk)
        with pytest.raises(openai.APIStatusError) as refused:
            await ask(sdk, user="broke")
        assert refused.value.status_code == 402
        await ask(sdk)  # stored
        await ask(sdk)  # a hit
    await runner(sidecar).settled(4)
    rule = await report(sidecar)
    assert rule["not_eligible"] == 2 and rule["skipped"]["cache_hit"] == 1
    assert rule["launched"] == 1 and len(candidate.requests) == 1


async def test_on_cache_hit_copies_hits_and_the_copy_never_touches_the_cache(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """With on_cache_hit, a hit is copied too (its primary cost is what the hit saved); the
    copies never read nor fill the primary's cache entry (the primary is still a hit, and the
    candidate is asked each time)."""
    primary, candidate = await two(upstreams)
    sidecar = await start_sidecar(config(primary, candidate, on_cache_hit=True))
    async with sdk_for(sidecar) as sdk:
        for _ in range(3):
            await ask(sdk)
    await runner(sidecar).settled(3)
    assert len(primary.requests) == 1 and len(candidate.requests) == 3
    rule = await report(sidecar)
    assert rule["pairs"] == 3
    assert all(p["primary"]["cost_usd"] == pytest.approx((7 * PROMPT_NANO + 6 * COMPLETION_NANO)
                                                         / 1e9) for p in rule["recent"])


async def test_a_cancelled_request_is_not_copied(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """A client that leaves before its answer: the primary ends client_disconnected (once its
    answer's background read, spend.cancelled_read_s, short here, is over) and no copy is
    made."""
    primary, candidate = await two(upstreams)
    primary.script("/chat/completions", Script(hold=asyncio.Event()))
    sidecar = await start_sidecar(merge(config(primary, candidate),
                                        {"spend": {"cancelled_read_s": 0.2}}))
    http = aiohttp.ClientSession()
    task = asyncio.ensure_future(http.post(sidecar.v1 + "/chat/completions",
                                           json={"model": PRIMARY, "messages": MESSAGES}))
    await primary.arrived(1)
    task.cancel()
    await http.close()
    await runner(sidecar).settled(1)
    rule = await report(sidecar)
    assert rule["not_eligible"] == 1 and rule["launched"] == 0
    assert candidate.requests == []


async def test_client_shadow_tags_are_dropped_and_the_report_is_an_admin_route(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """A client's `x-sidecar-tags: shadow:r` is dropped (it cannot spend from the rule's
    budget, nor hide among its rows); /sidecar/shadow needs the admin token when one is set."""
    primary, candidate = await two(upstreams)
    sidecar = await start_sidecar(merge(config(primary, candidate, percent=0),
                                        {"admin": {"token": "adm"}}))
    async with sdk_for(sidecar) as sdk:
        await ask(sdk, extra_headers={"x-sidecar-tags": "shadow:r, mine"})
    await flush(sidecar)
    (row,) = rows(sidecar.settings.state_dir / "ledger.db")
    assert row["tags"] == "mine"
    async with aiohttp.ClientSession() as http:
        async with http.get(sidecar.url + "/sidecar/shadow") as response:
            assert response.status == 401
        async with http.get(sidecar.url + "/sidecar/shadow",
                            headers={"Authorization": "Bearer adm"}) as response:
            assert response.status == 200
            (rule,) = (await response.json())["rules"]
    assert rule["matched"] == 1 and rule["sampled"] == 0 and candidate.requests == []


async def test_a_client_compare_tag_is_dropped_and_its_request_is_shadowed(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """`compare` is the sidecar's own tag (a compare's model calls are never shadowed): a
    client's `x-sidecar-tags: compare` is dropped, so its request is copied like any other."""
    primary, candidate = await two(upstreams)
    sidecar = await start_sidecar(config(primary, candidate, percent=100))
    async with sdk_for(sidecar) as sdk:
        await ask(sdk, extra_headers={"x-sidecar-tags": "compare, mine"})
    await runner(sidecar).settled(1)
    await flush(sidecar)
    primary_row = next(r for r in rows(sidecar.settings.state_dir / "ledger.db")
                       if "shadow:" not in (r["tags"] or ""))
    assert primary_row["tags"] == "mine" and len(candidate.requests) == 1


async def test_rules_follow_a_live_reload(reloadable: Start,  # noqa: F811
                                          upstream: FakeUpstream) -> None:
    """A reload that adds the first rule starts copying (and lists its budget); one that
    changes it keeps its figures and applies the new percent and budget; one that removes it
    takes the stage out and the rule out of the report."""
    base = {"spend": {"fetch_prices": False, "prices": {"m/*": {"prompt": 1e-6,
                                                                 "completion": 2e-6}}}}
    rule = {"name": "r", "match": {"model": PRIMARY}, "candidate": CANDIDATE, "percent": 100,
            "budget_usd": 1.0}
    sidecar = await reloadable(base)
    assert sidecar.app[DEPS].shadow is None
    base = yaml.safe_load(sidecar.path.read_text())  # with the upstream and state_dir

    async def primary() -> None:
        async with openai.AsyncOpenAI(base_url=sidecar.url + "/v1", api_key="k",
                                      max_retries=0) as sdk:
            await ask(sdk, extra_headers=NO_STORE)

    sidecar.write({**base, "shadow": [rule]})
    assert (await sidecar.reload())[0] == 200
    assert "shadow" in (await sidecar.view())["stages"]
    await primary()
    shadow = sidecar.app[DEPS].shadow
    assert shadow is not None
    await shadow.settled(1)
    assert [orjson.loads(r.body)["model"] for r in upstream.requests] == [PRIMARY, CANDIDATE]

    sidecar.write({**base, "shadow": [{**rule, "percent": 0, "budget_usd": 2.0}]})
    assert (await sidecar.reload())[0] == 200
    await primary()
    async with aiohttp.ClientSession() as http:
        async with http.get(sidecar.url + "/sidecar/shadow") as response:
            (report_,) = (await response.json())["rules"]
        async with http.get(sidecar.url + "/sidecar/budgets") as response:
            budgets = {b["name"]: b for b in (await response.json())["budgets"]}
    assert report_["pairs"] == 1 and report_["matched"] == 2 and report_["percent"] == 0
    assert budgets["shadow:r"]["limit_usd"] == 2.0
    assert round(budgets["shadow:r"]["spent_usd"] * 1e9) == round(
        report_["spent_usd"]["total"] * 1e9) > 0
    assert len(upstream.requests) == 3  # the second primary alone

    sidecar.write(base)
    assert (await sidecar.reload())[0] == 200
    assert "shadow" not in (await sidecar.view())["stages"]
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.url + "/sidecar/shadow") as response:
        assert (await response.json())["rules"] == []


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_anthropic_format_requests_are_copied_too(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams, stream: bool) -> None:
    """A /v1/messages primary (Anthropic's format, translated for OpenAI-format providers) is
    copied as a Messages request to the candidate, and the pair compares the two answers'
    text."""
    primary, candidate = await two(upstreams)
    sidecar = await start_sidecar(config(primary, candidate))
    body = {"model": PRIMARY, "max_tokens": 20, "stream": stream, "messages": MESSAGES}
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.v1 + "/messages", json=body, headers=NO_STORE) as response:
        assert response.status == 200
        await response.read()
    await runner(sidecar).settled(1)
    assert orjson.loads(candidate.last.body)["model"] == CANDIDATE
    rule = await report(sidecar)
    assert rule["pairs"] == 1 and rule["candidate"]["errors"] == 0
    (pair,) = rule["recent"]
    assert pair["exact"] is (not stream)  # the fake streams another text than it answers
    assert pair["similarity"] is not None and pair["candidate"]["finish_reason"] is not None


async def test_a_shadow_rule_proves_the_auto_router_tier_by_tier(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """`candidate: sidecar/auto`: each copy is classified as live traffic would be, the
    candidate provider sees the tier's model, the copy's ledger row carries the rule's tag and
    its tier, and the report splits pairs, costs and agreement by tier."""
    primary, candidate = await upstreams(2)
    router = "sidecar/auto"
    tiers = {"simple": ["t/small"], "complex": ["t/big"]}
    sidecar = await start_sidecar({
        "providers": [provider("prim", primary, PRIMARY), provider("cand", candidate, "t/*")],
        "retry": {"attempts": 1},
        "auto": {"routers": {router: {"tiers": tiers}}},
        "spend": {"prices": {"m/*": {"prompt": PROMPT_NANO / 1e9,
                                     "completion": COMPLETION_NANO / 1e9},
                             "t/small": {"prompt": 1e-8, "completion": 2e-8},
                             "t/big": {"prompt": 2.5e-6, "completion": 1e-5}}},
        "shadow": [{"name": "auto", "match": {"model": "m/prim*"}, "candidate": router,
                    "percent": 100, "budget_usd": 1.0}]})
    async with sdk_for(sidecar) as sdk:
        await sdk.chat.completions.create(model=PRIMARY, messages=[
            {"role": "user", "content": "hi there!"}], extra_headers=NO_STORE)
        await sdk.chat.completions.create(
            model=PRIMARY, extra_headers=NO_STORE, messages=[
                {"role": "user", "content": "Find the order."},
                {"role": "assistant", "content": None, "tool_calls": [{
                    "id": "c1", "type": "function",
                    "function": {"name": "search", "arguments": "{\"q\": \"1182\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "Order 1182: packed."}],
            tools=[{"type": "function", "function": {"name": "search",
                                                     "parameters": {"type": "object"}}}])
    await runner(sidecar).settled(2)
    assert sorted(orjson.loads(r.body)["model"] for r in candidate.requests) == [
        "t/big", "t/small"]
    rule = await report(sidecar)
    assert rule["pairs"] == 2 and set(rule["by_tier"]) == {"simple", "complex"}
    assert all(tier["pairs"] == 1 for tier in rule["by_tier"].values())
    await flush(sidecar)
    copies = [row for row in rows(sidecar.settings.state_dir / "ledger.db")
              if row["tags"] == "shadow:auto"]
    assert sorted(row["auto_tier"] for row in copies) == ["complex", "simple"]
