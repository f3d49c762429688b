"""The chart's injector mode (injector.enabled): linted and rendered by Helm's own Go SDK, every
core object valid for Kubernetes 1.30 (strict), the sidecar template the very container the
example Deployment runs, the webhook configuration's selectors and paths, both certificate
paths (Helm-generated, checked by a real TLS handshake against the caBundle; cert-manager,
checked structurally: kubernetes-validate has no cert-manager schemas), and the rendered
Deployment's command run for real."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import ssl
import sys
from pathlib import Path
from typing import Any

import aiohttp
import helm_python
import kubernetes_validate
import pytest
import yaml
from cryptography import x509

from sidecar.cli import _parser
from sidecar.inject.admission import Injector
from sidecar.inject.patch import Defaults
from sidecar.inject.review import parse_review, review_response
from sidecar.inject.server import create_inject_app
from sidecar.inject.template import load_template
from tests.conftest import free_port, merge
from tests.deploy.conftest import (
    CHART,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    VALUE_SETS,
    containers,
    only,
    render,
)
from tests.unit.inject.pods import deployment_pod, patched, review, validate_pod

INJECTOR = {"injector": {"enabled": True}}
CERT_MANAGER = "cert-manager.io/v1"
PACKAGED = Path(__file__).resolve().parents[2] / "sidecar" / "inject" / "template.yaml"
SERVICE = f"{RELEASE}-llm-sidecar-injector"
BIN = str(Path(sys.executable).with_name("llm-sidecar"))

INJECTOR_SETS: dict[str, dict[str, Any]] = {
    "helm-certificate": INJECTOR,
    "cert-manager": {"injector": {"enabled": True, "certificate": {"source": "cert-manager"}}},
    "cert-manager-issuer": {"injector": {"enabled": True, "certificate": {
        "source": "cert-manager", "issuerRef": {"kind": "ClusterIssuer", "name": "internal-ca",
                                                "group": "cert-manager.io"}}}},
    "fail-closed-one-replica": {"injector": {"enabled": True, "failurePolicy": "Fail",
                                             "replicas": 1, "secretName": "llm-keys"}},
    "with-everything": merge(VALUE_SETS["everything"], INJECTOR),
}


def by_kind(objects: list[dict[str, Any]], kind: str, component: str = "injector"
            ) -> dict[str, Any]:
    (found,) = [o for o in only(objects, kind)
                if o["metadata"]["labels"].get("app.kubernetes.io/component") == component]
    return found


def template_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(by_kind(objects, "ConfigMap")["data"]["template.yaml"])
    return data


def example_sidecar(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = by_kind(objects, "Deployment", "example-app")
    return containers(deployment["spec"]["template"]["spec"])["llm-sidecar"]


def webhooks(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    (configuration,) = only(objects, "MutatingWebhookConfiguration")
    return {w["name"]: w for w in configuration["webhooks"]}


# ---- the chart as a whole ----

@pytest.mark.parametrize("value_set", sorted(INJECTOR_SETS))
def test_helm_lint_strict_passes_with_the_injector(value_set: str) -> None:
    """`helm lint --strict` finds nothing with the injector on, in every variant."""
    report = helm_python.lint(CHART, INJECTOR_SETS[value_set], strict=True,
                              kube_version=f"v{KUBE_VERSION}", namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("value_set", sorted(INJECTOR_SETS))
def test_every_core_object_is_valid_for_kubernetes_1_30(value_set: str) -> None:
    """Every rendered object but the CRD kinds passes kubernetes-validate --strict (1.30)."""
    objects = render(INJECTOR_SETS[value_set])
    core = [o for o in objects if o["apiVersion"].split("/")[0] not in (
        "cert-manager.io", "monitoring.coreos.com")]
    assert {"MutatingWebhookConfiguration", "Deployment", "Service", "ConfigMap"} <= {
        o["kind"] for o in core}
    for obj in core:
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {str(exc).splitlines()[0]}")


def test_nothing_of_the_injector_renders_by_default() -> None:
    """injector.enabled false (the default): no webhook objects at all."""
    objects = render({})
    assert not only(objects, "MutatingWebhookConfiguration")
    assert not [o for o in objects
                if o["metadata"]["labels"].get("app.kubernetes.io/component") == "injector"]


@pytest.mark.parametrize(("values", "expected"), [
    ({"failurePolicy": "Sometimes"}, "failurePolicy"),
    ({"certificate": {"source": "vault"}}, "source"),
    ({"configMapName": "Bad_Name"}, "configMapName"),
    ({"timeoutSeconds": 31}, "timeoutSeconds"),
    ({"certificate": {"issuerRef": {"kind": "Issuer"}}}, "issuerRef"),
    ({"replica": 2}, "replica"),
], ids=["failure-policy", "cert-source", "config-map-name", "timeout", "issuer-without-name",
        "misspelt-key"])
def test_the_schema_refuses_bad_injector_values(values: dict[str, Any], expected: str) -> None:
    """values.schema.json refuses bad injector values, naming the key."""
    with pytest.raises(helm_python.HelmError, match=expected):
        render({"injector": {"enabled": True, **values}})


# ---- the sidecar template: the example's own container ----

@pytest.mark.parametrize("values", [
    {},
    VALUE_SETS["everything"],
    {"sidecar": {"resources": {"requests": {"cpu": "20m", "memory": "64Mi"},
                               "limits": {"cpu": "1", "memory": "512Mi"}},
                 "startupProbe": {"periodSeconds": 2, "failureThreshold": 60},
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 20002},
                 "extraEnv": [{"name": "SIDECAR_LOG_LEVEL", "value": "debug"},
                              {"name": "TEAM_TOKEN", "valueFrom": {"secretKeyRef": {
                                  "name": "team", "key": "token"}}}]},
     "image": {"repository": "registry.example/llm-sidecar", "tag": "0.1.1"},
     "admin": {"port": 9142, "host": "::"}, "proxy": {"port": 9141}},
], ids=["defaults", "everything", "custom"])
def test_the_injected_container_is_the_example_deployments_sidecar(values: dict[str, Any]
                                                                   ) -> None:
    """Same image, probes, resources, securityContext, ports and mounts as the example's
    sidecar; its env minus what comes from the release's Secrets, plus the pinned listeners."""
    objects = render(merge(values, INJECTOR))
    template = template_of(objects)
    example = example_sidecar(objects)
    injected = template["container"]
    assert {k: v for k, v in injected.items() if k != "env"} == {
        k: v for k, v in example.items() if k != "env"}
    kept = [e for e in example["env"] if "secretKeyRef" not in e.get("valueFrom", {})]
    pinned = injected["env"][len(kept):]
    assert injected["env"][:len(kept)] == kept
    admin = example["ports"][0]["containerPort"]
    proxy = values.get("proxy", {}).get("port", 4141)
    assert {e["name"]: e["value"] for e in pinned} == {
        "SIDECAR_HOST": "127.0.0.1", "SIDECAR_PORT": str(proxy),
        "SIDECAR_ADMIN_HOST": values.get("admin", {}).get("host", "0.0.0.0"),
        "SIDECAR_ADMIN_PORT": str(admin), "SIDECAR_STATE_DIR": "/var/lib/llm-sidecar"}
    assert template["proxyPort"] == proxy
    volumes = {v["name"]: v for v in template["volumes"]}
    assert volumes["llm-sidecar-config"]["configMap"] == {"name": "llm-sidecar"}
    assert "emptyDir" in volumes["llm-sidecar-state"]  # never the release's claim


