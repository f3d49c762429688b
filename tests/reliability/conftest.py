"""Fixtures of the reliability tests: the in-process sidecar with every feature on (see
harness.py), its two fake providers and its OTLP receiver."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import StartSidecar
from tests.fakes.clock import FakeClock
from tests.fakes.otlp import HttpReceiver
from tests.fakes.ports import free_port
from tests.fakes.upstream import FakeUpstream
from tests.fakes.waits import wait_ready
from tests.reliability.harness import Full, full_config
from tests.reliability.processes import BIN, Serve, Served

StartFull = Callable[..., Awaitable[Full]]


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporters are the config's alone."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def backup() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def start_full(receiver: HttpReceiver, backup: FakeUpstream, upstream: FakeUpstream,
                     start_sidecar: StartSidecar) -> AsyncIterator[StartFull]:
    """Start the sidecar with every feature on; keyword sections replace full_config's (e.g.
    `upstream={"read_timeout_s": 0.3}`); `primary_url` / `backup_url` point a provider
    elsewhere (a closed port, a black hole). The receiver is set up first so that it is still
    there when the sidecar flushes its telemetry at the end."""
    sessions: list[aiohttp.ClientSession] = []

    async def start(primary_url: str | None = None, backup_url: str | None = None,
                    **extra: Any) -> Full:
        config = full_config(primary_url or upstream.url, backup_url or backup.url,
                             receiver.endpoint, **extra)
        sidecar = await start_sidecar(config, clock=FakeClock())
        session = aiohttp.ClientSession()
        sessions.append(session)
        return Full(sidecar, upstream, backup, receiver, session)

    yield start
    for session in sessions:
        await session.close()


@pytest.fixture
async def full(start_full: StartFull) -> Full:
    return await start_full()


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """Start `llm-sidecar serve` with a config; every process left is killed at the end."""
    started: list[Served] = []

    async def start(config: dict[str, Any]) -> Served:
        index = len(started)
        path = tmp_path / f"sidecar-{index}.yaml"
        path.write_text(yaml.safe_dump(config))
        port, log, state = free_port(), tmp_path / f"sidecar-{index}.log", tmp_path / "state"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                BIN, "serve", "--config", str(path), "--port", str(port), stdout=out,
                stderr=asyncio.subprocess.STDOUT, env={**env, "SIDECAR_STATE_DIR": str(state)})
        served = Served(proc, f"http://127.0.0.1:{port}", log, state)
        started.append(served)
        try:
            await wait_ready(served.url, returncode=lambda: proc.returncode, timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {log.read_text()}") from None
        return served

    yield start
    for served in started:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()
