"""Who can reach the admin routes, on the real `llm-sidecar serve` process (README, Security):
an admin listener on 0.0.0.0 (requests to 127.0.0.1 reach it as the pod network's would)
refuses every admin route without admin.token, serves them with it, and always serves the
probes; /metrics follows admin.metrics_require_token; a loopback listener without a token
serves everything as before; the opt-out serves everything and warns at start; and the same
rule holds for the main listener on 0.0.0.0 when there is no admin.port.

The routes tried are read from the router of the app the same config builds (the process runs
the same factory), so an admin route added later is tried here without editing this file.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web

from sidecar.app import create_admin_app, create_app
from sidecar.config import Settings
from tests.conftest import free_port, merge
from tests.e2e.test_cli import BIN
from tests.fakes.waits import wait_until

TOKEN = "adm-exposure-S3NTINEL"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PROBES = ("/healthz", "/readyz")
SAMPLE = {"asset": "app.js", "request_id": "0" * 32}  # values for the dynamic parts of paths
OPT_OUT = "admin.insecure_no_token_on_network"
# Every admin feature on: Prometheus and the inspector are on by default, spend's routes are
# always there; the demo upstream keeps the proxy's answers local.
BASE: dict[str, Any] = {"upstream": {"url": "demo"}, "spend": {"fetch_prices": False},
                        "telemetry": {"logs": {"format": "json"}}}


def admin_routes(app: web.Application, proxy: frozenset[str] = frozenset()
                 ) -> list[tuple[str, str]]:
    """(method, path) of every route on `app` that is not a probe, the proxy (/v1 and the
    `proxy` paths) or the catch-all 404, dynamic parts filled in: what the admin guard must
    cover."""
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if (route.method == "HEAD" or path in PROBES or path == "/{tail}"
                or path.startswith("/v1") or path in proxy):
            continue
        out.add((route.method, re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m[1]], path)))
    return sorted(out)


def route_templates(app: web.Application) -> set[str]:
    """'METHOD /path/{name}' of every admin route but /metrics, as the start log names them."""
    return {f"{r.method} {r.resource.canonical}" for r in app.router.routes()
            if r.resource is not None and r.method != "HEAD"
            and r.resource.canonical.startswith("/sidecar")}


OWN_PORT_APP = create_admin_app(create_app(Settings.model_validate(
    merge(BASE, {"admin": {"host": "0.0.0.0", "port": 4142}}))))
MAIN_APP = create_app(Settings.model_validate(merge(BASE, {"listen": {"host": "0.0.0.0"}})))
OWN_PORT_ROUTES = admin_routes(OWN_PORT_APP)
# On the main listener POST /sidecar/compare is the proxy's own route, authenticated like /v1
# (docs/compare.md); on an admin listener of its own it is an admin route, tried above.
MAIN_ROUTES = admin_routes(MAIN_APP, proxy=frozenset({"/sidecar/compare"}))


def ids(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


def but_metrics(routes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [r for r in routes if r[1] != "/metrics"]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = orjson.loads(self.body)["error"]
        return error


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> Answer:
    """One request to 127.0.0.1:`port` on a fresh connection; an event stream's body is not
    read (it never ends)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        streaming = (response.getheader("Content-Type") or "").startswith("text/event-stream")
        return Answer(response.status, response.headers, b"" if streaming else response.read())
    finally:
        connection.close()


@dataclass(frozen=True)
class Served:
    """One `llm-sidecar serve` process: its main port, the port of its admin routes, its log."""
    port: int
    admin_port: int
    log: Path

    def events(self, event: str) -> list[dict[str, Any]]:
        return [line for line in (orjson.loads(raw) for raw in self.log.read_bytes().splitlines()
                                  if raw.startswith(b"{")) if line.get("event") == event]


