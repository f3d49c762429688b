"""Fixtures of the end-to-end tests: two real OTLP receivers (gRPC and HTTP), a process
environment without OTEL_* variables so each test sees only what it sets, and the spend tests'
metered upstream (it bills every request its worst case)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.metered import Metered
from tests.fakes.otlp import GrpcReceiver, HttpReceiver


@pytest.fixture
async def metered() -> AsyncIterator[Metered]:
    fake = Metered()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def anthropic_fake() -> AsyncIterator[FakeAnthropic]:
    """A fake of Anthropic's Messages API (tests/fakes/anthropic.py) on loopback."""
    fake = FakeAnthropic()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def grpc_receiver() -> Iterator[GrpcReceiver]:
    receiver = GrpcReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
async def http_receiver() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the OTEL_* variables they set themselves, and no ANTHROPIC_* ones (the
    Anthropic SDK would send a key or a base URL from them)."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "ANTHROPIC_")):
            monkeypatch.delenv(name)
