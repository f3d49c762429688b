"""Probe and admin routes.

Probes (`/healthz`, `/readyz`) are on every listener and need no token: kubelets call them.
Admin routes (`/metrics`, `/sidecar/*`) need `Authorization: Bearer <admin.token>` when a token
is set (compared in constant time), and live on the admin listener when `admin.port` is set
(else on the main one). Every response here carries a request id and writes one access line.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from sidecar.admin import inspector, spend
from sidecar.admin.cache import purge_cache
from sidecar.admin.config_view import public_config
from sidecar.admin.guard import guarded
from sidecar.admin.openapi import openapi
from sidecar.admin.privacy_view import privacy
from sidecar.admin.providers import providers
from sidecar.admin.shadow import shadow_report
from sidecar.call import new_request_id
from sidecar.compare.route import CompareRoute
from sidecar.config.schema import Settings
from sidecar.deps import DEPS, readiness_problems
from sidecar.errors import JSON_CONTENT_TYPE
from sidecar.headers import REQUEST_ID_HEADER, SERVER
from sidecar.pipeline import PIPELINES
from sidecar.runtime import RUNTIME
from sidecar.telemetry.access import admin_line

__all__ = ["add_admin_routes", "add_probe_routes", "json_response", "logged"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PROBES = frozenset({"/healthz", "/readyz"})


def add_probe_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", logged(healthz))
    app.router.add_get("/readyz", logged(readyz))


def add_admin_routes(app: web.Application, settings: Settings) -> None:
    token = settings.admin.token
    guard = guarded(token.get_secret_value()) if token else (lambda handler: handler)
    if settings.telemetry.prometheus:
        app.router.add_get("/metrics", logged(guard(metrics)))
    app.router.add_get("/sidecar/config", logged(guard(config)))
    app.router.add_get("/sidecar/providers", logged(guard(providers)))
    app.router.add_delete("/sidecar/cache", logged(guard(purge_cache)))
    if settings.admin.ui:
        app.router.add_get("/sidecar/ui", logged(inspector.page_handler(guard)))
        app.router.add_get("/sidecar/ui/{asset}", logged(guard(inspector.asset)))
        app.router.add_get("/sidecar/events", logged(guard(inspector.events)))
        app.router.add_get("/sidecar/requests", logged(guard(inspector.recent)))
        app.router.add_get("/sidecar/requests/{request_id}", logged(guard(inspector.detail)))
        app.router.add_get("/sidecar/stats", logged(guard(inspector.stats)))
    app.router.add_get("/sidecar/privacy", logged(guard(privacy)))
    app.router.add_get("/sidecar/usage", logged(guard(spend.usage)))
    app.router.add_get("/sidecar/budgets", logged(guard(spend.budgets)))
    app.router.add_get("/sidecar/openapi.json", logged(guard(openapi)))
    app.router.add_get("/sidecar/shadow", logged(guard(shadow_report)))
    if settings.admin.port is not None:
        # The inspector's Compare view on the admin listener: the admin guard, and then the
        # local key rule of the proxy listener's route (the admin token alone never calls
        # models). On the main listener the proxy's own route serves the page.
        app.router.add_post("/sidecar/compare", logged(guard(CompareRoute(app[DEPS]))))


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
    return json_response({"config": public_config(request.config_dict[DEPS].settings),
                          "stages": request.config_dict[PIPELINES].stage_names})
