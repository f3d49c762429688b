"""The instruments: one registry per app, GenAI histograms with the conventions' buckets."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sidecar.telemetry.metrics import GENAI_DURATION_BUCKETS, INSTRUMENTS, Metrics
from sidecar.telemetry.series import Family, Series

VALUES = [[], [0.0], [0.01, 0.02, 0.0200001, 81.92, 82, 1e9],
          [random.Random(3).expovariate(20) for _ in range(500)]]


def _exposition(registry: CollectorRegistry) -> list[bytes]:
    return [line for line in generate_latest(registry).splitlines() if b"_created" not in line]


@pytest.mark.parametrize("values", VALUES)
@pytest.mark.parametrize("bulk", [False, True], ids=["observe", "observe_many"])
def test_histograms_expose_what_prometheus_client_would(values: list[float], bulk: bool) -> None:
    """Our histogram series (one observe per value, or observe_many) expose exactly what
    prometheus_client's own Histogram exposes for the same values."""
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("h", "help", ["l"], buckets=GENAI_DURATION_BUCKETS,
                          registry=theirs).labels("x")
    series = Series()
    mine = series.add(Family("h", "help", ("l",), "histogram", GENAI_DURATION_BUCKETS)
                      ).labels("x")
    ours.register(series)
    for value in values:
        reference.observe(value)
    if bulk:
        mine.observe_many(values)
    else:
        for value in values:
            mine.observe(value)
    assert _exposition(ours) == _exposition(theirs)


def test_counters_and_gauges_expose_what_prometheus_client_would() -> None:
    """Counters (with _total), gauges and a gauge read from a function expose as
    prometheus_client's own instruments do."""
    theirs, ours, series = CollectorRegistry(), CollectorRegistry(), Series()
    ours.register(series)
    counter = Counter("c", "help", ["a"], registry=theirs)
    gauge = Gauge("g", "help", registry=theirs)
    my_counter = series.add(Family("c", "help", ("a",), "counter"))
    my_gauge = series.add(Family("g", "help", (), "gauge"))
    for label, amount in (("x", 1), ("y", 2.5), ("x", 3)):
        counter.labels(label).inc(amount)
        my_counter.labels(label).inc(amount)
    gauge.set_function(lambda: 7)
    my_gauge.set_function(lambda: 7)
    assert _exposition(ours) == _exposition(theirs)


def test_names_are_unique_and_genai_ones_follow_the_conventions() -> None:
    """Every instrument has one OTLP and one Prometheus name; GenAI histograms are named as
    a collector's Prometheus exporter would name them."""
    assert len({i.name for i in INSTRUMENTS}) == len({i.prometheus for i in INSTRUMENTS}) == len(
        INSTRUMENTS)
    by_name = {i.name: i.prometheus for i in INSTRUMENTS}
    assert by_name["gen_ai.client.operation.duration"] == \
        "gen_ai_client_operation_duration_seconds"
    assert by_name["gen_ai.client.token.usage"] == "gen_ai_client_token_usage"
    Metrics()  # and they all register in one fresh registry
