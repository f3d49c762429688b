"""What to export, where, and how: `telemetry` settings plus the standard `OTEL_*` variables.

Rules (docs/telemetry.md documents them for users):
- `OTEL_SDK_DISABLED=true`: no traces, no OTLP export of any signal (Prometheus /metrics stays,
  it is the sidecar's own).
- Destinations: the `telemetry.exporters` list when it has entries, each exporter with only its
  own endpoint, headers, compression and timeout (never `OTEL_EXPORTER_OTLP_HEADERS`: a generic
  credential must not leak to every backend). Without config exporters, one exporter from
  `OTEL_EXPORTER_OTLP_[SIGNAL_]ENDPOINT / _PROTOCOL / _HEADERS / _TIMEOUT / _COMPRESSION /
  _CERTIFICATE` and `OTEL_{TRACES,METRICS,LOGS}_EXPORTER` (otlp, console, none), per the
  specification (timeouts in milliseconds; an http signal URL from the generic endpoint gets
  `/v1/<signal>`, a per-signal one is used as is). Nothing is exported without an endpoint.
- Sampling: `OTEL_TRACES_SAMPLER` (+ `_ARG`) when set, else parent-based `sample_ratio`.
- Resource: `service.name` from `OTEL_SERVICE_NAME`, else `OTEL_RESOURCE_ATTRIBUTES`, else
  `telemetry.service_name`; `OTEL_RESOURCE_ATTRIBUTES` adds the rest.
- Queues: `OTEL_BSP_*` (spans), `OTEL_BLRP_*` (logs), `OTEL_METRIC_EXPORT_INTERVAL`.
A malformed variable is ignored with a warning in `Plan.warnings` (logged at start-up).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args
from urllib.parse import unquote

from sidecar import __version__
from sidecar.config.telemetry import ExporterSettings, TelemetrySettings
from sidecar.telemetry.otlp.transport import Destination, Signal
from sidecar.telemetry.tracing import Root, Sampler

__all__ = ["Limits", "Plan", "make_plan", "parse_headers"]

SIGNALS: tuple[Signal, ...] = get_args(Signal)
_SAMPLERS: dict[str, tuple[Root, bool]] = {
    "always_on": ("always_on", False), "always_off": ("always_off", False),
    "traceidratio": ("ratio", False), "parentbased_always_on": ("always_on", True),
    "parentbased_always_off": ("always_off", True), "parentbased_traceidratio": ("ratio", True),
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_queue: int = 2048
    batch_size: int = 512
    delay_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Plan:
    destinations: tuple[Destination, ...]
    sampler: Sampler
    resource: Mapping[str, Any]
    spans: Limits = Limits()
    logs: Limits = Limits(delay_s=1.0)
    metrics_interval_s: float = 60.0
    disabled: bool = False
    warnings: tuple[str, ...] = field(default=())

    def for_signal(self, signal: Signal) -> tuple[Destination, ...]:
        return tuple(d for d in self.destinations if d.signal == signal)


def parse_headers(value: str) -> tuple[tuple[str, str], ...]:
    """`k=v,k2=v2` with percent-encoded values (the OTLP exporter specification)."""
    out = []
    for item in value.split(","):
        key, sep, raw = item.partition("=")
        if sep and key.strip():
            out.append((key.strip(), unquote(raw.strip())))
    return tuple(out)


def make_plan(settings: TelemetrySettings, env: Mapping[str, str]) -> Plan:
    warnings: list[str] = []

    def number(name: str, default: float) -> float:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            warnings.append(f"{name}={raw!r} is not a number; using {default}")
            return default
        if value <= 0:
            warnings.append(f"{name}={raw!r} must be positive; using {default}")
            return default
        return value

    disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    if disabled:
        destinations: tuple[Destination, ...] = ()
    elif settings.exporters:
        destinations = tuple(d for e in settings.exporters for d in _from_settings(e))
    else:
        destinations = _from_env(env, warnings)
    return Plan(
        destinations=destinations,
        sampler=_sampler(settings.sample_ratio, env, warnings),
        resource=_resource(settings.service_name, env),
        spans=Limits(int(number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)),
                     int(number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)),
                     number("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000),
        logs=Limits(int(number("OTEL_BLRP_MAX_QUEUE_SIZE", 2048)),
                    int(number("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 512)),
                    number("OTEL_BLRP_SCHEDULE_DELAY", 1000) / 1000),
        metrics_interval_s=number("OTEL_METRIC_EXPORT_INTERVAL", 60000) / 1000,
        disabled=disabled,
        warnings=tuple(warnings),
    )


def _from_settings(exporter: ExporterSettings) -> list[Destination]:
    out = []
    for signal in dict.fromkeys(exporter.signals):
        if exporter.protocol == "console":
            if signal != "metrics":  # metrics are at /metrics; a console dump adds nothing
                out.append(Destination(signal, "console"))
            continue
        assert exporter.endpoint is not None  # the settings require one
        url = exporter.endpoint
        if exporter.protocol == "http":
            url = f"{_http_base(url)}/v1/{signal}"
        out.append(Destination(signal, exporter.protocol, url, tuple(exporter.headers.items()),
                               exporter.compression == "gzip", exporter.timeout_s))
    return out


def _http_base(url: str) -> str:
    """A configured http endpoint is the base URL; a signal path someone added is dropped."""
    url = url.rstrip("/")
    for signal in SIGNALS:
        url = url.removesuffix(f"/v1/{signal}")
    return url


def _from_env(env: Mapping[str, str], warnings: list[str]) -> tuple[Destination, ...]:
    def var(signal: Signal, suffix: str) -> str:
        return (env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_{suffix}", "").strip()
                or env.get(f"OTEL_EXPORTER_OTLP_{suffix}", "").strip())

    out: list[Destination] = []
    for signal in SIGNALS:
        chosen = {e.strip().lower() for e in
                  env.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp").split(",") if e.strip()}
        if "console" in chosen and signal != "metrics":
            out.append(Destination(signal, "console"))
        if "otlp" not in chosen:
            continue
        specific = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
        generic = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        if not (specific or generic):
            continue
        protocol = var(signal, "PROTOCOL") or "grpc"
        if protocol not in ("grpc", "http/protobuf"):
            warnings.append(f"OTLP protocol {protocol!r} is not supported for {signal}; "
                            "using http/protobuf")
            protocol = "http/protobuf"
        url = specific or generic
        if "://" not in url:
            insecure = env.get("OTEL_EXPORTER_OTLP_INSECURE", "").strip().lower() == "true"
            url = ("http://" if insecure else "https://") + url
        if protocol != "grpc" and not specific:
            url = f"{url.rstrip('/')}/v1/{signal}"
        timeout_ms = var(signal, "TIMEOUT")
        try:
            timeout_s = float(timeout_ms) / 1000 if timeout_ms else 10.0
        except ValueError:
            warnings.append(f"OTLP timeout {timeout_ms!r} is not a number; using 10 s")
            timeout_s = 10.0
        out.append(Destination(
            signal, "grpc" if protocol == "grpc" else "http", url,
            parse_headers(var(signal, "HEADERS")), var(signal, "COMPRESSION") == "gzip",
            timeout_s if timeout_s > 0 else 10.0, var(signal, "CERTIFICATE") or None))
    return tuple(out)


def _sampler(ratio: float, env: Mapping[str, str], warnings: list[str]) -> Sampler:
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if not name:
        return Sampler("ratio", ratio, True)
    if name not in _SAMPLERS:
        warnings.append(f"OTEL_TRACES_SAMPLER={name!r} is not supported; using "
                        f"parentbased_traceidratio with telemetry.sample_ratio={ratio}")
        return Sampler("ratio", ratio, True)
    root, parent_based = _SAMPLERS[name]
    if root == "ratio":
        raw = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
        try:
            ratio = float(raw) if raw else 1.0
        except ValueError:
            warnings.append(f"OTEL_TRACES_SAMPLER_ARG={raw!r} is not a number; using 1.0")
            ratio = 1.0
        ratio = min(max(ratio, 0.0), 1.0)
    return Sampler(root, ratio, parent_based)


def _resource(service_name: str, env: Mapping[str, str]) -> dict[str, Any]:
    extra = dict(parse_headers(env.get("OTEL_RESOURCE_ATTRIBUTES", "")))
    from_attributes = extra.pop("service.name", "")
    name = env.get("OTEL_SERVICE_NAME", "").strip() or from_attributes or service_name
    return {"service.name": name, "service.version": __version__,
            "service.instance.id": str(uuid.uuid4()), "telemetry.sdk.name": "llm-sidecar",
            "telemetry.sdk.language": "python", "telemetry.sdk.version": __version__, **extra}
