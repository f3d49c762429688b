"""The Settings tree: every section of INTERFACE.md §2 as a frozen, strictly validated model.

Unknown keys and wrong types are errors (`extra="forbid"`), reported by the loader with the
dotted path of the key. Secrets are `SecretStr` so that they render as `***` everywhere
(`/sidecar/config`, reprs, logs) unless code asks for the value on purpose.

The core's sections live here; each feature's sections live in their own module (routing,
cache, spend, privacy, telemetry). Rules that span sections live in one place:
`Settings._across_sections`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, Field, SecretStr, field_validator, model_validator

from sidecar.config.auto import AutoSettings, check_auto
from sidecar.config.base import (
    Port,
    PositiveSeconds,
    Section,
    check_provider_url,
    empty_is_none,
)
from sidecar.config.cache import CacheSettings
from sidecar.config.privacy import PrivacySettings
from sidecar.config.providers import (
    BreakerSettings,
    ProviderSettings,
    RetrySettings,
    check_providers,
)
from sidecar.config.spend import SpendSettings
from sidecar.config.telemetry import LogSettings, TelemetrySettings

__all__ = [
    "AdminSettings", "AuthKey", "AuthSettings", "AutoSettings", "BreakerSettings",
    "CacheSettings", "ListenSettings", "LogSettings", "PrivacySettings", "ProviderSettings",
    "ReloadSettings", "RetrySettings",
    "Settings", "SpendSettings", "TelemetrySettings", "UpstreamSettings",
]


class ListenSettings(Section):
    host: str = "127.0.0.1"
    port: Port = 4141
    max_body_bytes: Annotated[int, Field(gt=0)] = 32 * 1024 * 1024
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 20.0


class AdminSettings(Section):
    """Who may call the admin routes is decided in sidecar/admin/guard.py (its table): on a
    listener that is not loopback they need `token`, unless the opt-out is on."""

    host: str = "127.0.0.1"
    port: Port | None = None
    token: SecretStr | None = None
    # /metrics needs the token too; off, it stays scrapable without one (counters only).
    metrics_require_token: bool = False
    # Serve the admin routes without a token on a listener that is not loopback: for a port that
    # something else guards (a NetworkPolicy). A long name on purpose; warned about at start.
    insecure_no_token_on_network: bool = False
    ui: bool = True  # the request inspector at /sidecar/ui and its event stream
    ui_requests: Annotated[int, Field(gt=0, le=100_000)] = 1000  # recent requests kept in memory

    _token = field_validator("token", mode="before")(empty_is_none)

    @model_validator(mode="after")
    def _metrics_token(self) -> AdminSettings:
        if self.metrics_require_token and self.token is None:
            raise ValueError("metrics_require_token is true but token is not set: every scrape "
                             "of /metrics would be refused (is its environment variable set?)")
        return self


class UpstreamSettings(Section):
    url: str = "https://openrouter.ai/api/v1"
    # a list rotates: the first is used, the next when the upstream refuses it (keys.py)
    api_key: SecretStr | list[SecretStr] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout_s: PositiveSeconds = 5.0
    read_timeout_s: PositiveSeconds = 600.0
    max_connections: Annotated[int, Field(ge=0)] = 0  # 0: no cap on the pool

    _key = field_validator("api_key", mode="before")(empty_is_none)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return value if value == "demo" else check_provider_url(value)


class AuthKey(Section):
    name: str
    token: SecretStr
    tags: list[str] = Field(default_factory=list)
    allowed_models: list[str] = Field(default_factory=lambda: ["*"])
    # A rotation window: the key is refused (401, saying why) before not_before and from
    # not_after on; two keys valid at once let clients move from one to the other.
    not_before: AwareDatetime | None = None
    not_after: AwareDatetime | None = None

    @field_validator("token")
    @classmethod
    def _non_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty (is its environment variable set?)")
        return value

    @model_validator(mode="after")
    def _window(self) -> AuthKey:
        if self.not_before and self.not_after and self.not_after <= self.not_before:
            raise ValueError("not_after must be later than not_before")
        return self


class AuthSettings(Section):
    required: bool = False
    keys: list[AuthKey] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> AuthSettings:
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


class ReloadSettings(Section):
    """Live reload (sidecar/live.py): SIGHUP, `POST /sidecar/reload`, and the file watch."""

    watch: bool = True  # reload when the config file's content changes (a ConfigMap update)
    poll_s: PositiveSeconds = 2.0  # how often the file is read to see whether it changed


def default_state_dir() -> Path:
    return Path("~/.local/state/llm-sidecar").expanduser()


class Settings(Section):
    """The whole configuration. Built once by `sidecar.config.load_settings`, then frozen."""

    listen: ListenSettings = Field(default_factory=ListenSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
    providers: list[ProviderSettings] | None = None
    routes: dict[str, list[str]] = Field(default_factory=dict)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    spend: SpendSettings = Field(default_factory=SpendSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    reload: ReloadSettings = Field(default_factory=ReloadSettings)
    auto: AutoSettings = Field(default_factory=AutoSettings)
    state_dir: Path = Field(default_factory=default_state_dir)

    @model_validator(mode="after")
    def _across_sections(self) -> Settings:
        """Every rule that involves two sections, in one place."""
        if self.admin.port is not None and self.admin.port == self.listen.port:
            raise ValueError("admin.port must differ from listen.port (null keeps admin routes "
                             "on the main listener)")
        check_providers(self.providers, self.routes)
        if self.auto.routers:
            check_auto(self.auto, self.routes, self._openrouter_serves("openrouter/auto"))
        if self.privacy.zdr:
            self._zero_retention()
        return self

    def _openrouter_serves(self, model: str) -> bool:
        """`model` goes to OpenRouter: the lone upstream is there, or a provider there takes
        the model by its globs (the first such provider is the model's pool's first choice)."""
        from sidecar.globs import Globs
        from sidecar.upstream.openrouter import is_openrouter

        if self.providers is None:
            return is_openrouter(self.upstream.url)
        return any(is_openrouter(p.base_url) for p in self.providers if Globs(p.models)(model))

    def _zero_retention(self) -> None:
        """privacy.zdr: content may live in process memory for the request, nowhere else."""
        if self.telemetry.capture_content:
            raise ValueError("privacy.zdr is on, so telemetry.capture_content must be false "
                             "(captured prompts and completions would be exported in spans)")
        if self.cache.backend not in ("memory", "off"):
            raise ValueError(f"privacy.zdr is on, so cache.backend cannot be "
                             f"{self.cache.backend} (cached answers would be stored outside "
                             "this process): use cache.backend: off, or memory with "
                             "privacy.zdr_allow_memory_cache: true")
        if self.cache.backend == "memory" and not self.privacy.zdr_allow_memory_cache:
            if "backend" in self.cache.model_fields_set:
                raise ValueError("privacy.zdr is on and cache.backend is memory, which keeps "
                                 "answers in memory after the request: set "
                                 "privacy.zdr_allow_memory_cache: true to allow that, or "
                                 "cache.backend: off")
            # The default backend, not a choice: ZDR turns it off (the effective config says
            # so, and the cache stage is absent).
            object.__setattr__(self, "cache", self.cache.model_copy(update={"backend": "off"}))
