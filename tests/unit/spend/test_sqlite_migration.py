"""A ledger file written before the auto router's columns: read as it is by a read-only
reader, migrated in place (rows kept) by the first writable open, then reporting tiers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sidecar.spend.ledger import Row
from sidecar.spend.sqlite_store import SCHEMA, SCHEMA_VERSION, Store

NOW = 1_795_000_000.0 + 37_000
# The schema as it was before version 1 (no auto_tier, baseline_nusd, baseline_saved_nusd).
OLD_SCHEMA = "\n".join(line for line in SCHEMA.splitlines()
                       if "auto_tier TEXT" not in line and "baseline_" not in line
                       ).replace("latency_ms REAL NOT NULL,", "latency_ms REAL NOT NULL")
OLD_INSERT = ("INSERT INTO requests (ts, request_id, endpoint, key_name, user_name, tags, model, "
              "requested_model, provider, prompt_tokens, completion_tokens, cached_tokens, "
              "cache_write_tokens, reasoning_tokens, cost_nusd, saved_nusd, estimated, capped, "
              "cache_hit, status, outcome, latency_ms) VALUES "
              "(?,?,'chat/completions',NULL,NULL,'','m','m','p',10,5,0,0,0,?,0,0,0,0,200,"
              "'ok',1.0)")


def old_file(path: Path) -> None:
    """A version 0 file with two rows from yesterday and today (and their daily sums)."""
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    for i, ts in enumerate((NOW - 86_400, NOW - 60)):
        db.execute(OLD_INSERT, (ts, f"old{i}", 1_000))
        db.execute("INSERT INTO daily VALUES (?,?,?,1,10,5,1000,0,0)",
                   (int(ts // 86_400), "global", ""))
    db.commit()
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
