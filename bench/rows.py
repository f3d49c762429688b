"""The sidecar configurations the bench measures, as data: one row = one sidecar process.

Each row is the proxy core plus some features. A feature is a config fragment (the keys of
INTERFACE.md §2), the request headers it needs, and what a correctly configured sidecar shows
for it: the pipeline stages `/sidecar/config` lists, and a header on its answers. The bench
writes each row's config as YAML into the run's temporary directory, starts one sidecar per
row, and checks those expectations before timing anything (a mismatch is a Note in the report,
so a row that silently measures less than its name says cannot pass unnoticed).

Strings may hold `{upstream}` (the fake upstream's base URL, no trailing slash), `{otlp}` (the
OTLP receiver's endpoint), `{otlp_protocol}` (grpc, or http with the fallback receiver) and
`{state}` (the row's own state directory). Edit this module to change what a row measures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["json", "stream"]
Body = Literal["chat", "entities", "auto"]

LOCAL_KEY = "sk-bench-local-7f3a9c2e51d84b06"  # the `auth` feature's local key
UPSTREAM_KEY = "sk-bench-upstream"  # what the sidecar sends upstream when it holds the key

# The proxy core alone: every feature off (each is on by default except auth, privacy and
# exporters: the memory cache, the SQLite spend ledger, Prometheus metrics, the inspector).
CORE: dict[str, Any] = {
    # Rows with providers keep it too: the providers take precedence.
    "upstream": {"url": "{upstream}"},
    "cache": {"backend": "off"},
    "auth": {"required": False},
    "telemetry": {"exporters": [], "prometheus": False},
    "privacy": {"zdr": False, "redact": {"mode": "off"}},
    "spend": {"ledger": "off"},
    "admin": {"ui": False},
}
# Stages that must not run in `core` (names as build_pipeline gives them).
FEATURE_STAGES = ("telemetry", "zdr", "inspect", "auth", "privacy", "auto", "fallback",
                  "spend", "cache")


@dataclass(frozen=True, slots=True)
class Feature:
    config: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()
    stages: tuple[str, ...] = ()  # that /sidecar/config must list
    answer_header: tuple[str, str | None] | None = None  # on its answers; None: any value
    body: Body | None = None  # a prompt this feature needs instead of the plain chat


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` deep-merged onto `base` (mappings merge, anything else replaces)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


PROMETHEUS: dict[str, Any] = {"telemetry": {"prometheus": True}}


def merge_config(*parts: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        out = merged(out, part)
    return out


def _exporter(*signals: str) -> dict[str, Any]:
    return {"telemetry": {"exporters": [
        {"protocol": "{otlp_protocol}", "endpoint": "{otlp}", "signals": list(signals)}]}}


FEATURES: dict[str, Feature] = {
    "auth": Feature(
        {"auth": {"required": True, "keys": [{"name": "bench", "token": LOCAL_KEY}]},
         "upstream": {"api_key": UPSTREAM_KEY}},
        headers=(("Authorization", f"Bearer {LOCAL_KEY}"),), stages=("auth",)),
    # Cache on, every request bypasses it: what the cache costs a request it cannot serve.
    "cache-bypass": Feature(
        {"cache": {"backend": "memory"}}, headers=(("Cache-Control", "no-store"),),
        stages=("cache",), answer_header=("x-sidecar-cache", "BYPASS")),
    # Cache on, the same request repeated: every request after the first is a hit.
    "cache-hit": Feature({"cache": {"backend": "memory"}}, stages=("cache",),
                         answer_header=("x-sidecar-cache", "HIT")),
    "spend": Feature(
        {"spend": {
            "ledger": "sqlite:///{state}/ledger.db",
            # gpt-4o-mini's list price; the glob also covers the dated name upstream answers
            "prices": {"gpt-4o-mini*": {"prompt": 1.5e-7, "completion": 6e-7}},
            "budgets": [{"name": "bench-daily", "scope": "global", "window": "day",
                         "limit_usd": 1_000_000, "action": "block"}]}},
        stages=("spend",)),
    "privacy": Feature({"privacy": {"redact": {"mode": "pseudonymize"}}}, stages=("privacy",),
                       answer_header=("x-sidecar-redactions", None), body="entities"),
    "telemetry": Feature(merge_config(_exporter("traces", "metrics"), PROMETHEUS),
                         stages=("telemetry",)),
    "telemetry-metrics": Feature(merge_config(_exporter("metrics"), PROMETHEUS),
                                 stages=("telemetry",)),
    "telemetry-traces": Feature(_exporter("traces"), stages=("telemetry",)),
    # The request inspector's ring and statistics, with no page open (the default).
    "inspector": Feature({"admin": {"ui": True}}, stages=("inspect",)),
    # Two providers serving every model with the same glob: one pool sharing load by weight,
    # both the fake upstream (one under /v1, one at the root), with retries and a breaker.
    "routing": Feature(
        {"providers": [
            {"name": "fake-v1", "base_url": "{upstream}/v1", "api_key": UPSTREAM_KEY,
             "models": ["*"], "weight": 1},
            {"name": "fake-root", "base_url": "{upstream}", "api_key": UPSTREAM_KEY,
             "models": ["*"], "weight": 1}],
         "retry": {"attempts": 3, "backoff_s": 0.05, "max_backoff_s": 1,
                   "on_status": [429, 500, 502, 503, 504], "deadline_s": 30},
         "breaker": {"failures": 5, "open_s": 30}},
        stages=("fallback",)),
    # An auto router: the chat sent as `sidecar/auto`, classified and served by its tier's
    # model (the chat asks to write, and "letter" reads as a second writing word: medium).
    "auto": Feature(
        {"auto": {"routers": {"sidecar/auto": {"tiers": {
            "simple": ["gpt-4o-mini"], "medium": ["gpt-4.1-mini"], "complex": ["gpt-4o"],
            "reasoning": ["o3-mini"]}}}}},
        stages=("auto", "fallback"), answer_header=("x-sidecar-auto-tier", "medium"),
        body="auto"),
}

# The product's defaults (what `llm-sidecar serve` runs with no config but the upstream): the
# memory cache (bypassed here with no-store), spend's SQLite ledger without budgets, Prometheus
# metrics and the inspector; issue 23's "default config, cache bypassed".
FEATURES["defaults"] = Feature(
    {"cache": {"backend": "memory"}, "telemetry": {"prometheus": True},
     "spend": {"ledger": None}, "admin": {"ui": True}},
    headers=(("Cache-Control", "no-store"),), stages=("telemetry", "inspect", "spend", "cache"),
    answer_header=("x-sidecar-cache", "BYPASS"))

ALL = ("auth", "cache-bypass", "spend", "telemetry", "routing", "inspector")


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    features: tuple[str, ...]
    what: str  # one line for the README and the report
    kind: Kind = "json"
    headers: tuple[tuple[str, str], ...] = field(default=())


ROWS: tuple[Row, ...] = (
    Row("core", (), "no features: cache off, no auth, no exporters, spend and privacy off"),
    Row("default", ("defaults",), "the product's defaults, cache bypassed (no-store): the "
                                  "memory cache, spend's SQLite ledger, Prometheus metrics, "
                                  "the inspector"),
    Row("all", ALL, "auth with a local key, cache bypassed (no-store), spend with prices, a "
                    "budget and the SQLite ledger, traces and metrics to a live OTLP receiver "
                    "and Prometheus, two providers with retries, the inspector (no page open)"),
    Row("all+redact", (*ALL, "privacy"), "`all` plus pseudonymization, on a prompt with an "
                                         "email, a phone number and a card number"),
    Row("hit", tuple(f if f != "cache-bypass" else "cache-hit" for f in ALL),
        "`all` with the cache serving: the same request repeated, every one a hit"),
    Row("stream", ALL, "`all`, paced event streams (bypassing the cache)", kind="stream"),
    *(Row(name, (name,), f"the core plus {name} alone") for name in (
        "auth", "cache-bypass", "spend", "privacy", "telemetry-metrics", "telemetry-traces",
        "routing", "inspector", "auto")),
)
ROW_NAMES = tuple(row.name for row in ROWS)


def row(name: str) -> Row:
    for candidate in ROWS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"unknown row {name!r}; rows: {', '.join(ROW_NAMES)}")


def needs_otlp(row: Row) -> bool:
    return any(name.startswith("telemetry") for name in row.features)


def _filled(value: Any, context: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(context)
    if isinstance(value, Mapping):
        return {k: _filled(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, context) for v in value]
    return value


def config(row: Row, context: Mapping[str, str]) -> dict[str, Any]:
    """The row's sidecar config: the core, each feature merged on in order, placeholders
    filled from `context` (upstream, otlp, otlp_protocol, state)."""
    result: dict[str, Any] = CORE
    for name in row.features:
        result = merged(result, FEATURES[name].config)
    filled: dict[str, Any] = _filled(result, context)
    return filled


def headers(row: Row) -> dict[str, str]:
    """Request headers: each feature's, in order, then the row's own (later names win)."""
    out: dict[str, str] = {}
    for name in row.features:
        for key, value in FEATURES[name].headers:
            out = {k: v for k, v in out.items() if k.lower() != key.lower()}
            out[key] = value
    for key, value in row.headers:
        out = {k: v for k, v in out.items() if k.lower() != key.lower()}
        out[key] = value
    return out


def body(row: Row) -> Body:
    return next((b for name in row.features if (b := FEATURES[name].body)), "chat")


def expected_stages(row: Row) -> tuple[str, ...]:
    return tuple(stage for name in row.features for stage in FEATURES[name].stages)


def forbidden_stages(row: Row) -> tuple[str, ...]:
    """Feature stages this row must not run: those of the features it leaves off."""
    wanted = set(expected_stages(row))
    return tuple(stage for stage in FEATURE_STAGES if stage not in wanted)


def answer_headers(row: Row) -> tuple[tuple[str, str | None], ...]:
    """(name, value) pairs an answer must carry; value None: any value."""
    return tuple(h for name in row.features if (h := FEATURES[name].answer_header))