def test_the_packaged_template_is_the_charts_default_rendering() -> None:
    """sidecar/inject/template.yaml is byte for byte what the chart renders by default (so
    `llm-sidecar inject` without --template injects what the chart would)."""
    (configmap,) = [o for o in only(render(INJECTOR), "ConfigMap")
                    if "template.yaml" in o["data"]]
    assert PACKAGED.read_text() == configmap["data"]["template.yaml"], (
        "regenerate it: .venv/bin/python -c 'from tests.deploy.test_inject_chart import "
        "write_packaged_template as w; w()'")


def write_packaged_template() -> None:
    """Rewrite sidecar/inject/template.yaml from the chart (after a values change)."""
    (configmap,) = [o for o in only(render(INJECTOR), "ConfigMap")
                    if "template.yaml" in o["data"]]
    PACKAGED.write_text(configmap["data"]["template.yaml"])


def test_the_rendered_template_loads_and_injects_a_valid_pod(tmp_path: Path) -> None:
    """The template of the 'everything' values is accepted by the injector and gives valid
    pods."""
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(template_of(render(INJECTOR_SETS["with-everything"]))))
    injector = Injector(load_template(path), Defaults())
    request = parse_review(json.dumps(review(deployment_pod())).encode())
    response = review_response(request.uid, injector.review(request, "pod"))["response"]
    validate_pod(patched(deployment_pod(), response))


# ---- the webhook configuration ----

