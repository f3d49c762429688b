"""Egress through a proxy: a real tiny proxy on loopback (CONNECT tunnels and forwarding), the
per-provider `proxy` setting, and HTTPS_PROXY/HTTP_PROXY/NO_PROXY resolved once at start."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme

from tests.conftest import StartSidecar, free_port
from tests.fakes.proxy import FakeProxy
from tests.fakes.upstream import FakeUpstream
from tests.fakes.waits import wait_ready

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
              "ALL_PROXY", "all_proxy")

# The cache off for every sidecar here (start_sidecar merges SIDECAR_BASE under each
# config): each request must go out through the proxy.
SIDECAR_BASE = {"cache": {"backend": "off"}}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
async def proxy(upstream: FakeUpstream) -> AsyncIterator[FakeProxy]:
    """A proxy that alone knows where `upstream.test` is: the fake upstream."""
    port = int(upstream.url.rsplit(":", 1)[1])
    fake = FakeProxy({"upstream.test": ("127.0.0.1", port)})
    await fake.start()
    yield fake
    await fake.close()


def via_test_host(upstream: FakeUpstream) -> str:
    return "http://upstream.test:" + upstream.url.rsplit(":", 1)[1]


async def post(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(
            url + "/v1/chat/completions", json=CHAT) as response:
        return response.status, await response.text()


async def test_provider_proxy_setting(start_sidecar: StartSidecar, upstream: FakeUpstream,
                                      proxy: FakeProxy, clean_env: pytest.MonkeyPatch) -> None:
    """A provider's `proxy` sends its requests through that proxy."""
    sidecar = await start_sidecar({"providers": [
        {"name": "p", "base_url": via_test_host(upstream), "proxy": proxy.url}]})
    status, _ = await post(sidecar.url)
    assert status == 200
    assert proxy.seen == [f"POST {via_test_host(upstream)}/chat/completions"]


async def test_env_proxy_is_resolved_once_at_start(start_sidecar: StartSidecar,
                                                   upstream: FakeUpstream, proxy: FakeProxy,
                                                   clean_env: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY at start-up is used; changing the environment later changes nothing."""
    clean_env.setenv("HTTP_PROXY", proxy.url)
    sidecar = await start_sidecar({"upstream": {"url": via_test_host(upstream)}})
    clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nobody listens
    clean_env.setenv("NO_PROXY", "upstream.test")
    for _ in range(2):
        status, _ = await post(sidecar.url)
        assert status == 200
    assert len(proxy.seen) == 2


async def test_no_proxy_and_loopback_go_direct(start_sidecar: StartSidecar,
                                               upstream: FakeUpstream, proxy: FakeProxy,
                                               clean_env: pytest.MonkeyPatch) -> None:
    """NO_PROXY exempts its hosts (here: a name only the proxy could resolve, so the request
    fails), and a loopback upstream never uses an environment proxy."""
    clean_env.setenv("http_proxy", proxy.url)
    clean_env.setenv("no_proxy", "localhost,.test")
    sidecar = await start_sidecar({"providers": [
        {"name": "named", "base_url": via_test_host(upstream), "models": ["named"]},
        {"name": "loopback", "base_url": upstream.url}], "retry": {"attempts": 1}})
    async with aiohttp.ClientSession() as http:
        async with http.post(sidecar.v1 + "/chat/completions",
                             json={**CHAT, "model": "named"}) as response:
            assert response.status == 502
            assert "Cannot connect to upstream named" in (await response.text())
        async with http.post(sidecar.v1 + "/chat/completions", json=CHAT) as response:
            assert response.status == 200
    assert proxy.seen == []


async def test_https_through_a_connect_tunnel(tmp_path: Path, upstream: FakeUpstream,
                                              clean_env: pytest.MonkeyPatch) -> None:
    """The real command with HTTPS_PROXY reaches an https provider through a CONNECT tunnel,
    verifying the provider's certificate end to end."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("upstream.test").configure_cert(server_context)
    secure = FakeUpstream(ssl_context=server_context)
    await secure.start()
    tunnel = FakeProxy({"upstream.test": ("127.0.0.1", int(secure.url.rsplit(":", 1)[1]))})
    await tunnel.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    config = tmp_path / "sidecar.yaml"
    config.write_text("providers:\n  - {name: secure, base_url: \"https://upstream.test\"}\n")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "serve", "--config", str(config), "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "HTTPS_PROXY": tunnel.url, "SSL_CERT_FILE": str(ca_file),
             "SIDECAR_STATE_DIR": str(tmp_path)})
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, returncode=lambda: process.returncode)
        status, text = await post(url)
    finally:
        process.terminate()
        await process.wait()
        await tunnel.close()
        await secure.close()
    assert status == 200, text
    assert tunnel.seen == ["CONNECT upstream.test:443"]
    assert secure.last.path == "/chat/completions"
