"""The ordered stage list: the one place that says what runs, and in which order.

    client ─► telemetry → auth → privacy → spend → cache → route ─► upstream
    client ◄─ (the response side unwinds right to left)          ◄─┘

Why this order: telemetry first so every outcome, early replies included, is observed; auth
before anything spends effort on a caller we refuse; privacy before spend and cache so that
neither the cache key nor the ledger ever sees unredacted content; spend before cache so a
blocked budget is never bypassed by a hit yet hits are still counted; cache right before route
so a hit skips exactly the upstream call. Route is terminal.

A feature that is off is absent from the list (no `if enabled` on the hot path). Stages not
built yet are simply not in the list. Paths outside the model endpoints go through a shorter
list (stages that need no body) ending in `Route.forward`, which streams both ways.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from sidecar.call import Call, Reply, Stage
from sidecar.config.schema import Settings
from sidecar.pipeline.auth import Auth
from sidecar.pipeline.route import Route
from sidecar.upstream.client import Target, UpstreamClient

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


def build_pipeline(settings: Settings, upstream: UpstreamClient) -> Pipelines:
    stages: list[Stage] = []
    if settings.auth.required:
        stages.append(Auth(settings.auth))
    passthrough_stages = list(stages)  # every stage so far works without a parsed body

    route = Route(upstream, Target.from_upstream(settings.upstream),
                  local_auth=settings.auth.required)
    return Pipelines(
        model=compose(stages, route.model),
        passthrough=compose(passthrough_stages, route.forward),
        stage_names=(*(type(s).__name__.lower() for s in stages), "route"),
    )
