"""The long-lived things a running sidecar needs, as one typed bundle of Resources.

A `Resource` has a lifetime (`start`, `close`) and says when it is not usable (`problem`, which
/readyz reports). `create_app` builds the bundle once and opens every resource, in order, in one
`cleanup_ctx` loop; they close in reverse order after the last request. Stages receive the
resources they need when the pipeline is built; nothing reaches them through globals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from sidecar.config.schema import Settings
from sidecar.spend.backends import open_ledger
from sidecar.spend.ledger import Ledger
from sidecar.spend.price_book import PriceBook
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
    prices: PriceBook | None = None  # None with spend.ledger: off (no spend stage)
    ledger: Ledger | None = None

    @classmethod
    def build(cls, settings: Settings) -> Deps:
        metrics = Metrics()
        upstream = UpstreamClient(settings.upstream)
        ledger = open_ledger(settings, metrics)
        return cls(settings=settings, upstream=upstream, metrics=metrics,
                   access=AccessWriter(settings.telemetry.logs),
                   prices=None if ledger is None else PriceBook(settings, upstream),
                   ledger=ledger)

    def resources(self) -> list[Resource]:
        """In start order; they close in reverse (the ledger flushes after the last request,
        before the access log's last lines). The price book fetches through the upstream
        pool, so it starts after it."""
        out: list[Resource] = [self.access, self.upstream]
        if self.prices is not None and self.ledger is not None:
            out += [self.prices, self.ledger]
        return out


DEPS = web.AppKey("deps", Deps)


def readiness_problems(deps: Deps, draining: bool) -> list[str]:
    problems = ["draining: the sidecar is shutting down"] if draining else []
    problems += [reason for resource in deps.resources() if (reason := resource.problem())]
    return problems
