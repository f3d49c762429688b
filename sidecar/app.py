"""`create_app(settings)`: a pure factory for the proxy's aiohttp application.

Resources with a lifetime (the upstream pool) open and close in `cleanup_ctx`, so nothing
happens before the app starts and everything is released after the last in-flight request.
Serve it with `make_runner`: the proxy relies on the runner's settings (request bodies left
encoded for passthrough, handlers cancelled when their client disconnects, the access log).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.admin import add_admin_routes, add_probe_routes
from sidecar.config.schema import Settings
from sidecar.handler import MODEL_ENDPOINTS, ProxyHandler, not_found
from sidecar.pipeline import build_pipeline
from sidecar.runtime import RUNTIME, Runtime
from sidecar.telemetry.access import AccessLog
from sidecar.telemetry.logging import AccessWriter
from sidecar.telemetry.metrics import Metrics
from sidecar.upstream.client import UpstreamClient


def create_app(settings: Settings) -> web.Application:
    """The main listener: /v1 proxy, probes, and the admin routes unless admin.port is set."""
    upstream = UpstreamClient(settings.upstream)
    pipelines = build_pipeline(settings, upstream)
    runtime = Runtime(settings, upstream, Metrics(), AccessWriter(settings.telemetry.logs),
                      stage_names=pipelines.stage_names)
    runtime.readiness_checks.append(
        lambda: None if upstream.usable else "upstream connection pool is not open")

    app = web.Application()
    app[RUNTIME] = runtime
    app.cleanup_ctx.append(_upstream_pool)
    app.on_cleanup.append(_flush_access_log)

    handler = ProxyHandler(pipelines, runtime, max_body_bytes=settings.listen.max_body_bytes)
    for endpoint in MODEL_ENDPOINTS:
        app.router.add_post(f"/v1/{endpoint}", handler.model_endpoint)
    app.router.add_route("*", "/v1/{tail:.*}", handler.passthrough)
    add_probe_routes(app)
    if settings.admin.port is None:
        add_admin_routes(app, runtime)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def create_admin_app(main: web.Application) -> web.Application:
    """The admin listener (when admin.port is set): probes and admin routes, never /v1."""
    runtime = main[RUNTIME]
    app = web.Application()
    app[RUNTIME] = runtime
    add_probe_routes(app)
    add_admin_routes(app, runtime)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def make_runner(app: web.Application, *, shutdown_timeout: float = 20.0) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log_class=AccessLog,
        handler_cancellation=True,  # a client that disconnects cancels its upstream request
        auto_decompress=False,  # passthrough bodies go upstream exactly as the client encoded them
        shutdown_timeout=shutdown_timeout,  # SIGTERM: in-flight requests get this long to finish
        keepalive_timeout=75,
    )


async def _upstream_pool(app: web.Application) -> AsyncIterator[None]:
    upstream = app[RUNTIME].upstream
    await upstream.start()
    yield
    await upstream.close()


async def _flush_access_log(app: web.Application) -> None:
    app[RUNTIME].access.flush()

