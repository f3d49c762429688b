"""Security properties of access: admin routes need the admin token (every route, both
listeners, odd token bytes), the proxy and admin listeners bind loopback by default, refused
credentials are counted and logged at most once per interval, `/sidecar/config` masks every
secret, and no response advertises a version in its `Server` header."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from pydantic import BaseModel

from sidecar.config import Settings
from sidecar.deps import DEPS
from tests.conftest import RunningSidecar, StartSidecar, free_port
from tests.e2e.test_cli import BIN
from tests.fakes.logs import captured_logs, json_lines
from tests.fakes.rawhttp import exchange, request
from tests.fakes.upstream import FakeUpstream, Script, chat_chunks
from tests.fakes.waits import wait_ready

TOKEN = "adm-tok-S3NTINEL"
SAMPLE = {"asset": "app.js", "request_id": "0" * 32}  # values for dynamic admin routes


def admin_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of every admin route registered on `app`, dynamic parts filled in."""
    out = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method == "HEAD" or not path.startswith(("/sidecar", "/metrics")):
            continue
        out.append((route.method, re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m[1]], path)))
    return sorted(out)


async def status_of(method: str, url: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http, http.request(
            method, url, headers=headers, allow_redirects=False) as response:
        return response.status  # the body is not read: /sidecar/events never ends


@pytest.mark.parametrize("admin_port", [False, True], ids=["main-listener", "admin-listener"])
async def test_every_admin_route_needs_the_token(start_sidecar: StartSidecar,
                                                 admin_port: bool) -> None:
    """Every admin route (/metrics too, with metrics_require_token) answers 401 without the
    token, with a wrong one, with a wrong scheme, with bytes that are not UTF-8, and with the
    right token in the wrong place; with it, not."""
    config: dict[str, Any] = {"admin": {"token": TOKEN, "metrics_require_token": True}}
    if admin_port:
        config["admin"]["port"] = free_port()
    sidecar = await start_sidecar(config)
    app = sidecar.admin_app or sidecar.app
    # On the main listener POST /sidecar/compare is the proxy's own route (a local key, like
    # /v1: docs/compare.md); on an admin listener of its own it is an admin route, tried here.
    routes = [r for r in admin_routes(app) if admin_port or r != ("POST", "/sidecar/compare")]
    assert len(routes) >= 12, routes
    port = int(sidecar.admin_url.rsplit(":", 1)[1])
    refusals = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                {"Authorization": f"Bearer {TOKEN}x"}, {"X-Admin-Token": TOKEN},
                {"Cookie": "llm_sidecar_admin=wrong"}]
    for method, path in routes:
        for headers in refusals:
            assert await status_of(method, sidecar.admin_url + path, headers) == 401, (
                method, path, headers)
        for raw in (b"Authorization: Bearer \xff\xfe", b"Cookie: llm_sidecar_admin=\xff"):
            answer = await asyncio.to_thread(
                exchange, port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n".encode() + raw
                + b"\r\nConnection: close\r\n\r\n")
            assert answer.status == 401, (method, path, raw)
            assert answer.json()["error"]["code"] == "invalid_api_key"
        ok = await status_of(method, sidecar.admin_url + path,
                             {"Authorization": f"Bearer {TOKEN}"})
        assert ok != 401, (method, path)


async def test_the_inspector_login_checks_the_token_too(start_sidecar: StartSidecar) -> None:
    """`/sidecar/ui?token=` with a wrong or undecodable token is a 401; the right one sets the
    cookie, and that cookie opens the admin routes."""
    sidecar = await start_sidecar({"admin": {"token": TOKEN}})
    for token in ("wrong", "%ff%fe", ""):
        assert await status_of("GET", f"{sidecar.url}/sidecar/ui?token={token}") == 401, token
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sidecar.url}/sidecar/ui?token={TOKEN}",
                            allow_redirects=False) as response:
            assert response.status == 303
            cookie = response.cookies["llm_sidecar_admin"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert await status_of("GET", sidecar.url + "/sidecar/config",
                               {"Cookie": f"llm_sidecar_admin={TOKEN}"}) == 200


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as in /proc/net/tcp) of sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hexport = local.partition(":")
            if state == "0A" and int(hexport, 16) == port:
                found.add(address)
    return found


def test_defaults_are_loopback() -> None:
    """The configuration's defaults bind the proxy and the admin listener to 127.0.0.1."""
    settings = Settings()
    assert settings.listen.host == "127.0.0.1"
    assert settings.admin.host == "127.0.0.1"


