"""Zero data retention: content reaches the upstream and the client and nothing else.

The canary test runs the real `llm-sidecar serve` with debug logs, an OTLP exporter, a Redis
ledger and a state directory, sends a canary secret through every kind of request (answered,
streamed, broken mid-stream, refused by the upstream, passed through), and then looks for it in
everything the process could have kept: its whole output, every file under the state
directory, every key and value in Redis, everything OTLP receivers were sent, and the admin
routes. It must be in the upstream's records (or the test could not fail) and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import openai
import orjson
import pytest
import redis
import structlog
from aiohttp import web

from sidecar.call import Call, Next, Reply
from sidecar.config import Settings
from sidecar.config.schema import LogSettings
from sidecar.deps import DEPS
from sidecar.telemetry.logs import configure_logging
from sidecar.telemetry.withhold import WITHHELD
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.keys import KeyRing
from sidecar.upstream.providers import OpenAIProvider
from tests.conftest import StartSidecar, free_port
from tests.fakes.calls import make_call
from tests.fakes.profiles import ALL
from tests.fakes.redis import RedisServer
from tests.fakes.upstream import FakeUpstream, Script, chat_chunks
from tests.fakes.waits import wait_ready

PROFILES = ALL  # each test runs in the module, defaults and everything profiles
ZDR_WITH_KEYS = {"privacy": {"zdr": True},
                 "auth": {"required": True, "keys": [{"name": "a", "token": "tok"}]}}
ROUTED_BODY = b'{"model": "m", "messages": [], "provider": {"order": ["x"]}}'

BIN = str(Path(sys.executable).with_name("llm-sidecar"))
CANARY = "canary-7f3a9c2e-zdr-S3CRET"


class OtlpReceiver:
    """Records every OTLP/HTTP export (traces, metrics, logs) as raw bytes, gunzipped: string
    fields are plain UTF-8 inside protobuf, so a byte search finds a leaked canary."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._record)
        # auto_decompress off: the body is gunzipped here, as sent (aiohttp would do it first).
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _record(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.bodies.append(body)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def otlp() -> AsyncIterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    await receiver.start()
    yield receiver
    await receiver.close()


def redis_dump(server: RedisServer) -> bytes:
    """Every key and every value in every database, as one blob."""
    client = redis.Redis(port=server.port)
    out = bytearray()
    for db in range(16):
        client.execute_command("SELECT", db)
        for key in client.scan_iter():
            out += key + (client.dump(key) or b"")
    client.close()
    return bytes(out)


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def test_a_canary_is_nowhere_but_upstream_and_client(
        upstream: FakeUpstream, otlp: OtlpReceiver, redis_server: RedisServer,
        tmp_path: Path) -> None:
    """With ZDR on and debug logs, a canary sent through answered, streamed, broken, refused
    and passthrough requests appears in no log line, file, Redis value, OTLP export or admin
    answer; the upstream did receive it and the client did get it back."""
    state = tmp_path / "state"
    state.mkdir()
    port = free_port()
    config = tmp_path / "sidecar.yaml"
    config.write_text(orjson.dumps({
        "upstream": {"url": upstream.url},
        "privacy": {"zdr": True},
        "spend": {"ledger": redis_server.url},
        "telemetry": {"logs": {"level": "debug"}, "exporters": [
            {"protocol": "http", "endpoint": otlp.url, "signals": ["traces", "metrics", "logs"]}]},
    }).decode())
    output = tmp_path / "output.log"
    with output.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            BIN, "serve", "--config", str(config), "--port", str(port),
            stdout=sink, stderr=sink, env={**os.environ, "SIDECAR_STATE_DIR": str(state)})
        try:
            admin = await _exercise(f"http://127.0.0.1:{port}", upstream)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=30)
    assert proc.returncode == 0
    log = output.read_bytes()
    assert b'"event":"privacy"' in log and b'"zdr":true' in log  # the start-up line
    assert b'"event":"request"' in log  # debug logs were on and requests were logged

    assert any(CANARY.encode() in r.body for r in upstream.forwarded)
    assert otlp.bodies, "nothing was exported: the check below would prove nothing"
    sinks = {"output": log, "redis": redis_dump(redis_server), "admin": admin,
             "otlp": b"".join(otlp.bodies), **files_under(state)}
    assert [name for name, data in sinks.items() if CANARY.encode() in data] == []


async def _exercise(url: str, upstream: FakeUpstream) -> bytes:
    """Send the canary every way; return what the admin routes said afterwards."""
    await wait_ready(url)
    chat = {"model": "m", "messages": [{"role": "user", "content": f"my key is {CANARY}"}]}
    upstream.script("/chat/completions",
                    Script(json={"choices": [{"index": 0, "message": {
                        "role": "assistant", "content": f"echo {CANARY}"}}]}),
                    Script(sse=chat_chunks("m", ["echo ", CANARY, "!"])),
                    Script(sse=chat_chunks("m", [CANARY, "x", "y"]), drop_after=2),
                    Script(status=500, json={"error": {"message": f"cannot handle {CANARY}"}}),
                    Script(status=400, body=f"raw text error {CANARY}".encode()))
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as sdk:
        answer = await sdk.chat.completions.create(**chat)
        assert CANARY in (answer.choices[0].message.content or "")
        stream = await sdk.chat.completions.create(**chat, stream=True)
        assert CANARY in "".join([c.choices[0].delta.content or "" async for c in stream
                                  if c.choices])
        with pytest.raises(openai.APIError):
            broken = await sdk.chat.completions.create(**chat, stream=True)
            _ = [c async for c in broken]
        with pytest.raises(openai.InternalServerError) as refused:
            await sdk.chat.completions.create(**chat)
        assert CANARY in str(refused.value.body)
        with pytest.raises(openai.BadRequestError):
            await sdk.chat.completions.create(**chat)
        await sdk.embeddings.create(model="e", input=[CANARY])
    async with aiohttp.ClientSession() as http:
        for path, body in (("/v1/chat/completions", b'{"model": "m", "x": ' + CANARY.encode()),
                           ("/v1/files", CANARY.encode())):
            async with http.post(url + path, data=body) as response:
                assert response.headers["x-sidecar-zdr"] == "on"
                await response.read()
        admin = b""
        for path in ("/metrics", "/sidecar/config", "/sidecar/privacy"):
            async with http.get(url + path) as response:
                admin += await response.read()
    return admin


