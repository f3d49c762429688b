"""Listening addresses: `::` serves IPv4 and IPv6 clients alike (one dual-stack socket)."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from aiohttp import web

from sidecar.server import listen
from tests.conftest import free_port


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
async def test_double_colon_listens_on_ipv4_and_ipv6() -> None:
    """A listener on `::` answers on 127.0.0.1 and on ::1."""
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await listen(runner, "::", port)
    try:
        async with aiohttp.ClientSession() as session:
            for host in ("127.0.0.1", "[::1]"):
                async with session.get(f"http://{host}:{port}/") as response:
                    assert await response.text() == "hi", host
    finally:
        await runner.cleanup()
