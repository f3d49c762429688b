"""A shadow rule's matching, sampling and the calls it makes (forks of the primary)."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from sidecar.compare.shadow_plan import ShadowPlan
from sidecar.config.compare import ShadowRule
from tests.fakes.calls import make_call, ok


def plan(**rule: Any) -> ShadowPlan:
    settings = ShadowRule.model_validate({"name": "r", "candidate": "c/model", "budget_usd": 1,
                                          **rule})
    return ShadowPlan.of(settings, ok)


@pytest.mark.parametrize(("match", "fields", "matches"), [
    ({}, {}, True),
    ({"model": "openai/*"}, {}, True),
    ({"model": "anthropic/*"}, {}, False),
    ({"key": "team-*"}, {"key_name": "team-a"}, True),
    ({"key": "team-*"}, {}, False),
    ({"user": ["u1", "u2"]}, {"user": "u2"}, True),
    ({"tag": "eval"}, {"tags": ("x", "eval")}, True),
    ({"tag": "eval"}, {"tags": ("x",)}, False),
    ({"model": "openai/*", "tag": "eval"}, {"tags": ("eval",)}, True),
    ({"model": "openai/*", "tag": "eval"}, {"tags": ()}, False),
])
def test_every_glob_given_must_match(match: dict[str, Any], fields: dict[str, Any],
                                     matches: bool) -> None:
    """model (the requested one), key, user and any tag: each given must match."""
    assert plan(match=match).matches(make_call(**fields)) is matches


def test_sampling_by_percent() -> None:
    """100 always, 0 never (no draw), 25 about a quarter of a seeded source."""
    source = random.Random(5).random
    assert all(plan(percent=100).sampled(source) for _ in range(100))
    assert not any(plan(percent=0).sampled(lambda: 0.0) for _ in range(100))
    hits = sum(plan(percent=25).sampled(source) for _ in range(4000))
    assert 850 <= hits <= 1150


def test_the_candidate_call_is_the_rules_not_the_clients() -> None:
    """The copy: its own request id, the redacted body with the candidate as model and the
    client's streaming and routing fields removed, not streamed, no key, no user, no
    overrides, only the rule's tag, a fresh start time."""
    primary = make_call(key_name="k", user="u", tags=("a",), stream=True)
    primary.overrides = {"max_tokens": 5}
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "[EMAIL]"}],
            "stream": True, "stream_options": {"include_usage": True}, "models": ["x"],
            "provider": {"order": ["p"]}, "temperature": 0}
    copy = plan().candidate_call(primary, body)
    assert copy.request_id != primary.request_id
    assert copy.body == {"model": "c/model", "messages": body["messages"], "temperature": 0}
    assert orjson.loads(copy.raw_body or b"") == copy.body and not copy.body_changed
    assert copy.model == copy.requested_model == "c/model" and copy.stream is False
    assert (copy.key_name, copy.user, copy.allowed_models) == (None, None, None)
    assert copy.tags == ("shadow:r",) and copy.overrides == {}
    assert copy.endpoint == primary.endpoint and copy.started >= primary.started
    assert copy.finishers == [] and copy.attempts == []


def test_the_judge_call_is_a_chat_completion() -> None:
    """Whatever the primary's endpoint, the judge is asked on chat/completions."""
    primary = make_call()
    primary.endpoint, primary.path = "responses", "/responses"
    judge = plan().judge_call(primary, {"model": "j", "messages": []})
    assert (judge.endpoint, judge.path, judge.model) == ("chat/completions",
                                                         "/chat/completions", "j")
    assert judge.tags == ("shadow:r",)
