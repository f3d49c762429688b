"""POST /sidecar/compare end to end: the real app on a real socket, three fake providers (one per
model, so each is steered and gated on its own), the default features on (memory cache, spend
with the SQLite ledger, the inspector) and, where it says so, every feature on (local keys,
pseudonymising redaction, Prometheus).

Concurrency is proven with gates, never with time: every model's upstream request is in flight
at once before any is answered; a streamed compare relays model A's chunk, then B's, then A's
again, each only after the test saw the one before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from sidecar.deps import DEPS
from tests.conftest import RunningSidecar, StartSidecar, merge
from tests.e2e.routing_helpers import MakeUpstreams, provider
from tests.e2e.test_reload import Start, reloadable  # noqa: F401  (the fixture)
from tests.fakes.metered import Metered
from tests.fakes.spend import flush, get_json, rows
from tests.fakes.upstream import FakeUpstream, Script, chat_answer, chat_chunks

MODELS = ["m/cheap", "m/mid", "m/dear"]
PRICES = {"m/cheap": (1e-6, 2e-6), "m/mid": (3e-6, 4e-6), "m/dear": (10e-6, 30e-6)}
KEY = "tok-compare"
REQUEST = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 50}
EVERYTHING: dict[str, Any] = {
    "auth": {"required": True, "keys": [{"name": "team", "token": KEY, "tags": ["key-tag"]}]},
    "privacy": {"redact": {"mode": "pseudonymize"}},
    "telemetry": {"prometheus": True},
}


async def three(start_sidecar: StartSidecar, upstreams: MakeUpstreams,
                extra: dict[str, Any] | None = None
                ) -> tuple[RunningSidecar, list[FakeUpstream]]:
    """A sidecar with one fake provider per model, each model priced."""
    fakes = await upstreams(3)
    config = {"providers": [provider(f"p{i}", fake, model)
                            for i, (fake, model) in enumerate(zip(fakes, MODELS, strict=True))],
              "retry": {"attempts": 1},
              "spend": {"prices": {m: {"prompt": p, "completion": c}
                                   for m, (p, c) in PRICES.items()}}}
    return await start_sidecar(merge(config, extra or {})), fakes


def auth(config: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"} if config.get("auth") else {}


async def compare(sidecar: RunningSidecar, body: Any, headers: dict[str, str] | None = None,
                  url: str | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(
            (url or sidecar.url) + "/sidecar/compare", data=orjson.dumps(body),
            headers={"Content-Type": "application/json", **(headers or {})}) as response:
        return response.status, orjson.loads(await response.read())


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """(event name, data) of a server-sent event stream, as each event arrives."""
    name, data = "message", b""
    async for line in response.content:
        line = line.rstrip(b"\r\n")
        if line.startswith(b"event: "):
            name = line[7:].decode()
        elif line.startswith(b"data: "):
            data = line[6:]
        elif not line and data:
            yield name, (data.decode() if data == b"[DONE]" else orjson.loads(data))
            name, data = "message", b""


@pytest.mark.parametrize("features", ["defaults", "everything"])
async def test_three_models_one_failing_answer_in_order_concurrently_with_exact_costs(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams, features: str) -> None:
    """Three models compared at once: all three upstream requests are in flight before any is
    answered (so the total time is the slowest model's, not the sum); the results come in the
    order asked; the failing model fails alone with an OpenAI-shaped error; each cost is the
    answer's tokens times its model's prices; the summary ranks the successes by cost and by
    latency."""
    extra = EVERYTHING if features == "everything" else {}
    sidecar, fakes = await three(start_sidecar, upstreams, extra)
    gate = asyncio.Event()
    fakes[0].script("/chat/completions", Script(json=chat_answer("m/cheap", "Hello."), hold=gate))
    fakes[1].script("/chat/completions", Script(json=chat_answer("m/mid", "Hi there."),
                                                hold=gate))
    fakes[2].script("/chat/completions", Script(status=500, json={"error": {
        "message": "dear is down", "type": "server_error", "code": "boom"}}, hold=gate))
    task = asyncio.ensure_future(compare(sidecar, {"models": MODELS, "request": REQUEST},
                                         auth(extra)))
    await asyncio.gather(*(fake.arrived(1) for fake in fakes))
    assert not task.done()  # three requests upstream at once, none answered yet
    gate.set()
    status, answer = await task

    assert status == 200
    results = answer["results"]
    assert [r["model"] for r in results] == MODELS and [r["index"] for r in results] == [0, 1, 2]
    cheap, mid, dear = results
    assert cheap["status"] == mid["status"] == 200 and dear["status"] == 500
    assert cheap["content"] == "Hello." and mid["content"] == "Hi there."
    assert cheap["response"]["choices"][0]["message"]["content"] == "Hello."
    assert cheap["finish_reason"] == "stop" and cheap["error"] is None
    assert cheap["provider"] == "p0" and mid["provider"] == "p1"
    assert dear["error"]["message"] == "dear is down" and dear["response"] is None
    for result in (cheap, mid):
        prompt, completion = PRICES[result["model"]]
        assert result["usage"]["prompt_tokens"] == 7
        assert result["usage"]["completion_tokens"] == 6
        assert round(result["cost_usd"] * 1e9) == round((7 * prompt + 6 * completion) * 1e9)
        assert result["latency_ms"] > 0 and result["ttft_ms"] is None
        assert result["cache"] == "MISS"
    summary = answer["summary"]
    assert [r["model"] for r in summary["by_cost"]] == ["m/cheap", "m/mid"]
    assert {r["model"] for r in summary["by_latency"]} == {"m/cheap", "m/mid"}
    assert summary["failed"] == [2] and summary["succeeded"] == 2
    assert summary["cheapest"] == "m/cheap"
    assert summary["wall_ms"] >= summary["slowest_ms"]
    # each model was asked with the request as written, its own model name in it
    for fake, model in zip(fakes, MODELS, strict=True):
        sent = orjson.loads(fake.last.body)
        assert sent["model"] == model and sent["messages"] == REQUEST["messages"]


async def test_each_model_call_is_a_ledger_row_tagged_compare_and_the_callers_tags(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """Every model call is its own request: one ledger row each (its own request id, its
    model, its cost), tagged `compare` and the caller's tags, so usage by tag shows what
    comparing cost; a client's `shadow:` tag is dropped."""
    sidecar, _ = await three(start_sidecar, upstreams)
    status, answer = await compare(sidecar, {"models": MODELS[:2], "request": REQUEST},
                                   {"x-sidecar-tags": "eval, shadow:steal"})
    assert status == 200
    await flush(sidecar)
    ledger = rows(sidecar.settings.state_dir / "ledger.db")
    assert sorted(row["model"] for row in ledger) == sorted(MODELS[:2])
    assert {row["tags"] for row in ledger} == {"compare,eval"}
    assert {row["request_id"] for row in ledger} == {r["request_id"] for r in answer["results"]}
    by_tag = await get_json(sidecar.url + "/sidecar/usage?window=day&by=tag")
    compared = next(row for row in by_tag["rows"] if row["key"] == "compare")
    assert compared["requests"] == 2
    assert compared["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in answer["results"]))


async def test_a_tiny_blocking_budget_refuses_the_model_it_cannot_pay_alone(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """A blocking budget applies to each model's call: the one it cannot pay gets 402
    budget_exceeded in its result and never reaches its provider; the others answer."""
    sidecar, fakes = await three(start_sidecar, upstreams, {"spend": {"budgets": [
        {"name": "dear-cap", "scope": "model", "match": ["m/dear"], "limit_usd": 1e-9}]}})
    status, answer = await compare(sidecar, {"models": MODELS, "request": REQUEST})
    assert status == 200
    cheap, mid, dear = answer["results"]
    assert cheap["status"] == mid["status"] == 200
    assert dear["status"] == 402 and dear["error"]["code"] == "budget_exceeded"
    assert dear["error"]["metadata"]["budget"] == "dear-cap"
    assert fakes[2].requests == [] and len(fakes[0].requests) == 1


async def test_the_streamed_compare_interleaves_the_models_chunks_as_they_arrive(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """`stream: true`: each model's chunks are relayed the moment they arrive, tagged with the
    model's index: A's first chunk, then B's (released only once A's was seen), then A's
    second, then B's second; then one result per model (content folded from the stream, time
    to first token), the summary, and [DONE]."""
    sidecar, fakes = await three(start_sidecar, upstreams)
    b_first, a_second, b_second = asyncio.Event(), asyncio.Event(), asyncio.Event()
    fakes[0].script("/chat/completions", Script(
        sse=chat_chunks("m/cheap", ["A1", "A2"]), wait_before={1: a_second}))
    fakes[1].script("/chat/completions", Script(
        sse=chat_chunks("m/mid", ["B1", "B2"]), wait_before={0: b_first, 1: b_second}))
    releases = {"A1": b_first, "B1": a_second, "A2": b_second}
    seen: list[str] = []
    results: dict[int, Any] = {}
    tail: list[str] = []
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.url + "/sidecar/compare",
            json={"models": MODELS[:2], "request": REQUEST, "stream": True}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for name, data in events(response):
            if name == "chunk":
                assert data["model"] == MODELS[data["index"]]
                piece = data["chunk"]["choices"][0]["delta"].get("content") if data[
                    "chunk"]["choices"] else None
                if piece:
                    seen.append(piece)
                    if piece in releases:
                        releases[piece].set()
            elif name == "result":
                results[data["index"]] = data
            else:
                tail.append(name if name != "message" else data)
    assert seen == ["A1", "B1", "A2", "B2"]
    assert results[0]["content"] == "A1A2" and results[1]["content"] == "B1B2"
    assert results[0]["ttft_ms"] is not None and results[0]["finish_reason"] == "stop"
    assert results[0]["response"]["object"] == "chat.completion"
    assert tail == ["summary", "[DONE]"]
    for fake in fakes[:2]:
        assert orjson.loads(fake.last.body)["stream"] is True


async def test_the_deadline_gives_an_unfinished_model_a_timeout_result(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """At compare.timeout_s a model still running is cut: its result is 504 upstream_timeout;
    like any call whose client left, its answer is still read in the background to be billed
    (spend.cancelled_read_s, short here), then its upstream request is closed and its ledger
    row says client_disconnected."""
    sidecar, fakes = await three(start_sidecar, upstreams, {"compare": {"timeout_s": 0.2},
                                                             "spend": {"cancelled_read_s": 0.2}})
    fakes[0].script("/chat/completions", Script(hold=asyncio.Event()))  # never answers
    status, answer = await compare(sidecar, {"models": MODELS[:1], "request": REQUEST})
    assert status == 200
    (result,) = answer["results"]
    assert result["status"] == 504 and result["error"]["code"] == "upstream_timeout"
    await asyncio.wait_for(fakes[0].aborted.wait(), 10)
    await flush(sidecar)
    (row,) = rows(sidecar.settings.state_dir / "ledger.db")
    assert row["outcome"] == "client_disconnected"


async def test_a_compare_client_that_leaves_cuts_every_model_call(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """When the compare's client disconnects, each model call ends as client_disconnected: its
    answer is read in the background for spend.cancelled_read_s (short here) to be billed,
    then its upstream request is closed and its ledger row written."""
    sidecar, fakes = await three(start_sidecar, upstreams, {"spend": {"cancelled_read_s": 0.2}})
    for fake in fakes[:2]:
        fake.script("/chat/completions", Script(hold=asyncio.Event()))
    http = aiohttp.ClientSession()
    task = asyncio.ensure_future(http.post(sidecar.url + "/sidecar/compare",
                                           json={"models": MODELS[:2], "request": REQUEST}))
    await asyncio.gather(*(fake.arrived(1) for fake in fakes[:2]))
    task.cancel()
    await http.close()
    await asyncio.wait_for(asyncio.gather(*(f.aborted.wait() for f in fakes[:2])), 10)
    ledger = sidecar.app[DEPS].ledger
    assert ledger is not None
    while len(rows(sidecar.settings.state_dir / "ledger.db")) < 2:  # written by the finishers
        await ledger.flush()
        await asyncio.sleep(0.01)
    assert {row["outcome"] for row in rows(sidecar.settings.state_dir / "ledger.db")} == {
        "client_disconnected"}


@pytest.mark.parametrize(("body", "param"), [
    ({"models": "m/cheap", "request": REQUEST}, "models"),
    ({"models": [], "request": REQUEST}, "models"),
    ({"models": ["m/cheap"] * 9, "request": REQUEST}, "models"),
    ({"models": ["m/cheap", ""], "request": REQUEST}, "models[1]"),
    ({"models": ["m/cheap"], "request": "hello"}, "request"),
    ({"models": ["m/cheap"], "request": REQUEST, "endpoint": "images/generations"}, "endpoint"),
    ({"models": ["m/cheap"], "request": REQUEST, "endpoint": "messages/count_tokens"},
     "endpoint"),
    ({"models": ["m/cheap"], "request": REQUEST, "stream": "yes"}, "stream"),
    ({"models": ["m/cheap"], "request": REQUEST, "model": "x"}, "model"),
    ([1, 2], None),
], ids=["not-a-list", "empty", "too-many", "empty-name", "request-not-object",
        "unknown-endpoint", "free-endpoint", "stream-not-bool", "unknown-field",
        "not-an-object"])
async def test_bad_input_is_a_400_naming_the_field(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams, body: Any,
        param: str | None) -> None:
    """A compare body that is wrong gets an OpenAI-shaped 400 naming the field, and no model
    is called."""
    sidecar, fakes = await three(start_sidecar, upstreams)
    status, answer = await compare(sidecar, body)
    assert status == 400
    assert answer["error"]["code"] == "invalid_request" and answer["error"]["param"] == param
    assert all(fake.requests == [] for fake in fakes)


async def test_invalid_json_is_a_400(start_sidecar: StartSidecar) -> None:
    """A body that is not JSON gets 400 invalid_json."""
    sidecar = await start_sidecar()
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.url + "/sidecar/compare", data=b"{not json") as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_json"


async def test_a_local_key_is_needed_and_the_admin_token_alone_is_refused(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """With auth.required, a compare without a local key, or with the admin token instead, is
    a 401 before any model is called; with the key it runs, and each model call carries the
    key's name and tags."""
    sidecar, fakes = await three(start_sidecar, upstreams, {
        **EVERYTHING, "admin": {"token": "admin-secret"}})
    body = {"models": MODELS[:1], "request": REQUEST}
    for headers in ({}, {"Authorization": "Bearer admin-secret"},
                    {"Authorization": "Bearer wrong"}):
        status, answer = await compare(sidecar, body, headers)
        assert status == 401 and answer["error"]["code"] == "invalid_api_key"
    assert fakes[0].requests == []
    status, answer = await compare(sidecar, body, {"Authorization": f"Bearer {KEY}"})
    assert status == 200 and answer["results"][0]["status"] == 200
    await flush(sidecar)
    (row,) = rows(sidecar.settings.state_dir / "ledger.db")
    assert row["key_name"] == "team" and row["tags"] == "compare,key-tag"


async def test_on_the_admin_listener_it_needs_the_admin_token_and_a_local_key(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """On a separate admin listener (the inspector's Compare view) the route is behind the
    admin guard AND the local key rule: the admin token alone (the page's cookie) is 401, a
    local key without the admin token is 401, both together run the compare."""
    from tests.fakes.ports import free_port

    sidecar, fakes = await three(start_sidecar, upstreams, {
        **EVERYTHING, "admin": {"token": "admin-secret", "port": free_port()}})
    body = {"models": MODELS[:1], "request": REQUEST}
    cookie = {"Cookie": "llm_sidecar_admin=admin-secret"}
    for headers in (cookie, {"Authorization": f"Bearer {KEY}"}):
        status, _ = await compare(sidecar, body, headers, url=sidecar.admin_url)
        assert status == 401
    assert fakes[0].requests == []
    status, answer = await compare(sidecar, body, {**cookie, "Authorization": f"Bearer {KEY}"},
                                   url=sidecar.admin_url)
    assert status == 200 and answer["results"][0]["status"] == 200


async def test_cache_hits_unless_no_cache_and_redaction_applies_to_each_model(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """Each model call goes through the cache (a repeated compare is served from it) unless
    the compare says Cache-Control: no-cache; redaction applies to each model's body (the
    provider sees a placeholder, the result the restored text)."""
    sidecar, fakes = await three(start_sidecar, upstreams, {
        "privacy": {"redact": {"mode": "pseudonymize"}}})
    body = {"models": MODELS[:2], "request": {
        "messages": [{"role": "user", "content": "mail jane.doe@example.com"}]}}
    _, first = await compare(sidecar, body)
    _, second = await compare(sidecar, body)
    assert [r["cache"] for r in first["results"]] == ["MISS", "MISS"]
    assert [r["cache"] for r in second["results"]] == ["HIT", "HIT"]
    assert [r["cost_usd"] for r in second["results"]] == [0, 0]
    _, third = await compare(sidecar, body, {"Cache-Control": "no-cache"})
    assert [r["cache"] for r in third["results"]] == ["BYPASS", "BYPASS"]
    assert len(fakes[0].requests) == 2
    assert b"jane.doe@example.com" not in fakes[0].last.body


@pytest.mark.parametrize(("endpoint", "request_body", "stream", "content"), [
    ("completions", {"prompt": "Once", "max_tokens": 3}, False, "aaa"),
    ("completions", {"prompt": "Once", "max_tokens": 3}, True, "aaa"),
    ("responses", {"input": "hi", "max_output_tokens": 2}, False, "aa"),
    ("responses", {"input": "hi", "max_output_tokens": 2}, True, "aa"),
    ("embeddings", {"input": "vector me"}, False, None),
    ("embeddings", {"input": "vector me"}, True, None),
    ("messages", {"max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}, False,
     "aaa"),
    ("messages", {"max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}, True,
     "aaa"),
], ids=["completions", "completions-stream", "responses", "responses-stream", "embeddings",
        "embeddings-stream", "messages", "messages-stream"])
async def test_every_model_endpoint_can_be_compared(
        start_sidecar: StartSidecar, metered: Metered, endpoint: str,
        request_body: dict[str, Any], stream: bool, content: str | None) -> None:
    """The other model endpoints compare too, as JSON or streamed: each result has the
    provider's answer object (a stream folded into it), its text (none for embeddings), its
    usage and cost; embeddings, which cannot stream, answer whole inside a streamed compare."""
    sidecar = await start_sidecar({"upstream": {"url": metered.url}, "spend": {"prices": {
        "m/*": {"prompt": 1e-6, "completion": 2e-6}}}})
    body = {"models": ["m/one", "m/two"], "request": request_body, "endpoint": endpoint,
            "stream": stream}
    results: list[Any] = []
    async with aiohttp.ClientSession() as http, http.post(sidecar.url + "/sidecar/compare",
                                                          json=body) as response:
        assert response.status == 200
        if stream:
            results = [data async for name, data in events(response) if name == "result"]
            results.sort(key=lambda r: r["index"])
        else:
            results = (await response.json())["results"]
    assert [r["model"] for r in results] == ["m/one", "m/two"]
    for result in results:
        assert result["status"] == 200 and result["error"] is None
        assert result["content"] == content and result["response"] is not None
        assert result["usage"]["prompt_tokens"] == metered.prompt_tokens
        assert result["cost_usd"] > 0
        assert (result["ttft_ms"] is not None) is (stream and endpoint != "embeddings")
    sent = metered.bodies[-1]
    assert bool(sent.get("stream")) is (stream and endpoint != "embeddings")


async def test_a_streamed_request_in_a_json_compare_is_folded(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """`"stream": true` inside the request, not on the compare: each model streams to the
    sidecar (its time to first token measured), and its answer comes folded in the JSON."""
    sidecar, fakes = await three(start_sidecar, upstreams)
    status, answer = await compare(sidecar, {"models": MODELS[:1],
                                             "request": {**REQUEST, "stream": True}})
    assert status == 200
    (result,) = answer["results"]
    assert result["ttft_ms"] is not None and result["content"] == "Hello from fake."
    assert result["response"]["object"] == "chat.completion"
    assert orjson.loads(fakes[0].last.body)["stream"] is True


async def test_a_live_reload_applies_to_the_next_compare(
        reloadable: Start, upstream: FakeUpstream) -> None:  # noqa: F811
    """A reload's new local key opens the compare at once (and the removed one closes it),
    and its compare.max_models applies to the next compare."""
    keys = {"required": True, "keys": [{"name": "old", "token": "tok-old"}]}
    sidecar = await reloadable({"auth": keys})
    base = yaml.safe_load(sidecar.path.read_text())
    body = {"models": ["m/a", "m/b"], "request": REQUEST}
    status, _ = await compare(sidecar, body, {"Authorization": "Bearer tok-new"})
    assert status == 401
    sidecar.write({**base, "auth": {"required": True, "keys": [
        {"name": "new", "token": "tok-new"}]}, "compare": {"max_models": 1}})
    assert (await sidecar.reload())[0] == 200
    status, answer = await compare(sidecar, body, {"Authorization": "Bearer tok-new"})
    assert status == 400 and answer["error"]["param"] == "models"
    status, answer = await compare(sidecar, {**body, "models": ["m/a"]},
                                   {"Authorization": "Bearer tok-new"})
    assert status == 200 and answer["results"][0]["status"] == 200
    status, _ = await compare(sidecar, body, {"Authorization": "Bearer tok-old"})
    assert status == 401


@pytest.mark.parametrize("features", ["defaults", "everything"])
async def test_a_request_nested_too_deep_is_a_400_not_a_500(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams, features: str) -> None:
    """A request nested 300 deep (each model's body is written back as JSON, which stops at
    254 levels) is refused 400 invalid_request as /v1 refuses it (sidecar/failures.py), before
    any model is called; it was aiohttp's bare 500."""
    extra = EVERYTHING if features == "everything" else {}
    sidecar, fakes = await three(start_sidecar, upstreams, extra)
    deep = "[" * 300 + "]" * 300
    raw = ('{"models": ["m/cheap"], "request": {"messages": [{"role": "user", "content": '
           f'"hi", "extra": {deep}}}]}}}}').encode()
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.url + "/sidecar/compare", data=raw,
            headers={"Content-Type": "application/json", **auth(extra)}) as response:
        status, text = response.status, await response.read()
    assert status == 400, text
    assert orjson.loads(text)["error"]["code"] == "invalid_request"
    assert fakes[0].requests == []
