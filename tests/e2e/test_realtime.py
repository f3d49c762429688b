"""Realtime: WebSocket sessions relayed through the real sidecar to a WebSocket echo upstream
(tests/fakes/realtime.py), with aiohttp's WebSocket client as the application: frames both ways,
pings, close codes each way, key handling (the provider's key upstream, a local key in the
subprotocol never forwarded), budgets at the handshake and mid-session, the ledger priced from
`response.done`, metrics and the access line. Relay tests run with the defaults on and with
every feature on (local keys, cache, spend with a blocking budget, redaction, Prometheus)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import WSMsgType

from sidecar.deps import DEPS
from sidecar.realtime.prices import table
from sidecar.runtime import RUNTIME
from tests.conftest import RunningSidecar, StartSidecar
from tests.fakes.realtime import FakeRealtime
from tests.fakes.spend import flush, rows

LOCAL = "sk-local-RT-SENTINEL"
PROVIDER_KEY = "sk-provider-RT"
MODEL = "gpt-realtime"
CONFIGS = ["defaults", "every_feature"]


@pytest.fixture
async def realtime() -> AsyncIterator[FakeRealtime]:
    fake = FakeRealtime()
    await fake.start()
    yield fake
    await fake.close()


def config(fake: FakeRealtime, which: str = "defaults", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"upstream": {"url": fake.url + "/v1", "api_key": PROVIDER_KEY}}
    if which == "every_feature":
        out.update({
            "auth": {"required": True, "keys": [{"name": "dev", "token": LOCAL}]},
            "cache": {"backend": "memory"},
            "spend": {"budgets": [{"name": "cap", "limit_usd": 1000, "action": "block"}]},
            "privacy": {"redact": {"mode": "pseudonymize"}},
            "telemetry": {"prometheus": True}})
    out.update(extra)
    return out


def connect(http: aiohttp.ClientSession, sidecar: RunningSidecar, *, path: str = "/realtime",
            model: str | None = MODEL, key: str | None = LOCAL,
            protocols: tuple[str, ...] = ()) -> Any:
    query = f"?model={model}" if model else ""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return http.ws_connect(f"{sidecar.v1}{path}{query}", headers=headers, protocols=protocols,
                           autoping=False, autoclose=False)


async def next_of(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next JSON event of this type (other frames skipped)."""
    while True:
        msg = await ws.receive()
        assert msg.type is WSMsgType.TEXT, msg
        event = orjson.loads(msg.data)
        if event["type"] == kind:
            return dict(event)


@pytest.mark.parametrize("which", CONFIGS)
async def test_text_and_binary_frames_both_ways(start_sidecar: StartSidecar,
                                                realtime: FakeRealtime, which: str) -> None:
    """Text and binary frames reach the upstream as sent and come back as it sent them."""
    sidecar = await start_sidecar(config(realtime, which))
    async with aiohttp.ClientSession() as http, connect(http, sidecar) as ws:
        await ws.send_str('{"type":"input_text","text":"héllo"}')
        assert (await ws.receive()).data == '{"type":"input_text","text":"héllo"}'
        audio = bytes(range(256)) * 40
        await ws.send_bytes(audio)
        msg = await ws.receive()
        assert msg.type is WSMsgType.BINARY and msg.data == audio
        await ws.close()
    peer = realtime.last
    assert peer.frames[0] == (WSMsgType.TEXT, '{"type":"input_text","text":"héllo"}')
    assert peer.frames[1] == (WSMsgType.BINARY, audio)
    assert peer.handshake.path == f"/v1/realtime?model={MODEL}"


async def test_ping_is_answered_by_the_upstream(sidecar: RunningSidecar, realtime: FakeRealtime,
                                                start_sidecar: StartSidecar) -> None:
    """A client's ping travels to the upstream and its pong back, with the same data."""
    sidecar = await start_sidecar(config(realtime))
    async with aiohttp.ClientSession() as http, connect(http, sidecar) as ws:
        await ws.ping(b"are-you-there")
        msg = await ws.receive()
        assert msg.type is WSMsgType.PONG and msg.data == b"are-you-there"
        await ws.close()


