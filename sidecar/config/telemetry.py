"""Settings for telemetry and logs: `telemetry` (INTERFACE.md §2, issue 11)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sidecar.config.base import PositiveSeconds, Section

Signal = Literal["traces", "metrics", "logs"]


def _all_signals() -> list[Signal]:
    return ["traces", "metrics", "logs"]


class ExporterSettings(Section):
    protocol: Literal["grpc", "http"] = "grpc"
    endpoint: str
    headers: dict[str, str] = Field(default_factory=dict)
    signals: list[Signal] = Field(default_factory=_all_signals)
    compression: Literal["gzip", "none"] = "gzip"
    timeout_s: PositiveSeconds = 10.0


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
