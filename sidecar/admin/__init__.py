"""Probe and admin routes.

Probes (`/healthz`, `/readyz`) are on every listener and need no token: kubelets call them.
Admin routes (`/metrics`, `/sidecar/*`) need `Authorization: Bearer <admin.token>` when a token
is set, and live on the admin listener when `admin.port` is set (else on the main one).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from sidecar.admin.config_view import public_config
from sidecar.call import new_request_id
from sidecar.errors import JSON_CONTENT_TYPE, InvalidApiKey
from sidecar.relay import REQUEST_ID_HEADER, error_response
from sidecar.runtime import RUNTIME, Runtime

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_probe_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", _stamped(healthz))
    app.router.add_get("/readyz", _stamped(readyz))


def add_admin_routes(app: web.Application, runtime: Runtime) -> None:
    token = runtime.settings.admin.token
    guard = _guarded(token.get_secret_value()) if token else (lambda handler: handler)
    app.router.add_get("/metrics", _stamped(guard(metrics)))
    app.router.add_get("/sidecar/config", _stamped(guard(config)))


def _stamped(handler: Handler) -> Handler:
    """Every response carries a request id, admin ones too (the proxy's come from the relay)."""
    async def stamped(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        response.headers[REQUEST_ID_HEADER] = new_request_id()
        return response
    return stamped


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status,
                        content_type=JSON_CONTENT_TYPE)


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problems = request.config_dict[RUNTIME].readiness_problems()
    if problems:
        return _json({"status": "unavailable", "reasons": problems}, status=503)
    return _json({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    body = request.config_dict[RUNTIME].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; "
                                                            "charset=utf-8"})


async def config(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    return _json({"config": public_config(runtime.settings), "stages": runtime.stage_names})


def _guarded(expected: str) -> Callable[[Handler], Handler]:
    expected_bytes = expected.encode()

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    token.strip().encode(), expected_bytes):
                return error_response(InvalidApiKey(
                    "This admin route needs 'Authorization: Bearer <admin.token>'."))
            return await handler(request)
        return guarded

    return wrap