@pytest.mark.parametrize("which", CONFIGS)
async def test_client_close_code_and_reason_reach_the_upstream(
        start_sidecar: StartSidecar, realtime: FakeRealtime, which: str) -> None:
    """The client closes with 4000 "done here": the upstream gets that code and reason, and
    the client's close completes with its code echoed."""
    sidecar = await start_sidecar(config(realtime, which))
    async with aiohttp.ClientSession() as http, connect(http, sidecar) as ws:
        await ws.send_str('{"type":"noop"}')
        await ws.receive()
        await ws.close(code=4000, message=b"done here")
        assert ws.close_code == 4000
    await realtime.closed.wait()
    assert (realtime.last.close_code, realtime.last.close_reason) == (4000, "done here")


@pytest.mark.parametrize("which", CONFIGS)
async def test_upstream_close_code_and_reason_reach_the_client(
        start_sidecar: StartSidecar, realtime: FakeRealtime, which: str) -> None:
    """The upstream closes with 4001 "session expired": the client gets that code and reason."""
    sidecar = await start_sidecar(config(realtime, which))
    async with aiohttp.ClientSession() as http, connect(http, sidecar) as ws:
        await ws.send_str(orjson.dumps({"type": "fake.close", "code": 4001,
                                        "reason": "session expired"}).decode())
        msg = await ws.receive()
        assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4001, "session expired")
        await ws.close()


