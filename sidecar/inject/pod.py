"""The parts of a Pod the injector reads, shape-checked.

An API server sends pods it has already decoded, so their shape is right; anything else that
reaches the webhook (a test client, a misdirected request) gets a ReviewError (a 400) naming
the field instead of a TypeError deep in the patch builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidecar.inject.review import ReviewError


@dataclass(frozen=True, slots=True)
class Pod:
    display_name: str  # metadata.name, or generateName + "*" for pods a controller creates
    labels: dict[str, str]
    annotations: dict[str, str]
    has_annotations: bool  # metadata.annotations exists (the patch adds to it or creates it)
    containers: list[dict[str, Any]]
    init_containers: list[dict[str, Any]] | None  # None: no initContainers list yet
    volumes: list[dict[str, Any]] | None  # None: no volumes list yet
    host_network: bool

    @property
    def container_names(self) -> set[str]:
        return {c["name"] for c in [*self.containers, *(self.init_containers or [])]}

    @property
    def volume_names(self) -> set[str]:
        return {v["name"] for v in self.volumes or []}


def read_pod(obj: dict[str, Any] | None) -> Pod:
    if obj is None:
        raise ReviewError("request.object is missing")
    if obj.get("kind", "Pod") != "Pod":
        raise ReviewError(f"request.object is a {obj.get('kind')!r}, not a Pod")
    metadata = _object(obj, "metadata", "request.object.", default={})
    labels = _strings(metadata, "labels")
    annotations = _strings(metadata, "annotations")
    spec = _object(obj, "spec", "request.object.")
    containers = _named_list(spec, "containers")
    if not containers:
        raise ReviewError("request.object.spec.containers is empty: a pod has at least one")
    init_containers = (_named_list(spec, "initContainers")
                       if spec.get("initContainers") is not None else None)
    volumes = _named_list(spec, "volumes") if spec.get("volumes") is not None else None
    for container in [*containers, *(init_containers or [])]:
        where = f"request.object.spec containers[{container['name']!r}]"
        for key in ("env", "ports"):
            items = container.get(key)
            if items is not None and not (isinstance(items, list)
                                          and all(isinstance(i, dict) for i in items)):
                raise ReviewError(f"{where}.{key} must be a list of objects")
    host_network = spec.get("hostNetwork", False)
    if not isinstance(host_network, bool):
        raise ReviewError("request.object.spec.hostNetwork must be a boolean")
    name = metadata.get("name") or (f"{metadata.get('generateName')}*"
                                    if metadata.get("generateName") else "")
    return Pod(display_name=str(name), labels=labels, annotations=annotations,
               has_annotations=metadata.get("annotations") is not None,
               containers=containers, init_containers=init_containers, volumes=volumes,
               host_network=host_network)


def _object(parent: dict[str, Any], key: str, where: str,
            default: dict[str, Any] | None = None) -> dict[str, Any]:
    value = parent.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, dict):
        raise ReviewError(f"{where}{key} must be an object")
    return value


def _strings(metadata: dict[str, Any], key: str) -> dict[str, str]:
    value = metadata.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ReviewError(f"request.object.metadata.{key} must map strings to strings")
    return value


def _named_list(spec: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = spec.get(key)
    if not isinstance(value, list) or not all(
            isinstance(item, dict) and isinstance(item.get("name"), str) for item in value):
        raise ReviewError(f"request.object.spec.{key} must be a list of objects with a name")
    return value
