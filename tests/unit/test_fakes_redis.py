"""The test Redis is real: it answers, and it really goes away when killed."""

from __future__ import annotations

import socket

import pytest

from tests.fakes.redis import RedisServer


def _ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def test_redis_server_answers_and_can_be_killed(redis_server: RedisServer) -> None:
    """PING answers +PONG; after stop() the port refuses; start() brings it back."""
    assert _ping(redis_server.port) == b"+PONG\r\n"
    redis_server.stop()
    with pytest.raises(OSError):
        _ping(redis_server.port)
    redis_server.start()
    assert _ping(redis_server.port) == b"+PONG\r\n"
