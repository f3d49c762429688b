"""Memory figures: the RSS trend fit, RSS at a request count, and how long a soak runs."""

from __future__ import annotations

import os
import time

import pytest

from bench import memory


def test_the_trend_is_the_slope_per_ten_thousand_requests() -> None:
    """RSS growing 0.5 MB per 10,000 requests gives a slope of 0.5; flat RSS gives 0."""
    growing = memory.Soak(10, 50_000, 0, [(x, 50 + x / 20_000) for x in range(0, 50_001, 5000)])
    assert growing.slope_mb_per_10k() == pytest.approx(0.5)
    flat = memory.Soak(10, 50_000, 0, [(x, 50.0) for x in range(0, 50_001, 5000)])
    assert flat.slope_mb_per_10k() == pytest.approx(0.0)
    assert memory.Soak(1, 10, 0, [(0, 50.0), (10, 50.0)]).slope_mb_per_10k() is None


def test_rss_at_is_the_first_sample_past_the_count() -> None:
    """RSS "after N requests" is read at the first sample once N were served, with its count."""
    soak = memory.soak_of([(0.0, 50.0), (1.0, 51.0), (2.0, 52.0)], wall=2.0, requests=20_000,
                          served_before=5_000)
    assert [round(x) for x, _ in soak.samples] == [5_000, 15_000, 25_000]
    assert soak.rss_at(12_000) == (15_000, 51.0)
    assert soak.rss_at(1_000) == (5_000, 50.0)
    assert soak.rss_at(30_000) is None
    data = soak.to_json(12_000)
    assert data["rss_mb_at_requests"] == 51.0 and data["rss_sampled_after_requests"] == 15_000


def test_a_soak_runs_long_enough_to_reach_the_count_within_a_cap() -> None:
    """At least the minimum; longer when the process is short of the count; never past the
    cap."""
    assert memory.soak_seconds(60, served=30_000, rss_requests=20_000, rps=1000, cap=600) == 60
    assert memory.soak_seconds(3, served=0, rss_requests=20_000, rps=1000, cap=600) == \
        pytest.approx(23.0)
    assert memory.soak_seconds(3, served=0, rss_requests=20_000, rps=10, cap=30) == 30


def test_sampled_reads_rss_while_the_work_runs() -> None:
    """The work's result comes back with at least one RSS sample of the process."""
    result, samples, wall = memory.sampled(lambda: time.sleep(0.05) or 7, os.getpid(),
                                           every=0.01)
    assert result == 7
    assert samples and all(mb > 0 for _, mb in samples)
    assert wall > 0
