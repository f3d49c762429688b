"""What every settings section shares: strict, frozen models and a few checked value types."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Port = Annotated[int, Field(ge=1, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0)]
UsdPerToken = Annotated[float, Field(ge=0)]


class Section(BaseModel):
    """Unknown keys are errors (`extra="forbid"`); settings never change after start-up."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def yaml_off(value: object) -> object:
    """YAML 1.1 reads a bare `off` as false; where "off" is a documented value, take it back."""
    return "off" if value is False else value


def empty_is_none(value: object) -> object:
    """An optional secret set from an empty `${VAR:-}` means "not set"."""
    return None if value == "" else value


def check_http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")
