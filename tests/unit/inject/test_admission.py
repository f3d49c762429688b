"""Admission decisions and the pod patch, on realistic pods: every injected pod is the
jsonpatch library's application of the patch, validated against the Kubernetes 1.30 schema."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sidecar.inject.admission import Injector, Mode
from sidecar.inject.patch import Defaults
from sidecar.inject.review import Verdict, parse_review, review_response
from sidecar.inject.template import SidecarTemplate, load_template
from tests.unit.inject.pods import (
    LABEL,
    busy_pod,
    deployment_pod,
    env_of,
    every_container,
    job_pod,
    patched,
    review,
    validate_pod,
)

TEMPLATE = load_template()
OPENAI = "http://127.0.0.1:4141/v1"
ANTHROPIC = "http://127.0.0.1:4141"


def decide(pod: dict[str, Any], mode: Mode = "pod", injector: Injector | None = None,
           **review_args: Any) -> tuple[Verdict, dict[str, Any]]:
    """The verdict and the AdmissionReview response for `pod` (through the JSON round trip)."""
    injector = injector or Injector(TEMPLATE, Defaults())
    request = parse_review(orjson.dumps(review(pod, **review_args)))
    verdict = injector.review(request, mode)
    return verdict, review_response(request.uid, verdict)["response"]


def injected(pod: dict[str, Any], mode: Mode = "pod",
             injector: Injector | None = None) -> tuple[dict[str, Any], Verdict]:
    verdict, response = decide(pod, mode, injector)
    assert verdict.allowed and verdict.outcome == "injected", verdict
    result = patched(pod, response)
    validate_pod(result)
    return result, verdict


def sidecar_of(pod: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = pod["spec"]["initContainers"][0]
    assert first["name"] == "llm-sidecar"
    return first


# ---- who is injected ----

@pytest.mark.parametrize("make", [deployment_pod, busy_pod, job_pod])
def test_a_selected_pod_gets_a_native_sidecar_and_stays_a_valid_pod(make: Any) -> None:
    """A selected pod gets the sidecar first among its init containers with restartPolicy
    Always, its volumes and the status annotation, and is a valid 1.30 Pod."""
    pod = make()
    mode: Mode = "pod" if pod["metadata"]["labels"].get(LABEL) == "true" else "namespace"
    result, _ = injected(pod, mode)
    sidecar = sidecar_of(result)
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == "llm-sidecar:0.1.0"
    assert result["metadata"]["annotations"]["llm-sidecar.io/status"] == "injected"
    volumes = {v["name"]: v for v in result["spec"]["volumes"]}
    assert volumes["llm-sidecar-config"] == {"name": "llm-sidecar-config",
                                             "configMap": {"name": "llm-sidecar"}}
    assert "emptyDir" in volumes["llm-sidecar-state"]
    assert {m["name"] for m in sidecar["volumeMounts"]} <= set(volumes)
    # everything the pod had is still there, in its order
    before = [c["name"] for c in pod["spec"].get("initContainers") or []]
    assert [c["name"] for c in result["spec"]["initContainers"]] == ["llm-sidecar", *before]
    assert [c["name"] for c in result["spec"]["containers"]] == [
        c["name"] for c in pod["spec"]["containers"]]
    assert {k: v for k, v in result["metadata"]["annotations"].items()
            if k != "llm-sidecar.io/status"} == pod["metadata"].get("annotations", {})


def test_the_sidecar_is_the_template_container_as_the_chart_renders_it() -> None:
    """Probes, resources, securityContext and mounts are the template's, unchanged."""
    result, _ = injected(deployment_pod())
    assert sidecar_of(result) == TEMPLATE.container


@pytest.mark.parametrize(("labels", "annotations", "mode", "reason"), [
    ({}, {}, "pod", "not labelled"),
    ({LABEL: "yes"}, {}, "pod", "not labelled"),
    ({LABEL: "false"}, {}, "namespace", "opted out"),
    ({}, {LABEL: "false"}, "namespace", "opted out"),
    ({LABEL: "true"}, {LABEL: "false"}, "pod", "opted out"),
    ({LABEL: "true"}, {"llm-sidecar.io/status": "injected"}, "pod", "already injected"),
], ids=["unlabelled", "label-not-true", "label-false-in-labelled-namespace",
        "annotation-false-in-labelled-namespace", "annotation-false-beats-label",
        "status-annotation"])
