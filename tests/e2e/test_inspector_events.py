"""The inspector's event stream on a real socket: a slow page is dropped, never waited for;
a page that follows another process's ids starts again."""

from __future__ import annotations

import asyncio
import socket

import aiohttp

from sidecar.deps import DEPS
from tests.conftest import StartSidecar
from tests.fakes.calls import finished
from tests.fakes.waits import wait_until


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
            await wait_until(lambda: inspector.followers == 2, "both pages follow")
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
    # dropped means closed by the server, not left waiting for the full socket until shutdown
    # (the kernel's TCP table: the server's end of the stalled connection leaves ESTABLISHED)
    await wait_until(lambda: not established(int(port), stalled.getsockname()[1]),
                     "the server closed the stalled connection")
    stalled.close()


def established(local_port: int, remote_port: int) -> bool:
    """Whether /proc/net/tcp has 127.0.0.1:local_port ↔ :remote_port in state ESTABLISHED."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            local, remote, state = line.split()[1:4]
            if (int(local.split(":")[1], 16) == local_port
                    and int(remote.split(":")[1], 16) == remote_port):
                return state == "01"
    return False


async def test_a_page_following_ids_of_another_process_is_told_to_start_again(
        start_sidecar: StartSidecar) -> None:
    """After a restart an open page reconnects with the old process's last id: it is sent a
    `reset` and then this process's records from the first, with the sidecar's own headers."""
    sidecar = await start_sidecar()
    inspector = sidecar.app[DEPS].inspector
    assert inspector is not None
    inspector.interval_s = 0.01
    async with aiohttp.ClientSession() as session:
        async with session.get(sidecar.url + "/sidecar/events",
                               headers={"Last-Event-ID": "5000"}) as reader:
            assert reader.headers["Server"] == "llm-sidecar"
            assert reader.headers["x-sidecar-request-id"]
            for call in finished(1):
                inspector.add(call)  # type: ignore[arg-type]
            seen = b""
            while b"event: request" not in seen:
                seen += await asyncio.wait_for(reader.content.readany(), timeout=10)
    assert b"event: reset\ndata: 0\n\n" in seen
    assert seen.index(b"event: reset") < seen.index(b"event: request")
    assert b"id: 1\n" in seen
