"""Latency percentiles and error rate by model over the last hour, kept in constant memory.

Each model has 60 one-minute buckets; each bucket counts requests, errors and latencies in a
fixed log-spaced histogram (a few dozen counters), so a request costs a bisect and three
increments, and the hour's p50/p95 come from summing at most 60 histograms when the page asks.
Percentiles are the upper edge of the bucket they fall in (within ~12 %: buckets grow by 1.25x).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# 1 ms … ~110 s, each edge 1.25 times the previous one.
EDGES_MS: tuple[float, ...] = tuple(round(1.25 ** i, 3) for i in range(53))
WINDOW_MINUTES = 60
MAX_MODELS = 200  # a client naming endless models cannot grow this without bound


@dataclass(slots=True)
class _Minute:
    minute: int
    requests: int = 0
    errors: int = 0
    counts: list[int] = field(default_factory=lambda: [0] * (len(EDGES_MS) + 1))


class ModelStats:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._models: dict[str, list[_Minute]] = {}

    def add(self, model: str, latency_ms: float, error: bool) -> None:
        minute = int(self._clock() // 60)
        buckets = self._models.get(model)
        if buckets is None:
            if len(self._models) >= MAX_MODELS and not self._forget(minute):
                return  # MAX_MODELS models seen within the hour: this one is not counted
            buckets = self._models[model] = []
        if not buckets or buckets[-1].minute != minute:
            buckets.append(_Minute(minute))
            while buckets[0].minute <= minute - WINDOW_MINUTES:
                buckets.pop(0)
        bucket = buckets[-1]
        bucket.requests += 1
        bucket.errors += error
        bucket.counts[bisect.bisect_left(EDGES_MS, latency_ms)] += 1

    def _forget(self, minute: int) -> bool:
        """Drop the models without a request in the hour; whether that made room."""
        for model in [m for m, b in self._models.items()
                      if b[-1].minute <= minute - WINDOW_MINUTES]:
            del self._models[model]
        return len(self._models) < MAX_MODELS

    def summary(self) -> list[dict[str, Any]]:
        """One row per model seen in the last hour: requests, error rate, p50 and p95 in ms."""
        oldest = int(self._clock() // 60) - WINDOW_MINUTES
        rows = []
        for model, buckets in self._models.items():
            recent = [b for b in buckets if b.minute > oldest]
            requests = sum(b.requests for b in recent)
            if not requests:
                continue
            counts = [sum(column) for column in zip(*(b.counts for b in recent), strict=True)]
            rows.append({
                "model": model, "requests": requests,
                "error_rate": round(sum(b.errors for b in recent) / requests, 4),
                "p50_ms": _percentile(counts, requests, 0.50),
                "p95_ms": _percentile(counts, requests, 0.95),
            })
        return sorted(rows, key=lambda row: -row["requests"])


def _percentile(counts: list[int], total: int, q: float) -> float:
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank and count:
            return EDGES_MS[index] if index < len(EDGES_MS) else float("inf")
    return EDGES_MS[-1]
