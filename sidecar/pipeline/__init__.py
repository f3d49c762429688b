"""The ordered stage list: the one place that says what runs, and in which order.

    client ─► telemetry → zdr → inspect → auth → read_body → privacy → fallback
                        → spend → cache → route ─► upstream
    client ◄─ (the response side unwinds right to left) ◄─┘

Why this order: telemetry first so every outcome, early replies (401, 400, 413) included, is
observed; zdr (zero data retention) next, so every response says so, 401s included; auth
before anything spends effort on a caller we refuse (an unknown caller gets 401
before its body is read); read_body next, since everything after it needs the parsed request;
privacy before spend and cache so that neither the cache key nor the ledger ever sees
unredacted content; fallback after privacy (redaction runs once, not per candidate) and before
spend and cache, which it runs once per candidate model; spend before cache so a blocked budget
is never bypassed by a hit yet hits are still counted (billed 0, their saving recorded); cache
right before route so a hit skips exactly the upstream call. Route is terminal.

A feature that is off is absent from the list (no `if enabled` on the hot path). Stages not
built yet are simply not in the list. Paths outside the model endpoints go through a shorter
list (the stages that need no body) ending in `Route.forward`, which streams both ways.

A stage may be called more than once for one request: the fallback stage calls the rest of the
list once per candidate model, so each candidate is priced, cached and billed as the model it
really is. It is present when `routes` are configured or `providers` are (except a lone
OpenRouter provider, which applies `models` and `provider` itself).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from aiohttp import web

from sidecar.call import Call, Reply, Stage
from sidecar.deps import Deps
from sidecar.pipeline.auth import Auth
from sidecar.pipeline.cache import Cache
from sidecar.pipeline.fallback import Fallback
from sidecar.pipeline.inspect import Inspect
from sidecar.pipeline.read_body import ReadBody
from sidecar.pipeline.route import Route
from sidecar.pipeline.spend import Spend
from sidecar.pipeline.telemetry import Telemetry
from sidecar.telemetry.genai import Upstreams

__all__ = ["PIPELINES", "Handler", "Pipelines", "build_pipeline", "compose"]

Handler = Callable[[Call], Awaitable[Reply]]


def compose(stages: Sequence[Stage], terminal: Handler) -> Handler:
    """Chain stages once at start-up, so a request pays one call per stage and nothing more."""
    handler = terminal
    for stage in reversed(stages):
        handler = partial(stage, next=handler)
    return handler


@dataclass(frozen=True, slots=True)
class Pipelines:
    model: Handler  # chat/completions, completions, embeddings, responses
    passthrough: Handler  # every other /v1/* path
    stage_names: tuple[str, ...]


PIPELINES = web.AppKey("pipelines", Pipelines)


def _name(stage: Stage) -> str:
    return getattr(stage, "name", type(stage).__name__.lower())


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
    stages: list[Stage] = [*before_body, ReadBody(settings.listen.max_body_bytes,
                                                   aliases=settings.routes)]
    if settings.privacy.redact.mode != "off":
        # Imported only when on: phonenumbers and the patterns cost 15 ms of start-up.
        from sidecar.pipeline.privacy import Privacy

        stages.append(Privacy(settings.privacy.redact, deps.metrics))
    routing = deps.routing
    local = routing.configured and not routing.openrouter_only
    if settings.routes or local:
        stages.append(Fallback(settings.routes, routing.retry.on_status, local=local,
                               reads_answer=len(routing.targets) > 1))
    if deps.ledger is not None and deps.prices is not None:
        stages.append(Spend(settings.spend, deps.prices, deps.ledger, deps.metrics))
    if deps.cache is not None and deps.flights is not None:
        stages.append(Cache(settings.cache, deps.cache, deps.flights, deps.metrics))
    # A stage that reads call.usage / finish_reason says so with `reads_answer = True`.
    observe = any(getattr(stage, "reads_answer", False) for stage in stages)
    route = Route(deps.upstream, routing, observe=observe)
    return Pipelines(
        model=compose(stages, route.model),
        passthrough=compose(before_body, route.forward),
        stage_names=(*(_name(s) for s in stages), "route"),
    )
