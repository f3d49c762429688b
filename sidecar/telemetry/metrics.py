"""Every instrument, in one place: names, units, help text and buckets.

One registry per app (no process-global state), exposed at GET /metrics on the admin listener.
Features record through the methods below (`metrics.cache_lookup("hit")`), never by creating
instruments of their own, so the whole set is readable here. Labels stay bounded: `endpoint` is
a model endpoint name or "passthrough", never a raw path; `entity`, `result`, `error` and the
like are small fixed sets; `budget` and `provider` are names from the config; `model` appears only
on answered requests (a name an upstream served). Nothing here carries a key, a user, a prompt or
a completion.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "llm_sidecar_requests", "Requests served, by endpoint and HTTP status.",
            ["endpoint", "status"], registry=registry,
        )
        self.duration = Histogram(
            "llm_sidecar_request_duration_seconds",
            "Time from request arrival to the last byte of the response, in seconds.",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.stream_outcomes = Counter(
            "llm_sidecar_stream_interruptions",
            "Requests that did not finish normally: upstream_broke, client_disconnected, "
            "cancelled (cut at shutdown) or internal_error.",
            ["endpoint", "outcome"], registry=registry,
        )
        self.in_flight_requests = Gauge(
            "llm_sidecar_in_flight_requests", "Proxied requests being served now.",
            registry=registry,
        )
        self.upstream_errors = Counter(
            "llm_sidecar_upstream_errors", "Failed upstream attempts, by provider and error "
            "(upstream_timeout, upstream_unavailable, http_<status>).",
            ["provider", "error"], registry=registry,
        )
        self.cache_lookups = Counter(
            "llm_sidecar_cache_lookups", "Cache lookups by result: hit, miss, collapsed (waited "
            "for an identical request in flight), bypass (Cache-Control), skip.",
            ["result"], registry=registry,
        )
        self.cache_saved_usd = Counter(
            "llm_sidecar_cache_saved_usd", "USD not spent thanks to cache hits.",
            registry=registry,
        )
        self.cache_saved_tokens = Counter(
            "llm_sidecar_cache_saved_tokens", "Tokens not spent thanks to cache hits.",
            registry=registry,
        )
        self.cache_backend_errors = Counter(
            "llm_sidecar_cache_backend_errors", "Cache backend failures (served from upstream "
            "instead), by backend.", ["backend"], registry=registry,
        )
        self.cost_usd = Counter(
            "llm_sidecar_cost_usd", "USD spent, by model.", ["model"], registry=registry,
        )
        self.budget_remaining = Gauge(
            "llm_sidecar_budget_remaining_usd", "USD left in each budget's current window "
            "(the tightest scope value for scoped budgets).", ["budget"], registry=registry,
        )
        self.budget_decisions = Counter(
            "llm_sidecar_budget_decisions", "Requests a budget or rate limit acted on: blocked, "
            "warned, capped, rate_limited.", ["decision"], registry=registry,
        )
        self.ledger_errors = Counter(
            "llm_sidecar_ledger_errors", "Spend ledger failures, by operation.", ["operation"],
            registry=registry,
        )
        self.redactions = Counter(
            "llm_sidecar_redactions", "Values redacted from requests, by entity type.",
            ["entity"], registry=registry,
        )
        self.telemetry_dropped = Counter(
            "llm_sidecar_telemetry_dropped", "Telemetry items dropped because an exporter was "
            "down or slow, by signal.", ["signal"], registry=registry,
        )

        # labels() takes a lock and hashes the label values; a request should pay that once per
        # distinct label set, not every time.
        self._counted: dict[tuple[str, int], Any] = {}
        self._timed: dict[str, Any] = {}
        self._spent: dict[str, Any] = {}

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

    def upstream_error(self, provider: str, error: str) -> None:
        self.upstream_errors.labels(provider, error).inc()

    def cache_lookup(self, result: str) -> None:
        self.cache_lookups.labels(result).inc()

    def cache_saved(self, usd: float, tokens: int) -> None:
        if usd > 0:
            self.cache_saved_usd.inc(usd)
        if tokens > 0:
            self.cache_saved_tokens.inc(tokens)

    def cache_backend_error(self, backend: str) -> None:
        self.cache_backend_errors.labels(backend).inc()

    def spent(self, model: str, usd: float) -> None:
        if usd > 0:
            counter = self._spent.get(model)
            if counter is None:
                counter = self._spent[model] = self.cost_usd.labels(model)
            counter.inc(usd)

    def set_budget_remaining(self, budget: str, usd: float) -> None:
        self.budget_remaining.labels(budget).set(usd)

    def budget_decision(self, decision: str) -> None:
        self.budget_decisions.labels(decision).inc()

    def ledger_error(self, operation: str) -> None:
        self.ledger_errors.labels(operation).inc()

    def redacted(self, entity: str, count: int) -> None:
        self.redactions.labels(entity).inc(count)

    def dropped(self, signal: str, count: int) -> None:
        self.telemetry_dropped.labels(signal).inc(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
