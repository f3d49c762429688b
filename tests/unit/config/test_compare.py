"""The compare and shadow sections: defaults, their own checks and those across sections, each
reported by dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import ConfigError, Settings, load_settings
from sidecar.config.compare import shadow_budgets
from sidecar.spend.policy import Policy

RULE = "{name: r, candidate: c/model, budget_usd: 2}"


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    return caught.value.problems


def test_defaults() -> None:
    """Eight models, 120 s; a rule samples 10 %, total window, no judge, no cache hits, eight
    copies at once; a lone glob is a list of one."""
    settings = Settings.model_validate({"shadow": [{
        "name": "r", "candidate": "c", "budget_usd": 1, "match": {"model": "openai/*"}}]})
    assert (settings.compare.max_models, settings.compare.timeout_s) == (8, 120.0)
    (rule,) = settings.shadow
    assert (rule.percent, rule.window, rule.judge, rule.on_cache_hit, rule.max_in_flight) == (
        10.0, "total", None, False, 8)
    assert rule.match.model == ["openai/*"] and rule.match.key is None


def test_a_rules_budget_is_a_blocking_tag_budget_in_the_ledgers_policy() -> None:
    """The rule's budget is named shadow:<name>, scoped to its tag, blocking, in its window;
    the ledger's policy holds it after the spend budgets."""
    settings = Settings.model_validate({
        "spend": {"budgets": [{"name": "all", "limit_usd": 9}]},
        "shadow": [{"name": "try", "candidate": "c", "budget_usd": 2.5, "window": "week"}]})
    budget = settings.shadow[0].budget
    assert (budget.name, budget.scope, budget.match, budget.action, budget.window,
            budget.limit_usd) == ("shadow:try", "tag", ["shadow:try"], "block", "week", 2.5)
    policy = Policy(settings.spend, shadow_budgets(settings.shadow))
    assert [rule.name for rule in policy.budgets] == ["all", "shadow:try"]


@pytest.mark.parametrize(("text", "problem"), [
    ("compare: {max_models: 0}", "compare.max_models: Input should be greater than or equal "
                                 "to 1"),
    ("compare: {timeout_s: 0}", "compare.timeout_s: Input should be greater than 0"),
    ("shadow: [{name: 'a b', candidate: c, budget_usd: 1}]", "shadow[0].name: String should "
                                                             "match pattern"),
    ("shadow: [{name: r, candidate: c}]", "shadow[0].budget_usd: Field required"),
    ("shadow: [{name: r, candidate: c, budget_usd: 1, percent: 101}]",
     "shadow[0].percent: Input should be less than or equal to 100"),
    ("shadow: [{name: r, candidate: c, budget_usd: 1, window: hour}]",
     "shadow[0].window: Input should be 'total', 'day', 'week' or 'month'"),
    (f"shadow: [{RULE}, {RULE}]", "shadow: shadow rule names must be unique"),
    (f"spend: {{ledger: 'off'}}\nshadow: [{RULE}]",
     "shadow rules need the spend ledger for their budgets, and spend.ledger is off"),
    (f"spend: {{budgets: [{{name: 'shadow:r', limit_usd: 1}}]}}\nshadow: [{RULE}]",
     "shadow[0]: its budget is named 'shadow:r', and so is a budget of spend.budgets"),
    ("routes: {fast: [a, b]}\nshadow: [{name: r, candidate: fast, budget_usd: 1}]",
     "shadow[0]: 'fast' is a routes alias"),
    ("auth: {keys: [{name: k, token: t, tags: ['shadow:r']}]}",
     "auth.keys 'k': tags starting with 'shadow:' are reserved for shadow rules"),
], ids=["max_models", "timeout", "name", "budget_required", "percent", "window", "unique",
        "no_ledger", "budget_name", "alias", "key_tag"])
def test_problems_name_their_key(tmp_path: Path, text: str, problem: str) -> None:
    """Each mistake is one line naming the key."""
    assert any(problem in line for line in problems(tmp_path, text)), problems(tmp_path, text)
