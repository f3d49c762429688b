"""Per-pod annotations: Kubernetes quantities, names and image references checked as the API
server would, and resources merged with a request never above its limit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sidecar.inject.annotations import (
    AnnotationError,
    Overrides,
    is_image_reference,
    is_object_name,
    merge_resources,
    parse_quantity,
    read_overrides,
)


@pytest.mark.parametrize(("text", "value"), [
    ("250m", Decimal("0.25")), ("1", Decimal(1)), ("1.5", Decimal("1.5")), (".5", Decimal("0.5")),
    ("128Mi", Decimal(128 * 2**20)), ("1Gi", Decimal(2**30)), ("1G", Decimal(10**9)),
    ("500k", Decimal(500_000)), ("1e3", Decimal(1000)), ("12E-1", Decimal("1.2")),
    ("100u", Decimal("0.0001")), ("0", Decimal(0)),
])
def test_quantities_read_as_kubernetes_reads_them(text: str, value: Decimal) -> None:
    """Binary, decimal and exponent suffixes give the value Kubernetes gives them."""
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "m", "1.5.5", "-1", "+1", "1 Gi", "1gi", "1MB", "lots",
                                  "1Mi ", "1e"])
def test_non_quantities_are_refused(text: str) -> None:
    """Anything the API server would refuse as a quantity is not one here either."""
    assert parse_quantity(text) is None


@pytest.mark.parametrize("image", [
    "llm-sidecar", "llm-sidecar:0.1.0", "registry.example/platform/llm-sidecar:0.1.0",
    "localhost:5000/llm-sidecar", "ghcr.io/org/llm_sidecar:v1.2.3-rc.1",
    "registry.example/llm-sidecar@sha256:" + "0" * 64,
    "Registry.Example:443/a/b:latest@sha256:" + "f" * 64,
])
def test_image_references_accepted(image: str) -> None:
    """Registry, port, path, tag and digest forms are image references."""
    assert is_image_reference(image)


@pytest.mark.parametrize("image", ["", "llm sidecar", "LLM-sidecar", "a:tag:tag", "a@sha256:12",
                                   "a/", ":tag", "a:" + "t" * 129])
def test_bad_image_references_refused(image: str) -> None:
    """Spaces, upper-case paths, double tags, short digests are not image references."""
    assert not is_image_reference(image)


@pytest.mark.parametrize(("name", "valid"), [
    ("llm-sidecar", True), ("team.llm-config", True), ("a", True), ("a" * 253, True),
    ("a" * 254, False), ("LLM", False), ("-a", False), ("a-", False), ("a_b", False),
    ("", False),
])
def test_object_names_are_dns_subdomains(name: str, valid: bool) -> None:
    """ConfigMap and Secret names follow DNS-1123 subdomain rules."""
    assert is_object_name(name) is valid


def test_overrides_are_read_and_unknown_keys_warned() -> None:
    """Known annotations become overrides; other llm-sidecar.io keys become warnings;
    annotations of other prefixes are ignored silently."""
    overrides, warnings = read_overrides({
        "llm-sidecar.io/config-map": "cfg", "llm-sidecar.io/cpu-limit": "2",
        "llm-sidecar.io/memory-request": "64Mi", "llm-sidecar.io/imag": "typo",
        "example.com/other": "x"})
    assert overrides == Overrides(config_map="cfg", resources={
        "limits": {"cpu": "2"}, "requests": {"memory": "64Mi"}})
    assert len(warnings) == 1 and warnings[0].startswith("unknown annotation llm-sidecar.io/imag")


def test_merge_keeps_unset_values_and_checks_request_against_limit() -> None:
    """Overrides replace single values; a request above the limit is an AnnotationError."""
    base = {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}}
    merged = merge_resources(base, Overrides(resources={"limits": {"cpu": "500m"}}))
    assert merged == {"requests": {"cpu": "50m", "memory": "96Mi"},
                      "limits": {"memory": "256Mi", "cpu": "500m"}}
    assert base["limits"] == {"memory": "256Mi"}  # not mutated
    with pytest.raises(AnnotationError, match="cpu request 2 would exceed its limit 500m"):
        merge_resources(base, Overrides(resources={"requests": {"cpu": "2"},
                                                   "limits": {"cpu": "500m"}}))
    equal = merge_resources(base, Overrides(resources={"limits": {"memory": "96Mi"}}))
    assert equal["limits"]["memory"] == "96Mi"  # request == limit is fine
