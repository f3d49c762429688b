"""Settings for redaction and zero data retention: `privacy` (INTERFACE.md §2, issue 10)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from sidecar.config.base import Section, yaml_off

Entity = Literal["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET"]


def _all_entities() -> list[Entity]:
    return ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET"]


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


class RedactSettings(Section):
    mode: Literal["off", "mask", "pseudonymize", "block"] = "off"
    entities: list[Entity] = Field(default_factory=_all_entities)
    custom: list[CustomPattern] = Field(default_factory=list)

    _off = field_validator("mode", mode="before")(yaml_off)


class PrivacySettings(Section):
    zdr: bool = False
    zdr_allow_memory_cache: bool = False
    redact: RedactSettings = Field(default_factory=RedactSettings)