async def test_upstream_dropping_closes_the_client_with_1014(
        start_sidecar: StartSidecar, realtime: FakeRealtime,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An upstream connection lost without a close frame ends the client's side with 1014
    (bad gateway), and the access line says the upstream broke."""
    sidecar = await start_sidecar(config(realtime))
    async with aiohttp.ClientSession() as http, connect(http, sidecar) as ws:
        await ws.send_str('{"type":"fake.drop"}')
        msg = await ws.receive()
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1014)
        assert msg.extra == "upstream connection lost"
        await ws.close()
    await stop(sidecar)
    [line] = access_lines(capsys)
    assert line["outcome"] == "upstream_broke" and line["closed_by"] == "upstream"
    assert line["close_code"] == 1006


async def test_provider_key_replaces_the_clients(start_sidecar: StartSidecar,
                                                 realtime: FakeRealtime) -> None:
    """The upstream handshake carries the provider's key, never the client's."""
    realtime.require_key = PROVIDER_KEY
    sidecar = await start_sidecar(config(realtime))
    async with aiohttp.ClientSession() as http, connect(http, sidecar,
                                                        key="sk-client-own") as ws:
        await ws.close()
    headers = realtime.last.handshake.headers
    assert headers["Authorization"] == f"Bearer {PROVIDER_KEY}"
    assert "sk-client-own" not in str(dict(headers))


async def test_local_key_in_the_subprotocol(start_sidecar: StartSidecar,
                                            realtime: FakeRealtime) -> None:
    """A browser's `openai-insecure-api-key.<key>` subprotocol is checked as a local key and
    never forwarded: the upstream sees the other subprotocols and the provider's key, and the
    client gets the subprotocol the upstream chose."""
    realtime.require_key = PROVIDER_KEY
    sidecar = await start_sidecar(config(realtime, "every_feature"))
    protocols = ("realtime", f"openai-insecure-api-key.{LOCAL}", "openai-beta.realtime-v1")
    async with aiohttp.ClientSession() as http, connect(http, sidecar, key=None,
                                                        protocols=protocols) as ws:
        assert ws.protocol == "realtime"
        await ws.send_str('{"type":"noop"}')
        await ws.receive()
        await ws.close()
    shake = realtime.last.handshake
    assert shake.protocols == ["realtime", "openai-beta.realtime-v1"]
    assert shake.headers["Authorization"] == f"Bearer {PROVIDER_KEY}"
    assert LOCAL not in str(dict(shake.headers))


async def test_unknown_key_in_the_subprotocol_is_refused(start_sidecar: StartSidecar,
                                                         realtime: FakeRealtime) -> None:
    """An unknown subprotocol key gets 401 at the handshake; nothing reaches the upstream."""
    sidecar = await start_sidecar(config(realtime, "every_feature"))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await connect(http, sidecar, key=None,
                          protocols=("realtime", "openai-insecure-api-key.sk-guess"))
    assert caught.value.status == 401
    assert not realtime.handshakes


async def test_sessions_are_refused_when_redaction_blocks(
        start_sidecar: StartSidecar, realtime: FakeRealtime, http: aiohttp.ClientSession
        ) -> None:
    """Under privacy.redact.mode block a session (whose frames redaction cannot check) is
    refused with 400 before the upgrade; nothing reaches the upstream."""
    sidecar = await start_sidecar(config(realtime, privacy={"redact": {"mode": "block"}}))
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await connect(http, sidecar)
    assert caught.value.status == 400
    assert not realtime.handshakes


async def test_upstream_refusing_the_handshake_is_an_http_answer(
        start_sidecar: StartSidecar, realtime: FakeRealtime, http: aiohttp.ClientSession
        ) -> None:
    """The upstream's 401 reaches the client as 401, before any upgrade."""
    realtime.require_key = "another-key"
    sidecar = await start_sidecar(config(realtime))
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await connect(http, sidecar)
    assert caught.value.status == 401


def priced_session(fake: FakeRealtime, limit_usd: float) -> dict[str, Any]:
    """A model priced at 1 and 2 micro-USD a token (every kind: the table does not know it):
    one response's worst case is 128,000 x 1e-6 + 32,000 x 2e-6 = 0.192 USD."""
    return config(fake, spend={
        "prices": {"test/rt": {"prompt": 1e-6, "completion": 2e-6}},
        "budgets": [{"name": "cap", "limit_usd": limit_usd, "action": "block"}]})


async def test_budget_refused_at_the_handshake(start_sidecar: StartSidecar,
                                              realtime: FakeRealtime,
                                              http: aiohttp.ClientSession) -> None:
    """A budget that cannot pay one response's worst case refuses the session with 402
    before the upgrade; nothing reaches the upstream."""
    sidecar = await start_sidecar(priced_session(realtime, 0.1))
    async with http.get(f"{sidecar.v1}/realtime?model=test/rt", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as response:
        body = await response.json()
    assert response.status == 402
    assert body["error"]["code"] == "budget_exceeded"
    assert body["error"]["metadata"]["response_worst_usd"] == pytest.approx(0.192)
    assert not realtime.handshakes


async def test_budget_exhausted_mid_session(start_sidecar: StartSidecar, realtime: FakeRealtime,
                                            tmp_path: Path) -> None:
    """With 0.30 USD and 0.10 USD a response, the second response's settlement leaves no room
    for another worst case (0.192): the client gets an error event (budget_exceeded), then the
    close 4402 "budget 'cap' exhausted"; both responses are in the ledger."""
    usage = {"input_tokens": 60_000, "output_tokens": 20_000}  # 0.06 + 0.04 USD
    realtime.usages.extend([usage, usage])
    sidecar = await start_sidecar(priced_session(realtime, 0.30))
    async with aiohttp.ClientSession() as http, connect(http, sidecar, model="test/rt") as ws:
        for _ in range(2):
            await ws.send_str('{"type":"response.create"}')
            done = await next_of(ws, "response.done")
            assert done["response"]["status"] == "completed"
        error = await next_of(ws, "error")
        assert error["error"]["code"] == "budget_exceeded"
        msg = await ws.receive()
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 4402)
        assert msg.extra == "budget 'cap' exhausted"
        await ws.close()
    await stop(sidecar)
    ledger = rows(tmp_path / "ledger.db")
    assert [(r["endpoint"], r["cost_nusd"]) for r in ledger] == [("realtime", 100_000_000)] * 2


async def test_a_create_the_budget_cannot_hold_is_not_sent(
        start_sidecar: StartSidecar, realtime: FakeRealtime) -> None:
    """A client's second response.create while the first response is in progress needs a
    second worst case held; a budget with room for one only keeps it from the upstream and
    ends the session with 4402."""
    realtime.hold = True
    sidecar = await start_sidecar(priced_session(realtime, 0.30))
    async with aiohttp.ClientSession() as http, connect(http, sidecar, model="test/rt") as ws:
        await ws.send_str('{"type":"response.create"}')
        await next_of(ws, "response.created")
        await ws.send_str('{"type":"response.create","response":{"conversation":"none"}}')
        await next_of(ws, "error")
        # the first response is cancelled and billed before the session closes
        done = await next_of(ws, "response.done")
        assert done["response"]["status"] == "cancelled"
        msg = await ws.receive()
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 4402)
        await ws.close()
    await realtime.closed.wait()
    creates = [e for e in realtime.sent_events() if e["type"] == "response.create"]
    assert len(creates) == 1


