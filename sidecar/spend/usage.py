"""Usage reports: spend and tokens over a window, grouped by one dimension.

The one shape every way of asking returns (GET /sidecar/usage, `llm-sidecar usage --json`):

    {"window": "day", "since": "2026-11-22T00:00:00Z", "by": "model",
     "rows": [{"key": "openai/gpt-4o", "requests": 12, "prompt_tokens": 3400,
               "completion_tokens": 5100, "cost_usd": 0.0595, "cache_hits": 3,
               "saved_usd": 0.0121}],
     "total_requests": 12, "total_cost_usd": 0.0595, "total_saved_usd": 0.0121}

Each row, and the totals, also carry `baseline_usd` (what the auto routers' baselines would have
cost for the same tokens, over the requests a router served) and `saved_vs_baseline_usd` (that
minus what those requests cost; docs/auto.md). `by=tier` groups the requests an auto router
served by the tier that answered; other requests are in no tier row (the totals count them).

Windows are the budgets' UTC calendar windows (the current minute, hour, day, week from Monday,
month from the 1st) or `all`. `key` is null for requests without that dimension (no local key,
no user, no tag). Rows are sorted by cost, dearest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from sidecar.spend.policy import BudgetRule
from sidecar.spend.pricing import to_usd
from sidecar.spend.windows import REPORT_WINDOWS, Window, iso, window_end, window_start

K = TypeVar("K")
By = Literal["model", "key", "user", "tag", "provider", "tier"]
BYS: tuple[By, ...] = ("model", "key", "user", "tag", "provider", "tier")
# Tally fields, in order: requests, prompt_tokens, completion_tokens, cost, cache_hits, saved,
# baseline (the auto baseline's cost), baseline_saved (baseline minus cost, auto rows only)
FIELDS = ("requests", "prompt_tokens", "completion_tokens", "cost", "cache_hits", "saved",
          "baseline", "baseline_saved")


def parse_query(window: str | None, by: str | None) -> tuple[Window, By]:
    """The window and dimension of a request; ValueError with a message a person can act on."""
    window = window or "day"
    by = by or "model"
    if window not in REPORT_WINDOWS and window != "total":
        raise ValueError(f"window must be one of {', '.join(REPORT_WINDOWS)}, not '{window}'")
    if by not in BYS:
        raise ValueError(f"by must be one of {', '.join(BYS)}, not '{by}'")
    return ("total" if window in ("all", "total") else window), by  # type: ignore[return-value]


def since(window: Window, now: float) -> int:
    return window_start(window, now)


def add(tallies: dict[K, list[int]], key: K, values: Sequence[int]) -> None:
    """Add `values` to the tally of `key`."""
    tally = tallies.get(key)
    if tally is None:
        tallies[key] = list(values)
    else:
        for i, v in enumerate(values):
            tally[i] += v


def report(window: Window, by: By, start: int, tallies: dict[str, list[int]],
           total: list[int] | None) -> dict[str, Any]:
    """The report; `total` counts each request once (a request with two tags is in two
    rows of a by-tag report)."""
    total = _whole(total or [])
    rows = [{"key": key or None, "requests": t[0], "prompt_tokens": t[1],
             "completion_tokens": t[2], "cost_usd": to_usd(t[3]), "cache_hits": t[4],
             "saved_usd": to_usd(t[5]), "baseline_usd": to_usd(t[6]),
             "saved_vs_baseline_usd": to_usd(t[7])}
            for key, t in sorted(((k, _whole(v)) for k, v in tallies.items()),
                                 key=lambda kv: (-kv[1][3], kv[0]))]
    return {"window": "all" if window == "total" else window,
            "since": iso(start), "by": by, "rows": rows,
            "total_requests": total[0], "total_cost_usd": to_usd(total[3]),
            "total_saved_usd": to_usd(total[5]), "total_baseline_usd": to_usd(total[6]),
            "total_saved_vs_baseline_usd": to_usd(total[7])}


def _whole(tally: list[int]) -> list[int]:
    """A tally with every field (sums written before a field existed read it as 0)."""
    return tally + [0] * (len(FIELDS) - len(tally))


def budget_view(rule: BudgetRule, start: int, entries: list[tuple[str, int, int]]
                ) -> dict[str, Any]:
    """One budget for GET /sidecar/budgets: its limit and, per scope value seen in the current
    window, (value, spent, reserved) in nano-dollars; the top-level figures are the tightest
    value's."""
    items = [{"value": value or None, "spent_usd": to_usd(spent),
              "reserved_usd": to_usd(reserved),
              "remaining_usd": to_usd(rule.limit - spent - reserved)}
             for value, spent, reserved in sorted(entries)]
    tightest = min(items, key=lambda item: item["remaining_usd"] or 0.0, default=None)
    return {"name": rule.name, "scope": rule.scope, "window": rule.window,
            "action": "block" if rule.block else "warn", "limit_usd": to_usd(rule.limit),
            "since": iso(start), "resets_at": iso(window_end(rule.window, start)),
            "spent_usd": tightest["spent_usd"] if tightest else 0.0,
            "remaining_usd": tightest["remaining_usd"] if tightest else to_usd(rule.limit),
            "entries": items}
