"""Memory under load: RSS sampled while a closed-loop run goes on, and its trend.

A soak runs one target at full load for a while (`--soak`, and at least until its process has
served `--rss-requests` requests in all) while RSS is read from /proc every half second. The
load generator reports only its total, so the requests served at each sample are interpolated
over the run's duration (the rate is steady at full load). The trend is the least-squares slope
of RSS over requests, in MB per 10,000 requests: a process that keeps something per request
shows a positive slope that does not shrink with a longer soak, while allocator growth early on
and page-level noise stay near zero over a minute of load.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.processes import memory_mb

T = TypeVar("T")
SAMPLE_EVERY_S = 0.5
# "No upward trend": less than this many MB per 10,000 requests, i.e. under ~25 bytes kept
# per request (2.5 MB over a million requests), below the run-to-run wobble of a 60 s soak.
FLAT_MB_PER_10K = 0.25


@dataclass(slots=True)
class Soak:
    seconds: float
    requests: int  # during the soak
    served_before: int  # by the process, before the soak started
    samples: list[tuple[float, float]] = field(default_factory=list)  # (requests served, MB)

    def slope_mb_per_10k(self) -> float | None:
        if len(self.samples) < 3:
            return None
        xs = [x for x, _ in self.samples]
        ys = [y for _, y in self.samples]
        if max(xs) == min(xs):
            return None
        return statistics.linear_regression(xs, ys).slope * 10_000

    def rss_at(self, requests: int) -> tuple[int, float] | None:
        """(served, MB) at the first sample taken once `requests` had been served in all
        (the soak's first sample when the process had served that many before it began)."""
        for served, mb in self.samples:
            if served >= requests:
                return round(served), mb
        return None

    def to_json(self, rss_requests: int) -> dict[str, Any]:
        at = self.rss_at(rss_requests)
        return {"seconds": self.seconds, "requests": self.requests,
                "served_before": self.served_before, "rss_requests": rss_requests,
                "rss_mb_at_requests": at[1] if at else None,
                "rss_sampled_after_requests": at[0] if at else None,
                "slope_mb_per_10k_requests": self.slope_mb_per_10k(),
                "rss_start_mb": self.samples[0][1] if self.samples else None,
                "rss_end_mb": self.samples[-1][1] if self.samples else None,
                "samples": [[round(x), round(y, 2)] for x, y in self.samples]}


def sampled(run: Callable[[], T], pid: int, every: float = SAMPLE_EVERY_S
            ) -> tuple[T, list[tuple[float, float]], float]:
    """Call `run` in a thread, reading the RSS of `pid` every `every` seconds meanwhile.
    Returns its result, the (seconds since start, MB) samples, and the wall time."""
    samples: list[tuple[float, float]] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        began = time.perf_counter()
        future: Future[T] = pool.submit(run)
        while True:
            samples.append((time.perf_counter() - began, memory_mb(pid)[0]))
            try:
                result = future.result(timeout=every)
                break
            except TimeoutError:
                continue
    return result, samples, time.perf_counter() - began


def soak_of(samples: list[tuple[float, float]], wall: float, requests: int,
            served_before: int) -> Soak:
    """Turn time-stamped samples into (requests served, MB), the rate taken as steady."""
    rate = requests / wall if wall > 0 else 0.0
    return Soak(wall, requests, served_before,
                [(served_before + min(t * rate, requests), mb) for t, mb in samples])


def soak_seconds(minimum: float, served: int, rss_requests: int, rps: float,
                 cap: float) -> float:
    """Long enough for `minimum` seconds and for the process to reach `rss_requests` served
    (at its measured rate, with 15 % to spare), but no longer than `cap`."""
    needed = (rss_requests - served) / rps * 1.15 if rps > 0 and served < rss_requests else 0.0
    return min(max(minimum, needed), max(cap, minimum))
