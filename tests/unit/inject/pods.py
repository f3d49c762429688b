"""Realistic pods as the API server sends them to the injector, AdmissionReviews around them,
and the checks every injected pod must pass: the patch applied with an independent RFC 6902
implementation (jsonpatch) and the result validated against the Kubernetes 1.30 schema, strict.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest

KUBE_VERSION = "1.30.0"
LABEL = "llm-sidecar.io/inject"


def deployment_pod() -> dict[str, Any]:
    """A pod a ReplicaSet creates: generateName, one container, no env, no volumes."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "chat-7d9f8b6c4-", "namespace": "team-a",
                     "labels": {"app": "chat", "pod-template-hash": "7d9f8b6c4",
                                LABEL: "true"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": "chat-7d9f8b6c4", "uid": "3f1c",
                                          "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"containers": [{"name": "chat", "image": "registry.example/chat:1.4.2",
                                 "ports": [{"containerPort": 8080, "name": "http"}],
                                 "resources": {"requests": {"cpu": "100m"}}}],
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 45},
    }


def busy_pod() -> dict[str, Any]:
    """Two app containers (one sets OPENAI_BASE_URL itself), an init container, volumes,
    envFrom, existing annotations, a pod securityContext."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "worker-0", "namespace": "team-b",
                     "labels": {"app": "worker"},
                     "annotations": {"prometheus.io/scrape": "true"}},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "fsGroup": 2000},
            "initContainers": [{"name": "migrate", "image": "registry.example/worker:2.0",
                                "command": ["python", "-m", "worker.migrate"]}],
            "containers": [
                {"name": "worker", "image": "registry.example/worker:2.0",
                 "env": [{"name": "OPENAI_BASE_URL", "value": "https://gateway.example/v1"},
                         {"name": "LOG_LEVEL", "value": "debug"}],
                 "envFrom": [{"configMapRef": {"name": "worker-settings"}}],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "metrics", "image": "registry.example/exporter:0.9",
                 "ports": [{"containerPort": 9100}]},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }


def job_pod() -> dict[str, Any]:
    """A Job's pod: restartPolicy Never, env present but without the base URLs."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "nightly-summary-", "namespace": "batch",
                     "labels": {"job-name": "nightly-summary", LABEL: "true"}},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "summarize", "image": "registry.example/batch:3",
                                 "env": [{"name": "MODEL", "value": "gpt-4o-mini"}]}]},
    }


def review(pod: dict[str, Any] | None, *, operation: str = "CREATE", kind: str = "Pod",
           uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002") -> dict[str, Any]:
    """An AdmissionReview v1 request as the API server sends it for this pod."""
    namespace = (pod or {}).get("metadata", {}).get("namespace", "default")
    request: dict[str, Any] = {
        "uid": uid, "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": kind.lower() + "s"},
        "requestKind": {"group": "", "version": "v1", "kind": kind},
        "requestResource": {"group": "", "version": "v1", "resource": kind.lower() + "s"},
        "name": (pod or {}).get("metadata", {}).get("name", ""), "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                     "groups": ["system:serviceaccounts", "system:authenticated"]},
        "object": pod, "oldObject": None, "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def patched(pod: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The pod with the response's base64 JSON patch applied by the jsonpatch library."""
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
    return result


def validate_pod(pod: dict[str, Any]) -> None:
    """The pod is valid for Kubernetes 1.30 (strict: unknown fields are errors). Pods a
    controller creates have only generateName; the API server names them before validation."""
    named = copy.deepcopy(pod)
    if "name" not in named["metadata"]:
        named["metadata"]["name"] = named["metadata"]["generateName"] + "x7k2q"
    try:
        kubernetes_validate.validate(named, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"not a valid 1.30 Pod: {str(exc).splitlines()[0]} at {list(exc.path)}")


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def every_container(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = pod["spec"]
    return {c["name"]: c for c in [*(spec.get("initContainers") or []), *spec["containers"]]}
