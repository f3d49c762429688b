"""The auto router end to end, with the openai SDK and fake upstreams: each tier reaches its
model and says so, a session's tier never goes down until its pin expires, a prompt too long
for a model's window goes up, streams name the real model, delegation to OpenRouter, and the
requests a router cannot take. The main suites run bare, with the defaults on and with every
feature on."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from sidecar.deps import DEPS
from tests.conftest import RunningSidecar, StartSidecar
from tests.fakes.auto import ASKS, PRICES, ROUTER, TIERS, VARIANTS, ask, auto_config, sdk
from tests.fakes.clock import FakeClock
from tests.fakes.proxy import FakeProxy
from tests.fakes.spend import flush, rows
from tests.fakes.upstream import FakeUpstream, Script, chat_answer

variants = pytest.mark.parametrize("variant", list(VARIANTS))


async def model_line(sidecar: RunningSidecar, capsys: pytest.CaptureFixture[str]
                     ) -> dict[str, Any]:
    """The access line of the model request served last (stdout; written in batches, and by
    the handler's last finisher, after the answer went out: yield to it until it is there)."""
    for _ in range(1_000):
        sidecar.app[DEPS].access.flush()
        lines = [orjson.loads(t) for t in capsys.readouterr().out.splitlines()
                 if t.startswith('{"request_id"') and '"endpoint"' in t]
        if lines:
            return lines[-1]
        await asyncio.sleep(0)
    raise AssertionError("no access line was written")


def sent_model(upstream: FakeUpstream, index: int = -1) -> str:
    model: str = orjson.loads(upstream.requests[index].body)["model"]
    return model


@variants
@pytest.mark.parametrize("tier", list(TIERS))
async def test_each_tier_reaches_its_model(start_sidecar: StartSidecar, upstream: FakeUpstream,
                                           capsys: pytest.CaptureFixture[str], variant: str,
                                           tier: str) -> None:
    """The upstream is asked for the tier's model; the answer names that model (never
    sidecar/auto), the headers name the tier and why, and so does the access line."""
    sidecar = await start_sidecar(auto_config(variant, upstream.url))
    async with sdk(sidecar) as client:
        raw = await ask(client, tier)
    answer = raw.parse()
    assert sent_model(upstream) == TIERS[tier][0] == answer.model
    assert raw.headers["x-sidecar-auto-tier"] == tier
    assert raw.headers["x-sidecar-auto-reason"]
    assert len(upstream.requests) == 1
    line = await model_line(sidecar, capsys)
    assert (line["model"], line["auto_tier"], line["auto_model"]) == (ROUTER, tier,
                                                                     TIERS[tier][0])


@variants
async def test_a_stream_names_the_real_model_and_its_tier(
        start_sidecar: StartSidecar, upstream: FakeUpstream, variant: str) -> None:
    """Streamed: every chunk's model is the tier's model; the tier is in the headers."""
    sidecar = await start_sidecar(auto_config(variant, upstream.url))
    async with sdk(sidecar) as client:
        async with client.chat.completions.with_streaming_response.create(
                model=ROUTER, messages=ASKS["reasoning"]["messages"], stream=True) as response:
            assert response.headers["x-sidecar-auto-tier"] == "reasoning"
            models = {chunk.model async for chunk in await response.parse()}
    assert models == {"test/think"}


@variants
@pytest.mark.parametrize("via", ["body", "header"])
async def test_a_session_never_goes_down_until_its_pin_expires(
        start_sidecar: StartSidecar, upstream: FakeUpstream, variant: str, via: str) -> None:
    """After a complex request, the session's simple requests are served complex (the reason
    says pinned); another session is not; once idle past session_idle_s, the pin is gone."""
    clock = FakeClock()
    sidecar = await start_sidecar(auto_config(variant, upstream.url, session_idle_s=600),
                                  clock=clock)

    async def served(session: str, text: str | None = None) -> tuple[str, str]:
        """A simple request with `text`, or the complex one, in `session`."""
        body: dict[str, Any] = dict(ASKS["complex"] if text is None else {
            "messages": [{"role": "user", "content": text}]})
        headers = {"x-session-id": session} if via == "header" else {}
        if via == "body":
            body["session_id"] = session
        async with sdk(sidecar, **headers) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model=ROUTER, messages=body.pop("messages"),
                tools=body.pop("tools", openai.NOT_GIVEN), extra_body=body or None)
        return sent_model(upstream), raw.headers["x-sidecar-auto-reason"]

    assert (await served("s1"))[0] == "test/big"
    model, reason = await served("s1", "thanks!")
    assert (model, reason.split(",")[0]) == ("test/big", "pinned=complex")
    assert (await served("s2", "hello!"))[0] == "test/small"
    clock.advance(599)
    assert (await served("s1", "and now?"))[0] == "test/big"  # and the pin is refreshed
    clock.advance(599)
    assert (await served("s1", "still here?"))[0] == "test/big"
    clock.advance(601)
    assert (await served("s1", "back again"))[0] == "test/small"


