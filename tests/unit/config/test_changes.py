"""What a live reload applies, and the settings it leaves to a restart."""

from __future__ import annotations

from sidecar.config.changes import RESTART_ONLY, changed_sections, keep_restart_only
from sidecar.config.schema import Settings


def test_restart_only_settings_keep_their_running_value_and_are_named() -> None:
    """A new port and admin token are kept at their running values (and named); a new budget
    and retry policy are applied; the sections that changed are listed."""
    running = Settings.model_validate({"listen": {"port": 4141}, "retry": {"attempts": 2}})
    new = Settings.model_validate({
        "listen": {"port": 5000, "max_body_bytes": 1024}, "admin": {"token": "t"},
        "retry": {"attempts": 3},
        "spend": {"budgets": [{"name": "day", "limit_usd": 1}]}})
    applied, kept = keep_restart_only(running, new)
    assert kept == ["listen.port", "admin"]
    assert applied.listen.port == 4141 and applied.listen.max_body_bytes == 1024
    assert applied.admin.token is None
    assert applied.retry.attempts == 3 and applied.spend.budgets[0].name == "day"
    assert changed_sections(running, applied) == ["listen", "retry", "spend"]


def test_an_unchanged_file_changes_nothing() -> None:
    """The same settings: nothing kept back, no section changed."""
    settings = Settings()
    assert keep_restart_only(settings, settings) == (settings, [])
    assert changed_sections(settings, Settings()) == []


def test_every_restart_only_path_names_a_setting() -> None:
    """Each dotted path of RESTART_ONLY exists in the schema (a renamed key must be renamed
    there too)."""
    settings = Settings()
    for path in RESTART_ONLY:
        node: object = settings
        for part in path.split("."):
            assert hasattr(node, part), path
            node = getattr(node, part)
