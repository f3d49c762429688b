"""The storage behind every instrument: counters, gauges and histograms that cost a few
attribute writes to record, exposed to prometheus_client's registry as one Collector.

Why not prometheus_client's own instruments: each `inc()` takes a threading.Lock and each
histogram `observe()` scans its buckets in Python and takes three locks; a request with every
feature on records about fifteen values, which cost 8 to 10 µs there against about 1.5 µs here
(tools: cProfile on the in-process pipeline; python -m bench). Values are recorded on the event
loop thread only, where no lock is needed (one thread writes; the exporter threads and
/metrics only read whole numbers, which the GIL keeps consistent). The one series written
from other threads (telemetry drops, counted by exporter threads) takes a lock: `locked=True`.

The Collector yields the same metric families prometheus_client's instruments would (counter
samples `<name>_total`, histogram `_bucket`/`_sum`/`_count` with `le`), so the exposition at
/metrics and the OTLP encoder (otlp/metrics.py), which both read `registry.collect()`, are
unchanged.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Kind = Literal["counter", "gauge", "histogram"]


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LockedCounterChild(CounterChild):
    __slots__ = ("_lock",)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount


class GaugeChild:
    __slots__ = ("_function", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self._function: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        self.value = value

    def set_function(self, function: Callable[[], float]) -> None:
        """Read `function()` at collection time instead of a stored value (free to record)."""
        self._function = function

    def read(self) -> float:
        return float(self._function()) if self._function is not None else self.value


class HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, so a value equal to a bound counts in it
        # (Prometheus' `le` is inclusive).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_many(self, values: Iterable[float]) -> None:
        counts, bounds, total = self.counts, self.bounds, 0.0
        for value in values:
            counts[bisect_left(bounds, value)] += 1
            total += value
        self.sum += total


Child = CounterChild | GaugeChild | HistogramChild


class Family:
    """One metric and its labelled children (created on first use, then found by a dict)."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], kind: Kind,
                 buckets: tuple[float, ...] = (), *, locked: bool = False) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.kind = kind
        self.buckets = tuple(float(b) for b in buckets)
        self._locked = locked
        self._children: dict[tuple[str, ...], Child] = {}
        self._create = threading.Lock()

    def labels(self, *values: str) -> Any:
        """The child for these label values (a CounterChild, GaugeChild or HistogramChild, by
        kind: typed Any so that Metrics' methods, the typed interface, stay readable)."""
        child = self._children.get(values)
        if child is None:
            with self._create:
                child = self._children.get(values)
                if child is None:
                    child = self._children[values] = self._new()
        return child

    def _new(self) -> Child:
        if self.kind == "counter":
            return LockedCounterChild() if self._locked else CounterChild()
        if self.kind == "gauge":
            return GaugeChild()
        return HistogramChild(self.buckets)

    def total(self) -> float:
        """A counter's sum over every label set (tests, benchmarks)."""
        return sum(child.value for child in list(self._children.values())
                   if isinstance(child, CounterChild))

    # Families without labels record directly.
    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def set(self, value: float) -> None:
        self.labels().set(value)

    def set_function(self, function: Callable[[], float]) -> None:
        self.labels().set_function(function)

    def metric(self) -> Metric:
        children = list(self._children.items())
        labels = list(self.labelnames)
        if self.kind == "counter":
            counter = CounterMetricFamily(self.name, self.documentation, labels=labels)
            for values, child in children:
                counter.add_metric(list(values), child.value)  # type: ignore[union-attr]
            return counter
        if self.kind == "gauge":
            gauge = GaugeMetricFamily(self.name, self.documentation, labels=labels)
            for values, child in children:
                gauge.add_metric(list(values), child.read())  # type: ignore[union-attr]
            return gauge
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=labels)
        edges = [_le(b) for b in self.buckets] + ["+Inf"]
        for values, child in children:
            assert isinstance(child, HistogramChild)
            running, buckets = 0, []
            for edge, count in zip(edges, list(child.counts), strict=True):
                running += count
                buckets.append((edge, float(running)))
            histogram.add_metric(list(values), buckets, child.sum)
        return histogram


class Series(Collector):
    """Every family, as one prometheus_client Collector."""

    def __init__(self) -> None:
        self.families: list[Family] = []

    def add(self, family: Family) -> Family:
        self.families.append(family)
        return family

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.metric()


def _le(bound: float) -> str:
    """Prometheus' spelling of a bucket edge, as prometheus_client's own histograms write it."""
    edge: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return edge
