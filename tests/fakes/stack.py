"""The real sidecar with every feature on, its two fake providers and an "evil" host, served on
their own event loop in a background thread.

For tests whose client is synchronous (hypothesis examples over raw sockets, schemathesis's
`requests`): on the test's own loop, a blocking client would stop the server it is talking to.
The app is `create_app` on a real loopback socket, exactly as `start_sidecar` serves it.

Every feature on: local keys (auth), the memory cache, spend with a priced model glob and a
blocking budget, privacy in pseudonymize mode, routing with two providers (`fake/*` on a, at a
base URL with a path, which also takes the passthrough paths; everything else on b) and a route
alias, Prometheus metrics, the request inspector, and an admin token. The "evil" fake is
configured nowhere: whatever reaches it is a bug.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

from sidecar.app import create_admin_app, create_app, make_runner
from sidecar.config import Settings
from tests.conftest import merge
from tests.fakes.ports import free_port
from tests.fakes.upstream import FakeUpstream

T = TypeVar("T")
ADMIN_TOKEN = "admin-tok-SENTINEL"
KEYS = {"team-a": "tok-a-SENTINEL", "team-b": "tok-b-SENTINEL"}
UPSTREAM_KEYS = {"a": "sk-upstream-a-SENTINEL", "b": "sk-upstream-b-SENTINEL"}
MAX_BODY = 256 * 1024  # small, so a 413 is cheap to provoke
BASE_PATH = "/api/v1"  # provider a's base URL has a path: leaving it would show


def every_feature(a: FakeUpstream, b: FakeUpstream, state_dir: str) -> dict[str, Any]:
    return {
        "state_dir": state_dir,
        "listen": {"max_body_bytes": MAX_BODY},
        "admin": {"token": ADMIN_TOKEN},
        "upstream": {"url": a.url},
        "providers": [
            {"name": "a", "base_url": a.url + BASE_PATH, "api_key": UPSTREAM_KEYS["a"],
             "models": ["fake/*"], "headers": {"X-Api-Key": "hdr-SENTINEL"}},
            {"name": "b", "base_url": b.url, "api_key": UPSTREAM_KEYS["b"], "models": ["*"]},
        ],
        "routes": {"fast": ["fake/a", "other/b"]},
        "retry": {"attempts": 1},
        "auth": {"required": True, "keys": [{"name": n, "token": t} for n, t in KEYS.items()]},
        "cache": {"backend": "memory"},
        "spend": {"fetch_prices": False,
                  "prices": {"*": {"prompt": 1e-6, "completion": 2e-6}},
                  "budgets": [{"name": "cap", "limit_usd": 1_000_000, "action": "block"}]},
        "privacy": {"redact": {"mode": "pseudonymize"}},
        "telemetry": {"prometheus": True},
    }


class Stack:
    """Start with `start()`, stop with `stop()`; `run(coro)` runs a coroutine on its loop."""

    def __init__(self, extra: dict[str, Any] | None = None, *, admin_port: bool = False) -> None:
        self._extra = extra or {}
        self._admin_port = admin_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stack",
                                        daemon=True)
        self._runners: list[web.AppRunner] = []
        self._state = tempfile.TemporaryDirectory(prefix="stack-")
        self.a = self.b = self.evil = FakeUpstream()
        self.port = self.admin_port = 0
        self.app: web.Application | None = None
        self.logs = io.StringIO()  # a test may point the process's logging here

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def fakes(self) -> tuple[FakeUpstream, FakeUpstream, FakeUpstream]:
        return self.a, self.b, self.evil

    def start(self) -> Stack:
        self._thread.start()
        self.run(self._start())
        return self

    def stop(self) -> None:
        self.run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self._state.cleanup()

    async def _start(self) -> None:
        self.a, self.b, self.evil = FakeUpstream(), FakeUpstream(), FakeUpstream()
        for fake in self.fakes:
            await fake.start()
        config = merge(every_feature(self.a, self.b, self._state.name), self._extra)
        if self._admin_port:
            config = merge(config, {"admin": {"port": free_port()}})
        settings = Settings.model_validate(config)
        self.app = app = create_app(settings)
        await self._serve(app, 0)
        self.port = self.admin_port = self._runners[0].addresses[0][1]
        if settings.admin.port is not None:
            await self._serve(create_admin_app(app), settings.admin.port)
            self.admin_port = settings.admin.port

    async def _serve(self, app: web.Application, port: int) -> None:
        runner = make_runner(app, shutdown_timeout=2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self._runners.append(runner)

    async def _stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        for fake in self.fakes:
            await fake.close()
