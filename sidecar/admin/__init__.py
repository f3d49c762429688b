"""Probe and admin routes.

Probes (`/healthz`, `/readyz`) are on every listener and need no token: kubelets call them.
Admin routes (`/metrics`, `/sidecar/*`) live on the admin listener when `admin.port` is set
(else on the main one), and each is registered through `AdminRoutes.add`, which puts it behind
the admin guard: who may call it (a token, loopback, the opt-out) is decided there, in one
place (guard.py). Every response here carries a request id and writes one access line.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from sidecar.admin import inspector, spend
from sidecar.admin.cache import purge_cache
from sidecar.admin.config_view import public_config
from sidecar.admin.guard import AdminGuard, Kind, Notice
from sidecar.admin.openapi import openapi
from sidecar.admin.privacy_view import privacy
from sidecar.admin.providers import providers
from sidecar.admin.reload import reload_config
from sidecar.call import new_request_id
from sidecar.config.schema import Settings
from sidecar.deps import DEPS, readiness_problems
from sidecar.errors import JSON_CONTENT_TYPE
from sidecar.headers import REQUEST_ID_HEADER, SERVER
from sidecar.live import LIVE
from sidecar.runtime import RUNTIME
from sidecar.telemetry.access import admin_line

__all__ = ["ADMIN", "AdminRoutes", "add_admin_routes", "add_probe_routes", "json_response",
           "logged"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PROBES = frozenset({"/healthz", "/readyz"})


def add_probe_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", logged(healthz))
    app.router.add_get("/readyz", logged(readyz))


@dataclass(slots=True)
class AdminRoutes:
    """The admin routes of one listener: `add` is the only way one is registered, and it puts
    the route behind the guard."""

    app: web.Application
    guard: AdminGuard
    registered: list[tuple[str, str, Kind]] = field(default_factory=list)

    def add(self, method: str, path: str, handler: Handler, kind: Kind = "admin") -> None:
        wrapped = logged(self.guard.wrap(handler, kind))
        if method == "GET":
            self.app.router.add_get(path, wrapped)  # HEAD too, behind the same guard
        else:
            self.app.router.add_route(method, path, wrapped)
        self.registered.append((method, path, kind))

    def start_notice(self) -> Notice | None:
        """What the start log says about who can reach these routes (server.py logs it)."""
        return self.guard.notice(self.registered)


ADMIN = web.AppKey("admin", AdminRoutes)


def add_admin_routes(app: web.Application, settings: Settings) -> None:
    admin = app[ADMIN] = AdminRoutes(app, AdminGuard.of(settings))
    if settings.telemetry.prometheus:
        admin.add("GET", "/metrics", metrics, kind="metrics")
    admin.add("GET", "/sidecar/config", config)
    admin.add("GET", "/sidecar/providers", providers)
    admin.add("DELETE", "/sidecar/cache", purge_cache)
    if settings.admin.ui:
        admin.add("GET", "/sidecar/ui", inspector.page, kind="page")
        admin.add("GET", "/sidecar/ui/{asset}", inspector.asset)
        admin.add("GET", "/sidecar/events", inspector.events)
        admin.add("GET", "/sidecar/requests", inspector.recent)
        admin.add("GET", "/sidecar/requests/{request_id}", inspector.detail)
        admin.add("GET", "/sidecar/stats", inspector.stats)
    admin.add("GET", "/sidecar/privacy", privacy)
    admin.add("GET", "/sidecar/usage", spend.usage)
    admin.add("GET", "/sidecar/budgets", spend.budgets)
    admin.add("GET", "/sidecar/openapi.json", openapi)
    admin.add("POST", "/sidecar/reload", reload_config)


def logged(handler: Handler) -> Handler:
    """Stamp the request id and Server header, and write the access line."""
    async def stamped(request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        response = await handler(request)
        request_id = response.headers.setdefault(REQUEST_ID_HEADER, new_request_id())
        response.headers["Server"] = SERVER
        body = getattr(response, "body", None)
        admin_line(request.config_dict[DEPS].access, request_id=request_id,
                   method=request.method, path=request.path, status=response.status,
                   seconds=time.monotonic() - started,
                   bytes_out=len(body) if isinstance(body, bytes) else None,
                   probe=request.path in _PROBES)
        return response
    return stamped


def json_response(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status,
                        content_type=JSON_CONTENT_TYPE)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problems = readiness_problems(request.config_dict[DEPS],
                                 request.config_dict[RUNTIME].draining)
    if problems:
        return json_response({"status": "unavailable", "reasons": problems}, status=503)
    return json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    body = request.config_dict[DEPS].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; "
                                                            "charset=utf-8"})


async def config(request: web.Request) -> web.Response:
    """The running configuration (secrets masked), its stages, and its version: when it was
    loaded, the last reload's error, the settings a reload changed that need a restart."""
    live = request.config_dict[LIVE]
    return json_response({"config": public_config(request.config_dict[DEPS].settings),
                          "stages": live.pipelines.stage_names, **live.view()})
