"""The instruments: one registry per app, GenAI histograms with the conventions' buckets."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from sidecar.telemetry.metrics import GENAI_DURATION_BUCKETS, INSTRUMENTS, Metrics, observe_many


@pytest.mark.parametrize("values", [[], [0.0], [0.01, 0.02, 0.0200001, 81.92, 82, 1e9],
                                    [random.Random(3).expovariate(20) for _ in range(500)]])
def test_observe_many_equals_one_observe_per_value(values: list[float]) -> None:
    """Bulk observation gives exactly the exposition of observing each value in turn."""
    one, bulk = CollectorRegistry(), CollectorRegistry()
    for registry, many in ((one, False), (bulk, True)):
        histogram = Histogram("h", "h", ["l"], buckets=GENAI_DURATION_BUCKETS,
                              registry=registry).labels("x")
        if many:
            assert isinstance(histogram._upper_bounds, list)  # the bulk path is the one tested
            observe_many(histogram, values)
        else:
            for value in values:
                histogram.observe(value)
    strip = [line for line in generate_latest(one).splitlines() if b"_created" not in line]
    assert strip == [line for line in generate_latest(bulk).splitlines()
                     if b"_created" not in line]


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
