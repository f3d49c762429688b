"""The pod patch: an RFC 6902 JSON patch adding the sidecar, its volumes and the apps' env.

What an injected pod gets:

- the sidecar as the *first* init container, with `restartPolicy: Always` (a native sidecar):
  the kubelet starts it and waits for its startup probe before every other init container and
  every app container, so all of them find the proxy up, and stops it after them;
- its volumes (config from a ConfigMap, /tmp and the state directory as emptyDirs);
- `OPENAI_BASE_URL` and `ANTHROPIC_BASE_URL` pointing at the proxy, in every app container and
  every other init container that does not set them itself (they all run after the sidecar
  has started; a container's own value is never replaced);
- the annotation `llm-sidecar.io/status: injected`, which makes a second pass a no-op.

Operations are ordered so each index is valid when applied: env additions use the pod's own
indices, before the sidecar is inserted at the front of the init containers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidecar.inject.annotations import INJECTED, STATUS, Overrides, merge_resources
from sidecar.inject.pod import Pod
from sidecar.inject.review import JsonPatch
from sidecar.inject.template import SidecarTemplate


class PodConflict(ValueError):
    """The pod already uses a name the sidecar needs (a volume): it is denied, not broken."""


@dataclass(frozen=True, slots=True)
class Defaults:
    """The injector's flags: what a pod gets when its annotations say nothing."""

    config_map: str | None = None  # None: the template's
    image: str | None = None  # None: the template's
    secret: str | None = None  # None: no Secret


def app_env(proxy_port: int) -> dict[str, str]:
    """The variables the official OpenAI and Anthropic SDKs read for their base URL."""
    return {"OPENAI_BASE_URL": f"http://127.0.0.1:{proxy_port}/v1",
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{proxy_port}"}


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901): '~' and '/' inside a part are escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def sidecar_for(pod: Pod, template: SidecarTemplate, defaults: Defaults,
                overrides: Overrides) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The sidecar container and its volumes for this pod (annotations over flags over the
    template). Raises AnnotationError or PodConflict."""
    container = template.fresh_container()
    container["image"] = overrides.image or defaults.image or template.image
    resources = merge_resources(container.get("resources") or {}, overrides)
    if resources:
        container["resources"] = resources
    secret = overrides.secret or defaults.secret
    if secret:
        # optional: a namespace without the Secret still starts its pods (a config that needs
        # one of its keys as ${VAR} then fails at start, naming the variable).
        container["envFrom"] = [*(container.get("envFrom") or []),
                                {"secretRef": {"name": secret, "optional": True}}]
    volumes = template.fresh_volumes()
    for volume in volumes:
        if volume["name"] == template.config_volume:
            volume["configMap"]["name"] = (overrides.config_map or defaults.config_map
                                           or template.config_map)
    taken = sorted(pod.volume_names & {v["name"] for v in volumes})
    if taken:
        raise PodConflict(f"the pod already has volumes named {', '.join(taken)}, which the "
                          f"llm-sidecar sidecar needs; rename them or opt the pod out "
                          f"(annotation llm-sidecar.io/inject: \"false\")")
    return container, volumes


def build_patch(pod: Pod, template: SidecarTemplate, defaults: Defaults,
                overrides: Overrides) -> tuple[JsonPatch, list[str]]:
    """The JSON patch that injects the sidecar, and warnings for the pod's author."""
    container, volumes = sidecar_for(pod, template, defaults, overrides)
    ops: JsonPatch = []
    if pod.has_annotations:
        ops.append({"op": "add", "path": pointer("metadata", "annotations", STATUS),
                    "value": INJECTED})
    else:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {STATUS: INJECTED}})

    wanted = app_env(template.proxy_port)
    for section, members in (("containers", pod.containers),
                             ("initContainers", pod.init_containers or [])):
        for index, member in enumerate(members):
            ops += _env_ops(section, index, member, wanted)

    if pod.init_containers is None:
        ops.append({"op": "add", "path": "/spec/initContainers", "value": [container]})
    else:
        ops.append({"op": "add", "path": "/spec/initContainers/0", "value": container})

    if pod.volumes is None:
        ops.append({"op": "add", "path": "/spec/volumes", "value": volumes})
    else:
        ops += [{"op": "add", "path": "/spec/volumes/-", "value": v} for v in volumes]
    return ops, _port_warnings(pod, container, template.proxy_port)


def _env_ops(section: str, index: int, member: dict[str, Any],
             wanted: dict[str, str]) -> JsonPatch:
    present = {item.get("name") for item in member.get("env") or []}
    missing = [{"name": name, "value": value} for name, value in wanted.items()
               if name not in present]
    if not missing:
        return []
    if member.get("env") is None:
        return [{"op": "add", "path": pointer("spec", section, index, "env"), "value": missing}]
    return [{"op": "add", "path": pointer("spec", section, index, "env", "-"), "value": item}
            for item in missing]


def _port_warnings(pod: Pod, sidecar: dict[str, Any], proxy_port: int) -> list[str]:
    """Ports the pod's containers declare that the sidecar binds too (one of them would fail:
    the containers of a pod share its network namespace)."""
    ours = {proxy_port} | {p.get("containerPort") for p in sidecar.get("ports") or []}
    warnings = []
    for member in [*pod.containers, *(pod.init_containers or [])]:
        for port in member.get("ports") or []:
            if port.get("containerPort") in ours:
                warnings.append(f"container {member['name']} declares port "
                                f"{port['containerPort']}, which the llm-sidecar sidecar uses")
    return warnings
