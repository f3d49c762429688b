"""Settings for redaction and zero data retention: `privacy` (INTERFACE.md §2, issue 10)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sidecar.config.base import Section, yaml_off

Entity = Literal["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET"]
ENTITIES: tuple[Entity, ...] = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS",
                                "SECRET")
# National phone formats (no + or 00) are recognised for these regions; international ones for
# every country. Each region's plan is a source of false positives, hence a short default.
DEFAULT_PHONE_REGIONS = ("US", "CA", "GB", "DE", "FR", "IT", "NL", "AU", "IN")


def _all_entities() -> list[Entity]:
    return list(ENTITIES)


class CustomPattern(Section):
    name: str  # the tag: [EMPLOYEE_ID] / <EMPLOYEE_ID_1>
    pattern: str

    @field_validator("name")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}", value):
            raise ValueError("must be a letter then letters, digits or _ (at most 40), "
                             "e.g. EMPLOYEE_ID")
        if value.upper() in ENTITIES:
            raise ValueError(f"{value.upper()} is a built-in entity; choose another name")
        return value.upper()

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if compiled.match(""):
            raise ValueError("matches the empty string, so it would match everywhere")
        return value


class RedactSettings(Section):
    mode: Literal["off", "mask", "pseudonymize", "block"] = "off"
    entities: list[Entity] = Field(default_factory=_all_entities)
    custom: list[CustomPattern] = Field(default_factory=list)
    phone_regions: list[str] = Field(default_factory=lambda: list(DEFAULT_PHONE_REGIONS))

    _off = field_validator("mode", mode="before")(yaml_off)

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        import phonenumbers  # only when the section is validated: 30 ms of import

        regions = [region.upper() for region in value]
        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown region code(s) {', '.join(unknown)}: use ISO 3166 "
                             "alpha-2 codes such as US, GB, DE")
        return regions

    @model_validator(mode="after")
    def _unique_names(self) -> RedactSettings:
        names = [c.name for c in self.custom]
        if len(set(names)) != len(names):
            raise ValueError("custom pattern names must be unique")
        return self


class PrivacySettings(Section):
    zdr: bool = False
    zdr_allow_memory_cache: bool = False
    redact: RedactSettings = Field(default_factory=RedactSettings)
