"""Every Prometheus instrument, in one place: names, units, help text and buckets.

One registry per app (no process-global state), exposed at GET /metrics on the admin listener.
Labels stay bounded: the endpoint label is a model endpoint name or "passthrough", never a raw
path; nothing here carries a key, a user, a prompt or a completion.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "llm_sidecar_requests", "Requests served, by endpoint and HTTP status.",
            ["endpoint", "status"], registry=self.registry,
        )
        self.duration = Histogram(
            "llm_sidecar_request_duration_seconds",
            "Time from request arrival to the last byte of the response, in seconds.",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.stream_outcomes = Counter(
            "llm_sidecar_stream_interruptions",
            "Requests that did not finish normally: upstream_broke, client_disconnected or "
            "cancelled (cut at shutdown).",
            ["endpoint", "outcome"], registry=self.registry,
        )

        # labels() takes a lock and hashes the label values; a request should pay that once per
        # distinct label set, not every time.
        self._counted: dict[tuple[str, int], Any] = {}
        self._timed: dict[str, Any] = {}

    def observe(self, endpoint: str, status: int, seconds: float, outcome: str) -> None:
        counter = self._counted.get((endpoint, status))
        if counter is None:
            counter = self._counted[endpoint, status] = self.requests.labels(endpoint, str(status))
        counter.inc()
        histogram = self._timed.get(endpoint)
        if histogram is None:
            histogram = self._timed[endpoint] = self.duration.labels(endpoint)
        histogram.observe(seconds)
        if outcome != "ok":
            self.stream_outcomes.labels(endpoint, outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
