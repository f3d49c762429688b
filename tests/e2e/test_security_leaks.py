"""Security properties of what the sidecar sends and shows: it calls no host but a configured
provider (absolute-form targets, redirects never followed, the price fetch included), the
upstream key appears in no response, log line, span, metric or admin view on any path, and
the cache never answers one identity with another's entry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from sidecar.call import Call, Next, Reply
from sidecar.deps import DEPS
from tests.conftest import RunningSidecar, StartSidecar, free_port
from tests.fakes.logs import captured_logs
from tests.fakes.otlp import GrpcReceiver
from tests.fakes.rawhttp import exchange, request
from tests.fakes.telemetry import flush
from tests.fakes.upstream import FakeUpstream, Script, chat_chunks

KEY = "sk-or-v1-UPSTREAM-S3NTINEL"
URL_PASSWORD = "URLPW-S3NTINEL"
LOCAL = "tok-local-1"
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def evil() -> AsyncIterator[FakeUpstream]:
    """A host no configuration names: every test ends asserting it saw nothing."""
    fake = FakeUpstream()
    await fake.start()
    yield fake
    assert fake.requests == [], [(r.method, r.path) for r in fake.requests]
    await fake.close()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.mark.parametrize("target", ["{evil}/v1/models", "{evil}/v1/chat/completions",
                                    "{evil}/v1/../sidecar/config", "{evil}"])
async def test_absolute_form_targets_never_reach_their_host(
        start_sidecar: StartSidecar, upstream: FakeUpstream, evil: FakeUpstream,
        target: str) -> None:
    """`GET http://evil/v1/x HTTP/1.1` is served as /v1/x by the configured provider (its
    path only; the host named in it is ignored), never by the host it names."""
    sidecar = await start_sidecar({"cache": {"backend": "off"}})
    body = orjson.dumps({"model": "m", **CHAT})
    raw = request("POST" if "chat" in target else "GET", target.format(evil=evil.url),
                  body=body if "chat" in target else None)
    answer = await asyncio.to_thread(exchange, port_of(sidecar.url), raw)
    assert answer.status < 500, answer.body
    for recorded in upstream.requests:
        assert recorded.path in ("/models", "/chat/completions"), recorded.path


REDIRECTS = {
    "model endpoint": ("POST", "/v1/chat/completions", "/chat/completions"),
    "passthrough": ("GET", "/v1/files/f-1/content", "/files/f-1/content"),
    "models list": ("GET", "/v1/models", "/models"),
}


@pytest.mark.parametrize("case", list(REDIRECTS))
@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_passed_back_never_followed(
        start_sidecar: StartSidecar, upstream: FakeUpstream, evil: FakeUpstream,
        case: str, status: int) -> None:
    """An upstream answering a redirect to another host: the client gets the redirect as it
    came; the sidecar never follows it (the evil host records nothing)."""
    method, path, upstream_path = REDIRECTS[case]
    sidecar = await start_sidecar({"cache": {"backend": "off"},
                                   "upstream": {"api_key": KEY}})
    upstream.script(upstream_path, Script(status=status, body=b"",
                                          headers={"Location": evil.url + "/steal"}))
    async with aiohttp.ClientSession() as http, http.request(
            method, sidecar.url + path, allow_redirects=False,
            json={"model": "m", **CHAT} if method == "POST" else None) as response:
        assert response.status == status
        assert response.headers["Location"] == evil.url + "/steal"
    assert len(upstream.requests) == 1


async def test_the_price_fetch_does_not_follow_redirects(
        start_sidecar: StartSidecar, upstream: FakeUpstream, evil: FakeUpstream) -> None:
    """The start-up GET /models (prices) that gets a redirect is a failed fetch, never a
    request to where it points (it would carry the provider's key)."""
    upstream.script("/models", Script(status=302, body=b"",
                                      headers={"Location": evil.url + "/models"}))
    await start_sidecar({"upstream": {"api_key": KEY}, "spend": {"fetch_prices": True}})
    assert [r.path for r in upstream.requests] == ["/models"]


class Bug:
    """An embedder's stage with a bug, raised on requests that carry `x-test-bug`."""

    name = "bug"
    reads_answer = False

    async def __call__(self, call: Call, next: Next) -> Reply:
        if "x-test-bug" in call.headers:
            raise RuntimeError("a bug in an embedder's stage")
        return await next(call)


async def start_leaky(start_sidecar: StartSidecar, upstream: FakeUpstream,
                      grpc_receiver: GrpcReceiver) -> RunningSidecar:
    """Providers holding KEY (one of them unreachable, through an egress proxy whose URL has a
    password), a local key, a budget, the cache, traces and logs exported: every path below
    can be taken."""
    return await start_sidecar({
        "listen": {"max_body_bytes": 4096},
        "providers": [
            {"name": "live", "base_url": upstream.url, "api_key": KEY, "models": ["live/*"]},
            {"name": "dead", "base_url": f"http://127.0.0.1:{free_port()}", "api_key": KEY,
             "models": ["dead/*"],
             "proxy": f"http://user:{URL_PASSWORD}@127.0.0.1:{free_port()}"}],
        "retry": {"attempts": 1},
        "upstream": {"read_timeout_s": 0.5},
        "auth": {"required": True, "keys": [
            {"name": "k", "token": LOCAL, "allowed_models": ["live/*", "dead/*"]}]},
        "spend": {"prices": {"live/pricey": {"prompt": 1, "completion": 1},
                             "*": {"prompt": 1e-6, "completion": 1e-6}},
                  "budgets": [{"name": "cap", "limit_usd": 1}]},
        "telemetry": {"exporters": [{"protocol": "grpc", "endpoint": grpc_receiver.endpoint,
                                     "signals": ["traces", "logs"]}]},
    }, outer_stages=[Bug()])


PATHS: dict[str, tuple[str, str, dict[str, str], Any, Script | None]] = {
    # name: method, path, headers (besides the local key), body, the upstream's script
    "ok": ("POST", "/v1/chat/completions", {}, {"model": "live/a", **CHAT}, None),
    "stream": ("POST", "/v1/chat/completions", {}, {"model": "live/a", "stream": True, **CHAT},
               Script(sse=chat_chunks("live/a", ["x"]))),
    "stream broken": ("POST", "/v1/chat/completions", {"Cache-Control": "no-store"},
                      {"model": "live/b", "stream": True, **CHAT},
                      Script(sse=chat_chunks("live/b", ["x", "y"]), drop_after=1)),
    "upstream 500": ("POST", "/v1/chat/completions", {"Cache-Control": "no-store"},
                     {"model": "live/c", **CHAT}, Script(status=500, json={"error": "x"})),
    "timeout": ("POST", "/v1/chat/completions", {"Cache-Control": "no-store"},
                {"model": "live/d", **CHAT}, Script(delay_s=2)),
    "unreachable": ("POST", "/v1/chat/completions", {}, {"model": "dead/a", **CHAT}, None),
    "budget": ("POST", "/v1/chat/completions", {}, {"model": "live/pricey", **CHAT}, None),
    "not allowed": ("POST", "/v1/chat/completions", {}, {"model": "other/x", **CHAT}, None),
    "invalid json": ("POST", "/v1/chat/completions", {}, b"{", None),
    "no model": ("POST", "/v1/embeddings", {}, {"input": "x"}, None),
    "too large": ("POST", "/v1/chat/completions", {}, {"model": "live/a", "x": "y" * 5000},
                  None),
    "cache miss": ("POST", "/v1/chat/completions", {"Cache-Control": "only-if-cached"},
                   {"model": "live/z", **CHAT}, None),
    "passthrough": ("GET", "/v1/files", {}, None, None),
    "passthrough 401": ("GET", "/v1/files", {"Authorization": "Bearer nope"}, None, None),
    "missing key": ("POST", "/v1/chat/completions", {"Authorization": ""}, {"model": "live/a"},
                    None),
    "not found": ("GET", "/elsewhere", {}, None, None),
    "bug": ("POST", "/v1/chat/completions", {"x-test-bug": "1"}, {"model": "live/a"}, None),
}


async def test_the_upstream_key_never_leaves_toward_the_client_or_telemetry(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        grpc_receiver: GrpcReceiver) -> None:
    """On every path (answers, streams, broken streams, upstream errors, timeouts, an
    unreachable provider, each local error, a bug), the upstream key, the local key and the
    password of an egress proxy are in no response (status line, headers, body), no log line
    at debug level, no exported span or log record, and no admin view; the upstream did
    receive the key."""
    with captured_logs(level="debug") as logs:
        sidecar = await start_leaky(start_sidecar, upstream, grpc_receiver)
        seen: list[bytes] = []
        statuses = {}
        async with aiohttp.ClientSession() as http:
            for name, (method, path, headers, body, script) in PATHS.items():
                if script is not None:
                    upstream.script("/chat/completions", script)
                data = body if isinstance(body, bytes | None) else orjson.dumps(body)
                sent = {"Authorization": f"Bearer {LOCAL}", **headers}
                async with http.request(method, sidecar.url + path, headers=sent,
                                        data=data) as response:
                    try:
                        payload = await response.read()
                    except aiohttp.ClientPayloadError:
                        payload = b""
                    statuses[name] = response.status
                    seen.append(repr(response.raw_headers).encode() + payload)
            admin = [await (await http.get(sidecar.url + p)).read() for p in (
                "/metrics", "/sidecar/config", "/sidecar/providers", "/sidecar/requests",
                "/sidecar/usage", "/sidecar/budgets")]
        deps = sidecar.app[DEPS]
        deps.access.flush()
        await flush(sidecar)
        log_text = logs.getvalue()
    assert statuses == {
        "ok": 200, "stream": 200, "stream broken": 200, "upstream 500": 500, "timeout": 504,
        "unreachable": 502, "budget": 402, "not allowed": 403, "invalid json": 400,
        "no model": 400, "too large": 413, "cache miss": 504, "passthrough": 200,
        "passthrough 401": 401, "missing key": 401, "not found": 404, "bug": 500}
    assert any(r.headers.get("Authorization") == f"Bearer {KEY}" for r in upstream.requests)
    exported = [str(span) for _, span in grpc_receiver.spans()]
    exported += [str(record) for record in grpc_receiver.logs()]
    assert exported and "unhandled_error" in log_text
    for secret in (KEY, URL_PASSWORD, LOCAL):
        for name, text in [*zip(PATHS, seen, strict=True), ("admin views", b"".join(admin))]:
            assert secret.encode() not in text, (secret, name)
        assert secret not in log_text, secret
        assert not any(secret in text for text in exported), secret


async def test_console_tracebacks_do_not_print_local_variables(
        start_sidecar: StartSidecar) -> None:
    """With `format: console`, a bug's traceback names its frames but not their local
    variables: the call in the handler's frame holds the client's Authorization, which in
    pass-through mode is the upstream key itself."""
    with captured_logs(fmt="console") as logs:
        sidecar = await start_sidecar({}, outer_stages=[Bug()])
        async with aiohttp.ClientSession() as http, http.post(
                sidecar.v1 + "/chat/completions", json={"model": "m", **CHAT},
                headers={"Authorization": f"Bearer {KEY}", "x-test-bug": "1"}) as response:
            assert response.status == 500
        text = logs.getvalue()
    assert "RuntimeError" in text and "handler.py" in text
    assert KEY not in text


async def chat_as(sidecar: RunningSidecar, authorization: str) -> tuple[str, str]:
    async with aiohttp.ClientSession() as http, http.post(
            sidecar.v1 + "/chat/completions", json={"model": "m", **CHAT},
            headers={"Authorization": authorization}) as response:
        assert response.status == 200
        return response.headers["x-sidecar-cache"], await response.text()


@pytest.mark.parametrize("mode", ["local keys", "pass-through keys"])
async def test_the_cache_never_answers_one_identity_with_anothers_entry(
        start_sidecar: StartSidecar, upstream: FakeUpstream, mode: str) -> None:
    """The same request from two identities (two local keys; or, without local keys and
    upstream key, two client Authorization values) is two cache entries: the second identity
    misses and reaches the upstream with its own credentials; each then hits its own."""
    if mode == "local keys":
        config = {"auth": {"required": True, "keys": [{"name": "a", "token": "tok-a"},
                                                      {"name": "b", "token": "tok-b"}]},
                  "upstream": {"api_key": KEY}}
        first, second = "Bearer tok-a", "Bearer tok-b"
    else:
        config = {}
        first, second = "Bearer sk-client-a", "Bearer sk-client-b"
    sidecar = await start_sidecar(config)
    assert (await chat_as(sidecar, first))[0] == "MISS"
    assert (await chat_as(sidecar, second))[0] == "MISS"
    assert (await chat_as(sidecar, first))[0] == "HIT"
    assert (await chat_as(sidecar, second))[0] == "HIT"
    sent = [r.headers.get("Authorization") for r in upstream.requests]
    assert sent == ([f"Bearer {KEY}"] * 2 if mode == "local keys" else [first, second])
