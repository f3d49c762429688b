"""Every instrument, in one place: names, units, help text, labels and buckets.

One set of instruments, read two ways: Prometheus scrapes them at GET /metrics, and the OTLP
metrics exporter (otlp/metrics.py) reads the same registry and sends it as OTLP metrics. The
instruments record into series.py (a few attribute writes each, no lock) and are exposed
through prometheus_client's registry and text format: prometheus_client's own instruments take
a lock per `inc()` and scan buckets in Python per `observe()` (0.5 to 3 µs each, about 10 µs
for the fifteen values a request records with every feature on), the OpenTelemetry SDK's
`record()` 7 to 10 µs with two readers (measured, bench/telemetry.py).

Names: the sidecar's own series keep their Prometheus names (`llm_sidecar_*`) in both
exports; the GenAI client metrics use the OpenTelemetry semantic conventions v1.41 names over
OTLP (`gen_ai.client.token.usage`, attributes `gen_ai.operation.name`...) and the names a
collector's Prometheus exporter would give them at /metrics (`gen_ai_client_token_usage`,
labels `gen_ai_operation_name`...), so dashboards read the same series whichever way they came.

Labels stay bounded: `endpoint` is a model endpoint name or "passthrough", never a raw path;
`entity`, `result`, `error` and the like are small fixed sets; `budget` and `provider` are names
from the config; models appear only once an upstream accepted them. Nothing here carries a key,
a user, a prompt or a completion. Features record through the methods below, never by creating
instruments of their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, generate_latest

from sidecar.telemetry.series import Family, Series

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Semantic conventions v1.41, ExplicitBucketBoundaries advisories.
GENAI_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                          20.48, 40.96, 81.92)
GENAI_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                       16777216, 67108864)
# gen_ai.* metric attributes, in the order the label tuples below use.
GENAI_LABELS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
                "gen_ai.response.model", "server.address", "server.port")
GenAILabels = tuple[str, str, str, str, str, str]  # values for GENAI_LABELS ("" = absent)

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class Instrument:
    name: str  # the OTLP name
    prometheus: str  # the Prometheus family name (counters get `_total` in the exposition)
    kind: Kind
    unit: str  # UCUM, as OTLP carries it
    description: str
    labels: tuple[str, ...] = ()  # OTLP attribute names; Prometheus: dots become underscores
    buckets: tuple[float, ...] = ()


def _own(name: str, kind: Kind, unit: str, description: str, labels: tuple[str, ...] = (),
         buckets: tuple[float, ...] = ()) -> Instrument:
    return Instrument(name, name, kind, unit, description, labels, buckets)


def _genai(name: str, unit: str, description: str, extra: tuple[str, ...],
           buckets: tuple[float, ...]) -> Instrument:
    prometheus = name.replace(".", "_") + ("_seconds" if unit == "s" else "")
    return Instrument(name, prometheus, "histogram", unit, description,
                      GENAI_LABELS + extra, buckets)


INSTRUMENTS = (
    _own("llm_sidecar_requests", "counter", "{request}",
         "Requests served, by endpoint and HTTP status.", ("endpoint", "status")),
    _own("llm_sidecar_request_duration_seconds", "histogram", "s",
         "Time from request arrival to the last byte of the response, in seconds.",
         ("endpoint",), LATENCY_BUCKETS),
    _own("llm_sidecar_stream_interruptions", "counter", "{request}",
         "Requests that did not finish normally: upstream_broke, client_disconnected, "
         "cancelled (cut at shutdown) or internal_error.", ("endpoint", "outcome")),
    _own("llm_sidecar_in_flight_requests", "gauge", "{request}",
         "Proxied requests being served now."),
    _own("llm_sidecar_upstream_errors", "counter", "{attempt}",
         "Failed upstream attempts, by provider and error (upstream_timeout, "
         "upstream_unavailable, http_<status>).", ("provider", "error")),
    _own("llm_sidecar_cache_lookups", "counter", "{lookup}",
         "Cache lookups by result: hit, miss, collapsed (waited for an identical request in "
         "flight), bypass (Cache-Control no-cache/no-store), skip (temperature over "
         "cache.skip_when_temperature_above), unavailable (the backend could not be asked).",
         ("result",)),
    _own("llm_sidecar_cache_saved_usd", "counter", "{USD}", "USD not spent thanks to cache hits."),
    _own("llm_sidecar_cache_saved_tokens", "counter", "{token}",
         "Tokens not spent thanks to cache hits."),
    _own("llm_sidecar_cache_backend_errors", "counter", "{error}",
         "Cache backend failures (served from upstream instead), by backend.", ("backend",)),
    _own("llm_sidecar_cost_usd", "counter", "{USD}", "USD spent, by model.", ("model",)),
    _own("llm_sidecar_budget_remaining_usd", "gauge", "{USD}",
         "USD left in each budget's current window (the tightest scope value for scoped "
         "budgets).", ("budget",)),
    _own("llm_sidecar_budget_decisions", "counter", "{request}",
         "Requests a budget or rate limit acted on: blocked, warned, capped, rate_limited.",
         ("decision",)),
    _own("llm_sidecar_ledger_errors", "counter", "{error}",
         "Spend ledger failures, by operation.", ("operation",)),
    _own("llm_sidecar_redactions", "counter", "{value}",
         "Values redacted from requests, by entity type.", ("entity",)),
    _own("llm_sidecar_auth_failures", "counter", "{request}",
         "Requests refused for their credentials, by scope (proxy: auth.keys; admin: "
         "admin.token) and reason (missing, invalid, expired).", ("scope", "reason")),
    _own("llm_sidecar_provider_key_index", "gauge", "{key}",
         "Which key of a provider's api_key list is in use: 0 the first; more when the upstream "
         "refused (401/403) the ones before it, which the config still lists first.",
         ("provider",)),
    _own("llm_sidecar_config_reloads", "counter", "{reload}",
         "Live reloads of the configuration, by result: ok (applied), invalid (refused: the "
         "running configuration keeps serving).", ("result",)),
    _own("llm_sidecar_config_version", "gauge", "{version}",
         "The configuration's version: 1 at start, one more for each reload applied."),
    _own("llm_sidecar_telemetry_dropped", "counter", "{item}",
         "Telemetry items dropped because an exporter was down or slow, by signal.",
         ("signal",)),
    _genai("gen_ai.client.token.usage", "{token}",
           "Tokens used per upstream operation, by gen_ai.token.type (input, output).",
           ("gen_ai.token.type",), GENAI_TOKEN_BUCKETS),
    _genai("gen_ai.client.operation.duration", "s",
           "Duration of each upstream attempt, to the end of its answer.", ("error.type",),
           GENAI_DURATION_BUCKETS),
    _genai("gen_ai.client.operation.time_to_first_chunk", "s",
           "Streams: time from the attempt's start to the first chunk of the answer.", (),
           GENAI_DURATION_BUCKETS),
    _genai("gen_ai.client.operation.time_per_output_chunk", "s",
           "Streams: time between consecutive chunks after the first.", (),
           GENAI_DURATION_BUCKETS),
)
BY_PROMETHEUS_NAME = {i.prometheus: i for i in INSTRUMENTS}


def _build(instrument: Instrument, series: Series) -> Family:
    labels = tuple(label.replace(".", "_") for label in instrument.labels)
    return series.add(Family(instrument.prometheus, instrument.description, labels,
                             instrument.kind, instrument.buckets,
                             locked=instrument.name == "llm_sidecar_telemetry_dropped"))


class Metrics:
    def __init__(self) -> None:
        self.started_ns = time.time_ns()  # start of every cumulative series, for OTLP
        series = Series()
        built = {i.name: _build(i, series) for i in INSTRUMENTS}
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(series)
        self.requests = built["llm_sidecar_requests"]
        self.duration = built["llm_sidecar_request_duration_seconds"]
        self.stream_outcomes = built["llm_sidecar_stream_interruptions"]
        self.in_flight_requests = built["llm_sidecar_in_flight_requests"]
        self.upstream_errors = built["llm_sidecar_upstream_errors"]
        self.cache_lookups = built["llm_sidecar_cache_lookups"]
        self.cache_saved_usd = built["llm_sidecar_cache_saved_usd"]
        self.cache_saved_tokens = built["llm_sidecar_cache_saved_tokens"]
        self.cache_backend_errors = built["llm_sidecar_cache_backend_errors"]
        self.cost_usd = built["llm_sidecar_cost_usd"]
        self.budget_remaining = built["llm_sidecar_budget_remaining_usd"]
        self.budget_decisions = built["llm_sidecar_budget_decisions"]
        self.ledger_errors = built["llm_sidecar_ledger_errors"]
        self.redactions = built["llm_sidecar_redactions"]
        self.telemetry_dropped = built["llm_sidecar_telemetry_dropped"]
        self.auth_failures = built["llm_sidecar_auth_failures"]
        self.provider_key_index = built["llm_sidecar_provider_key_index"]
        self.config_reloads = built["llm_sidecar_config_reloads"]
        self.config_version = built["llm_sidecar_config_version"]
        self.config_version.set(1)
        self.genai_tokens = built["gen_ai.client.token.usage"]
        self.genai_duration = built["gen_ai.client.operation.duration"]
        self.genai_ttfc = built["gen_ai.client.operation.time_to_first_chunk"]
        self.genai_per_chunk = built["gen_ai.client.operation.time_per_output_chunk"]

        self._counted: dict[tuple[str, int], Any] = {}  # (endpoint, status) -> child

    @staticmethod
    def _child(metric: Family, labels: tuple[str, ...]) -> Any:
        return metric.labels(*labels)

    def observe(self, endpoint: str, status: int, seconds: float, outcome: str) -> None:
        counter = self._counted.get((endpoint, status))
        if counter is None:
            counter = self._counted[endpoint, status] = self.requests.labels(endpoint, str(status))
        counter.inc()
        self.duration.labels(endpoint).observe(seconds)
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
            self._child(self.cost_usd, (model,)).inc(usd)

    def set_budget_remaining(self, budget: str, usd: float) -> None:
        self.budget_remaining.labels(budget).set(usd)

    def budget_decision(self, decision: str) -> None:
        self.budget_decisions.labels(decision).inc()

    def ledger_error(self, operation: str) -> None:
        self.ledger_errors.labels(operation).inc()

    def redacted(self, entity: str, count: int) -> None:
        self.redactions.labels(entity).inc(count)

    def auth_failure(self, scope: str, reason: str) -> None:
        """A request refused for its credentials (see telemetry/refusals.py)."""
        self._child(self.auth_failures, (scope, reason)).inc()

    def provider_key(self, provider: str, index: int) -> None:
        self.provider_key_index.labels(provider).set(index)

    def config_reload(self, result: str, version: int) -> None:
        self.config_reloads.labels(result).inc()
        self.config_version.set(version)

    def dropped(self, signal: str, count: int) -> None:
        """Telemetry lost to a full queue or a failed export (called from exporter threads)."""
        self.telemetry_dropped.labels(signal).inc(count)

    def genai_operation(self, labels: GenAILabels, seconds: float, error: str | None) -> None:
        """One upstream attempt at a model endpoint (`error` as in `error.type`)."""
        self._child(self.genai_duration, (*labels, error or "")).observe(seconds)

    def genai_usage(self, labels: GenAILabels, input_tokens: int, output_tokens: int) -> None:
        self._child(self.genai_tokens, (*labels, "input")).observe(input_tokens)
        self._child(self.genai_tokens, (*labels, "output")).observe(output_tokens)

    def genai_stream(self, labels: GenAILabels, first_chunk_s: float,
                     gaps: Iterable[float]) -> None:
        """A streamed answer: time to its first chunk, then each gap between chunks."""
        self._child(self.genai_ttfc, labels).observe(first_chunk_s)
        self._child(self.genai_per_chunk, labels).observe_many(gaps)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
