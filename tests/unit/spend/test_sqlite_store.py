"""The SQLite file: window totals rebuilt at start and usage reports agree with a plain sum
over the rows, for every scope and window, across day boundaries and the start-up cut."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from sidecar.config.spend import Budget
from sidecar.spend.ledger import Row
from sidecar.spend.policy import BudgetRule, scope_values
from sidecar.spend.sqlite_store import Store
from sidecar.spend.windows import WINDOWS, Window, window_start

NOW = 1_795_000_000.0 + 37_000  # 2026-11-18 mid-morning
BOOT = NOW - 1_800  # the process started half an hour ago: rows after it are its own


def make_rows(count: int) -> list[Row]:
    rng = random.Random(9)
    out = []
    for i in range(count):
        ts = NOW - rng.choice([rng.uniform(0, 120), rng.uniform(0, 7_200),
                               rng.uniform(0, 86_400 * 45)])
        out.append(Row(ts=ts, request_id=str(i), endpoint="chat/completions",
                       key_name=rng.choice(["a", "b", None]), user=rng.choice(["u", None]),
                       tags=tuple(rng.sample(["x", "y", "z"], rng.randint(0, 2))),
                       model=rng.choice(["m1", "m2"]), requested_model="m1",
                       provider="upstream", prompt_tokens=rng.randint(1, 99),
                       completion_tokens=rng.randint(0, 99), cost=rng.randint(0, 10**6),
                       saved=rng.randint(0, 5), cache_hit=rng.random() < 0.2, status=200,
                       cached_tokens=rng.randint(0, 50), cache_write_tokens=rng.randint(0, 40),
                       provider_cache_saved=rng.randint(-500, 5000)))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(Path(tmp_path_factory.mktemp("ledger")) / "ledger.db")
    store.open()
    rows = make_rows(3_000)
    for start in range(0, len(rows), 700):  # several batches, as the writer sends them
        store.write(rows[start:start + 700])
    store.rows = rows  # type: ignore[attr-defined]
    return store


SCOPES = ["global", "key", "user", "model", "tag"]


@pytest.mark.parametrize("cut", [BOOT, None], ids=["opened_late", "opened_at_start"])
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("scope", SCOPES)
def test_rebuilt_totals_equal_the_rows(store: Store, scope: str, window: Window,
                                       cut: float | None) -> None:
    """Each budget's spend in its current window is the plain sum of its rows: all of them at
    start (daily sums), or those admitted before start-up for a file that opened late."""
    rule = BudgetRule.of(Budget(name="b", scope=scope, window=window,  # type: ignore[arg-type]
                                limit_usd=1))
    start = window_start(window, NOW)
    expected: dict[str, int] = {}
    for row in store.rows:  # type: ignore[attr-defined]
        if start <= row.ts < (BOOT if cut else NOW + 1):
            call_like = type("C", (), {"key_name": row.key_name, "user": row.user,
                                       "model": row.model, "tags": row.tags})
            for value in scope_values(scope, call_like):  # type: ignore[arg-type]
                expected[value] = expected.get(value, 0) + row.cost
    found = {value: amount for _, value, amount in store.totals([rule], NOW, cut)}
    assert found == expected


@pytest.mark.parametrize("window", ["minute", "hour", "day", "week", "month", "all"])
@pytest.mark.parametrize("by", ["model", "key", "tag", "provider"])
def test_usage_report_equals_the_rows(store: Store, window: str, by: str) -> None:
    """Reports by every dimension and window count requests, tokens, cost, hits and savings
    exactly as the rows say; totals count each request once."""
    span: Window = "total" if window == "all" else window  # type: ignore[assignment]
    start = window_start(span, NOW)
    picked = [r for r in store.rows if r.ts >= start]  # type: ignore[attr-defined]
    column = {"model": "model", "key": "key_name", "provider": "provider"}
    expected: dict[object, list[Any]] = {}
    for row in picked:
        values = list(row.tags) if by == "tag" else [getattr(row, column[by]) or None]
        upstream = not row.cache_hit  # the provider's cache: requests that went upstream
        for value in values:
            tally = expected.setdefault(value, [0, 0, 0, 0, 0, 0, 0, 0])
            tally[0] += 1
            tally[1] += row.prompt_tokens
            tally[2] += row.cost
            tally[3] += row.cache_hit
            tally[4] += row.cached_tokens if upstream else 0
            tally[5] += row.cache_write_tokens if upstream else 0
            tally[6] += row.provider_cache_saved
            tally[7] += row.prompt_tokens if upstream else 0
    report = store.usage(span, by, NOW)  # type: ignore[arg-type]
    got = {r["key"]: [r["requests"], r["prompt_tokens"], round(r["cost_usd"] * 1e9),
                      r["cache_hits"], r["cached_tokens"], r["cache_write_tokens"],
                      round(r["provider_cache_saved_usd"] * 1e9), r["provider_cache_hit_rate"]]
           for r in report["rows"]}
    for tally in expected.values():
        tally[7] = round(tally[4] / tally[7], 4) if tally[7] else None
    assert got == expected
    assert report["total_requests"] == len(picked)
    assert round(report["total_cost_usd"] * 1e9) == sum(r.cost for r in picked)


def test_readonly_store_reads_a_live_file(store: Store) -> None:
    """The CLI's read-only connection reads the same file while the writer has it open."""
    reader = Store(store.path, readonly=True)
    reader.open()
    try:
        assert reader.usage("total", "model", NOW)["total_requests"] == 3_000
    finally:
        reader.close()