async def test_ledger_row_priced_from_response_done(start_sidecar: StartSidecar,
                                                    realtime: FakeRealtime,
                                                    tmp_path: Path) -> None:
    """A response's row is priced from its usage by kind, at gpt-realtime's prices: text and
    audio input (cached audio at its own price), text and audio output."""
    realtime.usages.append({
        "total_tokens": 400, "input_tokens": 300, "output_tokens": 100,
        "input_token_details": {"text_tokens": 100, "audio_tokens": 200, "image_tokens": 0,
                                "cached_tokens": 50,
                                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 50}},
        "output_token_details": {"text_tokens": 30, "audio_tokens": 70}})
    sidecar = await start_sidecar(config(realtime))
    async with aiohttp.ClientSession() as http, connect(http, sidecar) as ws:
        await ws.send_str('{"type":"response.create"}')
        await next_of(ws, "response.done")
        await ws.close()
    await stop(sidecar)
    [row] = rows(tmp_path / "ledger.db")
    # USD per 1M tokens x tokens x 1000 = nano-dollars: 100x4 + 150x32 + 50x0.4 + 30x16 + 70x64
    assert row["cost_nusd"] == (400 + 4800 + 20 + 480 + 4480) * 1000
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (
        300, 100, 50)
    assert (row["model"], row["endpoint"], row["status"]) == (MODEL, "realtime", 101)
    assert table()[MODEL].source == "table"


async def test_client_leaving_mid_response_still_bills_it(start_sidecar: StartSidecar,
                                                          realtime: FakeRealtime,
                                                          tmp_path: Path) -> None:
    """The client closes while a response is in progress: the upstream is asked to cancel it,
    its response.done is billed, and only then is the upstream closed with the client's code."""
    realtime.hold = True
    sidecar = await start_sidecar(config(realtime))
    async with aiohttp.ClientSession() as http, connect(http, sidecar) as ws:
        await ws.send_str('{"type":"response.create"}')
        await next_of(ws, "response.created")
        await ws.close(code=4000, message=b"bye")
    await realtime.closed.wait()
    types = [e["type"] for e in realtime.sent_events()]
    assert types == ["response.create", "response.cancel"]
    assert realtime.last.close_code == 4000
    await stop(sidecar)
    [row] = rows(tmp_path / "ledger.db")
    assert row["estimated"] == 0 and row["cost_nusd"] == (20 * 4 + 10 * 16) * 1000


