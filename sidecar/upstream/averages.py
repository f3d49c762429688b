"""Moving averages per provider and model: time to first byte and output tokens per second.

- **Time to first byte** is a peak-sensitive EWMA (Finagle's PeakEWMA, also Helicone's
  balancer): a sample above the average replaces it at once, so a provider that turns slow is
  demoted on its first slow answer; a sample below pulls the average down with a weight that
  grows with the time since the previous sample, `w = exp(-Δt / 10 s)`, so it recovers gradually.
- **Throughput** is output tokens per second of the answer (per second of streaming for a
  stream, per second of the whole exchange otherwise), a time-weighted EWMA (τ = 60 s). Tokens
  per second rather than seconds per answer, so long answers do not look slow.

Edges peers get wrong, handled here: no sample yet is `None` (never a zero that divides or wins);
a sample with no duration or no tokens is skipped (no division by zero, no infinite speed); an
average whose last sample is older than `STALE_S` counts as unknown again, so a provider that was
slow once is measured again instead of being starved for ever (`sort` ranks unknown as the best
known value, ties broken by weight: see targets.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

TTFB_TAU_S = 10.0  # Finagle's default decay time
THROUGHPUT_TAU_S = 60.0
STALE_S = 300.0  # OpenRouter's routing stats use a 5-minute window
MAX_MODELS = 256  # per provider: model names come from clients, memory must stay bounded


class Ewma:
    __slots__ = ("at", "peak", "samples", "tau", "value")

    def __init__(self, tau: float, *, peak: bool) -> None:
        self.tau = tau
        self.peak = peak  # a sample above the average replaces it
        self.value: float | None = None
        self.at = 0.0
        self.samples = 0

    def update(self, sample: float, now: float) -> None:
        value = self.value
        if value is None or (self.peak and sample > value):
            self.value = sample
        else:
            weight = math.exp(-max(0.0, now - self.at) / self.tau)
            self.value = value * weight + sample * (1.0 - weight)
        self.at = now
        self.samples += 1

    def current(self, now: float) -> float | None:
        """The average, or None when there is no sample or the last one is stale."""
        if self.value is None or now - self.at > STALE_S:
            return None
        return self.value


@dataclass(slots=True)
class ModelStats:
    ttfb_s: Ewma = field(default_factory=lambda: Ewma(TTFB_TAU_S, peak=True))
    tokens_per_s: Ewma = field(default_factory=lambda: Ewma(THROUGHPUT_TAU_S, peak=False))
    successes: int = 0
    failures: int = 0


class ProviderStats:
    """One provider's averages, by model."""

    __slots__ = ("models",)

    def __init__(self) -> None:
        self.models: dict[str, ModelStats] = {}

    def of(self, model: str) -> ModelStats:
        stats = self.models.get(model)
        if stats is None:
            if len(self.models) >= MAX_MODELS:  # forget the oldest model
                del self.models[next(iter(self.models))]
            stats = self.models[model] = ModelStats()
        return stats

    def first_byte(self, model: str, seconds: float, now: float) -> None:
        stats = self.of(model)
        stats.successes += 1
        if seconds >= 0:
            stats.ttfb_s.update(seconds, now)

    def failed(self, model: str) -> None:
        self.of(model).failures += 1

    def throughput(self, model: str, tokens: int, seconds: float, now: float) -> None:
        if tokens > 0 and seconds > 0:
            self.of(model).tokens_per_s.update(tokens / seconds, now)

    def latency(self, model: str, now: float) -> float | None:
        stats = self.models.get(model)
        return None if stats is None else stats.ttfb_s.current(now)

    def speed(self, model: str, now: float) -> float | None:
        stats = self.models.get(model)
        return None if stats is None else stats.tokens_per_s.current(now)