OLD_SCHEMA = """
CREATE TABLE requests (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, request_id TEXT NOT NULL, endpoint TEXT NOT NULL,
    key_name TEXT, user_name TEXT, tags TEXT, model TEXT, requested_model TEXT, provider TEXT,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL, cost_nusd INTEGER NOT NULL, saved_nusd INTEGER NOT NULL,
    estimated INTEGER NOT NULL, capped INTEGER NOT NULL, cache_hit INTEGER NOT NULL,
    status INTEGER NOT NULL, outcome TEXT NOT NULL, latency_ms REAL NOT NULL);
CREATE TABLE daily (
    day INTEGER NOT NULL, scope TEXT NOT NULL, value TEXT NOT NULL,
    requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, cost_nusd INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL, saved_nusd INTEGER NOT NULL,
    PRIMARY KEY (scope, day, value)) WITHOUT ROWID;
INSERT INTO requests VALUES (1, 1795000000.0, 'old', 'chat/completions', NULL, NULL, '', 'm',
    'm', 'upstream', 100, 5, 60, 0, 0, 777, 0, 0, 0, 0, 200, 'ok', 1.0);
INSERT INTO daily VALUES (20775, 'model', 'm', 1, 100, 5, 777, 0, 0);
INSERT INTO daily VALUES (20775, 'global', '', 1, 100, 5, 777, 0, 0);
"""


def test_a_file_from_before_the_provider_cache_columns(tmp_path: Path) -> None:
    """A ledger written by an older sidecar: a read-only reader reads the new sums as 0;
    opened by the sidecar, the columns are added and new rows sum into them."""
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    reader = Store(path, readonly=True)
    reader.open()
    try:
        before = reader.usage("total", "model", NOW)
    finally:
        reader.close()
    assert (before["total_requests"], before["total_cached_tokens"]) == (1, 0)
    assert before["rows"][0]["provider_cache_saved_usd"] == 0
    writer = Store(path)
    writer.open()
    try:
        writer.write([Row(ts=NOW, request_id="new", endpoint="chat/completions", key_name=None,
                          user=None, tags=(), model="m", requested_model="m",
                          provider="upstream", prompt_tokens=200, completion_tokens=5,
                          cached_tokens=150, cache_write_tokens=20, cost=1000,
                          provider_cache_saved=4000, status=200)])
        after = writer.usage("total", "model", NOW)
    finally:
        writer.close()
    (row,) = after["rows"]
    assert (row["requests"], row["cached_tokens"], row["cache_write_tokens"]) == (2, 150, 20)
    assert round(row["provider_cache_saved_usd"] * 1e9) == 4000
    # rows summed before the columns existed count no provider-cache tokens, either side
    assert row["provider_cache_hit_rate"] == round(150 / 200, 4)