async def test_metrics_and_the_access_line(start_sidecar: StartSidecar,
                                           realtime: FakeRealtime,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """One access line per session (frames and bytes each way, close code, who closed it,
    cost), and the session counted in /metrics."""
    sidecar = await start_sidecar(config(realtime))
    async with aiohttp.ClientSession() as http:
        async with connect(http, sidecar) as ws:
            await ws.send_str('{"type":"hi"}')
            await ws.receive()
            await ws.send_bytes(b"\x00" * 100)
            await ws.receive()
            await ws.send_str('{"type":"response.create"}')
            await next_of(ws, "response.done")
            await ws.close(code=1000)
        await stop(sidecar)
        async with http.get(sidecar.url + "/metrics") as response:
            metrics = await response.text()
    [line] = access_lines(capsys)
    assert line["status"] == 101 and line["outcome"] == "ok"
    assert (line["frames_in"], line["frames_out"]) == (3, 5)
    assert line["bytes_in"] == len('{"type":"hi"}') + 100 + len('{"type":"response.create"}')
    assert (line["closed_by"], line["close_code"], line["responses"]) == ("client", 1000, 1)
    assert line["cost_usd"] == pytest.approx((20 * 4 + 10 * 16) / 1e6)
    assert line["session_ms"] > 0 and line["model"] == MODEL
    assert 'llm_sidecar_realtime_sessions_total{closed_by="client"} 1.0' in metrics
    assert 'llm_sidecar_realtime_frames_total{sender="client"} 3.0' in metrics
    assert 'llm_sidecar_realtime_frames_total{sender="upstream"} 5.0' in metrics
    assert 'llm_sidecar_requests_total{endpoint="realtime",status="101"} 1.0' in metrics


async def test_shutdown_closes_sessions_with_1001(start_sidecar: StartSidecar,
                                                  realtime: FakeRealtime) -> None:
    """When the sidecar shuts down, an open session ends with 1001 on both sides."""
    sidecar = await start_sidecar(config(realtime))
    async with aiohttp.ClientSession() as http, connect(http, sidecar) as ws:
        await ws.send_str('{"type":"hi"}')
        await ws.receive()
        await sidecar.app.shutdown()
        msg = await ws.receive()
        assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 1001,
                                                   "sidecar shutting down")
        await ws.close()
    await realtime.closed.wait()
    assert realtime.last.close_code == 1000


async def stop(sidecar: RunningSidecar) -> None:
    """Wait for the sessions' handlers to end (their finishers write the access line and the
    last rows), then write out what is batched."""
    tasks = set(sidecar.app[RUNTIME].in_flight)
    if tasks:
        await asyncio.wait(tasks)
    sidecar.app[DEPS].access.flush()
    await flush(sidecar)


def access_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The sessions' access lines written to stdout so far."""
    out = capsys.readouterr().out
    events = [orjson.loads(text) for text in out.splitlines() if text.startswith("{")]
    return [event for event in events if event.get("endpoint") == "realtime"]


@pytest.mark.parametrize("which", CONFIGS)
async def test_the_openai_sdks_realtime_client(start_sidecar: StartSidecar,
                                               realtime: FakeRealtime, tmp_path: Path,
                                               which: str) -> None:
    """The official SDK's `client.realtime.connect()` with OPENAI_BASE_URL on the sidecar:
    its events arrive typed, its response is billed, and the upstream sees the provider's key
    (never the client's)."""
    realtime.require_key = PROVIDER_KEY
    sidecar = await start_sidecar(config(realtime, which))
    client = openai.AsyncOpenAI(base_url=sidecar.v1, api_key=LOCAL, max_retries=0)
    async with client.realtime.connect(model=MODEL) as connection:
        await connection.conversation.item.create(item={
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Hi"}]})
        assert (await connection.recv()).type == "conversation.item.create"  # the echo
        await connection.response.create()
        kinds = []
        async for event in connection:
            kinds.append(event.type)
            if event.type == "response.done":
                break
    await client.close()
    assert kinds == ["response.created", "response.output_text.delta", "response.done"]
    assert LOCAL not in str(dict(realtime.last.handshake.headers))
    await realtime.closed.wait()
    assert realtime.last.close_code == 1000
    await stop(sidecar)
    [row] = rows(tmp_path / "ledger.db")
    assert row["endpoint"] == "realtime" and row["cost_nusd"] == (20 * 4 + 10 * 16) * 1000
