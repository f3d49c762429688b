"""The sidecar the injector adds: a container and its volumes, read from a template file.

The Helm chart renders this file from the same named template and values as its example
Deployment (templates/injector.yaml), so an injected sidecar has exactly the probes, resources,
securityContext and mounts of a chart-installed one. The copy packaged here (template.yaml) is
that rendering with the chart's default values, for `llm-sidecar inject` run without the chart;
tests/deploy/test_inject_chart.py fails when the two differ.

Layout (YAML):

    proxyPort: 4141          # where the apps' OPENAI_BASE_URL / ANTHROPIC_BASE_URL point
    container: {...}         # a Kubernetes Container, restartPolicy Always (a native sidecar)
    volumes: [...]           # the Volumes it mounts; exactly one is a configMap (its config)

The file is checked at start: a broken template stops the injector at start rather than
failing every pod later.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TEMPLATE = "template.yaml"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_KEYS = {"proxyPort", "container", "volumes"}


class TemplateError(ValueError):
    """The template file is unusable; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class SidecarTemplate:
    proxy_port: int
    container: dict[str, Any]
    volumes: tuple[dict[str, Any], ...]
    config_volume: str  # the name of the configMap volume holding config.yaml

    @property
    def name(self) -> str:
        name: str = self.container["name"]
        return name

    @property
    def image(self) -> str:
        image: str = self.container["image"]
        return image

    @property
    def config_map(self) -> str:
        """The ConfigMap mounted when neither a flag nor an annotation names one."""
        (volume,) = [v for v in self.volumes if v["name"] == self.config_volume]
        name: str = volume["configMap"]["name"]
        return name

    def fresh_container(self) -> dict[str, Any]:
        return copy.deepcopy(self.container)

    def fresh_volumes(self) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self.volumes))


def load_template(path: str | Path | None = None) -> SidecarTemplate:
    """Read and check a template file; None reads the packaged default."""
    if path is None:
        text = resources.files("sidecar.inject").joinpath(DEFAULT_TEMPLATE).read_text()
        where = f"the packaged {DEFAULT_TEMPLATE}"
    else:
        where = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise TemplateError(f"{where}: cannot read the template ({exc.strerror or exc})"
                                ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"{where}: not valid YAML: {exc}") from None
    try:
        return _checked(data)
    except TemplateError as exc:
        raise TemplateError(f"{where}: {exc}") from None


def _checked(data: object) -> SidecarTemplate:
    if not isinstance(data, dict):
        raise TemplateError("the top level must be a mapping with proxyPort, container, volumes")
    if set(data) != _KEYS:
        raise TemplateError(f"expected exactly the keys {sorted(_KEYS)}, got {sorted(data)}")
    port = data["proxyPort"]
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise TemplateError(f"proxyPort must be a port number, not {port!r}")
    container = data["container"]
    if not isinstance(container, dict):
        raise TemplateError("container must be a mapping (a Kubernetes Container)")
    name = container.get("name")
    if not isinstance(name, str) or len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        raise TemplateError(f"container.name must be a DNS label, not {name!r}")
    if not isinstance(container.get("image"), str) or not container["image"]:
        raise TemplateError("container.image must be a non-empty string")
    if container.get("restartPolicy") != "Always":
        raise TemplateError("container.restartPolicy must be Always: the sidecar is injected "
                            "as a native sidecar (an init container that keeps running)")
    volumes = data["volumes"]
    if not isinstance(volumes, list) or not all(
            isinstance(v, dict) and isinstance(v.get("name"), str) for v in volumes):
        raise TemplateError("volumes must be a list of Kubernetes Volumes, each with a name")
    names = [v["name"] for v in volumes]
    if len(set(names)) != len(names):
        raise TemplateError(f"volume names repeat: {names}")
    mounts = container.get("volumeMounts") or []
    if not isinstance(mounts, list) or not all(isinstance(m, dict) for m in mounts):
        raise TemplateError("container.volumeMounts must be a list of mappings")
    missing = sorted({m.get("name") for m in mounts} - set(names), key=str)
    if missing:
        raise TemplateError(f"container.volumeMounts name volumes that are not in volumes: "
                            f"{missing}")
    config = [v["name"] for v in volumes
              if isinstance(v.get("configMap"), dict) and v["configMap"].get("name")]
    if len(config) != 1:
        raise TemplateError(f"exactly one volume must be a configMap volume with a name (the "
                            f"sidecar's config), found {len(config)}")
    return SidecarTemplate(proxy_port=port, container=container, volumes=tuple(volumes),
                           config_volume=config[0])
