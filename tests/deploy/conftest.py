"""Shared helpers for the deployment tests: render the Helm chart with Helm's own Go SDK
(helm-python-sdk) and look into what it produced.

The value sets below are the configurations CI checks end to end (lint, strict Kubernetes
schema validation, `llm-sidecar check-config` on the rendered sidecar config). The SENTINEL_*
strings are secrets that must only ever appear inside a Secret.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "llm-sidecar"
VENV_BIN = Path(sys.executable).parent
KUBE_VERSION = "1.30.0"
RELEASE = "rel"
NAMESPACE = "apps"

SENTINEL_API_KEY = "sk-SENTINEL-upstream-4f9c2e"
SENTINEL_ADMIN_TOKEN = "SENTINEL-admin-token-8b1d"
SENTINEL_REDIS_PASSWORD = "SENTINEL-redis-password-77aa"
SENTINELS = (SENTINEL_API_KEY, SENTINEL_ADMIN_TOKEN, SENTINEL_REDIS_PASSWORD)

REDIS_URL = "redis://redis-master.redis:6379/0"
EXPORT_ENDPOINT = "http://otel-gateway.observability:4318"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "upstream-key": {"upstream": {"apiKey": SENTINEL_API_KEY}},
    "redis": {"redis": {"enabled": True, "url": REDIS_URL, "passwordRequired": True,
                        "password": SENTINEL_REDIS_PASSWORD}},
    "collector": {"collector": {"enabled": True, "exportEndpoint": EXPORT_ENDPOINT}},
    "existing-secret": {"existingSecret": "team-llm-keys", "admin": {"tokenRequired": True},
                        "redis": {"enabled": True, "url": REDIS_URL, "passwordRequired": True}},
    "monitoring": {"admin": {"tokenRequired": True, "token": SENTINEL_ADMIN_TOKEN},
                   "monitoring": {"serviceMonitor": {"enabled": True,
                                                     "labels": {"release": "kps"}},
                                  "podMonitor": {"enabled": True}}},
    "persistence": {"persistence": {"enabled": True, "storageClass": "standard"}},
    "admin-no-token": {"admin": {"tokenRequired": False},
                       "monitoring": {"serviceMonitor": {"enabled": True}}},
    "admin-opt-out": {"admin": {"tokenRequired": False, "insecureNoTokenOnNetwork": True}},
    "not-native": {"sidecar": {"native": False}},
    "everything": {
        "upstream": {"apiKey": SENTINEL_API_KEY},
        "admin": {"tokenRequired": True, "token": SENTINEL_ADMIN_TOKEN},
        "redis": {"enabled": True, "url": REDIS_URL, "passwordRequired": True,
                  "password": SENTINEL_REDIS_PASSWORD},
        "collector": {"enabled": True, "exportEndpoint": EXPORT_ENDPOINT},
        "monitoring": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
        "persistence": {"enabled": True},
        "config": {"upstream": {"url": "demo"}},
    },
}


def render_files(values: dict[str, Any], chart: Path = CHART) -> dict[str, str]:
    """Render the chart offline: {template path: text}, NOTES.txt included."""
    return helm_python.Chart.load(chart).render(values=values, name=RELEASE,
                                                namespace=NAMESPACE, is_install=True)


def objects_of(files: dict[str, str]) -> list[dict[str, Any]]:
    """The Kubernetes objects in rendered templates (NOTES.txt and empty documents skipped)."""
    found: list[dict[str, Any]] = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        found += [doc for doc in yaml.safe_load_all(text) if doc]
    return found


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    return objects_of(render_files(values))


@functools.cache
def rendered(value_set: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Files and objects of one of VALUE_SETS, rendered once per test session (read only)."""
    files = render_files(VALUE_SETS[value_set])
    return files, objects_of(files)


def only(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def example_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = only(objects, "Deployment")
    pod: dict[str, Any] = deployment["spec"]["template"]
    return pod


def containers(pod_spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every container of a pod spec by name, init (native sidecar) containers included."""
    everything = [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]
    return {c["name"]: c for c in everything}


def sidecar_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return containers(example_pod(objects)["spec"])["llm-sidecar"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env") or []}


def sidecar_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The sidecar's YAML config as the ConfigMap holds it."""
    (configmap,) = [o for o in only(objects, "ConfigMap") if "config.yaml" in o["data"]]
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yaml"])
    return config


def container_env_for_process(container: dict[str, Any]) -> dict[str, str]:
    """The environment a container would start with, Secret and field references stubbed."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        env[item["name"]] = item.get("value", f"stub-for-{item['name']}")
    return env


def clean_environ() -> dict[str, str]:
    """os.environ without SIDECAR_* variables, which would override config files."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
