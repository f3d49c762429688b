"""The Helm chart (deploy/helm/llm-sidecar): linted and rendered by Helm's own Go SDK
(helm-python-sdk), every core object checked against the Kubernetes 1.30 OpenAPI schema with
kubernetes-validate in strict mode (unknown fields are errors), and the properties that matter
asserted on the rendered objects.

kubernetes-validate has no schemas for the Prometheus Operator's CRDs (monitoring.coreos.com),
so the ServiceMonitor and PodMonitor are checked structurally instead: what they select and
scrape must match the Service, the pods and the admin port the chart renders.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from sidecar.cache.entry import Entry
from sidecar.cache.key import CacheKey
from sidecar.cache.redis_store import RedisStore
from sidecar.config import load_settings
from sidecar.telemetry.metrics import Metrics
from tests.deploy.conftest import (
    CHART,
    KUBE_VERSION,
    NAMESPACE,
    REDIS_URL,
    SENTINELS,
    VALUE_SETS,
    VENV_BIN,
    clean_environ,
    container_env_for_process,
    containers,
    env_of,
    example_pod,
    objects_of,
    only,
    render,
    render_files,
    rendered,
    sidecar_config,
    sidecar_container,
)
from tests.fakes.redis import RedisServer

MONITORING_API = "monitoring.coreos.com/v1"


def validate_strict(obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        first_line = str(exc).splitlines()[0]
        pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} is not valid for Kubernetes "
                    f"{KUBE_VERSION}: {first_line} at {list(exc.path)}")


def probe_port(container: dict[str, Any], probe: str) -> int:
    """The container port number a probe's httpGet targets (named ports resolved)."""
    port = container[probe]["httpGet"]["port"]
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


# ---- the chart as a whole ----

