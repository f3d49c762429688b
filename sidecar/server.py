"""`llm-sidecar serve`: run the listeners until SIGTERM/SIGINT, then drain and exit 0.

SIGHUP reloads the configuration file (sidecar/live.py), and so does a change of its content
when `reload.watch` is on (config/watch.py).

On a signal the sidecar stops accepting connections, reports not-ready, lets in-flight requests
and streams finish for up to `listen.shutdown_grace_s`, cancels what is left (the sidecar does
this itself: aiohttp alone would give such handlers a second grace period), then closes the
upstream pool. The admin listener stays up during the drain so probes can see it. The start
log warns when the admin routes are refused for want of `admin.token` (naming the setting) and
when `admin.insecure_no_token_on_network` serves them to the network without one.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

import structlog
from aiohttp import web

from sidecar import __version__
from sidecar.admin import ADMIN
from sidecar.app import create_admin_app, create_app, make_runner
from sidecar.config.schema import Settings
from sidecar.config.watch import watch_file
from sidecar.deps import DEPS
from sidecar.live import LIVE, Load
from sidecar.privacy.policy import startup_fields
from sidecar.runtime import RUNTIME
from sidecar.upstream.demo import start_demo

log = structlog.get_logger("sidecar.server")


async def serve(settings: Settings, load: Load | None = None,
                config_path: Path | None = None) -> int:
    """`load` reads the configuration again (a live reload); `config_path` is the file to
    watch, when there is one."""
    began = time.monotonic()
    demo: web.AppRunner | None = None
    demo_url = ""
    if settings.upstream.url == "demo":
        demo, demo_url = await start_demo()
        settings = _demo(settings, demo_url)
        log.info("demo_upstream", url=demo_url,
                 note="offline demo upstream: echo answers, no key")
    if load is not None and demo_url:
        read = load
        load = lambda: _demo(read(), demo_url)  # noqa: E731  (the same demo after a reload)

    grace = settings.listen.shutdown_grace_s
    app = create_app(settings, load=load)
    # The sidecar cuts what is still running at `grace` (cut_in_flight); aiohttp's own deadline
    # must come after that, or both act at once on the same handler.
    aiohttp_grace = grace + 1.0
    runners = [make_runner(app, shutdown_timeout=aiohttp_grace)]
    listeners = [(settings.listen.host, settings.listen.port)]
    admin = app
    if settings.admin.port is not None:
        admin = create_admin_app(app)
        runners.append(make_runner(admin, shutdown_timeout=aiohttp_grace))
        listeners.append((settings.admin.host, settings.admin.port))
    try:
        for runner, (host, port) in zip(runners, listeners, strict=True):
            await runner.setup()
            await listen(runner, host, port)
    except OSError as exc:
        log.error("listen_failed", error=str(exc))
        for runner in [*runners, *([demo] if demo else [])]:
            await runner.cleanup()
        return 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    live = app[LIVE]
    background: list[asyncio.Task[None]] = []
    reloader = live.reloader
    if reloader is not None:
        hup = reloader.reload
        loop.add_signal_handler(signal.SIGHUP, lambda: background.append(
            asyncio.ensure_future(_quietly(hup("SIGHUP")))))
        if config_path is not None and settings.reload.watch:
            deps = app[DEPS]
            background.append(asyncio.ensure_future(watch_file(
                config_path, lambda: deps.settings.reload.poll_s,
                lambda: hup("file watch"))))
    log.info("listening", version=__version__, proxy=f"http://{listeners[0][0]}:{listeners[0][1]}/v1",
             admin=f"http://{listeners[-1][0]}:{listeners[-1][1]}",
             upstream=settings.upstream.url, stages=live.pipelines.stage_names,
             startup_ms=round((time.monotonic() - began) * 1000, 1),
             reload=("off" if reloader is None else "SIGHUP, POST /sidecar/reload" + (
                 f", watching {config_path}" if config_path and settings.reload.watch
                 else "")))
    log.info("privacy", **startup_fields(settings))
    if (notice := admin[ADMIN].start_notice()) is not None:
        log.warning(notice.event, **notice.fields)
    await stop.wait()
    if reloader is not None:
        loop.remove_signal_handler(signal.SIGHUP)
    for task in background:
        task.cancel()

    runtime = app[RUNTIME]
    runtime.draining = True
    log.info("draining", grace_s=grace, in_flight=len(runtime.in_flight))
    cutoff = loop.call_later(grace, runtime.cut_in_flight)
    for runner in runners:  # the main listener first: the admin one reports the drain meanwhile
        await runner.cleanup()
    cutoff.cancel()
    if demo is not None:
        await demo.cleanup()
    # From here the process only exits. Closing the loop removes its signal handlers, and a
    # repeated SIGTERM during interpreter teardown would then kill it (exit -15, not 0).
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
        signal.signal(signum, signal.SIG_IGN)
    log.info("stopped")
    return 0


async def listen(runner: web.AppRunner, host: str, port: int) -> None:
    """Listen on host:port. `::` listens on IPv6 *and* IPv4 (one dual-stack socket): asyncio
    alone would make it IPv6-only, and IPv4 probes on a dual-stack pod would miss it."""
    if host not in ("::", "[::]"):
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        return
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
    except OSError:
        sock.close()
        raise
    await web.SockSite(runner, sock).start()


def _demo(settings: Settings, url: str) -> Settings:
    if settings.upstream.url != "demo":
        return settings
    return settings.model_copy(
        update={"upstream": settings.upstream.model_copy(update={"url": url})})


async def _quietly(reload: Awaitable[object]) -> None:
    try:
        await reload
    except Exception:
        log.exception("config_reload_failed")


def run(settings: Settings, load: Load | None = None, config_path: Path | None = None) -> int:
    """Run `serve` on uvloop when it is installed."""
    loop_factory = None
    if sys.platform != "win32":
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve(settings, load, config_path))
