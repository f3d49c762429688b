"""The long-lived things a running sidecar needs, as one typed bundle of Resources.

A `Resource` has a lifetime (`start`, `close`) and says when it is not usable (`problem`, which
/readyz reports). `create_app` builds the bundle once and opens every resource, in order, in one
`cleanup_ctx` loop; they close in reverse order after the last request. Stages receive the
resources they need when the pipeline is built; nothing reaches them through globals.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from sidecar.auto.pins import Pins
from sidecar.background import BackgroundReads
from sidecar.cache import CacheStore, Flights, build_store, cache_enabled
from sidecar.config.schema import Settings
from sidecar.inspector import Inspector
from sidecar.spend.backends import open_ledger
from sidecar.spend.ledger import Ledger
from sidecar.spend.price_book import PriceBook
from sidecar.telemetry.logs import AccessWriter
from sidecar.telemetry.metrics import Metrics
from sidecar.telemetry.otlp.export import TelemetryExport
from sidecar.telemetry.refusals import AuthRefusals
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.clock import Clock
from sidecar.upstream.routing import Routing


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
    routing: Routing  # providers, breakers, averages: plain state, nothing to open or close
    telemetry: TelemetryExport
    refusals: AuthRefusals  # 401s: counted, logged at most once a minute per scope
    inspector: Inspector | None = None  # admin.ui: the request inspector's memory
    cache: CacheStore | None = None  # None: no cache stage (cache.backend off, or ZDR)
    flights: Flights | None = None  # the cache's single-flight tasks
    prices: PriceBook | None = None  # None with spend.ledger: off and no auto router
    ledger: Ledger | None = None
    env: Mapping[str, str] = field(default_factory=dict)  # where OTEL_* were read
    pins: Pins | None = None  # auto routers' session pins: plain state, kept across requests
    background: BackgroundReads | None = None  # with the ledger: cancelled calls read to the end

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None,
              env: Mapping[str, str] | None = None) -> Deps:
        """`clock`: time and chance for routing (tests inject one; default: the system's);
        `env`: where the standard OTEL_* variables are read (default: the process's)."""
        metrics = Metrics()
        env = os.environ if env is None else env
        telemetry = TelemetryExport(settings.telemetry, metrics, env, zdr=settings.privacy.zdr)
        access = AccessWriter(settings.telemetry.logs, sink=telemetry.access_sink())
        upstream = UpstreamClient(settings.upstream)
        deps = cls(settings=settings, upstream=upstream, metrics=metrics, access=access,
                   routing=Routing.build(settings, clock, on_key_change=metrics.provider_key),
                   telemetry=telemetry,
                   refusals=AuthRefusals(metrics), env=env)
        if settings.admin.ui:
            capture = settings.telemetry.capture_content and not settings.privacy.zdr
            deps.inspector = Inspector(settings.admin.ui_requests, capture_content=capture)
        if cache_enabled(settings):
            deps.cache = build_store(settings, metrics)
            deps.flights = Flights(deps.cache, settings.cache.max_entry_bytes)
        deps.ledger = open_ledger(settings, metrics)
        # auto routers read context windows and their baselines' prices from it, spend or not
        if deps.ledger is not None or settings.auto.routers:
            deps.prices = PriceBook(settings, upstream)
        if settings.auto.routers:
            deps.pins = Pins(settings.auto.max_sessions, deps.routing.clock.now)
        if deps.ledger is not None:
            spend = settings.spend
            deps.background = BackgroundReads(limit=spend.cancelled_reads_max,
                                              read_s=spend.cancelled_read_s,
                                              drain_s=settings.listen.shutdown_grace_s)
        return deps

    async def rebuild(self, settings: Settings) -> list[Resource]:
        """Live reload (sidecar/live.py), in place: keep every stateful resource (the pool, the
        ledger with its budgets and holds, the cache and its flights, the inspector, the
        metrics), reconfigure what takes new settings, rebuild the routing table with each
        kept provider's breaker and averages, and a new exporter when telemetry changed.
        `settings` has the running value of every restart-only setting (config/changes.py).
        Returns what was replaced, for the caller to close once its requests are done."""
        retired: list[Resource] = []
        routing = Routing.build(settings, self.routing.clock,
                                on_key_change=self.metrics.provider_key)
        routing.keep_state_of(self.routing)
        telemetry = self.telemetry
        if settings.telemetry != self.settings.telemetry:
            telemetry = TelemetryExport(settings.telemetry, self.metrics, self.env,
                                        zdr=settings.privacy.zdr)
            await telemetry.start()
            self.telemetry.stop_logs()
            retired.append(self.telemetry)
            self.access.sink = telemetry.access_sink()
        self.upstream.reconfigure(settings.upstream)
        if self.inspector is not None:
            self.inspector.capture(settings.telemetry.capture_content
                                   and not settings.privacy.zdr)
        if self.prices is not None:
            await self.prices.reconfigure(settings)
        if settings.auto.routers:  # routers added by this reload: what they need
            if self.prices is None:  # no spend ledger: their own price book (closed at exit)
                self.prices = PriceBook(settings, self.upstream)
                await self.prices.start()
            if self.pins is None:
                self.pins = Pins(settings.auto.max_sessions, self.routing.clock.now)
        if self.pins is not None:  # kept across reloads, like the breakers
            self.pins.resize(settings.auto.max_sessions)
        if self.ledger is not None:
            await self.ledger.reconfigure(settings.spend)
        self.settings, self.routing, self.telemetry = settings, routing, telemetry
        return retired

    def resources(self) -> list[Resource]:
        """In start order; they close in reverse: telemetry last (it flushes what the others
        logged while closing); the ledger flushes after the last request, before the access
        log's last lines; the price book fetches through the upstream pool, so it starts after
        it; flights close before the store they fill and the upstream pool they read; the
        background reads close first (they read through the flights, the pool, and finish into
        the ledger)."""
        out: list[Resource] = [self.telemetry, self.access, self.refusals, self.upstream]
        if self.prices is not None:
            out.append(self.prices)
        if self.ledger is not None:
            out.append(self.ledger)
        if self.cache is not None and self.flights is not None:
            out += [self.cache, self.flights]
        if self.inspector is not None:
            out.append(self.inspector)
        if self.background is not None:
            out.append(self.background)
        return out


DEPS = web.AppKey("deps", Deps)


def readiness_problems(deps: Deps, draining: bool) -> list[str]:
    problems = ["draining: the sidecar is shutting down"] if draining else []
    problems += [reason for resource in deps.resources() if (reason := resource.problem())]
    return problems