@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict_passes(value_set: str) -> None:
    """`helm lint --strict` (Helm's Go SDK) finds no error or warning for each value set."""
    report = helm_python.lint(CHART, VALUE_SETS[value_set], strict=True,
                              kube_version=f"v{KUBE_VERSION}", namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_core_object_is_valid_for_kubernetes_1_30(value_set: str) -> None:
    """Every rendered core object passes kubernetes-validate --strict for Kubernetes 1.30."""
    _, objects = rendered(value_set)
    core = [o for o in objects if o["apiVersion"] != MONITORING_API]
    assert core, "nothing rendered"
    for obj in core:
        validate_strict(obj)


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_rendered_sidecar_config_passes_check_config(value_set: str, tmp_path: Path) -> None:
    """The ConfigMap's YAML passes `llm-sidecar check-config` with the container's env."""
    _, objects = rendered(value_set)
    config_file = tmp_path / "config.yaml"
    (configmap,) = [o for o in only(objects, "ConfigMap") if "config.yaml" in o["data"]]
    config_file.write_text(configmap["data"]["config.yaml"])
    env = clean_environ() | container_env_for_process(sidecar_container(objects))
    result = subprocess.run([str(VENV_BIN / "llm-sidecar"), "check-config", str(config_file)],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_rendered_config_fails_check_config_without_its_secret_env(tmp_path: Path) -> None:
    """The config needs the admin token from the Secret-fed env: without it check-config fails."""
    _, objects = rendered("monitoring")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(sidecar_config(objects)))
    result = subprocess.run([str(VENV_BIN / "llm-sidecar"), "check-config", str(config_file)],
                            env=clean_environ(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "LLM_SIDECAR_ADMIN_TOKEN" in result.stderr


# ---- what the application sees ----

def test_app_container_gets_openai_base_url() -> None:
    """The example app container gets OPENAI_BASE_URL=http://127.0.0.1:4141/v1."""
    _, objects = rendered("defaults")
    app = containers(example_pod(objects)["spec"])["app"]
    assert env_of(app)["OPENAI_BASE_URL"] == {"name": "OPENAI_BASE_URL",
                                              "value": "http://127.0.0.1:4141/v1"}


def test_proxy_binds_loopback_and_admin_binds_pod_ip() -> None:
    """The rendered config binds the proxy to 127.0.0.1:4141 and the admin port to 0.0.0.0,
    with a token (from the Secret-fed env) that /metrics needs too."""
    _, objects = rendered("defaults")
    config = sidecar_config(objects)
    assert config["listen"]["host"] == "127.0.0.1"
    assert config["listen"]["port"] == 4141
    assert config["admin"] == {"host": "0.0.0.0", "port": 4142,
                               "token": "${LLM_SIDECAR_ADMIN_TOKEN}",
                               "metrics_require_token": True}
    ports = [p["containerPort"] for p in sidecar_container(objects)["ports"]]
    assert ports == [4142], "only the admin port is declared; the proxy is not reachable"


def test_proxy_port_value_moves_base_url_and_listener_together() -> None:
    """proxy.port changes both the app's OPENAI_BASE_URL and the sidecar's listen.port."""
    objects = render({"proxy": {"port": 5151}})
    app = containers(example_pod(objects)["spec"])["app"]
    assert env_of(app)["OPENAI_BASE_URL"]["value"] == "http://127.0.0.1:5151/v1"
    assert sidecar_config(objects)["listen"] == {"host": "127.0.0.1", "port": 5151,
                                                 "shutdown_grace_s": 20,
                                                 "max_body_bytes": 33554432}


# ---- probes and lifecycle ----

@pytest.mark.parametrize("value_set", ["defaults", "not-native"])
def test_probes_hit_the_admin_port(value_set: str) -> None:
    """Startup and liveness probes GET /healthz, readiness GET /readyz, all on the admin port."""
    _, objects = rendered(value_set)
    sidecar = sidecar_container(objects)
    admin_port = sidecar_config(objects)["admin"]["port"]
    paths = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in paths.items():
        assert sidecar[probe]["httpGet"]["path"] == path
        assert probe_port(sidecar, probe) == admin_port


def test_sidecar_is_a_native_sidecar_by_default() -> None:
    """By default the sidecar is an initContainer with restartPolicy Always, not a container."""
    _, objects = rendered("defaults")
    spec = example_pod(objects)["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["llm-sidecar"]
    assert spec["initContainers"][0]["restartPolicy"] == "Always"
    assert [c["name"] for c in spec["containers"]] == ["app"]


def test_termination_grace_exceeds_the_drain() -> None:
    """The pod's terminationGracePeriodSeconds exceeds the sidecar's shutdown_grace_s."""
    _, objects = rendered("defaults")
    grace = sidecar_config(objects)["listen"]["shutdown_grace_s"]
    assert example_pod(objects)["spec"]["terminationGracePeriodSeconds"] > grace


def test_not_native_mode_keeps_the_proxy_up_with_a_prestop_sleep() -> None:
    """sidecar.native=false: a regular container whose preStop sleep fits the grace period."""
    _, objects = rendered("not-native")
    spec = example_pod(objects)["spec"]
    assert "initContainers" not in spec
    sidecar = {c["name"]: c for c in spec["containers"]}["llm-sidecar"]
    assert "restartPolicy" not in sidecar
    command = sidecar["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    drain = sidecar_config(objects)["listen"]["shutdown_grace_s"]
    assert spec["terminationGracePeriodSeconds"] > int(command[1]) + drain


def test_too_short_grace_period_is_refused() -> None:
    """A terminationGracePeriodSeconds the drain does not fit into fails the render."""
    with pytest.raises(helm_python.HelmError, match="must exceed"):
        render({"exampleApp": {"terminationGracePeriodSeconds": 15}})


# ---- security ----

@pytest.mark.parametrize("value_set", ["defaults", "collector"])
def test_containers_run_restricted(value_set: str) -> None:
    """Every container is non-root, read-only, unprivileged, capability-free, RuntimeDefault."""
    _, objects = rendered(value_set)
    pod = example_pod(objects)
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for name, container in containers(pod["spec"]).items():
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name


def test_sidecar_gets_writable_tmp_and_state_and_read_only_config() -> None:
    """With a read-only root FS the sidecar mounts /tmp and the state dir writable, config ro."""
    _, objects = rendered("defaults")
    mounts = {m["mountPath"]: m for m in sidecar_container(objects)["volumeMounts"]}
    assert mounts["/etc/llm-sidecar"]["readOnly"] is True
    assert not mounts["/tmp"].get("readOnly")
    assert not mounts["/var/lib/llm-sidecar"].get("readOnly")
    assert sidecar_config(objects)["state_dir"] == "/var/lib/llm-sidecar"
    volumes = {v["name"]: v for v in example_pod(objects)["spec"]["volumes"]}
    assert "emptyDir" in volumes["llm-sidecar-tmp"]
    assert "emptyDir" in volumes["llm-sidecar-state"]


def test_secret_values_appear_only_in_the_secret() -> None:
    """Sentinel secrets are nowhere in the render (ConfigMaps, env, NOTES) but the Secret."""
    files, objects = rendered("everything")
    encoded = [base64.b64encode(s.encode()).decode() for s in SENTINELS]
    for path, text in files.items():
        if path.endswith("templates/secret.yaml"):
            continue
        for needle in (*SENTINELS, *encoded):
            assert needle not in text, f"{needle} leaked into {path}"
    (secret,) = only(objects, "Secret")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"upstream-api-key": SENTINELS[0], "admin-token": SENTINELS[1],
                       "redis-password": SENTINELS[2]}


def test_upstream_key_reaches_the_sidecar_from_the_secret() -> None:
    """upstream.apiKey is given to the sidecar as SIDECAR_UPSTREAM_API_KEY from the Secret."""
    _, objects = rendered("upstream-key")
    (secret,) = only(objects, "Secret")
    ref = env_of(sidecar_container(objects))["SIDECAR_UPSTREAM_API_KEY"]["valueFrom"]
    assert ref == {"secretKeyRef": {"name": secret["metadata"]["name"],
                                    "key": "upstream-api-key"}}
    assert "api_key" not in sidecar_config(objects).get("upstream", {})


def test_no_secret_without_secret_values() -> None:
    """With no key, password or admin token (tokenRequired false), no Secret and no secret env
    render."""
    _, objects = rendered("admin-no-token")
    assert only(objects, "Secret") == []
    assert not [e for e in env_of(sidecar_container(objects)).values() if "valueFrom" in e
                and "secretKeyRef" in e["valueFrom"]]


def test_existing_secret_renders_no_secret_and_env_references_it() -> None:
    """existingSecret: no Secret object, and every secret env var reads that Secret."""
    _, objects = rendered("existing-secret")
    assert only(objects, "Secret") == []
    env = env_of(sidecar_container(objects))
    expected = {"SIDECAR_UPSTREAM_API_KEY": "upstream-api-key",
                "LLM_SIDECAR_ADMIN_TOKEN": "admin-token",
                "LLM_SIDECAR_REDIS_PASSWORD": "redis-password"}
    for name, key in expected.items():
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "team-llm-keys", "key": key}


def test_schema_refuses_a_literal_secret_in_config() -> None:
    """values.schema.json refuses a literal api_key in config (it would land in a ConfigMap)."""
    with pytest.raises(helm_python.HelmValuesError, match="api_key"):
        render({"config": {"upstream": {"api_key": "sk-live-literal"}}})
    assert sidecar_config(render({"config": {"upstream": {"api_key": "${MY_KEY}"}}})
                          )["upstream"]["api_key"] == "${MY_KEY}"


def test_schema_refuses_unknown_keys_and_chart_owned_sections() -> None:
    """A misspelt value or a chart-owned config section (listen) fails at install time."""
    with pytest.raises(helm_python.HelmValuesError, match="proxyy"):
        render({"proxyy": {"port": 1}})
    with pytest.raises(helm_python.HelmValuesError, match="listen"):
        render({"config": {"listen": {"host": "0.0.0.0"}}})


def test_schema_refuses_credentials_in_the_redis_url() -> None:
    """redis.url with user:password@ is refused: the password belongs in the Secret."""
    with pytest.raises(helm_python.HelmValuesError, match="redis"):
        render({"redis": {"enabled": True, "url": "redis://:hunter2@redis:6379/0"}})


# ---- optional parts ----

def test_redis_on_puts_redis_urls_in_config_with_password_from_env() -> None:
    """redis.enabled: cache backend redis with the URL as given and the password apart from it
    (${VAR} from the Secret-fed env); the ledger on Redis too."""
    _, objects = rendered("redis")
    config = sidecar_config(objects)
    assert config["cache"] == {"backend": "redis", "redis_url": REDIS_URL,
                               "redis_password": "${LLM_SIDECAR_REDIS_PASSWORD}"}
    assert config["spend"] == {
        "ledger": "redis://:${LLM_SIDECAR_REDIS_PASSWORD}@redis-master.redis:6379/0"}
    ref = env_of(sidecar_container(objects))["LLM_SIDECAR_REDIS_PASSWORD"]["valueFrom"]
    assert ref["secretKeyRef"]["key"] == "redis-password"


@pytest.mark.parametrize("password", ["p@ss:w/rd", "a:b@c/d?e#f%40g h", "${NOT_A_VAR}"])
async def test_a_redis_password_with_any_character_reaches_redis(
        password: str, tmp_path: Path) -> None:
    """The rendered config, loaded with the env the pod gets from the Secret, authenticates
    the cache to a real redis-server whose password has `@`, `:`, `/` and friends."""
    server = RedisServer(password=password)
    server.start()
    try:
        objects = render({"redis": {"enabled": True, "url": server.url, "ledger": False,
                                    "passwordRequired": True, "password": password}})
        (secret,) = only(objects, "Secret")
        from_secret = base64.b64decode(secret["data"]["redis-password"]).decode()
        assert from_secret == password
        config_file = tmp_path / "config.yaml"
        config_file.write_text(yaml.safe_dump(sidecar_config(objects)))
        pod_env = {"LLM_SIDECAR_REDIS_PASSWORD": from_secret, "LLM_SIDECAR_ADMIN_TOKEN":
                   base64.b64decode(secret["data"]["admin-token"]).decode()}
        settings = load_settings(config_file, env=pod_env)
        assert settings.cache.redis_url == server.url
        store = RedisStore(settings.cache, Metrics())
        await store.start()
        try:
            entry = Entry("json", b"{}", "m", time.time(), time.time() + 60)
            await store.put(CacheKey("0" * 32, "m"), entry)
            await store.close()  # flushes the write
            store = RedisStore(settings.cache, Metrics())
            assert await store.get(CacheKey("0" * 32, "m")) == entry
        finally:
            await store.close()
    finally:
        server.stop()


def test_redis_without_password_uses_the_url_as_is() -> None:
    """redis.enabled without passwordRequired: the plain URL, no password env."""
    objects = render({"redis": {"enabled": True, "url": "rediss://cache.internal:6380/2"}})
    config = sidecar_config(objects)
    assert config["cache"]["redis_url"] == "rediss://cache.internal:6380/2"
    assert config["spend"]["ledger"] == "rediss://cache.internal:6380/2"
    assert "LLM_SIDECAR_REDIS_PASSWORD" not in env_of(sidecar_container(objects))


def test_collector_on_adds_the_collector_and_its_exporter() -> None:
    """collector.enabled: a collector sidecar started before llm-sidecar, fed over loopback."""
    _, objects = rendered("collector")
    spec = example_pod(objects)["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["otel-collector", "llm-sidecar"]
    collector = spec["initContainers"][0]
    assert collector["restartPolicy"] == "Always"
    assert env_of(collector)["OTLP_EXPORT_ENDPOINT"]["value"] == \
        "http://otel-gateway.observability:4318"
    assert sidecar_config(objects)["telemetry"]["exporters"] == [
        {"protocol": "grpc", "endpoint": "http://127.0.0.1:4317",
         "signals": ["traces", "metrics", "logs"]}]
    (collector_config,) = [o for o in only(objects, "ConfigMap")
                           if "otel-collector.yaml" in o["data"]]
    mounted = {m["mountPath"] for m in collector["volumeMounts"]}
    assert "/etc/otel-collector" in mounted
    assert collector["args"] == ["--config=/etc/otel-collector/otel-collector.yaml"]
    assert yaml.safe_load(collector_config["data"]["otel-collector.yaml"])["receivers"]


def test_collector_without_endpoint_is_refused() -> None:
    """collector.enabled without collector.exportEndpoint fails with a message naming it."""
    with pytest.raises(helm_python.HelmError, match="exportEndpoint"):
        render({"collector": {"enabled": True}})


def test_persistence_renders_a_claim_and_recreate_strategy() -> None:
    """persistence.enabled: a kept PVC mounted as the state volume, Recreate rollouts."""
    _, objects = rendered("persistence")
    (claim,) = only(objects, "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert claim["spec"]["storageClassName"] == "standard"
    volumes = {v["name"]: v for v in example_pod(objects)["spec"]["volumes"]}
    assert volumes["llm-sidecar-state"]["persistentVolumeClaim"] == {
        "claimName": claim["metadata"]["name"]}
    (deployment,) = only(objects, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_monitoring_renders_monitors_that_match_what_they_scrape() -> None:
    """The monitors scrape the admin port's /metrics with the Secret's token (structurally)."""
    _, objects = rendered("monitoring")
    pod = example_pod(objects)
    (secret,) = only(objects, "Secret")
    (service,) = only(objects, "Service")
    (service_monitor,) = only(objects, "ServiceMonitor")
    (pod_monitor,) = only(objects, "PodMonitor")
    bearer = {"type": "Bearer", "credentials": {"name": secret["metadata"]["name"],
                                                "key": "admin-token"}}
    assert "admin-token" in secret["data"]

    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == 4142

    assert service_monitor["apiVersion"] == MONITORING_API
    assert service_monitor["metadata"]["labels"]["release"] == "kps"
    selector = service_monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert service_monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = service_monitor["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["authorization"] == bearer

    assert pod_monitor["apiVersion"] == MONITORING_API
    selector = pod_monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    (endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    admin_ports = {p["name"]: p["containerPort"] for p in sidecar_container(objects)["ports"]}
    assert admin_ports[endpoint["port"]] == 4142
    assert endpoint["path"] == "/metrics"
    assert endpoint["authorization"] == bearer


def test_monitors_are_off_by_default() -> None:
    """No ServiceMonitor, PodMonitor or admin Service unless monitoring is switched on."""
    _, objects = rendered("defaults")
    assert {o["kind"] for o in objects} == {"ConfigMap", "Deployment", "Secret"}


def test_config_change_rolls_the_pods() -> None:
    """The pod template carries a checksum of the sidecar config, so edits roll the pods."""
    before = example_pod(rendered("defaults")[1])["metadata"]["annotations"]
    after = example_pod(render({"config": {"upstream": {"url": "demo"}}}))["metadata"][
        "annotations"]
    assert before["checksum/llm-sidecar-config"] != after["checksum/llm-sidecar-config"]


def test_notes_tell_the_user_what_to_do_next() -> None:
    """NOTES.txt names the base URL, the logs command and the missing-key warning."""
    files, _ = rendered("defaults")
    (notes,) = [text for path, text in files.items() if path.endswith("NOTES.txt")]
    assert "OPENAI_BASE_URL=http://127.0.0.1:4141/v1" in notes
    assert f"kubectl -n {NAMESPACE} logs deployment/rel-llm-sidecar-example -c app -f" in notes
    assert "no upstream key is configured" in notes


# ---- the named templates, used the way a user's own chart uses them ----

PARENT_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-my-app
spec:
  selector:
    matchLabels:
      app: my-app
  template:
    metadata:
      labels:
        app: my-app
        {{- include "llm-sidecar.podLabels" . | nindent 8 }}
      annotations:
        {{- include "llm-sidecar.podAnnotations" . | nindent 8 }}
    spec:
      terminationGracePeriodSeconds: 40
      initContainers:
        {{- include "llm-sidecar.initContainers" . | nindent 8 }}
      containers:
        - name: my-app
          image: registry.example/my-app:1.2.3
          env:
            {{- include "llm-sidecar.appEnv" . | nindent 12 }}
            - name: LOG_LEVEL
              value: info
        {{- include "llm-sidecar.containers" . | nindent 8 }}
      volumes:
        - name: data
          emptyDir: {}
        {{- include "llm-sidecar.volumes" . | nindent 8 }}
"""


@pytest.mark.parametrize("native", [True, False])
def test_named_templates_add_the_sidecar_to_a_parent_charts_deployment(
        tmp_path: Path, native: bool) -> None:
    """A parent chart's pod gets the sidecar, its volumes and OPENAI_BASE_URL via the includes."""
    parent = tmp_path / "my-app"
    (parent / "templates").mkdir(parents=True)
    shutil.copytree(CHART, parent / "charts" / "llm-sidecar")
    (parent / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2", "name": "my-app", "version": "1.0.0",
        "dependencies": [{"name": "llm-sidecar", "version": "0.1.0"}]}))
    (parent / "values.yaml").write_text(yaml.safe_dump({"llm-sidecar": {
        "exampleApp": {"enabled": False}, "proxy": {"port": 5151}, "sidecar": {"native": native},
        "collector": {"enabled": True, "exportEndpoint": "http://gateway:4318"}}}))
    (parent / "templates" / "deployment.yaml").write_text(PARENT_DEPLOYMENT)

    objects = objects_of(render_files({}, chart=parent))
    for obj in objects:
        validate_strict(obj)
    (deployment,) = only(objects, "Deployment")
    assert deployment["metadata"]["name"] == "rel-my-app"
    pod = deployment["spec"]["template"]
    by_name = containers(pod["spec"])
    sidecars = pod["spec"]["initContainers"] if native else pod["spec"]["containers"][1:]
    assert [c["name"] for c in sidecars] == ["otel-collector", "llm-sidecar"]
    assert [c.get("restartPolicy") for c in sidecars] == [("Always" if native else None)] * 2
    assert env_of(by_name["my-app"])["OPENAI_BASE_URL"]["value"] == "http://127.0.0.1:5151/v1"
    assert sidecar_config(objects)["listen"]["port"] == 5151
    assert by_name["llm-sidecar"]["image"] == "llm-sidecar:0.1.0"
    assert pod["metadata"]["labels"]["llm-sidecar/instance"] == "rel-llm-sidecar"
    assert "checksum/llm-sidecar-config" in pod["metadata"]["annotations"]
    volumes = {v["name"] for v in pod["spec"]["volumes"]}
    assert volumes == {"data", "llm-sidecar-config", "llm-sidecar-tmp", "llm-sidecar-state",
                       "llm-sidecar-collector-config"}
    configmaps = {o["metadata"]["name"] for o in only(objects, "ConfigMap")}
    for volume in pod["spec"]["volumes"]:
        if "configMap" in volume:
            assert volume["configMap"]["name"] in configmaps


# ---- values.yaml documentation ----

# Blocks whose inner keys are Kubernetes or sidecar fields documented upstream, not chart keys.
PASSTHROUGH_BLOCKS = {"resources", "securityContext", "podSecurityContext", "startupProbe",
                      "livenessProbe", "readinessProbe", "config"}


def test_every_values_key_is_commented() -> None:
    """Each chart key in values.yaml has a comment line directly above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    parents: list[tuple[int, str]] = []
    undocumented: list[str] = []
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped or stripped.startswith(("#", "-")):
            continue
        indent = len(line) - len(stripped)
        key = stripped.split(":", 1)[0]
        while parents and parents[-1][0] >= indent:
            parents.pop()
        inside_passthrough = any(name in PASSTHROUGH_BLOCKS for _, name in parents)
        if not inside_passthrough and not lines[number - 1].lstrip().startswith("#"):
            undocumented.append(".".join([*(name for _, name in parents), key]))
        parents.append((indent, key))
    assert undocumented == []
