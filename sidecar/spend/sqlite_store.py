"""The SQLite ledger file: schema, batched writes, the rebuild of window totals, reports.

Synchronous on purpose: the running sidecar calls it from the ledger's own thread (never the
event loop), and `llm-sidecar usage` calls it directly on a stopped sidecar's file.

Two tables. `requests`: one row per request (never content), indexed by time. `daily`: per UTC
day and per (scope, value) running sums, upserted in the same transaction as the rows they sum,
so the two never disagree. Totals for day, week, month and total windows, and reports over
them, read `daily` (one row per day and value, however many requests), so a ledger of a
million rows rebuilds in milliseconds; minute and hour windows read today's `requests` through
the time index.

WAL mode with synchronous=NORMAL: a committed batch survives the process being killed (only a
power cut can lose the last commits), readers (the CLI) never block the writer.

Migrations: `PRAGMA user_version` is the file's schema version. Version 1 added the auto
router's columns (requests: auto_tier, baseline_nusd; daily: baseline_nusd,
baseline_saved_nusd): a file from before gets them on its first writable open, in one
transaction, its rows kept (their new columns NULL or 0). A read-only open of an older file
(`llm-sidecar usage` on a sidecar not yet upgraded) reads it as it is, the new sums as 0.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sidecar.spend.ledger import Row
from sidecar.spend.policy import BudgetRule
from sidecar.spend.usage import By, add, report, since
from sidecar.spend.windows import DAY, Window, window_start

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,                  -- Unix time admitted (UTC)
    request_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    key_name TEXT, user_name TEXT, tags TEXT,   -- tags comma-separated
    model TEXT, requested_model TEXT, provider TEXT,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_nusd INTEGER NOT NULL,        -- nano-dollars (1e-9 USD)
    saved_nusd INTEGER NOT NULL,
    estimated INTEGER NOT NULL, capped INTEGER NOT NULL, cache_hit INTEGER NOT NULL,
    status INTEGER NOT NULL, outcome TEXT NOT NULL, latency_ms REAL NOT NULL,
    auto_tier TEXT,                    -- the auto router's tier; NULL: no router chose
    baseline_nusd INTEGER              -- the router's baseline cost for the same tokens
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE TABLE IF NOT EXISTS daily (
    day INTEGER NOT NULL,              -- Unix day number (ts // 86400)
    scope TEXT NOT NULL,               -- global key user model provider tag tier
    value TEXT NOT NULL,               -- '' when the request had none
    requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, cost_nusd INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL, saved_nusd INTEGER NOT NULL,
    baseline_nusd INTEGER NOT NULL DEFAULT 0,        -- auto rows: the baselines' cost
    baseline_saved_nusd INTEGER NOT NULL DEFAULT 0,  -- auto rows: baseline minus cost
    PRIMARY KEY (scope, day, value)    -- reads are one scope over a range of days
) WITHOUT ROWID;
"""
SCHEMA_VERSION = 1
_MIGRATIONS = (  # (table, column, type): version 1, the auto router's columns
    ("requests", "auto_tier", "TEXT"), ("requests", "baseline_nusd", "INTEGER"),
    ("daily", "baseline_nusd", "INTEGER NOT NULL DEFAULT 0"),
    ("daily", "baseline_saved_nusd", "INTEGER NOT NULL DEFAULT 0"))
