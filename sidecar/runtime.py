"""What one running sidecar shares between its listeners: settings, the upstream pool, metrics
and readiness. Created by `create_app`; handlers reach it as `request.config_dict[RUNTIME]`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sidecar.config.schema import Settings
from sidecar.telemetry.logging import AccessWriter
from sidecar.telemetry.metrics import Metrics
from sidecar.upstream.client import UpstreamClient

# A readiness check returns None when its part is usable, else a reason a person can act on.
ReadinessCheck = Callable[[], str | None]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    upstream: UpstreamClient
    metrics: Metrics
    access: AccessWriter
    stage_names: tuple[str, ...] = ()
    draining: bool = False
    readiness_checks: list[ReadinessCheck] = field(default_factory=list)
    in_flight: set[asyncio.Task[Any]] = field(default_factory=set)  # proxy requests being served
    cut: bool = False  # the shutdown grace period is over: what is still running gets cancelled

    def cut_in_flight(self) -> None:
        """End of the drain: cancel every proxy request still running. aiohttp's own shutdown
        would wait a second grace period for handlers that do not read their request body."""
        self.cut = True
        for task in list(self.in_flight):
            task.cancel()

    def readiness_problems(self) -> list[str]:
        problems = ["draining: the sidecar is shutting down"] if self.draining else []
        problems += [reason for check in self.readiness_checks if (reason := check())]
        return problems


RUNTIME = web.AppKey("runtime", Runtime)
