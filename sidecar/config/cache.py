"""Settings for the prompt cache: `cache` (INTERFACE.md §2, issue 8)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from sidecar.config.base import PositiveSeconds, Section, empty_is_none, yaml_off


class CacheSettings(Section):
    backend: Literal["memory", "redis", "off"] = "memory"
    ttl_s: PositiveSeconds = 3600
    max_entries: Annotated[int, Field(gt=0)] = 10_000
    max_bytes: Annotated[int, Field(gt=0)] = 256 * 1024 * 1024
    max_entry_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    redis_url: str | None = None
    redis_password: SecretStr | None = None  # kept out of the URL: any character is safe here
    redis_timeout_s: PositiveSeconds = 0.05
    shared_namespace: bool = False
    skip_when_temperature_above: Annotated[float, Field(ge=0)] | None = None

    _off = field_validator("backend", mode="before")(yaml_off)
    _password = field_validator("redis_password", mode="before")(empty_is_none)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _redis_needs_url(self) -> CacheSettings:
        if self.backend == "redis" and not self.redis_url:
            raise ValueError("backend is redis but redis_url is not set (e.g. "
                             "redis://redis:6379/0; the password goes in redis_password)")
        return self
