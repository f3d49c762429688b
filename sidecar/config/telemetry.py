"""Settings for telemetry and logs: `telemetry` (INTERFACE.md §2, issue 11)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from sidecar.config.base import PositiveSeconds, Section, check_http_url

Signal = Literal["traces", "metrics", "logs"]


def _all_signals() -> list[Signal]:
    return ["traces", "metrics", "logs"]


class ExporterSettings(Section):
    """One backend. `endpoint`: scheme://host:port for grpc; the base URL for http (the
    sidecar appends /v1/traces, /v1/metrics, /v1/logs); none for console (stderr)."""

    protocol: Literal["grpc", "http", "console"] = "grpc"
    endpoint: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    signals: list[Signal] = Field(default_factory=_all_signals, min_length=1)
    compression: Literal["gzip", "none"] = "gzip"
    timeout_s: PositiveSeconds = 10.0

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @model_validator(mode="after")
    def _needs_endpoint(self) -> ExporterSettings:
        if self.protocol != "console" and not self.endpoint:
            raise ValueError(f"endpoint is required for protocol {self.protocol}")
        return self


class LogSettings(Section):
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


class TelemetrySettings(Section):
    service_name: str = "llm-sidecar"
    capture_content: bool = False
    exporters: list[ExporterSettings] = Field(default_factory=list)
    sample_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0
    prometheus: bool = True
    logs: LogSettings = Field(default_factory=LogSettings)
