"""The ordered stage list: the one place that says what runs, and in which order.

    client ─► telemetry → zdr → inspect → auth → read_body → privacy → shadow → auto → fallback
              → spend → cache ─┬─ hit: the entry's answer, back up the list
                               └─ miss: detached, a single flight (cache/singleflight.py) runs
                                  the rest in its own task, on `call.fork()`:
                                  → answer → route ─► upstream
              (without the cache: → spend → detach → answer → route)
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
    shadow     a shadow rule's sampling (docs/compare.md): after privacy, so a copy carries only
               what the primary sent upstream; its finisher hands a successful primary's
               request to the shadow runner, which sends it to the rule's candidate through the
               rule's own list (`shadow_pipeline`: spend under the rule's budget alone, no cache)
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
               (pipeline/detach.py); present with spend. With the cache on, the cache stage runs
               it for a miss or a bypass, and a hit (which reads nothing) skips it
    cache      right before the upstream call, so a hit skips exactly that; a miss leads (or
               joins) a single flight: the stages below run in the flight's task on a fork of
               the call, and the flight moves the answer record and attempts back to it
    answer     reads the upstream's answer once into `call.answer` (usage, finish reason, the
               answering model and id) for every stage above that `reads_answer`; present when
               one does
    route      terminal: the providers for the model, retries, breakers, fallbacks between
               providers (pipeline/route.py)

A WebSocket upgrade on any /v1 path (`/v1/realtime`) runs the stages that need no body, then
the session's own (sidecar/realtime/: its model from the query; spend's hold per response when
spend is on) and `Connect`, which opens the upstream side before the client gets its 101.

Paths outside the model endpoints go through a shorter list (the stages that need no body,
telemetry to auth, then spend's rule for paths: free, a batch bounded at submission, or
unpriced and decided by `spend.unpriced_paths`, pipeline/spend_paths.py) ending in
`Route.forward`, which streams both ways. A model endpoint that is free (`billed: False` in
endpoints.py: /v1/messages/count_tokens) runs the `free` list: the same stages up to fallback,
then route; no spend (nothing to price, hold or record), no cache and no answer stage (its
answer is a count, not a completion). A compare (POST
/sidecar/compare, compare/) runs the model list once per model, each on a fork of the compare
request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from sidecar.auto.pins import Pins
from sidecar.auto.router import Router
from sidecar.call import Next, Stage
from sidecar.compare.shadow_plan import ShadowPlan
from sidecar.config.compare import ShadowRule
from sidecar.config.schema import Settings
from sidecar.config.spend import SpendSettings
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
from sidecar.pipeline.shadow import Shadow
from sidecar.pipeline.spend import Spend
from sidecar.pipeline.spend_paths import SpendPaths
from sidecar.pipeline.telemetry import Telemetry
from sidecar.realtime import Connect, realtime_stages
from sidecar.spend.paths import PathRules
from sidecar.spend.policy import Policy
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
    realtime: Next  # a WebSocket upgrade on any /v1/* path (sidecar/realtime/)
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


def shadow_pipeline(deps: Deps, rule: ShadowRule, telemetry: Telemetry | None,
                    route: Route) -> Next:
    """A shadow rule's own list for its copies (and its judge's calls), which are not client
    requests: no auth, no body to read, no redaction (the body was redacted for the primary),
    no fallbacks (one candidate model), no cache (a copy never reads nor fills the primary's
    entries); spend applies the rule's budget and nothing else."""
    assert deps.ledger is not None and deps.prices is not None
    only_the_rule = Policy(SpendSettings(), [rule.budget])
    stages: list[Stage] = [*([telemetry] if telemetry else []),
                           *([Inspect(deps.inspector)] if deps.inspector is not None else []),
                           *auto_candidate(deps, rule),
                           # a copy never waits for held money: it is skipped (a sample
                           # taken later may find room)
                           Spend(deps.settings.spend.model_copy(update={"hold_wait_s": 0.0}),
                                 deps.prices, deps.ledger, deps.metrics, policy=only_the_rule),
                           ReadAnswer()]
    return compose(stages, route.model)


def auto_candidate(deps: Deps, rule: ShadowRule) -> list[Stage]:
    """For a rule whose candidate is an auto router (`candidate: sidecar/auto`): the router
    picks each copy's tier as it would for live traffic, and fallback tries the tier's models.
    Its own session pins (a copy never moves a live session's), and no downgrade: a copy the
    rule's budget cannot pay is skipped and counted, not served by a cheaper tier."""
    router = deps.settings.auto.routers.get(rule.candidate)
    if router is None or deps.prices is None:
        return []
    settings = router.model_copy(update={"downgrade_on_budget": False})
    routers = {rule.candidate: Router(rule.candidate, settings, deps.prices.lookup,
                                      deps.prices.window)}
    pins = Pins(deps.settings.auto.max_sessions, deps.routing.clock.now)
    local = deps.routing.configured and not deps.routing.openrouter_only
    return [Auto(routers, pins),
            Fallback({}, deps.routing.retry.on_status, local=local, reads_answer=False)]


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
    routing = deps.routing
    route = Route(deps.upstream, routing)
    if deps.shadow is not None and settings.shadow:
        plans = [ShadowPlan.of(rule, shadow_pipeline(deps, rule, telemetry, route))
                 for rule in settings.shadow]
        stages.append(Shadow(plans, deps.shadow, routing.clock.random))
    if routers and deps.pins is not None and deps.prices is not None:
        stages.append(Auto(auto_routers(settings, deps.prices), deps.pins))
    local = routing.configured and not routing.openrouter_only
    if settings.routes or local or routers:
        stages.append(Fallback(settings.routes, routing.retry.on_status, local=local,
                               reads_answer=len(routing.targets) > 1))
    # what a free endpoint needs: the caller, its body, redaction, routing (not a shadow copy)
    free = [stage for stage in stages if not isinstance(stage, Shadow)]
    passthrough = list(before_body)
    detach = None
    if deps.ledger is not None and deps.prices is not None:
        spend = Spend(settings.spend, deps.prices, deps.ledger, deps.metrics)
        stages.append(spend)
        if deps.background is not None:
            detach = Detach(deps.background)
        passthrough.append(SpendPaths(spend, PathRules(settings.spend.free_paths),
                                      settings.listen.max_body_bytes))
    if deps.cache is not None and deps.flights is not None:
        # the cache detaches what goes upstream: a hit pays nothing for it
        stages.append(Cache(settings.cache, deps.cache, deps.flights, deps.metrics, detach))
    elif detach is not None:
        stages.append(detach)
    if any(stage.reads_answer for stage in stages):
        stages.append(ReadAnswer())
    return Pipelines(
        model=compose(stages, route.model),
        free=compose(free, route.model),
        passthrough=compose(passthrough, route.forward),
        realtime=compose([*before_body, *realtime_stages(deps)], Connect(
            deps.upstream, routing, deps.metrics, settings.listen.max_body_bytes)),
        stage_names=(*(stage.name for stage in stages), route.name),
    )
