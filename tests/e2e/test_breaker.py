"""Circuit breakers end to end, with an injected clock: open, fail fast, half-open, recover;
with a single provider and with a fallback; and what /sidecar/providers shows."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import RunningSidecar, StartSidecar
from tests.e2e.routing_helpers import CHAT, MakeUpstreams, chat, provider
from tests.fakes.clock import FakeClock
from tests.fakes.profiles import ALL
from tests.fakes.upstream import Script, chat_chunks
from tests.fakes.waits import wait_idle

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

BREAKER = {"failures": 2, "open_s": 30}

# The cache off in the module profile (start_sidecar merges SIDECAR_BASE under each config):
# breakers count upstream answers. In the others each successful request asks a fresh prompt.
SIDECAR_BASE = {"cache": {"backend": "off"}}


def client(sidecar: RunningSidecar) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)


async def providers_view(sidecar: RunningSidecar) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.admin_url + "/sidecar/providers") as response:
        assert response.status == 200
        view: dict[str, Any] = await response.json()
    return {p["name"]: p for p in view["providers"]}


async def test_single_provider_breaker_fails_fast_then_recovers(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """A lone provider's breaker opens after N consecutive failures; requests then get 502 at
    once without reaching it; after open_s one probe goes through and its success closes it."""
    (only,) = await upstreams(1)
    clock = FakeClock()
    sidecar = await start_sidecar({"providers": [provider("only", only)], "breaker": BREAKER,
                                   "retry": {"attempts": 1}}, clock=clock)
    only.script("/chat/completions", Script(status=503, json={}), Script(status=503, json={}))
    async with client(sidecar) as sdk:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError) as caught:
                await sdk.chat.completions.create(model="m", messages=CHAT)
            assert caught.value.status_code == 503  # the upstream's own answer
        assert (await providers_view(sidecar))["only"]["breaker"]["state"] == "open"
        for _ in range(3):
            with pytest.raises(openai.InternalServerError) as caught:
                await sdk.chat.completions.create(model="m", messages=CHAT)
            assert caught.value.status_code == 502
        error = caught.value.body
        assert isinstance(error, dict) and error["code"] == "upstream_unavailable"
        assert "fails fast" in error["message"]
        assert "'only': circuit open after 2 consecutive failures; next probe in 30.0 s" in (
            error["message"])
        assert len(only.forwarded) == 2  # nothing reached it while open
        clock.advance(30)
        assert (await providers_view(sidecar))["only"]["healthy"] is False
        assert await chat(sdk, "m") == ("only", 1, "m")  # the probe
        view = (await providers_view(sidecar))["only"]
        assert (view["healthy"], view["breaker"]["state"]) == (True, "closed")
        assert await chat(sdk, "m") == ("only", 1, "m")
    assert len(only.forwarded) == 4


async def test_failed_probe_reopens_the_breaker(start_sidecar: StartSidecar,
                                                upstreams: MakeUpstreams) -> None:
    """A half-open probe that fails opens the breaker for another open_s."""
    (only,) = await upstreams(1)
    clock = FakeClock()
    sidecar = await start_sidecar({"providers": [provider("only", only)], "breaker": BREAKER,
                                   "retry": {"attempts": 1}}, clock=clock)
    only.script("/chat/completions", *[Script(status=500, json={}) for _ in range(3)])
    async with client(sidecar) as sdk:
        for status in (500, 500, 502):
            with pytest.raises(openai.InternalServerError) as caught:
                await sdk.chat.completions.create(model="m", messages=CHAT)
            assert caught.value.status_code == status
        clock.advance(30)
        with pytest.raises(openai.InternalServerError) as caught:  # the probe, failing
            await sdk.chat.completions.create(model="m", messages=CHAT)
        assert caught.value.status_code == 500
        clock.advance(29)
        with pytest.raises(openai.InternalServerError) as caught:
            await sdk.chat.completions.create(model="m", messages=CHAT)
        assert caught.value.status_code == 502
        clock.advance(1)
        assert await chat(sdk, "m") == ("only", 1, "m")
    assert len(only.forwarded) == 4


async def test_an_open_primary_is_skipped_while_its_fallback_serves(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """A failing primary keeps counting failures although its fallback answers each request
    (the cooldown peers never trigger), then is skipped until its probe is due."""
    primary, fallback = await upstreams(2)
    primary.script("/chat/completions", *[Script(status=503, json={}) for _ in range(2)])
    clock = FakeClock()
    sidecar = await start_sidecar({"providers": [provider("primary", primary, "m"),
                                                 provider("fallback", fallback, "*")],
                                   "breaker": BREAKER, "retry": {"attempts": 2}}, clock=clock)
    async with client(sidecar) as sdk:
        assert await chat(sdk, "m") == ("fallback", 2, "m")
        assert await chat(sdk, "m") == ("fallback", 2, "m")
        for _ in range(3):
            assert await chat(sdk, "m") == ("fallback", 1, "m")  # primary skipped
        assert len(primary.forwarded) == 2
        clock.advance(30)
        assert await chat(sdk, "m") == ("primary", 1, "m")
    view = await providers_view(sidecar)
    assert view["primary"]["breaker"]["state"] == "closed"
    assert view["fallback"]["averages"]["m"]["successes"] == 5


async def test_client_errors_do_not_open_the_breaker(start_sidecar: StartSidecar,
                                                     upstreams: MakeUpstreams) -> None:
    """A 400 is the request's fault, not the provider's: it never counts toward the breaker."""
    (only,) = await upstreams(1)
    only.script("/chat/completions", *[Script(status=400, json={}) for _ in range(5)])
    sidecar = await start_sidecar({"providers": [provider("only", only)], "breaker": BREAKER},
                                  clock=FakeClock())
    async with client(sidecar) as sdk:
        for _ in range(5):
            with pytest.raises(openai.BadRequestError):
                await sdk.chat.completions.create(model="m", messages=CHAT)
    assert (await providers_view(sidecar))["only"]["breaker"]["state"] == "closed"
    assert len(only.forwarded) == 5


@pytest.mark.profiles("module", "defaults", reason="about the lone upstream without providers, "
                      "which the everything profile lists")
async def test_upstream_breaker_is_off_unless_configured(start_sidecar: StartSidecar) -> None:
    """With no providers, `upstream` keeps the core's behaviour: one try, no breaker, unless
    the config sets retry/breaker."""
    plain = await providers_view(await start_sidecar())
    assert plain["upstream"]["breaker"]["enabled"] is False
    guarded = await providers_view(await start_sidecar({"breaker": BREAKER}))
    assert guarded["upstream"]["breaker"]["enabled"] is True


async def test_providers_view_shows_averages(start_sidecar: StartSidecar,
                                             upstreams: MakeUpstreams) -> None:
    """/sidecar/providers lists each provider with its averages per model (null until
    measured), its proxy without a password, and the retry policy."""
    a, b = await upstreams(2)
    sidecar = await start_sidecar({"providers": [
        provider("a", a, "m", proxy="http://user:s3cret@127.0.0.1:9"),
        provider("b", b)]})
    async with client(sidecar) as sdk:
        await chat(sdk, "m", provider={"only": ["b"]})
    view = await providers_view(sidecar)
    assert view["a"]["proxy"] == "http://user:***@127.0.0.1:9"
    assert view["a"]["averages"] == {}
    stats = view["b"]["averages"]["m"]
    assert stats["ttfb_ms"] is not None and stats["ttfb_ms"] >= 0
    assert stats["ttfb_samples"] == 1
    assert stats["tokens_per_s"] > 0  # two providers: answers are read for their usage
    assert stats["throughput_samples"] == 1
    assert view["b"]["healthy"] is True


async def test_a_stream_broken_mid_way_counts_as_a_failure(start_sidecar: StartSidecar,
                                                           upstreams: MakeUpstreams) -> None:
    """A stream the upstream cuts after it started is not retried, but its provider's breaker
    counts it: two in a row open it."""
    (only,) = await upstreams(1)
    broken = [Script(sse=chat_chunks("m", ["a", "b"]), drop_after=1) for _ in range(2)]
    only.script("/chat/completions", *broken)
    sidecar = await start_sidecar({"providers": [provider("only", only)], "breaker": BREAKER},
                                  clock=FakeClock())
    async with client(sidecar) as sdk:
        for _ in range(2):
            stream = await sdk.chat.completions.create(model="m", messages=CHAT, stream=True)
            with pytest.raises(openai.APIError):
                async for _chunk in stream:
                    pass
    await wait_idle(sidecar.app)  # the finisher runs just after the client saw the end
    view = (await providers_view(sidecar))["only"]
    assert view["breaker"]["state"] == "open"
    assert view["averages"]["m"]["failures"] == 2


async def test_a_broken_stream_counts_once_after_a_candidate_without_attempts(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """The first candidate model's only provider is open (no attempt made), the fallback
    model's stream breaks: that is one failure of its provider, not one per candidate."""
    primary, backup = await upstreams(2)
    primary.script("/chat/completions", Script(status=503, json={}), Script(status=503, json={}))
    backup.script("/chat/completions", Script(sse=chat_chunks("y", ["a", "b"]), drop_after=1))
    sidecar = await start_sidecar({"providers": [provider("primary", primary, "x"),
                                                 provider("backup", backup, "y")],
                                   "breaker": BREAKER, "retry": {"attempts": 1}},
                                  clock=FakeClock())
    async with client(sidecar) as sdk:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                await sdk.chat.completions.create(model="x", messages=CHAT)
        assert (await providers_view(sidecar))["primary"]["breaker"]["state"] == "open"
        stream = await sdk.chat.completions.create(model="x", messages=CHAT, stream=True,
                                                   extra_body={"models": ["y"]})
        with pytest.raises(openai.APIError):
            async for _chunk in stream:
                pass
    await wait_idle(sidecar.app)  # the finisher runs just after the client saw the end
    view = (await providers_view(sidecar))["backup"]
    assert view["averages"]["y"]["failures"] == 1
    assert view["breaker"]["state"] == "closed"


