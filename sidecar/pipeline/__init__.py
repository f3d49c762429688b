"""The ordered stage list: the one place that says what runs, and in which order.

    client ─► telemetry → auth → read_body → privacy → fallback → spend → cache → route ─► upstream
    client ◄─ (the response side unwinds right to left)                      ◄─┘

Why this order: telemetry first so every outcome, early replies (401, 400, 413) included, is
observed; auth before anything spends effort on a caller we refuse (an unknown caller gets 401
before its body is read); read_body next, since everything after it needs the parsed request;
privacy before spend and cache so that neither the cache key nor the ledger ever sees
unredacted content; spend before cache so a blocked budget is never bypassed by a hit yet hits
are still counted (billed 0, their saving recorded); cache right before route so a hit skips
exactly the upstream call. Route is terminal. Spend declares `reads_answer`, so route notes each
answer's usage on the call (answer.observe).

A feature that is off is absent from the list (no `if enabled` on the hot path). Stages not
built yet are simply not in the list. Paths outside the model endpoints go through a shorter
list (the stages that need no body) ending in `Route.forward`, which streams both ways.

A stage may be called more than once for one request: a fallback stage placed before spend
calls the rest of the list once per candidate model, so each candidate is priced, cached and
billed as the model it really is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from aiohttp import web

from sidecar.call import Call, Reply, Stage
from sidecar.deps import Deps
from sidecar.pipeline.auth import Auth
from sidecar.pipeline.read_body import ReadBody
from sidecar.pipeline.route import Route
from sidecar.pipeline.spend import Spend
from sidecar.upstream.providers import OpenAIProvider

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


def build_pipeline(deps: Deps, outer: Sequence[Stage] = ()) -> Pipelines:
    """The model and passthrough pipelines for these settings. `outer` stages run before all
    others on both (an embedder's own stage; the tests' recorders)."""
    settings = deps.settings
    before_body: list[Stage] = [*outer]  # stages that need no body: passthrough runs them too
    if settings.auth.required:
        before_body.append(Auth(settings.auth))
    stages: list[Stage] = [*before_body, ReadBody(settings.listen.max_body_bytes)]
    # privacy and the routing fallback stage go here, before spend; cache after it
    if deps.ledger is not None and deps.prices is not None:
        stages.append(Spend(settings.spend, deps.prices, deps.ledger, deps.metrics))

    upstream = settings.upstream
    provider = OpenAIProvider(
        "upstream", upstream.url,
        api_key=upstream.api_key.get_secret_value() if upstream.api_key else None,
        headers=upstream.headers.items(), local_auth=settings.auth.required)
    # A stage that reads call.usage / finish_reason says so with `reads_answer = True`.
    observe = any(getattr(stage, "reads_answer", False) for stage in stages)
    route = Route(deps.upstream, provider, observe=observe)
    return Pipelines(
        model=compose(stages, route.model),
        passthrough=compose(before_body, route.forward),
        stage_names=(*(_name(s) for s in stages), "route"),
    )
