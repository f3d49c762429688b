"""What every settings section shares: strict, frozen models and a few checked value types."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

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
    """An optional secret set from an empty `${VAR:-}` means "not set" (in a list of keys too:
    the empty ones are dropped, and a list left empty is not set)."""
    if isinstance(value, list):
        value = [v for v in value if v != ""]
        return value or None
    return None if value == "" else value


def secret_values(value: SecretStr | list[SecretStr] | None) -> list[str]:
    """A key setting's values, in order (an `api_key` may be one key or a list)."""
    if value is None:
        return []
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    return [v.get_secret_value() for v in value]


def check_http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def check_provider_url(value: str) -> str:
    """A provider's URL: http(s), and no credentials in it. aiohttp turns `user:pass@` into an
    Authorization header and refuses to send a request that has one already (the provider's
    api_key, or a client's passed through): every request was a 500. Credentials go in
    `api_key` or `headers` (`Authorization: Basic …`), where /sidecar/config masks them."""
    value = check_http_url(value)
    if "@" in value.split("://", 1)[1].split("/", 1)[0]:
        raise ValueError("must not contain credentials (user:password@): put them in api_key "
                         "or in headers, e.g. {Authorization: 'Basic …'}")
    return value
