"""Shared fixtures: a fake upstream and the real sidecar app, both on real loopback sockets,
and the profile (tests/fakes/profiles.py) the app is configured in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from sidecar.app import create_admin_app, create_app, make_runner
from sidecar.call import Stage
from sidecar.config import Settings
from sidecar.upstream.clock import Clock
from tests.fakes.otlp import HttpReceiver
from tests.fakes.ports import free_port
from tests.fakes.profiles import Profile, merge
from tests.fakes.redis import RedisServer
from tests.fakes.upstream import FakeUpstream

__all__ = ["Profile", "RunningSidecar", "StartSidecar", "free_port", "merge"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "profiles(*names, reason): run this test only in these profiles (the reason "
        "says why it makes sense in no other)")
    config.addinivalue_line(
        "markers", "xfail_profiles(*names, reason): a known bug shows in these profiles: "
        "xfail(strict=True) there, so the fix flips it")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that uses the `profile` fixture (through `start_sidecar` or directly) runs once
    per profile its module lists in `PROFILES` (default: the module's own configuration)."""
    if "profile" not in metafunc.fixturenames:
        return
    names: tuple[str, ...] = getattr(metafunc.module, "PROFILES", ("module",))
    only = metafunc.definition.get_closest_marker("profiles")
    if only is not None:
        assert only.kwargs.get("reason"), "profiles(...) needs a reason"
        names = tuple(name for name in names if name in only.args)
    if names == ("module",):
        return  # one run, with the test id it always had
    xfail = metafunc.definition.get_closest_marker("xfail_profiles")
    params = []
    for name in names:
        marks = []
        if xfail is not None and name in xfail.args:
            marks.append(pytest.mark.xfail(strict=True, reason=xfail.kwargs["reason"]))
        params.append(pytest.param(name, id=name, marks=marks))
    metafunc.parametrize("profile", params, indirect=True)


@pytest.fixture
async def profile(request: pytest.FixtureRequest) -> AsyncIterator[Profile]:
    """The profile this run of the test is configured in; `everything` starts its live OTLP
    receiver and its second provider."""
    name = getattr(request, "param", "module")
    if name != "everything":
        yield Profile(name)
        return
    receiver, spare = HttpReceiver(), FakeUpstream()
    await receiver.start()
    await spare.start()
    yield Profile(name, receiver, spare)
    await spare.close()
    await receiver.stop()


@dataclass
class RunningSidecar:
    settings: Settings
    app: web.Application
    url: str  # http://127.0.0.1:PORT
    admin_url: str  # the admin listener (same as url unless admin.port is set)
    admin_app: web.Application | None = None  # set when admin.port is set

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"


StartSidecar = Callable[..., Awaitable[RunningSidecar]]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def start_sidecar(upstream: FakeUpstream, tmp_path: Path, request: pytest.FixtureRequest,
                        profile: Profile) -> AsyncIterator[StartSidecar]:
    """Start the real app on a loopback port, configured by the profile with the test's config
    on top. In the module profile, a test module's `SIDECAR_BASE` (a config) is merged under
    every config its tests pass (e.g. the cache off for tests that repeat identical requests
    on purpose)."""
    runners: list[web.AppRunner] = []
    base = getattr(request.module, "SIDECAR_BASE", {})

    async def start(config: dict[str, Any] | None = None,
                    outer_stages: Sequence[Stage] = (), clock: Clock | None = None
                    ) -> RunningSidecar:
        raw = profile.config(upstream.url, str(tmp_path), config, module_base=base)
        settings = Settings.model_validate(raw)
        app = create_app(settings, outer_stages=outer_stages, clock=clock)
        runner = make_runner(app, shutdown_timeout=2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        admin_url, admin_app = url, None
        if settings.admin.port is not None:
            admin_app = create_admin_app(app)
            admin = make_runner(admin_app, shutdown_timeout=2)
            await admin.setup()
            await web.TCPSite(admin, settings.admin.host, settings.admin.port).start()
            runners.append(admin)
            admin_url = f"http://{settings.admin.host}:{settings.admin.port}"
        return RunningSidecar(settings, app, url, admin_url, admin_app)

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar) -> RunningSidecar:
    return await start_sidecar()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a private port, killed at the end of the test."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A raw HTTP client that shows bytes exactly as sent (no decompression)."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


@pytest.fixture
async def async_client(sidecar: RunningSidecar) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
def sync_client(sidecar: RunningSidecar) -> Iterator[openai.OpenAI]:
    """Call it through asyncio.to_thread: the sidecar runs on the test's event loop."""
    client = openai.OpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)
    yield client
    client.close()


@pytest.fixture
async def upstreams() -> AsyncIterator[Callable[[int], Awaitable[list[FakeUpstream]]]]:
    """A factory of extra fake upstreams (one per provider), all closed at the end."""
    started: list[FakeUpstream] = []

    async def make(count: int) -> list[FakeUpstream]:
        fakes = [FakeUpstream() for _ in range(count)]
        for fake in fakes:
            await fake.start()
        started.extend(fakes)
        return fakes

    yield make
    for fake in started:
        await fake.close()
