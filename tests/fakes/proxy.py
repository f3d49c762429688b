"""A tiny HTTP egress proxy on loopback: CONNECT tunnels and absolute-form forwarding.

It records each request it handled (`CONNECT host:port`, or `GET http://host/path`) and maps
host names to loopback addresses (`hosts`), so a test can name an upstream by a host that only
the proxy can reach: a request that arrives proves it went through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit


class FakeProxy:
    def __init__(self, hosts: dict[str, tuple[str, int]] | None = None) -> None:
        self.hosts = hosts or {}
        self.seen: list[str] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _address(self, host: str, port: int) -> tuple[str, int]:
        return self.hosts.get(host, (host, port))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(*self._address(host,
                                                                                int(port)))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            url = urlsplit(target)
            up_reader, up_writer = await asyncio.open_connection(
                *self._address(url.hostname or "", url.port or 80))
            path = url.path + (f"?{url.query}" if url.query else "")
            kept = [h for h in header_lines if h and not h.lower().startswith(
                ("proxy-", "connection:", "keep-alive:"))]
            # One request per connection keeps the fake simple: both sides close after it.
            up_writer.write(f"{method} {path} {version}\r\n".encode("latin-1")
                            + "".join(f"{h}\r\n" for h in kept).encode("latin-1")
                            + b"Connection: close\r\n\r\n")
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