async def test_a_prompt_over_a_models_window_goes_to_the_smallest_tier_that_holds_it(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """Windows from the upstream's /models: a short prompt stays simple; one over the simple
    model's window goes to medium, one over medium's to complex, and the reason says so."""
    upstream.script("/models", Script(json={"data": [
        {"id": m, "context_length": window, "pricing": {"prompt": "0.0000001",
                                                        "completion": "0.0000002"}}
        for m, window in (("test/small", 200), ("test/mid", 1_000), ("test/big", 100_000),
                          ("test/think", 100_000))]}))
    sidecar = await start_sidecar({"auto": {"routers": {ROUTER: {"tiers": TIERS}}},
                                   "spend": {"fetch_prices": True}})
    filler = "The quiet river flows past the old mill. "
    served = []
    async with sdk(sidecar) as client:
        for repeat in (1, 50, 120):  # about 12, 600 and 1,440 estimated tokens
            raw = await client.chat.completions.with_raw_response.create(
                model=ROUTER, messages=[{"role": "user", "content": filler * repeat}])
            served.append((sent_model(upstream), raw.headers["x-sidecar-auto-reason"]))
    assert [model for model, _ in served] == ["test/small", "test/mid", "test/big"]
    assert served[1][1].startswith("context~") and ">simple" in served[1][1]
    assert served[2][1].startswith("context~1k>simple")


@pytest.mark.parametrize(("text", "served"), [
    ("Weather in Oslo?", ["test/small", "test/mid", "test/mid"]),
    ("Describe the weather in Oslo.", ["test/mid", "test/mid", "test/big"]),
], ids=["score_2", "score_3"])
async def test_prefer_moves_the_same_request(start_sidecar: StartSidecar,
                                             upstream: FakeUpstream, text: str,
                                             served: list[str]) -> None:
    """The same request (tools offered, with or without a writing verb) climbs as prefer goes
    from cheap to balanced to quality: the upstream sees each tier's model."""
    for prefer in ("cheap", "balanced", "quality"):
        sidecar = await start_sidecar(auto_config("bare", prefer=prefer))
        async with sdk(sidecar) as client:
            await client.chat.completions.create(
                model=ROUTER, messages=[{"role": "user", "content": text}],
                tools=ASKS["complex"]["tools"])
    assert [sent_model(upstream, i) for i in range(3)] == served


@pytest.mark.parametrize(("endpoint", "body", "tier"), [
    ("completions", {"prompt": "Q: Prove that the sum of two odd integers is even.\nA:"},
     "reasoning"),
    ("responses", {"input": "Say hello in Japanese."}, "simple"),
    ("responses", {"input": [{"role": "user", "content": "Summarize the failing tests."},
                             {"type": "function_call_output", "call_id": "a", "output": "ok"}],
                   "tools": [{"type": "function", "name": "run_tests"}]}, "complex"),
], ids=["completions", "responses", "responses_agent"])
async def test_other_endpoints_are_read_in_their_own_shape(
        start_sidecar: StartSidecar, upstream: FakeUpstream, endpoint: str,
        body: dict[str, Any], tier: str) -> None:
    """Completions and the Responses API go through the same router: the upstream is asked
    for the tier's model on the same endpoint, with the rest of the body as sent."""
    sidecar = await start_sidecar(auto_config("defaults"))
    async with aiohttp.ClientSession() as http, http.post(
            f"{sidecar.v1}/{endpoint}", json={"model": ROUTER, **body}) as response:
        assert response.status == 200
        assert response.headers["x-sidecar-auto-tier"] == tier
    sent = orjson.loads(upstream.last.body)
    assert upstream.last.path == f"/{endpoint}"
    assert sent == {**body, "model": TIERS[tier][0]}


async def test_other_models_pass_untouched(start_sidecar: StartSidecar,
                                           upstream: FakeUpstream) -> None:
    """A request naming a model goes as sent: no tier header, the client's exact bytes."""
    sidecar = await start_sidecar(auto_config("bare"))
    async with sdk(sidecar) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="test/mid", messages=[{"role": "user", "content": "hi"}])
    assert "x-sidecar-auto-tier" not in raw.headers
    assert upstream.last.body == raw.http_request.content


