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
baseline_saved_nusd), version 2 the provider prompt cache's (requests:
provider_cache_saved_nusd; daily: upstream_prompt_tokens, cached_tokens, cache_write_tokens,
provider_cache_saved_nusd): a file from before gets them on its first writable open, in one
transaction, its rows kept (their new columns NULL or 0; what was summed before counts no
provider-cache tokens). A read-only open of an older file (`llm-sidecar usage` on a sidecar not
yet upgraded) reads it as it is, the sums of missing columns as 0.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sidecar.config.compare import SHADOW_TAG_PREFIX
from sidecar.spend.ledger import Row
from sidecar.spend.policy import BudgetRule
from sidecar.spend.usage import By, add, report, since, tally_of
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
    baseline_nusd INTEGER,             -- the router's baseline cost for the same tokens
    provider_cache_saved_nusd INTEGER NOT NULL DEFAULT 0  -- the provider's prompt cache
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
    upstream_prompt_tokens INTEGER NOT NULL DEFAULT 0,  -- of requests that went upstream
    cached_tokens INTEGER NOT NULL DEFAULT 0,            -- read from the provider's cache
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,       -- written to it
    provider_cache_saved_nusd INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, day, value)    -- reads are one scope over a range of days
) WITHOUT ROWID;
"""
SCHEMA_VERSION = 2
_MIGRATIONS = (  # (table, column, type)
    # version 1, the auto router's columns
    ("requests", "auto_tier", "TEXT"), ("requests", "baseline_nusd", "INTEGER"),
    ("daily", "baseline_nusd", "INTEGER NOT NULL DEFAULT 0"),
    ("daily", "baseline_saved_nusd", "INTEGER NOT NULL DEFAULT 0"),
    # version 2, the provider prompt cache's
    ("requests", "provider_cache_saved_nusd", "INTEGER NOT NULL DEFAULT 0"),
    ("daily", "upstream_prompt_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("daily", "cached_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("daily", "cache_write_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("daily", "provider_cache_saved_nusd", "INTEGER NOT NULL DEFAULT 0"))
_INSERT = ("INSERT INTO requests (ts, request_id, endpoint, key_name, user_name, tags, model, "
           "requested_model, provider, prompt_tokens, completion_tokens, cached_tokens, "
           "cache_write_tokens, reasoning_tokens, cost_nusd, saved_nusd, estimated, capped, "
           "cache_hit, status, outcome, latency_ms, auto_tier, baseline_nusd, "
           "provider_cache_saved_nusd) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
# The daily sums, in the order of usage.FIELDS.
_SUMS = ("requests", "prompt_tokens", "completion_tokens", "cost_nusd", "cache_hits",
         "saved_nusd", "baseline_nusd", "baseline_saved_nusd", "upstream_prompt_tokens",
         "cached_tokens", "cache_write_tokens", "provider_cache_saved_nusd")
_UPSERT = (f"INSERT INTO daily (day, scope, value, {', '.join(_SUMS)}) VALUES "
           f"(?,?,?,{','.join('?' * len(_SUMS))}) ON CONFLICT (scope, day, value) DO UPDATE SET "
           + ", ".join(f"{name} = {name} + excluded.{name}" for name in _SUMS))
# The requests column that holds each scope's value.
COLUMNS = {"global": "''", "key": "key_name", "user": "user_name", "model": "model",
           "provider": "provider", "tag": "tags", "tier": "auto_tier"}
# The same sums from the requests themselves, each with the column it needs (a file from
# before that column, read only, sums it as 0); a hit of the sidecar's cache went nowhere.
_TALLY = (("COUNT(*)", None), ("SUM(prompt_tokens)", None), ("SUM(completion_tokens)", None),
          ("SUM(cost_nusd)", None), ("SUM(cache_hit)", None), ("SUM(saved_nusd)", None),
          ("SUM(COALESCE(baseline_nusd, 0))", "baseline_nusd"),
          ("SUM(CASE WHEN baseline_nusd IS NULL THEN 0 ELSE baseline_nusd - cost_nusd END)",
           "baseline_nusd"),
          ("SUM(CASE WHEN cache_hit THEN 0 ELSE prompt_tokens END)", None),
          ("SUM(CASE WHEN cache_hit THEN 0 ELSE cached_tokens END)", None),
          ("SUM(CASE WHEN cache_hit THEN 0 ELSE cache_write_tokens END)", None),
          ("SUM(provider_cache_saved_nusd)", "provider_cache_saved_nusd"))


def _tally_sql(requests: set[str] | None, daily: set[str] | None) -> tuple[str, str]:
    """The SELECT lists over requests and daily; None: every column is there."""
    return (", ".join(sql if column is None or requests is None or column in requests else "0"
                      for sql, column in _TALLY),
            ", ".join(f"SUM({name})" if daily is None or name in daily else "0"
                      for name in _SUMS))


class Store:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._readonly = readonly
        self._db: sqlite3.Connection | None = None
        self._tally, self._daily_tally = _tally_sql(None, None)
        self._tiers = True  # the file has the auto router's tier column

    def open(self) -> None:
        """Connect (creating the directory, file and tables on first start)."""
        if self._readonly:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._db = db = sqlite3.connect(uri, uri=True)
            requests, daily = _columns(db, "requests"), _columns(db, "daily")
            self._tally, self._daily_tally = _tally_sql(requests, daily)
            self._tiers = "auto_tier" in requests
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
            add(by_identity, identity, tally_of(row))
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

    def totals(self, rules: Iterable[BudgetRule], now: float, before: float | None,
               shadow: bool = False) -> list[tuple[BudgetRule, str, int]]:
        """Each budget's spend in its current window, from every row, or from the rows admitted
        before `before` (when the file opens late: what this process admitted while it could
        not write, it counted itself).

        A shadow rule's calls (rows tagged `shadow:<name>`, no key, no user) are paid from the
        rule's budget only: a running sidecar never counts them in another budget, so the
        rebuild leaves them out of every budget that is not by tag (`shadow`: the policy has
        such rules; without them there are no such rows to look for)."""
        out: list[tuple[BudgetRule, str, int]] = []
        for rule in rules:
            found: dict[str, list[int]] = {}
            for value, tally in self._sums(rule.scope, rule.window, now, before):
                add(found, value, tally)
            if shadow and rule.scope != "tag":
                for value, cost in self._shadow_costs(rule.scope, rule.window, now, before):
                    if value in found:
                        found[value][3] -= cost
            out += [(rule, value, tally[3]) for value, tally in found.items()]
        return out

    def _shadow_costs(self, scope: str, window: Window, now: float, before: float | None
                      ) -> list[tuple[str, int]]:
        """(value, cost) of the shadow rules' rows under `scope` in the window: the value ""
        for global, key and user (their calls have neither), per model from the rows (read
        through the time index: only at start, only with a model budget and shadow rules)."""
        if scope != "model":
            cost = sum(tally[3] for value, tally in self._sums("tag", window, now, before)
                       if value.startswith(SHADOW_TAG_PREFIX))
            return [("", cost)] if cost else []
        cut = now + DAY if before is None else before
        return [(model or "", int(cost)) for model, cost in self.db.execute(
            "SELECT model, SUM(cost_nusd) FROM requests WHERE ts >= ? AND ts < ? AND tags "
            "LIKE ? GROUP BY model", (window_start(window, now), cut, SHADOW_TAG_PREFIX + "%"))]

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
        if scope == "tier" and not self._tiers:
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
            row.baseline_cost, row.provider_cache_saved)


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
