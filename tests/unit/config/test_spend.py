"""The spend section's own checks, reported by dotted key like every other config problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import ConfigError, load_settings
from sidecar.spend.ledger import sqlite_path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    return caught.value.problems


@pytest.mark.parametrize(("text", "problem"), [
    ("spend: {ledger: postgres://x}",
     "spend.ledger: must be sqlite:///path, redis://host:port/db or off"),
    ("spend: {budgets: [{name: a, limit_usd: 1}, {name: a, limit_usd: 2}]}",
     "spend.budgets: budget names must be unique"),
    ("spend: {rate_limits: [{scope: key}]}", "spend.rate_limits[0]: set rpm, tpm or both"),
    ("spend: {budgets: [{name: a, limit_usd: 1, window: fortnight}]}",
     "spend.budgets[0].window: Input should be 'minute', 'hour', 'day', 'week', 'month' or "
     "'total'"),
    ("spend: {unknown_model_price: {prompt: -1}}",
     "spend.unknown_model_price.prompt: Input should be greater than or equal to 0"),
], ids=["ledger_url", "duplicate_budget", "empty_rate_limit", "window", "negative_price"])
def test_spend_problems_name_their_key(tmp_path: Path, text: str, problem: str) -> None:
    """Each spend mistake is one line naming the key and what to write instead."""
    assert problem in problems(tmp_path, text)


@pytest.mark.parametrize(("ledger", "path"), [
    (None, "STATE/ledger.db"), ("sqlite:///var/lib/x/ledger.db", "/var/lib/x/ledger.db"),
    ("redis://r:6379/0", None), ("off", None)])
def test_ledger_location(tmp_path: Path, ledger: str | None, path: str | None) -> None:
    """No ledger key: <state_dir>/ledger.db; sqlite:///PATH is that absolute path; a bare
    YAML `off` turns spend off; Redis has no file."""
    text = f"state_dir: {tmp_path}\n" + (f"spend: {{ledger: {ledger}}}\n" if ledger else "")
    config = tmp_path / "c.yaml"
    config.write_text(text)
    settings = load_settings(config, env={})
    expected = None if path is None else Path(path.replace("STATE", str(tmp_path)))
    assert sqlite_path(settings) == expected
    if ledger == "off":
        assert settings.spend.ledger == "off"