async def test_the_stage_sits_between_privacy_and_fallback(start_sidecar: StartSidecar) -> None:
    """/sidecar/config lists auto after privacy and before fallback, which it feeds."""
    sidecar = await start_sidecar(merge_privacy(auto_config("defaults")))
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.url + "/sidecar/config") as response:
        stages = (await response.json())["stages"]
    assert stages.index("privacy") + 1 == stages.index("auto") == stages.index("fallback") - 1


def merge_privacy(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "privacy": {"redact": {"mode": "mask"}}}


async def test_an_endpoint_a_tier_cannot_serve_is_refused_by_name(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """Embeddings to sidecar/auto: 400 naming the model and the endpoints it routes."""
    sidecar = await start_sidecar(auto_config("bare"))
    async with sdk(sidecar) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.embeddings.create(model=ROUTER, input="hi")
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == "model"
    assert "automatic router" in error["message"] and "/v1/embeddings" in error["message"]
    assert upstream.requests == []


async def test_a_keys_allowed_models_still_apply_to_the_tiers(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """A local key may name the router; the tier's models are checked against its
    allowed_models: a key allowed only test/small gets simple answers and a 403 for more."""
    sidecar = await start_sidecar({**auto_config("bare"), "auth": {"required": True, "keys": [
        {"name": "small-only", "token": "tok-s", "allowed_models": ["test/small"]}]}})
    client = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="tok-s", max_retries=0)
    try:
        assert (await ask(client, "simple")).parse().model == "test/small"
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await ask(client, "complex")
    finally:
        await client.close()
    assert "test/big" in str(caught.value)
    assert [sent_model(upstream, i) for i in range(len(upstream.requests))] == ["test/small"]


async def test_delegate_sends_openrouter_auto_and_records_the_model_that_ran(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """delegate: openrouter sends openrouter/auto with the auto-router plugin limited to the
    router's models (the client's other plugins kept); the answer's model is the one recorded,
    priced as that model, in its tier."""
    port = int(upstream.url.rsplit(":", 1)[1])
    proxy = FakeProxy({"openrouter.ai": ("127.0.0.1", port)})
    await proxy.start()
    upstream.script("/api/v1/chat/completions", Script(json=chat_answer("test/mid")))
    try:
        sidecar = await start_sidecar({
            **auto_config("defaults", delegate="openrouter", prefer="quality"),
            "providers": [{"name": "openrouter", "base_url": "http://openrouter.ai/api/v1",
                           "proxy": proxy.url}]})
        async with sdk(sidecar) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model=ROUTER, messages=[{"role": "user", "content": "hi"}],
                extra_body={"plugins": [{"id": "web"}, {"id": "auto-router", "x": 1}]})
        await flush(sidecar)
    finally:
        await proxy.close()
    sent = orjson.loads(upstream.last.body)
    assert sent["model"] == "openrouter/auto"
    assert sent["plugins"] == [{"id": "web"}, {
        "id": "auto-router", "allowed_models": ["test/small", "test/mid", "test/big",
                                                "test/think"],
        "cost_quality_tradeoff": 0}]
    assert raw.parse().model == "test/mid"
    assert raw.headers["x-sidecar-auto-tier"] == "medium"
    assert raw.headers["x-sidecar-auto-reason"] == "delegate=openrouter"
    [row] = rows(sidecar.settings.state_dir / "ledger.db")
    prompt, completion = (PRICES["test/mid"][k] * 1e9 for k in ("prompt", "completion"))
    assert (row["model"], row["auto_tier"], row["requested_model"]) == (
        "test/mid", "medium", ROUTER)
    assert row["cost_nusd"] == round(7 * prompt + 6 * completion)