def test_pods_left_alone(labels: dict[str, str], annotations: dict[str, str], mode: Mode,
                         reason: str) -> None:
    """Unselected, opted-out and already-injected pods are admitted without a patch."""
    pod = deployment_pod()
    pod["metadata"]["labels"] = {"app": "chat", **labels}
    pod["metadata"]["annotations"] = annotations
    verdict, response = decide(pod, mode)
    assert response["allowed"] is True
    assert "patch" not in response and "patchType" not in response
    assert reason in verdict.reason


def test_an_unlabelled_pod_of_a_labelled_namespace_is_injected() -> None:
    """On the namespace path a pod without any label is injected."""
    pod = busy_pod()
    assert LABEL not in pod["metadata"]["labels"]
    _, verdict = injected(pod, "namespace")
    assert verdict.reason == "selected by namespace label"


def test_a_pod_holding_the_sidecar_container_is_left_alone() -> None:
    """A pod whose containers include one named like the sidecar is already injected."""
    pod = deployment_pod()
    pod["spec"]["initContainers"] = [{"name": "llm-sidecar", "image": "llm-sidecar:0.0.9",
                                      "restartPolicy": "Always"}]
    verdict, response = decide(pod)
    assert "patch" not in response
    assert verdict.reason == "already injected (a container named llm-sidecar)"


def test_injecting_twice_changes_nothing_the_second_time() -> None:
    """The injected pod, sent again, is admitted without a patch (idempotent)."""
    once, _ = injected(busy_pod(), "namespace")
    verdict, response = decide(once, "namespace")
    assert response["allowed"] and "patch" not in response
    assert verdict.reason.startswith("already injected")


def test_host_network_pods_are_not_injected() -> None:
    """A hostNetwork pod is admitted unchanged: the sidecar's ports would be the node's."""
    pod = deployment_pod()
    pod["spec"]["hostNetwork"] = True
    verdict, response = decide(pod)
    assert "patch" not in response and "hostNetwork" in verdict.reason


@pytest.mark.parametrize(("operation", "kind"), [("UPDATE", "Pod"), ("CREATE", "ConfigMap")])
def test_only_pod_creations_are_patched(operation: str, kind: str) -> None:
    """A pod update or another kind (a misconfigured rule) is admitted without a patch."""
    pod = deployment_pod()
    verdict, response = decide(pod, operation=operation, kind=kind)
    assert response["allowed"] is True and "patch" not in response
    assert verdict.reason.startswith("not a pod creation")


# ---- the apps' environment ----

def test_every_app_and_init_container_gets_the_base_urls_it_does_not_set() -> None:
    """OPENAI_BASE_URL and ANTHROPIC_BASE_URL reach every container but the sidecar; a value
    the container sets itself is kept, and its other variables too."""
    pod = busy_pod()
    result, _ = injected(pod, "namespace")
    containers = every_container(result)
    worker = env_of(containers["worker"])
    assert worker["OPENAI_BASE_URL"] == "https://gateway.example/v1"  # its own, kept
    assert worker["ANTHROPIC_BASE_URL"] == ANTHROPIC
    assert worker["LOG_LEVEL"] == "debug"
    assert [e["name"] for e in containers["worker"]["env"]] == [
        "OPENAI_BASE_URL", "LOG_LEVEL", "ANTHROPIC_BASE_URL"]
    for name in ("metrics", "migrate"):
        assert env_of(containers[name]) == {"OPENAI_BASE_URL": OPENAI,
                                            "ANTHROPIC_BASE_URL": ANTHROPIC}
    assert "OPENAI_BASE_URL" not in env_of(containers["llm-sidecar"])
    assert containers["worker"]["envFrom"] == pod["spec"]["containers"][0]["envFrom"]


def test_a_container_setting_both_urls_is_not_touched() -> None:
    """No env operation at all for a container that sets both variables."""
    pod = job_pod()
    pod["spec"]["containers"][0]["env"] = [{"name": "OPENAI_BASE_URL", "value": "http://a/v1"},
                                           {"name": "ANTHROPIC_BASE_URL", "value": "http://b"}]
    verdict, _ = decide(pod)
    assert verdict.patch is not None
    assert not [op for op in verdict.patch if op["path"].startswith("/spec/containers")]


