"""The label and annotations the injector reads on a pod, and their validation.

Every override is checked before anything is patched, and all problems are reported at once: a
bad value (a typo in a quantity, an image reference with a space) denies the pod with a message
naming the annotation, rather than injecting a container the API server then refuses with a
message about a container the user never wrote, or silently ignoring what was asked for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

PREFIX = "llm-sidecar.io/"
INJECT = PREFIX + "inject"  # label: selects a pod or a namespace; "false" opts out (label too)
STATUS = PREFIX + "status"  # annotation the patch adds: "injected"
INJECTED = "injected"
CONFIG_MAP = PREFIX + "config-map"  # the ConfigMap (key config.yaml) the sidecar reads
IMAGE = PREFIX + "image"
SECRET = PREFIX + "secret"  # a Secret whose keys become the sidecar's environment
CPU_REQUEST = PREFIX + "cpu-request"
CPU_LIMIT = PREFIX + "cpu-limit"
MEMORY_REQUEST = PREFIX + "memory-request"
MEMORY_LIMIT = PREFIX + "memory-limit"

# annotation -> (resources section, resource name)
RESOURCE_ANNOTATIONS: dict[str, tuple[str, str]] = {
    CPU_REQUEST: ("requests", "cpu"), CPU_LIMIT: ("limits", "cpu"),
    MEMORY_REQUEST: ("requests", "memory"), MEMORY_LIMIT: ("limits", "memory"),
}
KNOWN = frozenset({INJECT, STATUS, CONFIG_MAP, IMAGE, SECRET, *RESOURCE_ANNOTATIONS})

# Kubernetes resource.Quantity, signs left out (a negative request is never meant).
_QUANTITY = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                       r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
            "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18")}
# A DNS-1123 subdomain: the names of ConfigMaps and Secrets.
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# An image reference, after the grammar of github.com/distribution/reference.
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?/)?{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?")


class AnnotationError(ValueError):
    """The pod's llm-sidecar.io annotations ask for something invalid (the pod is denied)."""


@dataclass(frozen=True, slots=True)
class Overrides:
    """What one pod's annotations change in the sidecar; None keeps the injector's default."""

    config_map: str | None = None
    image: str | None = None
    secret: str | None = None
    # {"requests": {"cpu": "100m"}, "limits": {...}}: only the values the annotations set
    resources: dict[str, dict[str, str]] = field(default_factory=dict)


def read_overrides(annotations: Mapping[str, str]) -> tuple[Overrides, list[str]]:
    """The pod's overrides and warnings (unknown llm-sidecar.io annotations, likely typos).

    Raises AnnotationError listing every invalid value."""
    problems: list[str] = []
    inject = annotations.get(INJECT)
    if inject is not None and inject not in ("true", "false"):
        problems.append(f'{INJECT} must be "true" or "false", not {inject!r}')
    config_map = _name(annotations, CONFIG_MAP, "a ConfigMap", problems)
    secret = _name(annotations, SECRET, "a Secret", problems)
    image = annotations.get(IMAGE)
    if image is not None and not is_image_reference(image):
        problems.append(f"{IMAGE} is not an image reference: {image!r}")
    resources: dict[str, dict[str, str]] = {}
    for key, (section, resource) in RESOURCE_ANNOTATIONS.items():
        value = annotations.get(key)
        if value is None:
            continue
        if parse_quantity(value) is None:
            problems.append(f"{key} is not a Kubernetes quantity (e.g. 100m, 1.5, 256Mi, 1G): "
                            f"{value!r}")
        else:
            resources.setdefault(section, {})[resource] = value
    if problems:
        raise AnnotationError("; ".join(problems))
    unknown = sorted(k for k in annotations if k.startswith(PREFIX) and k not in KNOWN)
    # Kubernetes asks for warnings of at most 120 characters: the known names are in --help.
    warnings = [f"unknown annotation {k} ignored (a typo? `llm-sidecar inject --help` lists them)"
                for k in unknown]
    return Overrides(config_map=config_map, image=image, secret=secret,
                     resources=resources), warnings


def merge_resources(base: Mapping[str, Any], overrides: Overrides) -> dict[str, Any]:
    """The sidecar's resources with the pod's overrides on top; a request above its limit is
    an AnnotationError naming both (the API server would refuse the pod less clearly)."""
    merged: dict[str, Any] = {section: dict(values) for section, values in base.items()}
    for section, values in overrides.resources.items():
        merged.setdefault(section, {}).update(values)
    for resource in ("cpu", "memory"):
        request = merged.get("requests", {}).get(resource)
        limit = merged.get("limits", {}).get(resource)
        if request is None or limit is None:
            continue
        low, high = parse_quantity(str(request)), parse_quantity(str(limit))
        if low is not None and high is not None and low > high:
            raise AnnotationError(
                f"the sidecar's {resource} request {request} would exceed its limit {limit}: "
                f"set {PREFIX}{resource}-request and {PREFIX}{resource}-limit together")
    return merged


def parse_quantity(text: str) -> Decimal | None:
    """The value of a Kubernetes quantity ("250m" -> 0.25, "1Gi" -> 1073741824), or None."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        return None
    number = Decimal(match["number"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number.scaleb(int(suffix[1:]))


def is_object_name(value: str) -> bool:
    """A valid ConfigMap or Secret name (a DNS-1123 subdomain)."""
    return len(value) <= 253 and _DNS_SUBDOMAIN.fullmatch(value) is not None


def is_image_reference(value: str) -> bool:
    """A valid image reference: [registry[:port]/]path[:tag][@digest]."""
    return len(value) <= 512 and _IMAGE.fullmatch(value) is not None


def _name(annotations: Mapping[str, str], key: str, what: str, problems: list[str]) -> str | None:
    value = annotations.get(key)
    if value is not None and not is_object_name(value):
        problems.append(f"{key} must name {what} (lowercase letters, digits, '-' and '.'): "
                        f"{value!r}")
    return value