async def test_serve_listens_on_loopback_by_default(upstream: FakeUpstream,
                                                    tmp_path: Path) -> None:
    """`llm-sidecar serve` with no host given listens on 127.0.0.1 only, both listeners."""
    port, admin = free_port(), free_port()
    config = tmp_path / "c.yaml"
    config.write_text(f"admin: {{port: {admin}}}\nspend: {{fetch_prices: false}}\n")
    proc = await asyncio.create_subprocess_exec(
        BIN, "serve", "--port", str(port), "--config", str(config), "--upstream", upstream.url,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={"SIDECAR_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    try:
        await wait_ready(f"http://127.0.0.1:{admin}", returncode=lambda: proc.returncode)
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
        assert listening_addresses(admin) == {"0100007F"}
    finally:
        proc.terminate()
        await proc.wait()


async def test_refused_keys_are_counted_and_logged_once_per_interval(
        start_sidecar: StartSidecar) -> None:
    """Fifty refused requests on each scope write one `auth_refused` line each at once, one
    more with the count held back when the interval ends, never the token, and count 50 in
    llm_sidecar_auth_failures_total by scope and reason."""
    with captured_logs() as out:
        sidecar = await start_sidecar({"admin": {"token": TOKEN}, "auth": {
            "required": True, "keys": [{"name": "k", "token": "tok-S3NTINEL"}]}})
        async with aiohttp.ClientSession() as http:
            for i in range(50):
                bad = {"Authorization": "Bearer guess-S3NTINEL"} if i % 2 else {}
                async with http.post(sidecar.v1 + "/chat/completions", headers=bad,
                                     json={"model": "m"}) as response:
                    assert response.status == 401
                async with http.get(sidecar.url + "/sidecar/config", headers=bad) as response:
                    assert response.status == 401
        refusals = sidecar.app[DEPS].refusals
        early = [line for line in json_lines(out) if line["event"] == "auth_refused"]
        refusals.end("proxy")
        refusals.end("admin")
        lines = [line for line in json_lines(out) if line["event"] == "auth_refused"]
    assert len(early) == 2
    assert {(e["scope"], e["count"]) for e in early} == {("proxy", 1), ("admin", 1)}
    later = lines[2:]
    assert {(e["scope"], e["count"], e["missing"], e["invalid"]) for e in later} == {
        ("proxy", 49, 24, 25), ("admin", 49, 24, 25)}
    assert "S3NTINEL" not in out.getvalue()
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        text = await response.text()
    for scope in ("proxy", "admin"):
        for reason in ("missing", "invalid"):
            assert (f'llm_sidecar_auth_failures_total{{reason="{reason}",scope="{scope}"}} '
                    "25.0") in text, (scope, reason)


def secret_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted names of every SecretStr field in the settings tree."""
    found = set()
    for name, field in model.model_fields.items():
        text = repr(field.annotation)
        if "SecretStr" in text:
            found.add(prefix + name)
        for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
            for inner in (candidate, *getattr(candidate, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    found |= secret_fields(inner, f"{prefix}{name}.")
    return found


SECRET_CONFIG: dict[str, Any] = {
    "admin": {"token": "S3NTINEL-admin"},
    "upstream": {"api_key": "S3NTINEL-upstream",
                 "headers": {"Authorization": "Bearer S3NTINEL-h1", "X-Api-Key": "S3NTINEL-h2",
                             "x-honeycomb-team": "S3NTINEL-h3", "X-Title": "my-app"}},
    "providers": [{"name": "p", "base_url": "http://127.0.0.1:9/v1",
                   "api_key": "S3NTINEL-provider",
                   "headers": {"Cookie": "S3NTINEL-cookie", "OpenAI-Organization": "S3NTINEL"},
                   "proxy": "http://proxy:S3NTINEL-proxy@127.0.0.1:9"}],
    "auth": {"keys": [{"name": "team", "token": "S3NTINEL-local"}]},
    "cache": {"redis_url": "redis://default:S3NTINEL-redis-url@127.0.0.1:9/0",
              "redis_password": "S3NTINEL-redis"},
    "telemetry": {"exporters": [
        {"protocol": "http", "endpoint": "http://S3NTINEL-dsn@127.0.0.1:9",
         "headers": {"uptrace-dsn": "S3NTINEL-exp", "Authorization": "Basic S3NTINEL-b"}}]},
}
COVERED = {"admin.token", "upstream.api_key", "providers.api_key", "auth.keys.token",
           "cache.redis_password"}


async def test_config_masks_every_secret(start_sidecar: StartSidecar) -> None:
    """/sidecar/config never shows a SecretStr (each one in the settings is set here: a new
    one fails this test until it is), a header value other than the known plain ones, or
    credentials in a URL, while showing what is not secret."""
    assert secret_fields(Settings) == COVERED
    sidecar = await start_sidecar(SECRET_CONFIG)
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.url + "/sidecar/config",
            headers={"Authorization": "Bearer S3NTINEL-admin"}) as response:
        text = await response.text()
    assert response.status == 200
    assert "S3NTINEL" not in text
    view = orjson.loads(text)["config"]
    assert view["upstream"]["headers"]["X-Title"] == "my-app"
    assert view["providers"][0]["proxy"] == "http://proxy:***@127.0.0.1:9"
    assert view["telemetry"]["exporters"][0]["endpoint"] == "http://***@127.0.0.1:9"
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.url + "/sidecar/providers",
            headers={"Authorization": "Bearer S3NTINEL-admin"}) as response:
        assert "S3NTINEL" not in await response.text()


@pytest.fixture
async def served(start_sidecar: StartSidecar, upstream: FakeUpstream) -> RunningSidecar:
    return await start_sidecar({"admin": {"token": TOKEN}, "cache": {"backend": "off"}})


KINDS: dict[str, tuple[str, str, dict[str, str], Any]] = {
    "chat": ("POST", "/v1/chat/completions", {}, {"model": "m", "messages": []}),
    "stream": ("POST", "/v1/chat/completions", {}, {"model": "m", "stream": True}),
    "passthrough": ("GET", "/v1/files", {}, None),
    "upstream-error": ("POST", "/v1/embeddings", {}, {"model": "m", "input": "x"}),
    "invalid-json": ("POST", "/v1/chat/completions", {}, b"{"),
    "not-found": ("GET", "/nope", {}, None),
    "method-on-admin": ("PUT", "/sidecar/config", {}, None),
    "probe": ("GET", "/healthz", {}, None),
    "admin-401": ("GET", "/sidecar/config", {}, None),
    "admin": ("GET", "/sidecar/config", {"Authorization": f"Bearer {TOKEN}"}, None),
    "metrics": ("GET", "/metrics", {"Authorization": f"Bearer {TOKEN}"}, None),
    "inspector-page": ("GET", "/sidecar/ui", {"Authorization": f"Bearer {TOKEN}"}, None),
    "inspector-login": ("GET", f"/sidecar/ui?token={TOKEN}", {}, None),
    "openapi": ("GET", "/sidecar/openapi.json", {"Authorization": f"Bearer {TOKEN}"}, None),
}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_server_header_names_no_version(served: RunningSidecar, upstream: FakeUpstream,
                                              kind: str) -> None:
    """Every kind of response says `Server: llm-sidecar`, never a version: upstream answers
    (whose own Server header names aiohttp and Python versions), errors, admin, probes."""
    method, path, headers, body = KINDS[kind]
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a"])))
    upstream.script("/embeddings", Script(status=503, json={"error": {"message": "busy"}}))
    async with aiohttp.ClientSession() as http:
        data = body if isinstance(body, bytes | None) else orjson.dumps(body)
        async with http.request(method, served.url + path, headers=headers, data=data,
                                allow_redirects=False) as response:
            await response.read()
            assert response.headers.getall("Server") == ["llm-sidecar"], kind


async def test_malformed_requests_get_aiohttps_own_400_without_a_traceback(
        served: RunningSidecar) -> None:
    """A request aiohttp cannot parse (bad request line, a header with a bare CR, a header
    value that is not valid) is answered by aiohttp itself, before any route: a plain 400 that
    closes the connection, with no traceback. (Its Server header is aiohttp's:
    docs/security.md says why it is left so.)"""
    port = int(served.url.rsplit(":", 1)[1])
    for raw in (b"GET /v1/models HTTP/1.1 extra\r\n\r\n",
                b"GET /v1/models HTTP/1.1\r\nX-A: a\rInjected: 1\r\n\r\n",
                request("GET", "/v1/models", headers=[("X-A", "a\x00b")])):
        answer = await asyncio.to_thread(exchange, port, raw)
        assert answer.status == 400
        assert b"Traceback" not in answer.body
