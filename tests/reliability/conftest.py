"""Fixtures of the reliability tests: the in-process sidecar with every feature on (see
harness.py), its two fake providers and its OTLP receiver."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartSidecar
from tests.fakes.clock import FakeClock
from tests.fakes.otlp import HttpReceiver
from tests.fakes.upstream import FakeUpstream
from tests.reliability.harness import Full, full_config

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
