"""Model fallbacks: try the request's candidate models in order until one answers.

The candidates are the body's `models` (OpenRouter's field; the `model` first, then the list) or,
when `model` names a configured `routes` alias, that route, or the tier an auto router chose
(`call.candidates`, set by the auto stage above: its models, then the body's `models`). Each
candidate is a separate run of the rest of the pipeline (spend, cache, route): `call.model` is
set to it, and `call.overrides` and `call.answer` cleared first, so each candidate is priced,
cached, redacted and billed as the model it really is. The next candidate is tried only when
the previous one failed before its first byte: a transport failure, a retryable status
(`retry.on_status`) once its providers were exhausted, or no provider serving it. An answer
that started, or any other error (400, 402 budget, 429 local rate limit), is the answer.

For local providers this stage also consumes OpenRouter's routing fields: `models`, `provider`
(parsed into `call.preferences` for the router) and `route` leave the body, and routing suffixes
(`:floor`, `:nitro`) leave each candidate's name, before anything goes upstream. When the only
provider is OpenRouter, those fields and suffixes are forwarded unchanged (OpenRouter applies
them) and only `routes` aliases are resolved here.

Cost for a request with none of this (no alias, no `models`, no `provider`, no colon in the
model): three dict/str checks and one extra call; see bench/routing.py.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sidecar.call import Answer, Call, Next, Reply
from sidecar.errors import (
    InvalidRequest,
    ModelNotAllowed,
    NoProviderAvailable,
    SidecarError,
    UpstreamError,
)
from sidecar.upstream.preferences import (
    NO_PREFERENCES,
    Preferences,
    parse_preferences,
    split_suffix,
)

ROUTING_FIELDS = ("models", "provider", "route")
MAX_CANDIDATES = 16  # a request cannot make the sidecar try more models than this


class Fallback:
    name = "fallback"

    def __init__(self, routes: Mapping[str, list[str]], retry_on: Collection[int], *,
                 local: bool, reads_answer: bool) -> None:
        self._routes = {alias: tuple(models) for alias, models in routes.items()}
        self._retry_on = frozenset(retry_on)
        self._local = local  # the sidecar routes (else: OpenRouter alone does)
        # The throughput average needs the answer's usage; only worth parsing for when there
        # is more than one provider to choose between.
        self.reads_answer = reads_answer

    async def __call__(self, call: Call, next: Next) -> Reply:
        body, model = call.body, call.model
        assert body is not None and model is not None
        route = call.candidates if call.candidates is not None else self._routes.get(model)
        if route is None and not (self._local and (
                ":" in model or "models" in body or "provider" in body or "route" in body)):
            return await next(call)
        try:
            candidates = self._candidates(call, body, model, route)
        except SidecarError as exc:
            return Reply.from_error(exc)
        last: Reply | None = None
        for candidate, prefs in candidates:
            call.model = candidate
            call.overrides = {}
            call.answer = Answer()  # nothing of a failed candidate's answer carries over
            call.preferences = prefs
            reply = await next(call)
            if not self._moves_on(reply):
                if last is not None:
                    await last.discard()
                return reply
            if last is None or not isinstance(reply.error, NoProviderAvailable):
                if last is not None:
                    await last.discard()
                last = reply  # the most telling failure: an upstream's over "no provider"
        assert last is not None
        return last

    def _candidates(self, call: Call, body: dict[str, Any], model: str,
                    route: tuple[str, ...] | None) -> list[tuple[str, Preferences | None]]:
        names = list(route) if route is not None else [model]
        prefs: Preferences | None = None
        if self._local:
            extra = body.get("models")
            if extra is not None:
                if not isinstance(extra, list) or not all(
                        isinstance(m, str) and m for m in extra):
                    raise InvalidRequest("'models' must be a list of model names, tried in "
                                         "order when one fails.", param="models")
                names += extra
            prefs = parse_preferences(body.get("provider"))
            if any(field in body for field in ROUTING_FIELDS):
                call.body = {k: v for k, v in body.items() if k not in ROUTING_FIELDS}
                call.body_changed = True
        # A dict keeps the first of each name, in order, and stops at MAX_CANDIDATES: the list
        # is the client's, of any length (a scan per name would be quadratic in it).
        chosen: dict[str, Preferences | None] = {}
        allowed = call.allowed_models
        refused = []
        for name in names:
            sort = None
            if self._local:
                name, sort = split_suffix(name)
            if allowed is not None and not allowed.match(name):
                refused.append(name)
            elif name not in chosen:
                chosen[name] = None if prefs is None else _effective(prefs, sort)
                if len(chosen) == MAX_CANDIDATES:
                    break
        if not chosen:
            assert allowed is not None
            shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more"
                                               if len(refused) > 5 else "")
            raise ModelNotAllowed(f"Key '{call.key_name}' may not use any of the models "
                                  f"{shown}; its allowed_models are "
                                  f"{', '.join(allowed.patterns)}.", param="model")
        return list(chosen.items())

    def _moves_on(self, reply: Reply) -> bool:
        error = reply.error
        if error is None:
            return reply.status in self._retry_on
        return isinstance(error, (UpstreamError, NoProviderAvailable))


def _effective(prefs: Preferences, sort: Any) -> Preferences | None:
    prefs = prefs.with_sort(sort)
    return None if prefs == NO_PREFERENCES else prefs