class Bug:
    """A stage with a bug whose exception message carries the request's content."""

    reads_answer = False
    name = "bug"

    async def __call__(self, call: Call, next: Next) -> Reply:
        raise ValueError(f"cannot parse {CANARY}")


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    saved = logging.getLogger().handlers[:], logging.getLogger().level
    yield out
    structlog.reset_defaults()
    logging.getLogger().handlers[:], level = saved
    logging.getLogger().setLevel(level)


@pytest.mark.parametrize("zdr", [True, False])
async def test_tracebacks_withhold_exception_messages_in_zdr(
        otlp: OtlpReceiver, start_sidecar: StartSidecar, log_stream: io.StringIO,
        zdr: bool) -> None:  # otlp first: it must outlive the sidecar's last export
    """A bug that raises with content in its message is logged with its traceback and type,
    and in ZDR mode without the message, on stdout and in the log records exported over OTLP;
    the client gets a 500 naming only the request id. (Without ZDR the message is logged: the
    check can see a leak.)"""
    configure_logging(LogSettings(level="debug"), stream=log_stream, zdr=zdr)
    sidecar = await start_sidecar({"privacy": {"zdr": zdr}, "telemetry": {"exporters": [
        {"protocol": "http", "endpoint": otlp.url, "signals": ["logs"]}]}},
        outer_stages=[Bug()])
    async with aiohttp.ClientSession() as http:
        async with http.post(sidecar.v1 + "/chat/completions", json={"x": CANARY}) as response:
            assert response.status == 500
            assert CANARY not in await response.text()
    logging.getLogger("asyncio").error("Task exception was never retrieved\nexception=%r",
                                       ValueError(CANARY))
    log = log_stream.getvalue()
    assert "unhandled_error" in log and "ValueError" in log and "Traceback" in log
    assert (CANARY in log) is not zdr
    assert (WITHHELD in log) is zdr
    assert await asyncio.to_thread(sidecar.app[DEPS].telemetry.flush, 5.0)
    exported = b"".join(otlp.bodies)
    assert b"unhandled_error" in exported and b"Traceback" in exported
    assert (CANARY.encode() in exported) is not zdr
    assert (WITHHELD.encode() in exported) is zdr


async def test_zdr_header_on_every_proxied_response(start_sidecar: StartSidecar) -> None:
    """x-sidecar-zdr: on is on model answers, passthrough answers and the sidecar's own
    errors (401 included)."""
    sidecar = await start_sidecar(ZDR_WITH_KEYS)
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": "Bearer tok", "Content-Type": "application/json"}
        for method, path, auth, status in (("POST", "/chat/completions", True, 200),
                                           ("GET", "/models", True, 200),
                                           ("POST", "/chat/completions", False, 401)):
            async with http.request(method, sidecar.v1 + path,
                                    data=ROUTED_BODY if method == "POST" else None,
                                    headers=headers if auth else {}) as response:
                assert response.status == status
                assert response.headers["x-sidecar-zdr"] == "on"


@pytest.mark.profiles("module", "defaults", reason="the everything profile routes locally: its "
                      "providers take the routing fields and its budget adds max_tokens")
async def test_zdr_leaves_a_plain_upstreams_request_alone(start_sidecar: StartSidecar,
                                                          upstream: FakeUpstream) -> None:
    """In ZDR mode a request reaches a non-OpenRouter upstream byte for byte: its `provider`
    object is not rewritten (only OpenRouter is asked for zero retention that way)."""
    sidecar = await start_sidecar(ZDR_WITH_KEYS)
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.v1 + "/chat/completions", data=ROUTED_BODY, headers={
                "Authorization": "Bearer tok", "Content-Type": "application/json"}) as response:
        assert response.status == 200
    assert upstream.last.body == ROUTED_BODY


@pytest.mark.parametrize("zdr", [True, False])
async def test_openrouter_is_asked_for_zero_retention(upstream: FakeUpstream,
                                                      zdr: bool) -> None:
    """For an openrouter.ai provider in ZDR mode, `provider` gains data_collection: deny and
    zdr: true, keeping the client's other provider fields (a client's zdr: false loses);
    without ZDR the body goes as sent."""
    client = UpstreamClient(Settings().upstream)
    await client.start()
    # Reach "openrouter.ai" through the fake upstream acting as an HTTP proxy.
    provider = OpenAIProvider("openrouter", "http://openrouter.ai/api/v1",
                              keys=KeyRing("openrouter", ["sk-or"]), proxy=upstream.url)
    raw = b'{"model":"m","messages":[],"provider":{"order":["a"],"zdr":false}}'
    call = make_call(body=orjson.loads(raw), raw_body=raw)
    call.zdr = zdr
    try:
        reply = await provider.send(client, call, call.begin_attempt("openrouter", "m", 0.0))
        assert reply.status == 200
    finally:
        await client.close()
    sent = upstream.last
    assert sent.path == "http://openrouter.ai/api/v1/chat/completions"
    if zdr:
        assert orjson.loads(sent.body)["provider"] == {
            "order": ["a"], "zdr": True, "data_collection": "deny"}
    else:
        assert sent.body == raw
