"""The Settings tree: every section of INTERFACE.md §2 as a frozen, strictly validated model.

Unknown keys and wrong types are errors (`extra="forbid"`), reported by the loader with the
dotted path of the key. Secrets are `SecretStr` so that they render as `***` everywhere
(`/sidecar/config`, reprs, logs) unless code asks for the value on purpose.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

Port = Annotated[int, Field(ge=1, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0)]
UsdPerToken = Annotated[float, Field(ge=0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _yaml_off(value: object) -> object:
    """YAML 1.1 reads a bare `off` as false; where "off" is a documented value, take it back."""
    return "off" if value is False else value


def _check_http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


class Listen(Section):
    host: str = "127.0.0.1"
    port: Port = 4141
    max_body_bytes: Annotated[int, Field(gt=0)] = 32 * 1024 * 1024
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 20.0


class Admin(Section):
    host: str = "127.0.0.1"
    port: Port | None = None
    token: SecretStr | None = None

    @field_validator("token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


class Upstream(Section):
    url: str = "https://openrouter.ai/api/v1"
    api_key: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout_s: PositiveSeconds = 5.0
    read_timeout_s: PositiveSeconds = 600.0
    max_connections: Annotated[int, Field(ge=0)] = 0  # 0: no cap on the pool

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return value if value == "demo" else _check_http_url(value)

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


class Provider(Section):
    name: str
    base_url: str
    api_key: SecretStr | None = None
    format: Literal["openai", "anthropic"] = "openai"
    models: list[str] = Field(default_factory=lambda: ["*"])
    strip_prefix: bool = False
    weight: Annotated[float, Field(gt=0)] = 1.0
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_http_url(value)


class Retry(Section):
    attempts: Annotated[int, Field(ge=1)] = 3
    backoff_s: Annotated[float, Field(ge=0)] = 0.2
    max_backoff_s: Annotated[float, Field(ge=0)] = 5.0
    on_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [408, 429, 500, 502, 503, 504]
    )
    deadline_s: PositiveSeconds = 120.0


class AuthKey(Section):
    name: str
    token: SecretStr
    tags: list[str] = Field(default_factory=list)
    allowed_models: list[str] = Field(default_factory=lambda: ["*"])

    @field_validator("token")
    @classmethod
    def _non_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty (is its environment variable set?)")
        return value


class Auth(Section):
    required: bool = False
    keys: list[AuthKey] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Auth:
        if self.required and not self.keys:
            raise ValueError("required is true but no keys are configured: every request "
                             "would be refused")
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names):
            raise ValueError("key names must be unique")
        tokens = [k.token.get_secret_value() for k in self.keys]
        if len(set(tokens)) != len(tokens):
            raise ValueError("two keys share one token")
        return self


class Cache(Section):
    backend: Literal["memory", "redis", "off"] = "memory"
    ttl_s: Annotated[float, Field(gt=0)] = 3600
    max_entries: Annotated[int, Field(gt=0)] = 10_000
    max_entry_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    redis_url: str | None = None
    shared_namespace: bool = False

    _off = field_validator("backend", mode="before")(_yaml_off)


class Price(Section):
    prompt: UsdPerToken = 0.0
    completion: UsdPerToken = 0.0
    request: UsdPerToken = 0.0
    input_cache_read: UsdPerToken | None = None
    input_cache_write: UsdPerToken | None = None


class Budget(Section):
    name: str
    scope: Literal["global", "key", "user", "tag", "model"] = "global"
    window: Literal["hour", "day", "week", "month"] = "day"
    limit_usd: Annotated[float, Field(ge=0)]
    action: Literal["block", "warn"] = "block"


class RateLimit(Section):
    scope: Literal["global", "key", "user", "model"] = "key"
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None


class Spend(Section):
    ledger: str | None = None  # None: sqlite:///<state_dir>/ledger.db
    prices: dict[str, Price] = Field(default_factory=dict)
    unknown_model_price: Literal["block", "free"] | Price = "block"
    budgets: list[Budget] = Field(default_factory=list)
    rate_limits: list[RateLimit] = Field(default_factory=list)

    @field_validator("ledger")
    @classmethod
    def _ledger_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite:///", "redis://", "rediss://")):
            raise ValueError("must be sqlite:///path or redis://host:port/db")
        return value


class CustomPattern(Section):
    name: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


Entity = Literal["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET"]
Signal = Literal["traces", "metrics", "logs"]


def _all_entities() -> list[Entity]:
    return ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET"]


def _all_signals() -> list[Signal]:
    return ["traces", "metrics", "logs"]


class Redact(Section):
    mode: Literal["off", "mask", "pseudonymize", "block"] = "off"
    entities: list[Entity] = Field(default_factory=_all_entities)
    custom: list[CustomPattern] = Field(default_factory=list)

    _off = field_validator("mode", mode="before")(_yaml_off)


class Privacy(Section):
    zdr: bool = False
    redact: Redact = Field(default_factory=Redact)


class Exporter(Section):
    protocol: Literal["grpc", "http"] = "grpc"
    endpoint: str
    headers: dict[str, str] = Field(default_factory=dict)
    signals: list[Signal] = Field(default_factory=_all_signals)


class Logs(Section):
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Telemetry(Section):
    service_name: str = "llm-sidecar"
    capture_content: bool = False
    exporters: list[Exporter] = Field(default_factory=list)
    prometheus: bool = True
    logs: Logs = Field(default_factory=Logs)


def default_state_dir() -> Path:
    return Path("~/.local/state/llm-sidecar").expanduser()


class Settings(Section):
    """The whole configuration. Built once by `sidecar.config.load_settings`, then frozen."""

    listen: Listen = Field(default_factory=Listen)
    admin: Admin = Field(default_factory=Admin)
    upstream: Upstream = Field(default_factory=Upstream)
    providers: list[Provider] | None = None
    routes: dict[str, list[str]] = Field(default_factory=dict)
    retry: Retry = Field(default_factory=Retry)
    auth: Auth = Field(default_factory=Auth)
    cache: Cache = Field(default_factory=Cache)
    spend: Spend = Field(default_factory=Spend)
    privacy: Privacy = Field(default_factory=Privacy)
    telemetry: Telemetry = Field(default_factory=Telemetry)
    state_dir: Path = Field(default_factory=default_state_dir)

    @model_validator(mode="after")
    def _listeners_differ(self) -> Settings:
        if self.admin.port is not None and self.admin.port == self.listen.port:
            raise ValueError("admin.port must differ from listen.port (null keeps admin routes "
                             "on the main listener)")
        return self