def test_two_webhooks_select_labelled_namespaces_and_labelled_pods() -> None:
    """namespace.*: namespaces labelled true, pods not labelled false, path /inject/namespace;
    pod.*: pods labelled true in namespaces labelled neither, path /inject. Both exclude the
    release's namespace and kube-system, pods only, on CREATE, v1 reviews, no side effects."""
    hooks = webhooks(render(INJECTOR))
    assert set(hooks) == {"namespace.inject.llm-sidecar.io", "pod.inject.llm-sidecar.io"}
    namespace, pod = hooks["namespace.inject.llm-sidecar.io"], hooks["pod.inject.llm-sidecar.io"]
    label = "llm-sidecar.io/inject"
    assert namespace["namespaceSelector"]["matchExpressions"][0] == {
        "key": label, "operator": "In", "values": ["true"]}
    assert namespace["objectSelector"] == {"matchExpressions": [
        {"key": label, "operator": "NotIn", "values": ["false"]}]}
    assert pod["namespaceSelector"]["matchExpressions"][0] == {
        "key": label, "operator": "NotIn", "values": ["true", "false"]}
    assert pod["objectSelector"] == {"matchExpressions": [
        {"key": label, "operator": "In", "values": ["true"]}]}
    for hook, path in ((namespace, "/inject/namespace"), (pod, "/inject")):
        excluded = hook["namespaceSelector"]["matchExpressions"][1]
        assert excluded["key"] == "kubernetes.io/metadata.name"
        assert excluded["operator"] == "NotIn"
        assert {NAMESPACE, "kube-system"} <= set(excluded["values"])
        assert hook["clientConfig"]["service"] == {"name": SERVICE, "namespace": NAMESPACE,
                                                   "path": path, "port": 443}
        assert hook["rules"] == [{"operations": ["CREATE"], "apiGroups": [""],
                                  "apiVersions": ["v1"], "resources": ["pods"],
                                  "scope": "Namespaced"}]
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["sideEffects"] == "None"
        assert hook["failurePolicy"] == "Ignore"
        assert hook["reinvocationPolicy"] == "Never"


def test_the_webhook_paths_are_the_servers_routes() -> None:
    """Both clientConfig paths are POST routes of the injector's app."""
    app = create_inject_app(Injector(load_template(), Defaults()))
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None}
    for hook in webhooks(render(INJECTOR)).values():
        assert ("POST", hook["clientConfig"]["service"]["path"]) in routes


def test_fail_policy_makes_the_injector_fail_closed_too() -> None:
    """failurePolicy Fail: both webhooks Fail, the injector runs with --fail-closed, and a
    Secret name reaches it as --secret; one replica renders no PodDisruptionBudget."""
    objects = render(INJECTOR_SETS["fail-closed-one-replica"])
    assert {h["failurePolicy"] for h in webhooks(objects).values()} == {"Fail"}
    args = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--fail-closed" in args and "--secret=llm-keys" in args
    assert not only(objects, "PodDisruptionBudget")
    default_args = by_kind(render(INJECTOR), "Deployment")["spec"]["template"]["spec"][
        "containers"][0]["args"]
    assert "--fail-closed" not in default_args


def test_the_injector_pod_is_locked_down_and_needs_no_api_access() -> None:
    """No service account token, non-root, read-only root, probes over HTTPS, a PDB keeping
    one of its two pods, no RBAC objects."""
    objects = render(INJECTOR)
    spec = by_kind(objects, "Deployment")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert by_kind(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert not [o for o in objects if o["kind"] in ("Role", "ClusterRole", "RoleBinding",
                                                    "ClusterRoleBinding", "ServiceAccount")]


def test_the_deployments_args_are_the_commands_flags() -> None:
    """The rendered args parse with the real CLI parser."""
    for value_set in ("helm-certificate", "fail-closed-one-replica"):
        objects = render(INJECTOR_SETS[value_set])
        args = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0][
            "args"]
        parsed = _parser().parse_args(args)
        assert parsed.command == "inject"
        assert parsed.template == "/etc/llm-sidecar-inject/template/template.yaml"


# ---- certificates ----

