"""The Redis ledger's rows and report sums: what one request adds, and reading a window back.

Rows go to a capped stream (`{p}rows`, the last `ROWS_KEPT` requests, never content). For
reports, each row adds to per-(scope, value) sums in one hash per granularity and period:

    {p}u:m:{minute}:{scope}   kept 2 h      {p}u:h:{hour}:{scope}   kept 2 days
    {p}u:d:{day}:{scope}      kept 400 days {p}u:t:0:{scope}        kept for ever
with fields "<value>\x1f<metric>". A window's report reads one hash (minute, hour, day, all)
or one per day so far (week, month): at most 31 reads however many requests there were.
"""

from __future__ import annotations

from typing import Any

from sidecar.spend.ledger import Row
from sidecar.spend.usage import add
from sidecar.spend.windows import DAY, Window

PREFIX = "llm-sidecar:spend:"
ROWS_KEPT = 1_000_000
# granularity -> (period length in seconds, seconds kept)
_SUMS = {"m": (60, 7_200), "h": (3_600, 2 * DAY), "d": (DAY, 400 * DAY), "t": (0, 0)}


def row_fields(row: Row) -> dict[Any, Any]:
    return {"ts": row.ts, "request_id": row.request_id, "endpoint": row.endpoint,
            "key": row.key_name or "", "user": row.user or "", "tags": ",".join(row.tags),
            "model": row.model or "", "requested_model": row.requested_model or "",
            "provider": row.provider or "", "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens, "cached_tokens": row.cached_tokens,
            "cache_write_tokens": row.cache_write_tokens,
            "reasoning_tokens": row.reasoning_tokens, "cost_nusd": row.cost,
            "saved_nusd": row.saved, "estimated": int(row.estimated),
            "capped": int(row.capped), "cache_hit": int(row.cache_hit), "status": row.status,
            "outcome": row.outcome, "latency_ms": round(row.latency_ms, 3),
            "tier": row.tier or "",
            "baseline_nusd": "" if row.baseline_cost is None else row.baseline_cost}


# usage.FIELDS, in order; sums written before "baseline" existed read it as 0 (unpack)
_METRICS = ("requests", "prompt_tokens", "completion_tokens", "cost", "cache_hits", "saved",
            "baseline", "baseline_saved")


def sum_row(sums: dict[tuple[str, int], dict[str, int]], row: Row) -> None:
    values = (1, row.prompt_tokens, row.completion_tokens, row.cost, int(row.cache_hit),
              row.saved, row.baseline_cost or 0, row.baseline_saved)
    for granularity, (length, ttl) in _SUMS.items():
        start = int(row.ts) - int(row.ts) % length if length else 0
        for scope, value in row.scopes():
            fields = sums.setdefault((f"{PREFIX}u:{granularity}:{start}:{scope}", ttl), {})
            for name, amount in zip(_METRICS, values, strict=True):
                if amount:
                    field = f"{value}\x1f{name}"
                    fields[field] = fields.get(field, 0) + amount


def sum_keys(window: Window, start: int, now: float) -> list[str]:
    """The sums that make up a window (without the prefix and scope)."""
    if window == "minute":
        return [f"m:{start}"]
    if window == "hour":
        return [f"h:{start}"]
    if window == "total":
        return ["t:0"]
    return [f"d:{day}" for day in range(start, int(now) + 1, DAY)]


def unpack(tallies: dict[str, list[int]], fields: dict[str, str]) -> None:
    for field, amount in fields.items():
        value, _, name = field.rpartition("\x1f")
        tally = [0] * len(_METRICS)
        tally[_METRICS.index(name)] = int(amount)
        add(tallies, value, tally)
