"""Moving averages: the peak-sensitive EWMA, throughput, and the edges (no sample, zero
duration, zero tokens, stale samples, bounded memory)."""

from __future__ import annotations

import math

import pytest

from sidecar.upstream.averages import MAX_MODELS, STALE_S, Ewma, ProviderStats


def test_peak_ewma_jumps_up_and_decays_down_with_time() -> None:
    """A slower sample replaces the average at once; a faster one pulls it down by
    exp(-Δt/τ), so the same sample moves it further after a longer gap."""
    ewma = Ewma(10.0, peak=True)
    ewma.update(0.1, now=0.0)
    ewma.update(1.0, now=1.0)
    assert ewma.value == 1.0
    ewma.update(0.1, now=1.0)  # no time passed: no pull
    assert ewma.value == 1.0
    ewma.update(0.1, now=11.0)
    assert ewma.value == pytest.approx(1.0 * math.exp(-1) + 0.1 * (1 - math.exp(-1)))


def test_plain_ewma_moves_both_ways() -> None:
    """The throughput average is not peak-sensitive: higher samples blend in too."""
    ewma = Ewma(60.0, peak=False)
    ewma.update(100.0, now=0.0)
    ewma.update(200.0, now=60.0)
    assert 100.0 < (ewma.value or 0) < 200.0


def test_no_sample_and_stale_samples_are_unknown() -> None:
    """No sample is None (never 0); a sample older than STALE_S counts as unknown again."""
    stats = ProviderStats()
    assert stats.latency("m", now=0.0) is None
    assert stats.speed("m", now=0.0) is None
    stats.first_byte("m", 0.2, now=0.0)
    assert stats.latency("m", now=STALE_S) == 0.2
    assert stats.latency("m", now=STALE_S + 0.1) is None


@pytest.mark.parametrize(("tokens", "seconds"), [(0, 1.0), (10, 0.0), (10, -1.0), (-3, 1.0)])
def test_throughput_skips_samples_without_tokens_or_duration(tokens: int,
                                                              seconds: float) -> None:
    """No division by zero and no infinite speed: such samples are not recorded."""
    stats = ProviderStats()
    stats.throughput("m", tokens, seconds, now=0.0)
    assert stats.speed("m", now=0.0) is None


def test_throughput_is_tokens_per_second() -> None:
    """Output tokens over seconds, so a long answer is not 'slow'."""
    stats = ProviderStats()
    stats.throughput("m", 500, 5.0, now=0.0)
    assert stats.speed("m", now=0.0) == 100.0


def test_models_per_provider_are_bounded() -> None:
    """Model names come from clients: the oldest is forgotten past MAX_MODELS."""
    stats = ProviderStats()
    for i in range(MAX_MODELS + 5):
        stats.first_byte(f"m{i}", 0.1, now=0.0)
    assert len(stats.models) == MAX_MODELS
    assert "m0" not in stats.models and f"m{MAX_MODELS + 4}" in stats.models