def tls_secret(objects: list[dict[str, Any]]) -> dict[str, bytes]:
    secret = by_kind(objects, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_helm_generates_a_ca_and_a_certificate_for_the_service() -> None:
    """Helm path (the default without cert-manager): the Secret's certificate is issued by its
    CA for the service's DNS names, and that CA is both webhooks' caBundle."""
    objects = render(INJECTOR)
    data = tls_secret(objects)
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{SERVICE}.{NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    for hook in webhooks(objects).values():
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == data["ca.crt"]
    configuration = only(objects, "MutatingWebhookConfiguration")[0]
    assert "cert-manager.io/inject-ca-from" not in configuration["metadata"].get(
        "annotations", {})
    assert not [o for o in objects if o["apiVersion"] == CERT_MANAGER]
    tls_volume = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["volumes"][0]
    assert tls_volume["secret"]["secretName"] == by_kind(objects, "Secret")["metadata"]["name"]


def test_without_a_cluster_every_render_makes_a_new_pair() -> None:
    """Offline (helm template: lookup finds nothing) each render generates a new CA, as a
    first install does; only an upgrade against a cluster keeps the Secret's pair."""
    first, second = tls_secret(render(INJECTOR)), tls_secret(render(INJECTOR))
    assert first["ca.crt"] != second["ca.crt"]


async def test_the_chart_rendered_webhook_serves_its_certificate_to_the_api_server(
        tmp_path: Path) -> None:
    """The rendered Deployment's command, run with the rendered Secret and template: a client
    trusting only the webhook configuration's caBundle and naming the service as the API
    server does (<service>.<namespace>.svc) completes the handshake and gets a patch."""
    objects = render(INJECTOR)
    data = tls_secret(objects)
    (tls_dir := tmp_path / "tls").mkdir()
    (template_dir := tmp_path / "template").mkdir()
    for name in ("tls.crt", "tls.key"):
        (tls_dir / name).write_bytes(data[name])
    (template_dir / "template.yaml").write_text(
        by_kind(objects, "ConfigMap")["data"]["template.yaml"])
    container = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    args = [a.replace("/etc/llm-sidecar-inject/tls", str(tls_dir))
             .replace("/etc/llm-sidecar-inject/template", str(template_dir))
            for a in container["args"]]
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        BIN, *args, "--host", "127.0.0.1", f"--port={port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        while b'"listening"' not in (line := await asyncio.wait_for(proc.stdout.readline(), 30)):
            assert line, "the injector exited before listening"
        hook = webhooks(objects)["pod.inject.llm-sidecar.io"]
        trust = ssl.create_default_context(
            cadata=base64.b64decode(hook["clientConfig"]["caBundle"]).decode())
        pod = deployment_pod()
        async with aiohttp.ClientSession() as session:
            async with session.post(
                    f"https://127.0.0.1:{port}{hook['clientConfig']['service']['path']}",
                    json=review(pod), ssl=trust,
                    server_hostname=f"{SERVICE}.{NAMESPACE}.svc") as response:
                assert response.status == 200
                answer = await response.json()
        validate_pod(patched(pod, answer["response"]))
    finally:
        proc.kill()
        await proc.wait()


@pytest.mark.parametrize("value_set", ["cert-manager", "cert-manager-issuer"])
def test_cert_manager_issues_the_certificate_and_injects_the_ca(value_set: str) -> None:
    """cert-manager path: a Certificate for the service's names into the Secret the injector
    mounts, the caBundle left to cainjector (inject-ca-from names that Certificate), no
    Helm-generated Secret. Without issuerRef the chart's own CA (a self-signed root signing a
    CA Issuer) issues it; with one, that issuer does."""
    values = INJECTOR_SETS[value_set]
    objects = render(values)
    assert not only(objects, "Secret") or "kubernetes.io/tls" not in {
        s.get("type") for s in only(objects, "Secret")}
    certificates = {o["metadata"]["name"]: o for o in objects
                    if o["kind"] == "Certificate" and o["apiVersion"] == CERT_MANAGER}
    serving = certificates[SERVICE]["spec"]
    tls_volume = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["volumes"][0]
    assert serving["secretName"] == tls_volume["secret"]["secretName"]
    assert f"{SERVICE}.{NAMESPACE}.svc" in serving["dnsNames"]
    (configuration,) = only(objects, "MutatingWebhookConfiguration")
    assert configuration["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{NAMESPACE}/{SERVICE}"}
    for hook in configuration["webhooks"]:
        assert "caBundle" not in hook["clientConfig"]
    issuers = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Issuer"}
    issuer_ref = values["injector"]["certificate"].get("issuerRef")
    if issuer_ref:
        assert serving["issuerRef"] == issuer_ref
        assert not issuers and set(certificates) == {SERVICE}
        return
    ca_issuer = issuers[serving["issuerRef"]["name"]]
    ca_certificate = certificates[f"{SERVICE}-ca"]["spec"]
    assert ca_certificate["isCA"] is True
    assert ca_issuer["spec"]["ca"]["secretName"] == ca_certificate["secretName"]
    root = issuers[ca_certificate["issuerRef"]["name"]]
    assert root["spec"] == {"selfSigned": {}}


def test_auto_without_cert_managers_api_uses_helm() -> None:
    """certificate.source auto and no cert-manager.io/v1 API (an offline render): Helm's pair."""
    objects = render(merge(INJECTOR, {"injector": {"certificate": {"source": "auto"}}}))
    assert "tls.crt" in tls_secret(objects)
    assert not [o for o in objects if o["apiVersion"] == CERT_MANAGER]


def test_values_copy_is_not_changed_by_rendering() -> None:
    """Rendering the injector does not alter the example: its sidecar is native with the
    release's claim when persistence is on (the template's copy of the values is separate)."""
    values = copy.deepcopy(merge(INJECTOR, {"persistence": {"enabled": True}}))
    objects = render(values)
    deployment = by_kind(objects, "Deployment", "example-app")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "persistentVolumeClaim" in volumes["llm-sidecar-state"]
    template_volumes = {v["name"]: v for v in template_of(objects)["volumes"]}
    assert "emptyDir" in template_volumes["llm-sidecar-state"]
