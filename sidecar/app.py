"""`create_app(settings)`: a pure factory for the proxy's aiohttp application.

The Resources in `Deps` open, in order, in one `cleanup_ctx` step, so nothing happens before the
app starts, and close in reverse after the last in-flight request. Serve it with `make_runner`:
the proxy relies on the runner's settings (request bodies left encoded for passthrough, handlers
cancelled when their client disconnects). aiohttp's own access logger is off: proxied requests
write their line from the handler's finisher, admin and probe requests from the admin wrapper.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import structlog
from aiohttp import web

from sidecar.admin import add_admin_routes, add_probe_routes, logged
from sidecar.call import Stage
from sidecar.config.schema import Settings
from sidecar.deps import DEPS, Deps
from sidecar.endpoints import ENDPOINTS
from sidecar.handler import ProxyHandler, not_found
from sidecar.live import LIVE, Live, Load, Reloader
from sidecar.pipeline import build_pipeline
from sidecar.pipeline.cache import STATUS_HEADER as CACHE_STATUS_HEADER
from sidecar.runtime import RUNTIME, Runtime
from sidecar.telemetry.access import AccessRecord
from sidecar.upstream.clock import Clock

_log = structlog.get_logger("sidecar.app")


def create_app(settings: Settings, *, outer_stages: Sequence[Stage] = (),
               clock: Clock | None = None, load: Load | None = None) -> web.Application:
    """The main listener: /v1 proxy, probes, and the admin routes unless admin.port is set.
    `outer_stages` run first on every proxied request (for embedders and tests); `clock` is
    routing's time and chance (tests inject one); `load` reads the configuration again for a
    live reload (None: this app cannot reload; sidecar/live.py)."""
    deps = Deps.build(settings, clock)
    runtime = Runtime()
    deps.metrics.in_flight_requests.set_function(lambda: len(runtime.in_flight))

    app = web.Application()
    app[DEPS] = deps
    app[RUNTIME] = runtime
    live = app[LIVE] = Live(build_pipeline(deps, outer_stages), outer=outer_stages)
    if load is not None:
        live.reloader = Reloader(app, load)
    app.cleanup_ctx.append(_resources)
    app.on_shutdown.append(_end_streams)

    handler = ProxyHandler(live, runtime, AccessRecord(deps.metrics, deps.access),
                           model_headers={} if deps.cache else {CACHE_STATUS_HEADER: "OFF"})
    for endpoint, row in ENDPOINTS.items():
        app.router.add_post(f"/v1/{endpoint}",
                            handler.model_endpoint if row.billed else handler.free_endpoint)
    app.router.add_route("*", "/v1/{tail:.*}", handler.passthrough)
    add_probe_routes(app)
    if settings.admin.port is None:
        add_admin_routes(app, settings)
    app.router.add_route("*", "/{tail:.*}", logged(not_found))
    return app


def create_admin_app(main: web.Application) -> web.Application:
    """The admin listener (when admin.port is set): probes and admin routes, never /v1."""
    app = web.Application()
    app[DEPS], app[RUNTIME], app[LIVE] = main[DEPS], main[RUNTIME], main[LIVE]
    add_probe_routes(app)
    add_admin_routes(app, main[DEPS].settings)
    app.router.add_route("*", "/{tail:.*}", logged(not_found))
    return app


def make_runner(app: web.Application, *, shutdown_timeout: float = 20.0) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log=None,  # see the module docstring
        handler_cancellation=True,  # a client that disconnects cancels its upstream request
        auto_decompress=False,  # passthrough bodies go upstream exactly as the client encoded them
        shutdown_timeout=shutdown_timeout,  # SIGTERM: in-flight requests get this long to finish
        keepalive_timeout=75,
    )


async def _end_streams(app: web.Application) -> None:
    """Open inspector pages hold a stream each: end them when shutdown begins, so the drain
    waits only for proxied requests."""
    if (inspector := app[DEPS].inspector) is not None:
        await inspector.close()


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """Open every resource in order; close the opened ones in reverse, each on its own."""
    opened = []
    try:
        for resource in app[DEPS].resources():
            await resource.start()
            opened.append(resource)
        yield
        opened = app[DEPS].resources()  # a live reload may have replaced some (and started them)
    finally:
        if (reloader := app[LIVE].reloader) is not None:
            await reloader.close()  # what reloads retired, once their requests are done
        for resource in reversed(opened):
            try:
                await resource.close()
            except Exception:
                _log.exception("resource_close_failed", resource=resource.name)