@contextmanager
def serving(directory: Path, admin: dict[str, Any], host: str | None = None
            ) -> Iterator[Served]:
    """Run `llm-sidecar serve` with `admin` settings (a free port replaces `port`) and the main
    listener on `host` (--host) when given, until the block ends."""
    port = free_port()
    admin = {**admin, "port": free_port()} if "port" in admin else admin
    directory.mkdir(parents=True)
    config = directory / "config.yaml"
    config.write_text(yaml.safe_dump(merge(BASE, {"admin": admin,
                                                  "state_dir": str(directory / "state")})))
    log = directory / "sidecar.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIDECAR_", "OTEL_"))}
    argv = [BIN, "serve", "--config", str(config), "--port", str(port),
            *(["--host", host] if host else [])]
    served = Served(port, admin.get("port", port), log)
    with log.open("wb") as out, subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                 env=env) as process:
        try:
            def ready() -> bool:
                assert process.poll() is None, f"llm-sidecar exited: {log.read_text()}"
                return _ready(served.admin_port)

            asyncio.run(wait_until(ready, "the sidecar answers its probes", 60))
            yield served
        finally:
            process.terminate()
            process.wait(timeout=40)


def _ready(port: int) -> bool:
    try:
        return call(port, "GET", "/readyz").status == 200
    except OSError:
        return False


# One process per configuration, shared by the tests of this module.

@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Admin listener on 0.0.0.0, no token."""
    with serving(tmp_path_factory.mktemp("x") / "locked", {"host": "0.0.0.0", "port": 0}) as s:
        yield s


@pytest.fixture(scope="module")
def with_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Admin listener on 0.0.0.0 with a token, /metrics behind it too."""
    with serving(tmp_path_factory.mktemp("x") / "token", {
            "host": "0.0.0.0", "port": 0, "token": TOKEN, "metrics_require_token": True}) as s:
        yield s


@pytest.fixture(scope="module")
def token_open_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Admin listener on 0.0.0.0 with a token, metrics_require_token left off."""
    with serving(tmp_path_factory.mktemp("x") / "token-metrics",
                 {"host": "0.0.0.0", "port": 0, "token": TOKEN}) as s:
        yield s


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Admin listener on 127.0.0.1, no token: a developer's machine."""
    with serving(tmp_path_factory.mktemp("x") / "loopback",
                 {"host": "127.0.0.1", "port": 0}) as s:
        yield s


