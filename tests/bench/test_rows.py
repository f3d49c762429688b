"""The rows: each generated config is valid for the sidecar and says what the row's name says."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench import rows
from sidecar.config import load_settings

CONTEXT = {"upstream": "http://127.0.0.1:9001", "otlp": "http://127.0.0.1:4317",
           "otlp_protocol": "grpc", "state": "/tmp/bench-state"}


@pytest.mark.parametrize("name", rows.ROW_NAMES)
def test_every_row_config_loads_in_the_sidecar(name: str, tmp_path: Path) -> None:
    """Each row's YAML, as the bench writes it, passes the sidecar's own strict loader."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(rows.config(rows.row(name), CONTEXT), sort_keys=False))
    load_settings(path, env={})


def test_core_turns_every_feature_off() -> None:
    """`core`: cache off, no auth, no exporters, no redaction, no providers, no spend."""
    settings = rows.config(rows.row("core"), CONTEXT)
    assert settings["cache"]["backend"] == "off"
    assert settings["auth"]["required"] is False
    assert settings["telemetry"]["exporters"] == []
    assert settings["privacy"]["redact"]["mode"] == "off"
    assert "providers" not in settings
    assert settings["upstream"] == {"url": CONTEXT["upstream"]}
    assert rows.headers(rows.row("core")) == {}
    assert set(rows.forbidden_stages(rows.row("core"))) == set(rows.FEATURE_STAGES)


def test_all_has_every_feature_of_the_issue() -> None:
    """`all`: local keys, cache bypassed, priced spend with a budget and a SQLite ledger,
    traces and metrics to the receiver, two providers with retries."""
    row = rows.row("all")
    settings = rows.config(row, CONTEXT)
    assert settings["auth"]["required"] is True
    assert settings["cache"]["backend"] == "memory"
    assert rows.headers(row)["Cache-Control"] == "no-store"
    assert rows.headers(row)["Authorization"] == f"Bearer {rows.LOCAL_KEY}"
    assert settings["spend"]["ledger"] == "sqlite:////tmp/bench-state/ledger.db"
    assert settings["spend"]["prices"] and settings["spend"]["budgets"]
    exporter = settings["telemetry"]["exporters"][0]
    assert exporter["endpoint"] == CONTEXT["otlp"] and exporter["protocol"] == "grpc"
    assert exporter["signals"] == ["traces", "metrics"]
    assert [p["base_url"] for p in settings["providers"]] == [
        "http://127.0.0.1:9001/v1", "http://127.0.0.1:9001"]
    assert settings["retry"]["attempts"] > 1
    assert settings["privacy"]["redact"]["mode"] == "off"


def test_variants_of_all_differ_only_where_named() -> None:
    """`all+redact` adds pseudonymization and the entity prompt; `hit` drops no-store;
    `stream` is `all` with streams."""
    base = rows.config(rows.row("all"), CONTEXT)
    redact = rows.config(rows.row("all+redact"), CONTEXT)
    assert redact["privacy"]["redact"]["mode"] == "pseudonymize"
    assert {**redact, "privacy": base["privacy"]} == base
    assert rows.body(rows.row("all+redact")) == "entities"
    assert rows.config(rows.row("hit"), CONTEXT) == base
    assert "Cache-Control" not in rows.headers(rows.row("hit"))
    assert ("x-sidecar-cache", "HIT") in rows.answer_headers(rows.row("hit"))
    assert rows.config(rows.row("stream"), CONTEXT) == base
    assert rows.row("stream").kind == "stream"


@pytest.mark.parametrize("name", ["auth", "cache-bypass", "spend", "privacy",
                                  "telemetry-metrics", "telemetry-traces", "routing"])
def test_single_feature_rows_add_one_feature_to_the_core(name: str) -> None:
    """Each single-feature row is the core with exactly its own feature's keys changed."""
    core = rows.config(rows.row("core"), CONTEXT)
    mine = rows.config(rows.row(name), CONTEXT)
    changed = {key for key in set(core) | set(mine) if core.get(key) != mine.get(key)}
    assert changed == set(rows.FEATURES[name].config)


def test_merged_is_deep_and_later_wins() -> None:
    """Mappings merge key by key; lists and scalars are replaced."""
    assert rows.merged({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2], "d": 3}}) == {
        "a": {"b": 1, "c": [2], "d": 3}}


def test_an_unknown_row_names_the_known_ones() -> None:
    """Asking for a row that does not exist lists the rows that do."""
    with pytest.raises(KeyError, match="core"):
        rows.row("everything")
