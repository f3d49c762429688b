"""The Prometheus registry as an OTLP ExportMetricsServiceRequest (metrics.proto).

The OTLP exporter reads the very instruments /metrics shows (metrics.py), so the two views can
never disagree. Counters become monotonic cumulative Sums, gauges Gauges, histograms cumulative
explicit-bucket Histograms with the instruments' own boundaries. Names, units and attribute
names come from `metrics.INSTRUMENTS` (so `gen_ai_client_token_usage{gen_ai_token_type}` goes
out as `gen_ai.client.token.usage` with `gen_ai.token.type`); a family it does not list is sent
under its Prometheus name. Labels with an empty value are left out (an absent attribute).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from sidecar.telemetry.metrics import BY_PROMETHEUS_NAME, Instrument
from sidecar.telemetry.otlp.wire import (
    I64,
    LEN,
    VARINT,
    AttributeEncoder,
    double,
    fixed64,
    packed_double,
    packed_fixed64,
    tag,
    text,
)
from sidecar.telemetry.otlp.wire import field as ld

__all__ = ["MetricsEncoder"]

_CUMULATIVE = 2  # AggregationTemporality
_RESOURCE_METRICS = tag(1, LEN)
_RESOURCE = tag(1, LEN)
_SCOPE_METRICS = tag(2, LEN)
_SCOPE = tag(1, LEN)
_METRICS = tag(2, LEN)
_M_NAME, _M_DESCRIPTION, _M_UNIT = tag(1, LEN), tag(2, LEN), tag(3, LEN)
_M_GAUGE, _M_SUM, _M_HISTOGRAM = tag(5, LEN), tag(7, LEN), tag(9, LEN)
_DATA_POINTS = tag(1, LEN)
_TEMPORALITY = tag(2, VARINT) + bytes((_CUMULATIVE,))
_MONOTONIC = tag(3, VARINT) + b"\x01"
_P_START, _P_TIME = tag(2, I64), tag(3, I64)
_N_DOUBLE = tag(4, I64)
_H_COUNT, _H_SUM = tag(4, I64), tag(5, I64)
_H_BUCKETS, _H_BOUNDS = tag(6, LEN), tag(7, LEN)


class MetricsEncoder:
    """One per exporter thread (it caches attribute keys)."""

    def __init__(self, registry: CollectorRegistry, start_ns: int) -> None:
        self._registry = registry
        self._start_ns = start_ns
        self._number_attributes = AttributeEncoder(7)  # NumberDataPoint.attributes
        self._histogram_attributes = AttributeEncoder(9)  # HistogramDataPoint.attributes

    def request(self, resource: bytes, scope: bytes) -> tuple[bytes, int]:
        """The whole registry now, and how many data points it holds."""
        now = time.time_ns()
        metrics: list[bytes] = []
        points = 0
        for family in self._registry.collect():
            encoded, count = self._family(family, now)
            if count:
                metrics.append(ld(_METRICS, encoded))
                points += count
        scoped = ld(_SCOPE, scope) + b"".join(metrics)
        body = ld(_RESOURCE, resource) + ld(_SCOPE_METRICS, scoped)
        return ld(_RESOURCE_METRICS, body), points

    def _family(self, family: Metric, now: int) -> tuple[bytes, int]:
        spec = BY_PROMETHEUS_NAME.get(family.name)
        name = spec.name if spec else family.name
        header = ld(_M_NAME, text(name)) + ld(_M_DESCRIPTION, text(family.documentation))
        unit = spec.unit if spec else family.unit
        if unit:
            header += ld(_M_UNIT, text(unit))
        rename = _renames(spec)
        if family.type == "histogram":
            points = self._histogram_points(family, rename, now)
            body = b"".join(ld(_DATA_POINTS, p) for p in points) + _TEMPORALITY
            return header + ld(_M_HISTOGRAM, body), len(points)
        if family.type not in ("counter", "gauge"):
            return b"", 0  # info/summary/untyped: the sidecar defines none
        points = []
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            attributes = _attributes(sample.labels, rename)
            points.append(self._number_attributes.encode(attributes)
                          + fixed64(_P_START, self._start_ns) + fixed64(_P_TIME, now)
                          + double(_N_DOUBLE, float(sample.value)))
        body = b"".join(ld(_DATA_POINTS, p) for p in points)
        if family.type == "counter":
            return header + ld(_M_SUM, body + _TEMPORALITY + _MONOTONIC), len(points)
        return header + ld(_M_GAUGE, body), len(points)

    def _histogram_points(self, family: Metric, rename: dict[str, str], now: int
                          ) -> list[bytes]:
        series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            entry = series.setdefault(tuple(sorted(labels.items())),
                                      {"labels": labels, "le": [], "count": 0.0, "sum": 0.0})
            suffix = sample.name[len(family.name):]
            if suffix == "_bucket":
                entry["le"].append((float(sample.labels["le"]), sample.value))
            elif suffix == "_count":
                entry["count"] = sample.value
            elif suffix == "_sum":
                entry["sum"] = sample.value
        points = []
        for entry in series.values():
            cumulative = sorted(entry["le"])
            bounds = [le for le, _ in cumulative if le != float("inf")]
            counts, previous = [], 0.0
            for _, value in cumulative:
                counts.append(int(value - previous))
                previous = value
            points.append(self._histogram_attributes.encode(_attributes(entry["labels"], rename))
                          + fixed64(_P_START, self._start_ns) + fixed64(_P_TIME, now)
                          + fixed64(_H_COUNT, int(entry["count"]))
                          + double(_H_SUM, float(entry["sum"]))
                          + packed_fixed64(_H_BUCKETS, counts)
                          + packed_double(_H_BOUNDS, bounds))
        return points


def _renames(spec: Instrument | None) -> dict[str, str]:
    if spec is None:
        return {}
    return {label.replace(".", "_"): label for label in spec.labels}


def _attributes(labels: dict[str, str], rename: dict[str, str]) -> dict[str, Any]:
    return {rename.get(k, k): _typed(k, v) for k, v in labels.items() if v != ""}


def _typed(label: str, value: str) -> Any:
    """server.port is an int attribute in the conventions; Prometheus labels are strings."""
    if label == "server_port" and value.isdigit():
        return int(value)
    return value
