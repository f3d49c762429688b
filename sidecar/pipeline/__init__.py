"""The ordered stage list: the one place that says what runs, and in which order.

    client ─► telemetry → zdr → inspect → auth → read_body → privacy → auto → fallback → spend
              → detach → cache ─┬─ hit: the entry's answer, back up the list
                       └─ miss: a single flight (cache/singleflight.py) runs the rest in its own
                          task, on `call.fork()`: → answer → route ─► upstream
    client ◄─ the reply unwinds right to left; then `Call.finish` runs every stage's finisher,
              innermost first, once the outcome is final

Each stage, and why it sits where it does (a disabled feature is absent from the list: no
`if enabled` on the hot path):

    telemetry  first, so every outcome is observed, early replies (401, 400, 413) included: the
               trace, and one finisher that records metrics and spans (pipeline/telemetry.py)
    zdr        zero data retention: every response says so, 401s included
    inspect    the request inspector's record, once the call is finished
    auth       local keys, before anything spends effort on a caller we refuse (an unknown
               caller gets 401 before its body is read)
    read_body  read, decode and parse the body once; everything after it needs it
    privacy    redaction before spend and cache, so neither the cache key nor the ledger ever
               sees unredacted content; pseudonyms restored in the answer on the way back
    auto       `model: "sidecar/auto"`: classify the request and set its tier's models as the
               candidates (docs/auto.md); after privacy, so it reads what the upstream will;
               before fallback, which tries them, so everything below sees the real model; it
               runs the rest again for a cheaper tier when a budget refuses (402 from spend)
               and for the tier up when a whole answer is at fault (the cascade)
    fallback   the request's candidate models, each a separate run of the rest of the list
               (priced, cached and billed as the model it really is); after privacy, so
               redaction runs once
    spend      price, hold the worst case against the budgets, cap, then bill; before the cache,
               so a blocked budget is never bypassed by a hit, yet hits are counted (billed 0,
               their saving recorded)
    detach     right below spend, for non-streamed calls: the rest runs in a task of its own, so
               when the client leaves, the answer is still read in the background (bounded) and
               billed what the provider bills; the call's finishers wait for it
               (pipeline/detach.py); present with spend
    cache      right before the upstream call, so a hit skips exactly that; a miss leads (or
               joins) a single flight: the stages below run in the flight's task on a fork of
               the call, and the flight moves the answer record and attempts back to it
    answer     reads the upstream's answer once into `call.answer` (usage, finish reason, the
               answering model and id) for every stage above that `reads_answer`; present when
               one does
    route      terminal: the providers for the model, retries, breakers, fallbacks between
               providers (pipeline/route.py)

Paths outside the model endpoints go through a shorter list (the stages that need no body,
telemetry to auth, then spend's rule for paths: free, a batch bounded at submission, or
unpriced and decided by `spend.unpriced_paths`, pipeline/spend_paths.py) ending in
`Route.forward`, which streams both ways. A model endpoint that is free (`billed: False` in
endpoints.py: /v1/messages/count_tokens) runs the `free` list: the same stages up to fallback,
then route; no spend (nothing to price, hold or record), no cache and no answer stage (its
answer is a count, not a completion).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from sidecar.auto.router import Router
from sidecar.call import Next, Stage
from sidecar.config.schema import Settings
from sidecar.deps import Deps
from sidecar.pipeline.answer import ReadAnswer
from sidecar.pipeline.auth import Auth
from sidecar.pipeline.auto import Auto
from sidecar.pipeline.cache import Cache
from sidecar.pipeline.detach import Detach
from sidecar.pipeline.fallback import Fallback
from sidecar.pipeline.inspect import Inspect
from sidecar.pipeline.read_body import ReadBody
from sidecar.pipeline.route import Route
from sidecar.pipeline.spend import Spend
from sidecar.pipeline.spend_paths import SpendPaths
from sidecar.pipeline.telemetry import Telemetry
from sidecar.spend.paths import PathRules
from sidecar.spend.price_book import PriceBook
from sidecar.telemetry.genai import Upstreams

__all__ = ["Pipelines", "build_pipeline", "compose"]


def compose(stages: Sequence[Stage], terminal: Next) -> Next:
    """Chain stages once at start-up, so a request pays one call per stage and nothing more."""
    handler = terminal
    for stage in reversed(stages):
        handler = partial(stage, next=handler)
    return handler


@dataclass(frozen=True, slots=True)
class Pipelines:
    model: Next  # chat/completions, completions, embeddings, responses, messages
    free: Next  # model endpoints that are not billed (messages/count_tokens)
    passthrough: Next  # every other /v1/* path
    stage_names: tuple[str, ...]


def telemetry_stage(deps: Deps) -> Telemetry | None:
    """Present when something reads what it records: exported traces, captured content, or
    metrics (Prometheus or OTLP)."""
    settings = deps.settings
    export = deps.telemetry
    if not (export.tracing or export.capture_content or settings.telemetry.prometheus
            or export.metrics_pump is not None):
        return None
    base_urls = {p.name: p.base_url for p in settings.providers or ()}
    base_urls.setdefault("upstream", settings.upstream.url)
    return Telemetry(export, deps.metrics, Upstreams(base_urls))


def auto_routers(settings: Settings, prices: PriceBook) -> dict[str, Router]:
    """The configured auto routers, by the model name that selects each."""
    return {name: Router(name, router, prices.lookup, prices.window)
            for name, router in settings.auto.routers.items()}


def build_pipeline(deps: Deps, outer: Sequence[Stage] = ()) -> Pipelines:
    """The model and passthrough pipelines for these settings. `outer` stages run before all
    others on both (an embedder's own stage; the tests' recorders), telemetry excepted: it is
    first, so it observes them too."""
    settings = deps.settings
    telemetry = telemetry_stage(deps)
    # stages that need no body: passthrough runs them too
    before_body: list[Stage] = [*([telemetry] if telemetry else []), *outer]
    if settings.privacy.zdr:
        from sidecar.pipeline.privacy import ZeroRetention

        before_body.append(ZeroRetention())
    if deps.inspector is not None:
        before_body.append(Inspect(deps.inspector))
    if settings.auth.required:
        before_body.append(Auth(settings.auth, deps.refusals))
    routers = settings.auto.routers
    stages: list[Stage] = [*before_body, ReadBody(settings.listen.max_body_bytes,
                                                   aliases=(*settings.routes, *routers))]
    if settings.privacy.redact.mode != "off":
        # Imported only when on: phonenumbers and the patterns cost 15 ms of start-up.
        from sidecar.pipeline.privacy import Privacy

        stages.append(Privacy(settings.privacy.redact, deps.metrics))
    if routers and deps.pins is not None and deps.prices is not None:
        stages.append(Auto(auto_routers(settings, deps.prices), deps.pins))
    routing = deps.routing
    local = routing.configured and not routing.openrouter_only
    if settings.routes or local or routers:
        stages.append(Fallback(settings.routes, routing.retry.on_status, local=local,
                               reads_answer=len(routing.targets) > 1))
    free = list(stages)  # what a free endpoint needs: the caller, its body, redaction, routing
    passthrough = list(before_body)
    if deps.ledger is not None and deps.prices is not None:
        spend = Spend(settings.spend, deps.prices, deps.ledger, deps.metrics)
        stages.append(spend)
        if deps.background is not None:
            stages.append(Detach(deps.background))
        passthrough.append(SpendPaths(spend, PathRules(settings.spend.free_paths),
                                      settings.listen.max_body_bytes))
    if deps.cache is not None and deps.flights is not None:
        stages.append(Cache(settings.cache, deps.cache, deps.flights, deps.metrics))
    if any(stage.reads_answer for stage in stages):
        stages.append(ReadAnswer())
    route = Route(deps.upstream, routing)
    return Pipelines(
        model=compose(stages, route.model),
        free=compose(free, route.model),
        passthrough=compose(passthrough, route.forward),
        stage_names=(*(stage.name for stage in stages), route.name),
    )
