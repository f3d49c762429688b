"""Waiting on something another task, thread or process makes true: the one way tests wait.

`wait_until` polls a condition (plain or awaitable) with a short sleep and fails naming what
it waited for; `wait_ready` waits until a server answers its readiness probe; `wait_idle`
until an app serves no request (so every finisher has run). Neither is a fixed
sleep: each returns the moment the condition holds, and the timeout is only the bound after
which the test fails (generous, so a loaded machine is slow but not failing).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from sidecar.deps import DEPS
from sidecar.runtime import RUNTIME

__all__ = ["POLL_S", "wait_idle", "wait_ready", "wait_until"]

POLL_S = 0.005  # between two looks at the condition: short, the state is usually in memory


async def wait_until(condition: Callable[[], bool | Awaitable[bool]], what: str,
                     timeout: float = 10.0) -> None:  # noqa: ASYNC109 - named in the failure
    """Return once `condition()` is true; fail with "timed out waiting until <what>" after
    `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = condition()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:g} s waiting until {what}") from None


async def wait_ready(url: str, *, path: str = "/readyz",
                     returncode: Callable[[], int | None] | None = None,
                     timeout: float = 30.0) -> None:  # noqa: ASYNC109 - as wait_until
    """Wait until GET `url + path` answers 200 (connections are refused while the server
    starts). `returncode`: the server's process, checked on each poll, so one that exited fails
    at once instead of at the timeout."""

    async with aiohttp.ClientSession() as session:
        async def ready() -> bool:
            if returncode is not None and (code := returncode()) is not None:
                raise AssertionError(f"the server exited with {code} before {url} was ready")
            try:
                async with session.get(url + path) as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_until(ready, f"{url}{path} answers 200", timeout)


async def wait_idle(app: web.Application, timeout: float = 10.0  # noqa: ASYNC109
                    ) -> None:
    """Wait until `app` serves no proxy request and the cache has no flight left. A request's
    handler runs every finisher of its Call before it leaves the in-flight set (handler.py), and
    a cache flight runs its copy's finishers as it lands: after this, every finisher of the
    requests sent so far has run, so what they record can be asserted at once, and a finisher
    that did not run will not run later."""
    in_flight = app[RUNTIME].in_flight
    flights = app[DEPS].flights
    await wait_until(lambda: not in_flight and not (flights is not None and len(flights)),
                     "no request is in flight", timeout)
