"""The long-lived things a running sidecar needs, as one typed bundle of Resources.

A `Resource` has a lifetime (`start`, `close`) and says when it is not usable (`problem`, which
/readyz reports). `create_app` builds the bundle once and opens every resource, in order, in one
`cleanup_ctx` loop; they close in reverse order after the last request. Stages receive the
resources they need when the pipeline is built; nothing reaches them through globals.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from sidecar.config.schema import Settings
from sidecar.telemetry.exporting import TelemetryExport
from sidecar.telemetry.logging import AccessWriter
from sidecar.telemetry.metrics import Metrics
from sidecar.upstream.client import UpstreamClient


class Resource(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def problem(self) -> str | None:
        """None while usable, else a reason a person can act on (shown by /readyz)."""
        ...


@dataclass(slots=True)
class Deps:
    settings: Settings
    upstream: UpstreamClient
    metrics: Metrics
    access: AccessWriter
    telemetry: TelemetryExport

    @classmethod
    def build(cls, settings: Settings, env: Mapping[str, str] | None = None) -> Deps:
        """`env`: where the standard OTEL_* variables are read (default: the process's)."""
        metrics = Metrics()
        telemetry = TelemetryExport(settings.telemetry, metrics,
                                    os.environ if env is None else env)
        access = AccessWriter(settings.telemetry.logs, sink=telemetry.access_sink())
        return cls(settings=settings, upstream=UpstreamClient(settings.upstream),
                   metrics=metrics, access=access, telemetry=telemetry)

    def resources(self) -> list[Resource]:
        """In start order; they close in reverse (telemetry last: it flushes what the others
        logged while closing)."""
        return [self.telemetry, self.access, self.upstream]


DEPS = web.AppKey("deps", Deps)


def readiness_problems(deps: Deps, draining: bool) -> list[str]:
    problems = ["draining: the sidecar is shutting down"] if draining else []
    problems += [reason for resource in deps.resources() if (reason := resource.problem())]
    return problems
