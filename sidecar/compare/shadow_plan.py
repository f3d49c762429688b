"""A shadow rule as the shadow stage and the runner use it: which requests it matches, how many
it samples, and the calls it makes (the candidate's copy, the judge's), with the pipeline they
run through.

A rule's calls are forks of the primary request with the rule's identity instead of the
client's: no key, no user (none of the client's budgets or limits apply), the one tag
`shadow:<name>` (the rule's budget applies, and the ledger rows say whose they are). The copy's
body is the primary's as the upstream got it (after redaction), with the candidate as its
model, sent whole, not streamed, without the client's routing fields (`models`, `route`,
`provider`: a copy tries the candidate and nothing else).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from sidecar.call import Call, Next, new_request_id
from sidecar.config.compare import ShadowMatch, ShadowRule
from sidecar.globs import Globs

_NOT_COPIED = frozenset({"stream", "stream_options", "models", "route", "provider"})


class Matcher:
    """Every glob list given must match: model (the one the client asked for), key, user, and
    any one of the request's tags."""

    __slots__ = ("_key", "_model", "_tag", "_user")

    def __init__(self, match: ShadowMatch) -> None:
        def globs(patterns: list[str] | None) -> Globs | None:
            return None if patterns is None else Globs(patterns)

        self._model, self._key = globs(match.model), globs(match.key)
        self._user, self._tag = globs(match.user), globs(match.tag)

    def __call__(self, call: Call) -> bool:
        if self._model is not None and not self._model(call.requested_model or ""):
            return False
        if self._key is not None and not self._key(call.key_name or ""):
            return False
        if self._user is not None and not self._user(call.user or ""):
            return False
        return self._tag is None or any(self._tag(tag) for tag in call.tags)


@dataclass(frozen=True, slots=True)
class ShadowPlan:
    rule: ShadowRule
    pipeline: Next  # telemetry, inspect, spend under the rule's budget only, answer, route
    matches: Callable[[Call], bool]

    @classmethod
    def of(cls, rule: ShadowRule, pipeline: Next) -> ShadowPlan:
        return cls(rule, pipeline, Matcher(rule.match))

    def sampled(self, random: Callable[[], float]) -> bool:
        percent = self.rule.percent
        return percent >= 100 or (percent > 0 and random() * 100 < percent)

    def candidate_call(self, primary: Call, body: dict[str, Any]) -> Call:
        """The copy for the candidate; `body` is the primary's, redacted."""
        copy = {k: v for k, v in body.items() if k not in _NOT_COPIED}
        copy["model"] = self.rule.candidate
        return self._fork(primary, copy, primary.endpoint, primary.path)

    def judge_call(self, primary: Call, body: dict[str, Any]) -> Call:
        return self._fork(primary, body, "chat/completions", "/chat/completions")

    def _fork(self, primary: Call, body: dict[str, Any], endpoint: str | None,
              path: str) -> Call:
        call = primary.fork(request_id=new_request_id())
        call.endpoint, call.path = endpoint, path
        call.raw_body, call.body, call.body_changed = orjson.dumps(body), body, False
        call.model = call.requested_model = body["model"]
        call.stream = False
        call.overrides, call.preferences = {}, None
        call.candidates = call.priced_as = call.auto = None  # the primary's routing, not the copy's
        call.key_name = call.user = call.allowed_models = None
        call.tags = (self.rule.tag,)
        call.upstream_headers = {}  # its own trace context, set by its telemetry stage
        call.started = time.monotonic()
        return call
