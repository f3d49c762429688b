"""A raw HTTP/1.1 client over a plain socket: it sends exactly the bytes it is given (request
lines aiohttp's client would normalise, header values no client library would send) and reads
the whole answer (`Connection: close`), with a deadline so a hang fails the test."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import orjson

TIMEOUT_S = 20.0  # a hang, not a slow answer: every answer here takes milliseconds


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return orjson.loads(self.body)


def request(method: str, target: str, *, headers: list[tuple[str, str]] | None = None,
            body: bytes | None = None) -> bytes:
    """The bytes of one request (with Host and Connection: close, and Content-Length when
    there is a body); header values are sent as UTF-8 unless given pre-encoded by `raw`."""
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    lines += [f"{k}: {v}".encode("utf-8", "surrogateescape") for k, v in headers or []]
    if body is not None:
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def exchange(port: int, data: bytes, host: str = "127.0.0.1") -> RawResponse:
    """Send `data`, read until the server closes, parse the answer (chunked bodies joined)."""
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.sendall(data)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    status = int(status_line.split(b" ")[1])
    headers = []
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    response = RawResponse(status, headers, body, head)
    if "chunked" in (response.header("Transfer-Encoding") or "").lower():
        response.body = _dechunk(body)
    return response


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return bytes(out)
