"""The inspector's event stream on a real socket: a slow page is dropped, never waited for."""

from __future__ import annotations

import asyncio
import socket

import aiohttp

from sidecar.deps import DEPS
from tests.conftest import StartSidecar
from tests.unit.test_inspector_memory import finished


async def test_a_slow_page_is_dropped_and_the_others_keep_receiving(
        start_sidecar: StartSidecar) -> None:
    """A page that stops reading its event stream is dropped once a write cannot complete in
    time, while a page that reads keeps getting every batch, and requests never wait."""
    sidecar = await start_sidecar()
    inspector = sidecar.app[DEPS].inspector
    assert inspector is not None
    inspector.write_timeout_s = 0.2
    inspector.interval_s = 0.01
    host, port = sidecar.url.removeprefix("http://").split(":")
    stalled = socket.create_connection((host, int(port)))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"GET /sidecar/events HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
    big_tags = ",".join(f"tag{i:04d}-" + "x" * 40 for i in range(150))
    async with aiohttp.ClientSession() as session:
        async with session.get(sidecar.url + "/sidecar/events") as reader:
            for _ in range(100):
                if inspector.followers == 2:
                    break
                await asyncio.sleep(0.01)
            assert inspector.followers == 2
            received = 0
            for round_ in range(200):
                for call in finished(50, tags=(big_tags,)):
                    inspector.add(call)  # type: ignore[arg-type]
                while inspector.followers == 2 and received < (round_ + 1) * 50:
                    chunk = await asyncio.wait_for(reader.content.readany(), timeout=10)
                    received += chunk.count(b"event: request")
                if inspector.followers == 1:
                    break
            assert inspector.followers == 1, "the stalled page was never dropped"
            for call in finished(1):
                inspector.add(call)  # type: ignore[arg-type]
            chunk = await asyncio.wait_for(reader.content.readany(), timeout=10)
            assert b"event: request" in chunk
    stalled.close()