_INSERT = ("INSERT INTO requests (ts, request_id, endpoint, key_name, user_name, tags, model, "
           "requested_model, provider, prompt_tokens, completion_tokens, cached_tokens, "
           "cache_write_tokens, reasoning_tokens, cost_nusd, saved_nusd, estimated, capped, "
           "cache_hit, status, outcome, latency_ms, auto_tier, baseline_nusd) VALUES "
           "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_UPSERT = ("INSERT INTO daily (day, scope, value, requests, prompt_tokens, completion_tokens, "
           "cost_nusd, cache_hits, saved_nusd, baseline_nusd, baseline_saved_nusd) VALUES "
           "(?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (scope, day, value) DO "
           "UPDATE SET requests = requests + excluded.requests, "
           "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
           "completion_tokens = completion_tokens + excluded.completion_tokens, "
           "cost_nusd = cost_nusd + excluded.cost_nusd, "
           "cache_hits = cache_hits + excluded.cache_hits, "
           "saved_nusd = saved_nusd + excluded.saved_nusd, "
           "baseline_nusd = baseline_nusd + excluded.baseline_nusd, "
           "baseline_saved_nusd = baseline_saved_nusd + excluded.baseline_saved_nusd")
# The requests column that holds each scope's value.
COLUMNS = {"global": "''", "key": "key_name", "user": "user_name", "model": "model",
           "provider": "provider", "tag": "tags", "tier": "auto_tier"}
_TALLY = ("COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_nusd), "
          "SUM(cache_hit), SUM(saved_nusd), SUM(COALESCE(baseline_nusd, 0)), "
          "SUM(CASE WHEN baseline_nusd IS NULL THEN 0 ELSE baseline_nusd - cost_nusd END)")
_DAILY_TALLY = ("SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_nusd), "
                "SUM(cache_hits), SUM(saved_nusd), SUM(baseline_nusd), "
                "SUM(baseline_saved_nusd)")
# A file from before version 1, read only: the sums it has not got read as 0.
_OLD_TALLY = _TALLY.rsplit(", SUM(COALESCE", 1)[0] + ", 0, 0"
_OLD_DAILY_TALLY = _DAILY_TALLY.rsplit(", SUM(baseline_nusd)", 1)[0] + ", 0, 0"
_TALLY_FIELDS = 8


class Store:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._readonly = readonly
        self._db: sqlite3.Connection | None = None
        self._tally, self._daily_tally = _TALLY, _DAILY_TALLY

    def open(self) -> None:
        """Connect (creating the directory, file and tables on first start)."""
        if self._readonly:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True)
            if "baseline_nusd" not in _columns(self._db, "requests"):
                self._tally, self._daily_tally = _OLD_TALLY, _OLD_DAILY_TALLY
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            migrate(db)
        except sqlite3.Error:
            db.close()
            raise
        self._db = db

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "Store.open() was not called"
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def write(self, rows: list[Row]) -> None:
        """One transaction: the rows and the daily sums they add to."""
        # Rows of one batch share a few identities: sum per identity first, then spread each
        # over its scopes (6 µs a row -> 3.5 µs with batches of 500, writes included).
        by_identity: dict[tuple[Any, ...], list[int]] = {}
        for row in rows:
            identity = (int(row.ts // DAY), row.key_name, row.user, row.model, row.provider,
                        row.tags, row.tier)
            tally = by_identity.get(identity)
            if tally is None:
                tally = by_identity[identity] = [0] * _TALLY_FIELDS
            tally[0] += 1
            tally[1] += row.prompt_tokens
            tally[2] += row.completion_tokens
            tally[3] += row.cost
            tally[4] += row.cache_hit
            tally[5] += row.saved
            if row.baseline_cost is not None:
                tally[6] += row.baseline_cost
                tally[7] += row.baseline_cost - row.cost
        sums: dict[tuple[int, str, str], list[int]] = {}
        for (day, key, user, model, provider, tags, tier), tally in by_identity.items():
            scopes = [("global", ""), ("key", key or ""), ("user", user or ""),
                      ("model", model or ""), ("provider", provider or "")]
            scopes += [("tag", tag) for tag in dict.fromkeys(tags)]
            if tier is not None:
                scopes.append(("tier", tier))
            for scope, value in scopes:
                add(sums, (day, scope, value), tally)
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_INSERT, [_fields(row) for row in rows])
            db.executemany(_UPSERT, [(*key, *tally) for key, tally in sums.items()])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def totals(self, rules: Iterable[BudgetRule], now: float, before: float | None
               ) -> list[tuple[BudgetRule, str, int]]:
        """Each budget's spend in its current window, from every row, or from the rows admitted
        before `before` (when the file opens late: what this process admitted while it could
        not write, it counted itself)."""
        out: list[tuple[BudgetRule, str, int]] = []
        for rule in rules:
            found: dict[str, list[int]] = {}
            for value, tally in self._sums(rule.scope, rule.window, now, before):
                add(found, value, tally)
            out += [(rule, value, tally[3]) for value, tally in found.items()]
        return out

    def usage(self, window: Window, by: By, now: float) -> dict[str, Any]:
        start = since(window, now)
        tallies: dict[str, list[int]] = {}
        for value, tally in self._sums(by, window, now, None):
            add(tallies, value, tally)
        total: dict[str, list[int]] = {}
        for value, tally in self._sums("global", window, now, None):
            add(total, value, tally)
        return report(window, by, start, tallies, total.get(""))

    def _sums(self, scope: str, window: Window, now: float, before: float | None
              ) -> list[tuple[str, tuple[int, ...]]]:
        """(value, tally) of `scope` over the window holding `now`, from rows before `before`
        (None: all rows). Tags come back one per value."""
        start = window_start(window, now)
        out: list[tuple[str, tuple[int, ...]]] = []
        cut = now + DAY if before is None else before  # no cut: whole days, today included
        if window not in ("minute", "hour"):
            # Whole days before the cut's day come from the daily sums ...
            first_day, cut_day = start // DAY, int(cut // DAY)
            for value, *tally in self.db.execute(
                    f"SELECT value, {self._daily_tally} FROM daily WHERE scope = ? AND day >= ? "
                    "AND day < ? GROUP BY value", (scope, first_day, cut_day)):
                out.append((value, tuple(int(v or 0) for v in tally)))
            start = max(start, cut_day * DAY)
        # ... and the rest from the rows themselves.
        column = COLUMNS[scope]
        only = f" AND {column} IS NOT NULL" if scope == "tier" else ""  # routed rows alone
        if scope == "tier" and self._tally is _OLD_TALLY:
            return out  # a file from before tiers has none
        rows = self.db.execute(
            f"SELECT {column}, {self._tally} FROM requests WHERE ts >= ? AND ts < ?{only} "
            f"GROUP BY {column}", (start, cut)).fetchall()
        for value, *tally in rows:
            tally_t = tuple(int(v or 0) for v in tally)
            if scope == "tag":
                out += [(tag, tally_t) for tag in dict.fromkeys((value or "").split(",")) if tag]
            else:
                out.append((value or "", tally_t))
        return out


def _fields(row: Row) -> tuple[Any, ...]:
    return (row.ts, row.request_id, row.endpoint, row.key_name, row.user, ",".join(row.tags),
            row.model, row.requested_model, row.provider, row.prompt_tokens,
            row.completion_tokens, row.cached_tokens, row.cache_write_tokens,
            row.reasoning_tokens, row.cost, row.saved, int(row.estimated), int(row.capped),
            int(row.cache_hit), row.status, row.outcome, round(row.latency_ms, 3), row.tier,
            row.baseline_cost)


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(info[1]) for info in db.execute(f"PRAGMA table_info({table})")}


def migrate(db: sqlite3.Connection) -> None:
    """Bring a ledger file to SCHEMA_VERSION in one transaction (see the module docstring).
    A new file already has every column: it only gets its version."""
    if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")  # two sidecars opening one old file: one migrates
    try:
        for table, column, kind in _MIGRATIONS:
            if column not in _columns(db, table):
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
