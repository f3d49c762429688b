"""The SQLite file: window totals rebuilt at start and usage reports agree with a plain sum
over the rows, for every scope and window, across day boundaries and the start-up cut."""

from __future__ import annotations

import random
from pathlib import Path

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
                       saved=rng.randint(0, 5), cache_hit=rng.random() < 0.2, status=200))
    routed = random.Random(10)  # half the rows were chosen by an auto router
    for row in out:
        if routed.random() < 0.5:
            row.tier = routed.choice(["simple", "complex", "reasoning"])
            row.baseline_cost = routed.randint(0, 2 * 10**6)
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
@pytest.mark.parametrize("by", ["model", "key", "tag", "provider", "tier"])
def test_usage_report_equals_the_rows(store: Store, window: str, by: str) -> None:
    """Reports by every dimension and window count requests, tokens, cost, hits, savings and
    the auto routers' baseline and saving exactly as the rows say; totals count each request
    once; by tier, only the requests a router served."""
    span: Window = "total" if window == "all" else window  # type: ignore[assignment]
    start = window_start(span, NOW)
    picked = [r for r in store.rows if r.ts >= start]  # type: ignore[attr-defined]
    column = {"model": "model", "key": "key_name", "provider": "provider", "tier": "tier"}
    expected: dict[object, list[int]] = {}
    for row in picked:
        if by == "tier" and row.tier is None:
            continue
        values = list(row.tags) if by == "tag" else [getattr(row, column[by]) or None]
        for value in values:
            tally = expected.setdefault(value, [0, 0, 0, 0, 0, 0])
            tally[0] += 1
            tally[1] += row.prompt_tokens
            tally[2] += row.cost
            tally[3] += row.cache_hit
            tally[4] += row.baseline_cost or 0
            tally[5] += row.baseline_saved
    report = store.usage(span, by, NOW)  # type: ignore[arg-type]
    got = {r["key"]: [r["requests"], r["prompt_tokens"], round(r["cost_usd"] * 1e9),
                      r["cache_hits"], round(r["baseline_usd"] * 1e9),
                      round(r["saved_vs_baseline_usd"] * 1e9)] for r in report["rows"]}
    assert got == expected
    assert report["total_requests"] == len(picked)
    assert round(report["total_cost_usd"] * 1e9) == sum(r.cost for r in picked)
    assert round(report["total_saved_vs_baseline_usd"] * 1e9) == sum(
        r.baseline_saved for r in picked)


def test_readonly_store_reads_a_live_file(store: Store) -> None:
    """The CLI's read-only connection reads the same file while the writer has it open."""
    reader = Store(store.path, readonly=True)
    reader.open()
    try:
        assert reader.usage("total", "model", NOW)["total_requests"] == 3_000
    finally:
        reader.close()
