"""Probes, admin routes, the admin token, and the separate admin listener."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from sidecar.deps import DEPS
from sidecar.runtime import RUNTIME
from tests.conftest import Profile, RunningSidecar, StartSidecar, free_port
from tests.fakes.profiles import ALL

PROFILES = ALL  # each test runs in the module, defaults and everything profiles


async def test_healthz(sidecar: RunningSidecar, http: aiohttp.ClientSession) -> None:
    """/healthz answers 200 {"status":"ok"} while the process serves."""
    async with http.get(sidecar.url + "/healthz") as response:
        assert response.status == 200
        assert orjson.loads(await response.read()) == {"status": "ok"}


async def test_readyz_ready_then_draining(sidecar: RunningSidecar,
                                          http: aiohttp.ClientSession) -> None:
    """/readyz is 200 once the upstream pool is open, 503 with the reason while draining."""
    async with http.get(sidecar.url + "/readyz") as response:
        assert response.status == 200
    sidecar.app[RUNTIME].draining = True
    async with http.get(sidecar.url + "/readyz") as response:
        assert response.status == 503
        body = orjson.loads(await response.read())
    assert body == {"status": "unavailable",
                    "reasons": ["draining: the sidecar is shutting down"]}


async def test_readyz_reports_a_closed_pool(sidecar: RunningSidecar,
                                            http: aiohttp.ClientSession) -> None:
    """If the upstream pool is not usable, /readyz says so."""
    await sidecar.app[DEPS].upstream.close()
    async with http.get(sidecar.url + "/readyz") as response:
        assert response.status == 503
        assert "upstream connection pool is not open" in (await response.text())


async def test_config_route_masks_secrets(start_sidecar: StartSidecar,
                                          http: aiohttp.ClientSession, profile: Profile) -> None:
    """/sidecar/config shows the effective config with every secret as ***."""
    sidecar = await start_sidecar({
        "upstream": {"api_key": "sk-upstream-S3NTINEL"},
        "auth": {"keys": [{"name": "a", "token": "tok-S3NTINEL"}]}})
    async with http.get(sidecar.url + "/sidecar/config") as response:
        text = await response.text()
    assert "S3NTINEL" not in text
    view = orjson.loads(text)
    assert view["config"]["upstream"]["api_key"] == "***"
    routed = ["privacy", "fallback"] if profile.name == "everything" else []  # what it adds
    assert view["stages"] == ["telemetry", "inspect", "read_body", *routed, "spend", "cache",
                              "answer", "route"]


async def test_metrics_count_requests(sidecar: RunningSidecar,
                                      http: aiohttp.ClientSession) -> None:
    """/metrics is Prometheus text counting proxied requests by endpoint and status."""
    await http.post(sidecar.v1 + "/chat/completions", json={"model": "m"})
    await http.post(sidecar.v1 + "/chat/completions", data=b"{")
    await http.get(sidecar.v1 + "/models")
    async with http.get(sidecar.url + "/metrics") as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert 'llm_sidecar_requests_total{endpoint="chat/completions",status="200"} 1.0' in text
    assert 'llm_sidecar_requests_total{endpoint="chat/completions",status="400"} 1.0' in text
    assert 'llm_sidecar_requests_total{endpoint="passthrough",status="200"} 1.0' in text
    assert "llm_sidecar_request_duration_seconds_bucket" in text


@pytest.mark.parametrize("metrics_require_token", [False, True])
async def test_admin_token_guards_admin_routes_only(start_sidecar: StartSidecar,
                                                    http: aiohttp.ClientSession,
                                                    metrics_require_token: bool) -> None:
    """With admin.token set, /sidecar/* needs it, /metrics only with metrics_require_token;
    probes and /v1 never do."""
    sidecar = await start_sidecar({"admin": {
        "token": "adm-secret", "metrics_require_token": metrics_require_token}})
    guarded = ["/sidecar/config", *(["/metrics"] if metrics_require_token else [])]
    for path in guarded:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with http.get(sidecar.url + path, headers=headers) as response:
                assert response.status == 401
                error = orjson.loads(await response.read())["error"]
                assert error["code"] == "invalid_api_key"
                assert "adm-secret" not in error["message"]
        async with http.get(sidecar.url + path,
                            headers={"Authorization": "Bearer adm-secret"}) as response:
            assert response.status == 200
    open_paths = ["/healthz", "/readyz", "/v1/models",
                  *([] if metrics_require_token else ["/metrics"])]
    for path in open_paths:
        async with http.get(sidecar.url + path) as response:
            assert response.status == 200, path


async def test_admin_listener_is_separate(start_sidecar: StartSidecar,
                                          http: aiohttp.ClientSession) -> None:
    """With admin.port set, admin routes move there and the proxy stays off it."""
    sidecar = await start_sidecar({"admin": {"port": free_port()}})
    expected = {
        (sidecar.admin_url, "/metrics"): 200, (sidecar.admin_url, "/sidecar/config"): 200,
        (sidecar.admin_url, "/healthz"): 200, (sidecar.admin_url, "/v1/models"): 404,
        (sidecar.url, "/metrics"): 404, (sidecar.url, "/sidecar/config"): 404,
        (sidecar.url, "/healthz"): 200, (sidecar.url, "/v1/models"): 200,
    }
    for (base, path), status in expected.items():
        async with http.get(base + path) as response:
            assert response.status == status, base + path
