"""Ledger files written before the auto router's columns (version 0) or the provider prompt
cache's (version 1): read as they are by a read-only reader, migrated in place (rows kept) by
the first writable open, then reporting tiers and the provider's cache."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sidecar.spend.ledger import Row
from sidecar.spend.sqlite_store import SCHEMA_VERSION, Store

NOW = 1_795_000_000.0 + 37_000
# The schema as version 0 wrote it (written out: derived from today's, it would change with
# every migration).
OLD_SCHEMA = """
CREATE TABLE requests (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, request_id TEXT NOT NULL, endpoint TEXT NOT NULL,
    key_name TEXT, user_name TEXT, tags TEXT, model TEXT, requested_model TEXT, provider TEXT,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL, cost_nusd INTEGER NOT NULL, saved_nusd INTEGER NOT NULL,
    estimated INTEGER NOT NULL, capped INTEGER NOT NULL, cache_hit INTEGER NOT NULL,
    status INTEGER NOT NULL, outcome TEXT NOT NULL, latency_ms REAL NOT NULL);
CREATE INDEX requests_ts ON requests (ts);
CREATE TABLE daily (
    day INTEGER NOT NULL, scope TEXT NOT NULL, value TEXT NOT NULL,
    requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, cost_nusd INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL, saved_nusd INTEGER NOT NULL,
    PRIMARY KEY (scope, day, value)) WITHOUT ROWID;
"""
# Version 1 added the auto router's columns.
V1_COLUMNS = """
ALTER TABLE requests ADD COLUMN auto_tier TEXT;
ALTER TABLE requests ADD COLUMN baseline_nusd INTEGER;
ALTER TABLE daily ADD COLUMN baseline_nusd INTEGER NOT NULL DEFAULT 0;
ALTER TABLE daily ADD COLUMN baseline_saved_nusd INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 1;
"""
OLD_INSERT = ("INSERT INTO requests (ts, request_id, endpoint, key_name, user_name, tags, model, "
              "requested_model, provider, prompt_tokens, completion_tokens, cached_tokens, "
              "cache_write_tokens, reasoning_tokens, cost_nusd, saved_nusd, estimated, capped, "
              "cache_hit, status, outcome, latency_ms) VALUES "
              "(?,?,'chat/completions',NULL,NULL,'','m','m','p',10,5,0,0,0,?,0,0,0,0,200,"
              "'ok',1.0)")


def old_file(path: Path, version: int = 0) -> None:
    """A version 0 file with two rows from yesterday and today (and their daily sums), then
    migrated by hand to `version` 1 when asked."""
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    for i, ts in enumerate((NOW - 86_400, NOW - 60)):
        db.execute(OLD_INSERT, (ts, f"old{i}", 1_000))
        db.execute("INSERT INTO daily VALUES (?,?,?,1,10,5,1000,0,0)",
                   (int(ts // 86_400), "global", ""))
    db.commit()
    if version >= 1:
        db.executescript(V1_COLUMNS)
    db.close()


def columns(path: Path, table: str) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    finally:
        db.close()


def test_old_file_is_read_only_as_it_is(tmp_path: Path) -> None:
    """`llm-sidecar usage` on a file not yet migrated: its figures, the new sums as 0, no tier
    rows, and the file unchanged."""
    path = tmp_path / "ledger.db"
    old_file(path)
    reader = Store(path, readonly=True)
    reader.open()
    try:
        report = reader.usage("total", "model", NOW)
        assert (report["total_requests"], report["total_baseline_usd"]) == (2, 0.0)
        assert reader.usage("total", "tier", NOW)["rows"] == []
    finally:
        reader.close()
    assert "auto_tier" not in columns(path, "requests")


def test_first_writable_open_migrates_and_keeps_every_row(tmp_path: Path) -> None:
    """The columns are added in place, the version set, the old rows and sums kept, and new
    rows with a tier and a baseline report by tier at once; opening again changes nothing."""
    path = tmp_path / "ledger.db"
    old_file(path)
    store = Store(path)
    store.open()
    try:
        assert {"auto_tier", "baseline_nusd"} <= columns(path, "requests")
        assert {"baseline_nusd", "baseline_saved_nusd"} <= columns(path, "daily")
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        store.write([Row(ts=NOW - 30, request_id="new", endpoint="chat/completions",
                         key_name=None, user=None, tags=(), model="cheap", requested_model=
                         "sidecar/auto", provider="p", prompt_tokens=10, completion_tokens=5,
                         cost=300, tier="simple", baseline_cost=1_000)])
        total = store.usage("total", "model", NOW)
        assert (total["total_requests"], round(total["total_cost_usd"] * 1e9)) == (3, 2_300)
        tiers = store.usage("total", "tier", NOW)
        assert [(r["key"], r["requests"], round(r["saved_vs_baseline_usd"] * 1e9))
                for r in tiers["rows"]] == [("simple", 1, 700)]
        assert round(tiers["total_baseline_usd"] * 1e9) == 1_000
    finally:
        store.close()
    again = Store(path)
    again.open()
    try:
        assert again.usage("total", "model", NOW)["total_requests"] == 3
    finally:
        again.close()


def test_a_new_file_starts_at_the_current_version(tmp_path: Path) -> None:
    """A file created now has every column and the current version from the start."""
    store = Store(tmp_path / "new.db")
    store.open()
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        store.close()


def test_a_version_1_file_gets_the_provider_cache_columns(tmp_path: Path) -> None:
    """A file of the auto router's version: read only, the provider-cache sums read as 0;
    opened, the columns are added and new rows sum into them (the old rows count no
    provider-cache tokens, either side of the hit rate)."""
    path = tmp_path / "ledger.db"
    old_file(path, version=1)
    reader = Store(path, readonly=True)
    reader.open()
    try:
        before = reader.usage("total", "model", NOW)
    finally:
        reader.close()
    assert (before["total_requests"], before["total_cached_tokens"]) == (2, 0)
    assert before["total_provider_cache_hit_rate"] is None
    assert "provider_cache_saved_nusd" not in columns(path, "requests")
    store = Store(path)
    store.open()
    try:
        assert {"upstream_prompt_tokens", "cached_tokens", "cache_write_tokens",
                "provider_cache_saved_nusd"} <= columns(path, "daily")
        store.write([Row(ts=NOW - 30, request_id="new", endpoint="chat/completions",
                         key_name=None, user=None, tags=(), model="m", requested_model="m",
                         provider="p", prompt_tokens=200, completion_tokens=5,
                         cached_tokens=150, cache_write_tokens=20, cost=1_000,
                         provider_cache_saved=4_000)])
        after = store.usage("total", "model", NOW)
    finally:
        store.close()
    assert (after["total_requests"], after["total_cached_tokens"],
            after["total_cache_write_tokens"]) == (3, 150, 20)
    assert round(after["total_provider_cache_saved_usd"] * 1e9) == 4_000
    assert after["total_provider_cache_hit_rate"] == round(150 / 200, 4)