def test_the_urls_follow_the_templates_proxy_port(tmp_path: Path) -> None:
    """A template with another proxy port points the apps at that port."""
    data = yaml.safe_load(Path(TEMPLATE_FILE).read_text())
    data["proxyPort"] = 5151
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(data))
    result, _ = injected(job_pod(), injector=Injector(load_template(path), Defaults()))
    assert env_of(result["spec"]["containers"][0])["OPENAI_BASE_URL"] == \
        "http://127.0.0.1:5151/v1"


TEMPLATE_FILE = Path(__file__).resolve().parents[3] / "sidecar" / "inject" / "template.yaml"


# ---- overrides: annotations over flags over the template ----

def test_annotations_override_config_map_image_secret_and_resources() -> None:
    """Per-pod annotations set the ConfigMap, image, Secret and resources of the sidecar."""
    pod = deployment_pod()
    pod["metadata"]["annotations"] = {
        "llm-sidecar.io/config-map": "chat-llm", "llm-sidecar.io/image":
            "registry.example:5000/platform/llm-sidecar:0.2.0@sha256:" + "a" * 64,
        "llm-sidecar.io/secret": "chat-llm-keys", "llm-sidecar.io/cpu-request": "200m",
        "llm-sidecar.io/cpu-limit": "1", "llm-sidecar.io/memory-request": "128Mi",
        "llm-sidecar.io/memory-limit": "0.5Gi"}
    result, _ = injected(pod, injector=Injector(TEMPLATE, Defaults(
        config_map="flag-config", image="flag/image:1", secret="flag-secret")))
    sidecar = sidecar_of(result)
    assert sidecar["image"].startswith("registry.example:5000/platform/llm-sidecar:0.2.0@")
    assert sidecar["resources"] == {"requests": {"cpu": "200m", "memory": "128Mi"},
                                    "limits": {"cpu": "1", "memory": "0.5Gi"}}
    assert sidecar["envFrom"] == [{"secretRef": {"name": "chat-llm-keys", "optional": True}}]
    volumes = {v["name"]: v for v in result["spec"]["volumes"]}
    assert volumes["llm-sidecar-config"]["configMap"]["name"] == "chat-llm"


def test_flags_apply_when_the_pod_names_nothing() -> None:
    """Without annotations the injector's flags set the ConfigMap, image and Secret."""
    result, _ = injected(deployment_pod(), injector=Injector(TEMPLATE, Defaults(
        config_map="platform-llm", image="registry.example/llm-sidecar:0.1.0",
        secret="llm-keys")))
    sidecar = sidecar_of(result)
    assert sidecar["image"] == "registry.example/llm-sidecar:0.1.0"
    assert sidecar["envFrom"] == [{"secretRef": {"name": "llm-keys", "optional": True}}]
    assert sidecar["resources"] == TEMPLATE.container["resources"]
    volumes = {v["name"]: v for v in result["spec"]["volumes"]}
    assert volumes["llm-sidecar-config"]["configMap"]["name"] == "platform-llm"


def test_the_template_is_never_changed_by_a_pod() -> None:
    """Overrides apply to a copy: the next pod gets the template's values again."""
    before = copy.deepcopy(TEMPLATE.container), copy.deepcopy(TEMPLATE.volumes)
    pod = deployment_pod()
    pod["metadata"]["annotations"] = {"llm-sidecar.io/memory-limit": "1Gi",
                                      "llm-sidecar.io/config-map": "other"}
    injected(pod)
    assert (TEMPLATE.container, TEMPLATE.volumes) == before


@pytest.mark.parametrize(("annotations", "expected"), [
    ({"llm-sidecar.io/cpu-request": "lots"}, "llm-sidecar.io/cpu-request is not a Kubernetes"),
    ({"llm-sidecar.io/memory-limit": "-1Gi"}, "llm-sidecar.io/memory-limit is not"),
    ({"llm-sidecar.io/image": "Registry Example/llm sidecar"}, "llm-sidecar.io/image is not"),
    ({"llm-sidecar.io/config-map": "My_Config"}, "llm-sidecar.io/config-map must name"),
    ({"llm-sidecar.io/secret": "-keys"}, "llm-sidecar.io/secret must name"),
    ({"llm-sidecar.io/memory-limit": "64Mi"}, "memory request 96Mi would exceed its limit 64Mi"),
    ({"llm-sidecar.io/inject": "False"}, 'must be "true" or "false"'),
], ids=["cpu", "negative-memory", "image", "config-map", "secret", "request-over-limit",
        "inject-value"])