async def test_a_request_the_provider_refuses_itself_does_not_close_the_breaker(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """A `format: anthropic` provider refuses `n: 2` before sending anything: that says
    nothing of the upstream's health, so it neither spends the half-open probe nor closes the
    breaker; the next real request is the probe."""
    (claude,) = await upstreams(1)
    claude.script("/messages", *[Script(status=503, json={}) for _ in range(3)])
    clock = FakeClock()
    sidecar = await start_sidecar({"providers": [provider("claude", claude, format="anthropic",
                                                          api_key="sk-ant")],
                                   "breaker": BREAKER, "retry": {"attempts": 1}}, clock=clock)
    async with client(sidecar) as sdk:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                await sdk.chat.completions.create(model="m", messages=CHAT)
        clock.advance(31)
        with pytest.raises(openai.BadRequestError):
            await sdk.chat.completions.create(model="m", messages=CHAT, n=2)
        assert (await providers_view(sidecar))["claude"]["breaker"]["state"] != "closed"
        sent = len(claude.forwarded)
        with pytest.raises(openai.InternalServerError) as caught:  # the probe: a 503 again
            await sdk.chat.completions.create(model="m", messages=CHAT)
        assert caught.value.status_code == 503 and len(claude.forwarded) == sent + 1
        assert (await providers_view(sidecar))["claude"]["breaker"]["state"] == "open"
