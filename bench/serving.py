"""Serve an aiohttp app the way the sidecar does (uvloop, AppRunner) until SIGTERM or SIGINT.

Shared by the fake upstream and the floor relay so that both run on the same event loop and
server stack as `llm-sidecar serve` (sidecar/server.py), with the access log off.
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web


async def _serve(app: web.Application, host: str, port: int) -> int:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def serve(app: web.Application, host: str, port: int) -> int:
    """Run until a signal; exit status 0 after a clean stop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of the sidecar
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_serve(app, host, port))