@pytest.fixture(scope="module")
def opted_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Admin listener on 0.0.0.0, no token, the opt-out on."""
    with serving(tmp_path_factory.mktemp("x") / "opt-out", {
            "host": "0.0.0.0", "port": 0, "insecure_no_token_on_network": True}) as s:
        yield s


@pytest.fixture(scope="module")
def main_locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """No admin.port: the admin routes on the main listener, on 0.0.0.0, no token."""
    with serving(tmp_path_factory.mktemp("x") / "main-locked", {}, host="0.0.0.0") as s:
        yield s


@pytest.fixture(scope="module")
def main_with_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """No admin.port: the admin routes on the main listener, on 0.0.0.0, with a token."""
    with serving(tmp_path_factory.mktemp("x") / "main-token",
                 {"token": TOKEN, "metrics_require_token": True}, host="0.0.0.0") as s:
        yield s


EVERY_PROCESS = ["locked", "with_token", "token_open_metrics", "loopback", "opted_out",
                 "main_locked", "main_with_token"]


def refused_for_want_of_a_token(answer: Answer) -> None:
    assert answer.status == 403, answer.body
    error = answer.error()
    assert (error["code"], error["type"]) == ("admin_token_required", "permission_error")
    assert "admin.token" in error["message"] and OPT_OUT in error["message"]


def served(answer: Answer) -> None:
    """Answered by the route itself: not refused by the guard."""
    assert answer.status not in (401, 403), answer.body


def test_the_routes_tried_are_the_admin_routes() -> None:
    """The router lists every admin route (the inspector, spend, config, providers, privacy,
    cache purge, OpenAPI, /metrics) on either listener."""
    for routes in (OWN_PORT_ROUTES, MAIN_ROUTES):
        paths = {path for _, path in routes}
        assert {"/metrics", "/sidecar/usage", "/sidecar/budgets", "/sidecar/events",
                "/sidecar/requests", "/sidecar/config", "/sidecar/ui"} <= paths
        assert ("DELETE", "/sidecar/cache") in routes
        assert len(routes) >= 14, routes


# ---- an admin listener on 0.0.0.0 ----

@pytest.mark.parametrize("route", but_metrics(OWN_PORT_ROUTES), ids=ids)
def test_network_listener_without_token_refuses_admin_routes(locked: Served,
                                                             route: tuple[str, str]) -> None:
    """On 0.0.0.0 without admin.token, every admin route but /metrics is 403
    admin_token_required naming admin.token and the opt-out, whatever token is sent."""
    method, path = route
    refused_for_want_of_a_token(call(locked.admin_port, method, path))
    refused_for_want_of_a_token(call(locked.admin_port, method, path, BEARER))


def test_network_listener_without_token_logs_the_setting_to_set(locked: Served) -> None:
    """The start log says, as a warning, that the admin routes are refused, which ones, and
    names admin.token."""
    (line,) = locked.events("admin_routes_need_token")
    assert line["level"] == "warning"
    assert line["setting"] == "admin.token"
    assert set(line["refused"]) == route_templates(OWN_PORT_APP)
    assert OPT_OUT in line["note"]


@pytest.mark.parametrize("route", OWN_PORT_ROUTES, ids=ids)
def test_network_listener_with_token_needs_it(with_token: Served,
                                              route: tuple[str, str]) -> None:
    """With admin.token (and metrics_require_token), every admin route is 401 without it or
    with a wrong one, and served with it."""
    method, path = route
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = call(with_token.admin_port, method, path, headers)
        assert answer.status == 401, (path, headers)
        assert answer.error()["code"] == "invalid_api_key"
    served(call(with_token.admin_port, method, path, BEARER))


def test_the_page_login_works_on_the_network(with_token: Served, locked: Served) -> None:
    """/sidecar/ui?token= with the right token sets the cookie, which opens the admin routes;
    without a configured token the login is refused like the rest."""
    answer = call(with_token.admin_port, "GET", f"/sidecar/ui?token={TOKEN}")
    assert answer.status == 303
    cookie = answer.headers["Set-Cookie"].split(";")[0]
    assert cookie == f"llm_sidecar_admin={TOKEN}"
    page = call(with_token.admin_port, "GET", "/sidecar/ui", {"Cookie": cookie})
    assert page.status == 200 and b"<html" in page.body.lower()
    assert call(with_token.admin_port, "GET", "/sidecar/usage", {"Cookie": cookie}).status == 200
    refused_for_want_of_a_token(call(locked.admin_port, "GET", f"/sidecar/ui?token={TOKEN}"))


@pytest.mark.parametrize("process", EVERY_PROCESS)
def test_probes_never_need_a_token(request: pytest.FixtureRequest, process: str) -> None:
    """/healthz and /readyz answer 200 without a token in every configuration."""
    sidecar: Served = request.getfixturevalue(process)
    for path in PROBES:
        assert call(sidecar.admin_port, "GET", path).status == 200, path


METRICS: dict[str, tuple[str, dict[str, str], int]] = {
    "network, no token": ("locked", {}, 200),
    "network, token, metrics open": ("token_open_metrics", {}, 200),
    "network, token, metrics_require_token, none sent": ("with_token", {}, 401),
    "network, token, metrics_require_token, sent": ("with_token", BEARER, 200),
    "loopback, no token": ("loopback", {}, 200),
    "opt-out": ("opted_out", {}, 200),
    "main listener on the network, no token": ("main_locked", {}, 200),
}


@pytest.mark.parametrize("case", list(METRICS))
def test_metrics_follow_the_rule(request: pytest.FixtureRequest, case: str) -> None:
    """/metrics is scrapable without a token unless metrics_require_token is on (with a
    token): then it needs the token."""
    process, headers, status = METRICS[case]
    sidecar: Served = request.getfixturevalue(process)
    answer = call(sidecar.admin_port, "GET", "/metrics", headers)
    assert answer.status == status
    if status == 200:
        assert b"llm_sidecar_requests_total" in answer.body


def test_with_a_token_the_other_routes_stay_closed_while_metrics_is_open(
        token_open_metrics: Served) -> None:
    """metrics_require_token off opens /metrics only: the other admin routes still need the
    token."""
    assert call(token_open_metrics.admin_port, "GET", "/sidecar/usage").status == 401
    assert call(token_open_metrics.admin_port, "GET", "/sidecar/usage", BEARER).status == 200


# ---- loopback, and the opt-out ----

@pytest.mark.parametrize("route", OWN_PORT_ROUTES, ids=ids)
def test_loopback_listener_without_token_serves_everything(loopback: Served,
                                                           route: tuple[str, str]) -> None:
    """On 127.0.0.1 without a token every admin route is served, as on a developer's machine,
    and nothing is logged about it."""
    method, path = route
    served(call(loopback.admin_port, method, path))
    assert loopback.events("admin_routes_need_token") == []


def test_loopback_listener_serves_the_page(loopback: Served) -> None:
    """The inspector page opens on loopback without a token."""
    page = call(loopback.admin_port, "GET", "/sidecar/ui")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert call(loopback.admin_port, "GET", "/sidecar/usage").status == 200


@pytest.mark.parametrize("route", OWN_PORT_ROUTES, ids=ids)
def test_opt_out_serves_every_admin_route(opted_out: Served, route: tuple[str, str]) -> None:
    """admin.insecure_no_token_on_network serves every admin route on 0.0.0.0 without a
    token."""
    method, path = route
    served(call(opted_out.admin_port, method, path))


def test_opt_out_is_a_warning_naming_what_it_exposes(opted_out: Served) -> None:
    """The opt-out writes one warning at start naming the setting and every route it
    exposes."""
    (line,) = opted_out.events("admin_routes_open_without_token")
    assert line["level"] == "warning"
    assert line["setting"] == OPT_OUT
    assert set(line["exposes"]) == route_templates(OWN_PORT_APP)
    assert "purge the cache" in line["note"]
    assert opted_out.events("admin_routes_need_token") == []


# ---- no admin.port: the main listener on 0.0.0.0 decides ----

@pytest.mark.parametrize("route", but_metrics(MAIN_ROUTES), ids=ids)
def test_main_listener_on_the_network_without_token_refuses_admin_routes(
        main_locked: Served, route: tuple[str, str]) -> None:
    """Without admin.port, a main listener on 0.0.0.0 and no token: every admin route but
    /metrics is 403 admin_token_required."""
    method, path = route
    refused_for_want_of_a_token(call(main_locked.port, method, path))


def test_main_listener_on_the_network_still_proxies(main_locked: Served) -> None:
    """The proxy and the probes on that listener are not admin routes: served."""
    assert call(main_locked.port, "GET", "/v1/models").status == 200
    (line,) = main_locked.events("admin_routes_need_token")
    assert "admin.port" in line["note"]


@pytest.mark.parametrize("route", MAIN_ROUTES, ids=ids)
def test_main_listener_on_the_network_with_token_needs_it(main_with_token: Served,
                                                          route: tuple[str, str]) -> None:
    """Without admin.port, a main listener on 0.0.0.0 with a token: 401 without it, served
    with it."""
    method, path = route
    assert call(main_with_token.port, method, path).status == 401
    served(call(main_with_token.port, method, path, BEARER))