def test_invalid_annotations_deny_the_pod_naming_them(annotations: dict[str, str],
                                                      expected: str) -> None:
    """A bad override denies the pod (400) with a message naming the annotation."""
    pod = deployment_pod()
    pod["metadata"]["annotations"] = annotations
    verdict, response = decide(pod)
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert expected in response["status"]["message"]
    assert verdict.outcome == "denied"


def test_every_bad_annotation_is_named_at_once() -> None:
    """Three bad annotations: one denial naming all three."""
    pod = deployment_pod()
    pod["metadata"]["annotations"] = {"llm-sidecar.io/cpu-limit": "x", "llm-sidecar.io/image":
                                      "a b", "llm-sidecar.io/secret": "A"}
    _, response = decide(pod)
    message = response["status"]["message"]
    assert all(key in message for key in ("cpu-limit", "image", "secret"))


def test_annotations_of_a_pod_left_alone_are_not_judged() -> None:
    """An opted-out pod with a bad override annotation is admitted, not denied."""
    pod = deployment_pod()
    pod["metadata"]["annotations"] = {LABEL: "false", "llm-sidecar.io/cpu-limit": "x"}
    _, response = decide(pod, "namespace")
    assert response["allowed"] is True


def test_unknown_annotations_are_warned_about() -> None:
    """A misspelt llm-sidecar.io annotation is a warning in the response, and ignored."""
    pod = deployment_pod()
    pod["metadata"]["annotations"] = {"llm-sidecar.io/configmap": "x"}
    verdict, response = decide(pod)
    assert verdict.outcome == "injected"
    assert any("unknown annotation llm-sidecar.io/configmap" in w
               for w in response["warnings"])
    assert all(len(w) <= 120 for w in response["warnings"])  # Kubernetes' advice


def test_a_port_the_sidecar_binds_is_warned_about() -> None:
    """An app container declaring the admin port gets a warning (a pod shares its ports)."""
    pod = deployment_pod()
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 4142}]
    _, response = decide(pod)
    assert response["warnings"] == [
        "container chat declares port 4142, which the llm-sidecar sidecar uses"]


def test_a_volume_name_the_sidecar_needs_denies_the_pod() -> None:
    """A pod that already has a volume called llm-sidecar-config is denied, naming it."""
    pod = busy_pod()
    pod["spec"]["volumes"].append({"name": "llm-sidecar-config", "emptyDir": {}})
    _, response = decide(pod, "namespace")
    assert response["allowed"] is False and response["status"]["code"] == 400
    assert "llm-sidecar-config" in response["status"]["message"]


# ---- when the injector itself fails ----

def broken_injector(tmp_path: Path, *, fail_closed: bool) -> Injector:
    """A template whose resources are a list: loads, but breaks building every sidecar."""
    data = yaml.safe_load(TEMPLATE_FILE.read_text())
    data["container"]["resources"] = ["not", "a", "mapping"]
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(data))
    template: SidecarTemplate = load_template(path)
    return Injector(template, Defaults(), fail_closed=fail_closed)


def test_an_injector_error_admits_the_pod_with_a_warning(tmp_path: Path) -> None:
    """Fail open (the default): allowed, no patch, a warning saying the sidecar is missing."""
    verdict, response = decide(deployment_pod(),
                               injector=broken_injector(tmp_path, fail_closed=False))
    assert response["allowed"] is True and "patch" not in response
    assert verdict.outcome == "error"
    (warning,) = response["warnings"]
    assert "admitted without the sidecar" in warning


def test_fail_closed_denies_the_pod_when_the_injector_errs(tmp_path: Path) -> None:
    """--fail-closed: the same error denies the pod with a 500 status."""
    _, response = decide(deployment_pod(), injector=broken_injector(tmp_path, fail_closed=True))
    assert response["allowed"] is False
    assert response["status"]["code"] == 500
    assert "--fail-closed" in response["status"]["message"]
