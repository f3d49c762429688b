"""The collector configs, checked structurally (no collector binary of either distribution is
available to CI): every component a pipeline names is defined and of a type its distribution
ships, receivers stay on loopback, the zero-retention step runs before every exporter of traces
and logs and removes exactly the content keys, and the chart sets every variable its copy needs.

Two files: the repository's `otel-collector.yaml` fans out to several backends (contrib
distribution, for a gateway); the chart's `files/otel-collector.yaml` is the per-pod forwarder
for the core distribution the chart pins.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.telemetry import genai
from tests.deploy.conftest import CHART, ROOT, env_of, example_pod, rendered, sidecar_config

GATEWAY = ROOT / "otel-collector.yaml"
CHART_COPY = CHART / "files" / "otel-collector.yaml"

# Component types each file may use: those its distribution ships (core: the otelcol manifest;
# contrib adds transform, redaction and the vendor exporters).
CORE = {
    "receivers": {"otlp"},
    "processors": {"batch", "memory_limiter", "attributes", "filter", "resource"},
    "exporters": {"otlp", "otlphttp", "debug", "nop"},
    "extensions": {"health_check", "pprof", "zpages"},
}
CONTRIB = {
    "receivers": {"otlp"},
    "processors": CORE["processors"] | {"transform", "redaction", "tail_sampling"},
    "exporters": CORE["exporters"] | {"prometheusremotewrite", "prometheus"},
    "extensions": CORE["extensions"],
}
FILES = {"gateway": (GATEWAY, CONTRIB), "chart": (CHART_COPY, CORE)}
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
# What the sidecar emits with capture_content on, and keys that must survive ZDR.
CONTENT_KEYS = list(genai.CONTENT_KEYS)
KEPT_KEYS = ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.request.model",
             "gen_ai.response.finish_reasons", "llm_sidecar.cost_usd", "llm_sidecar.key",
             "gen_ai.usage.cache_read.input_tokens", "http.response.status_code"]


def load(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


def component_type(component_id: str) -> str:
    """`otlphttp/backend` is an otlphttp exporter named backend."""
    return component_id.split("/", 1)[0]


@pytest.mark.parametrize("name", FILES)
def test_every_pipeline_component_is_defined_and_of_a_known_type(name: str) -> None:
    """Every component a pipeline names is defined, and of a type the distribution ships."""
    path, known_types = FILES[name]
    config = load(path)
    for kind, known in known_types.items():
        for component_id in config.get(kind) or {}:
            assert component_type(component_id) in known, f"{kind}: {component_id}"
    for pipeline_name, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(kind) or []:
                assert component_id in config[kind], f"{pipeline_name} uses {component_id}"
    for extension in config["service"]["extensions"]:
        assert extension in config["extensions"]


@pytest.mark.parametrize("name", FILES)
def test_every_defined_component_is_used(name: str) -> None:
    """Nothing is defined but unused (the collector would ignore it silently)."""
    config = load(FILES[name][0])
    used = {c for p in config["service"]["pipelines"].values() for kind in
            ("receivers", "processors", "exporters") for c in p.get(kind) or []}
    defined = {c for kind in ("receivers", "processors", "exporters") for c in config[kind]}
    assert defined == used
    assert set(config["extensions"]) == set(config["service"]["extensions"])


@pytest.mark.parametrize("name", FILES)
def test_pipelines_carry_traces_metrics_and_logs(name: str) -> None:
    """There is one pipeline per signal the sidecar exports, each with a receiver and exporter."""
    pipelines = load(FILES[name][0])["service"]["pipelines"]
    assert {component_type(p) for p in pipelines} == {"traces", "metrics", "logs"}
    for pipeline in pipelines.values():
        assert pipeline["receivers"] and pipeline["exporters"]


@pytest.mark.parametrize("name", FILES)
def test_memory_limiter_first_zdr_before_export_and_batch_last(name: str) -> None:
    """Every pipeline runs memory_limiter first and batch last; traces and logs remove
    content (zero data retention) before anything is exported."""
    for pipeline_name, pipeline in load(FILES[name][0])["service"]["pipelines"].items():
        processors = [component_type(p) for p in pipeline["processors"]]
        assert processors[0] == "memory_limiter", pipeline_name
        assert processors[-1] == "batch", pipeline_name
        if pipeline_name in ("traces", "logs"):
            assert {"attributes", "transform"} & set(processors), pipeline_name


def _zdr_patterns(config: dict[str, Any]) -> list[re.Pattern[str]]:
    """The key patterns the ZDR step deletes, as regular expressions."""
    patterns = []
    for component_id, component in config["processors"].items():
        if component_type(component_id) == "attributes":
            patterns += [a["pattern"] for a in component["actions"] if a["action"] == "delete"]
        if component_type(component_id) == "transform":
            for statement in component["trace_statements"]:
                match = re.search(r'delete_matching_keys\(span\.attributes, "(.*)"\)', statement)
                if match:
                    patterns.append(match.group(1).replace("\\\\", "\\"))  # OTTL unescaping
    return [re.compile(p) for p in patterns]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("key", CONTENT_KEYS + KEPT_KEYS)
def test_zdr_step_removes_content_and_keeps_metadata(name: str, key: str) -> None:
    """The ZDR patterns match every content attribute the sidecar can emit, and none of the
    usage, model, cost or status attributes."""
    matched = any(p.search(key) for p in _zdr_patterns(load(FILES[name][0])))
    assert matched is (key in CONTENT_KEYS)


def test_gateway_fans_out_to_several_backends() -> None:
    """The gateway sends traces to Tempo/Jaeger and Langfuse (OTLP/HTTP with Basic auth),
    metrics to Prometheus remote-write, logs to Loki over OTLP, all also to debug."""
    config = load(GATEWAY)
    pipelines = config["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["otlp/tempo", "otlphttp/langfuse", "debug"]
    assert pipelines["metrics"]["exporters"] == ["prometheusremotewrite", "debug"]
    assert pipelines["logs"]["exporters"] == ["otlphttp/loki", "debug"]
    langfuse = config["exporters"]["otlphttp/langfuse"]
    assert langfuse["endpoint"].endswith("/api/public/otel}")
    assert langfuse["headers"]["Authorization"] == "Basic ${env:LANGFUSE_AUTH}"


@pytest.mark.parametrize("name", FILES)
def test_receivers_listen_on_loopback_only(name: str) -> None:
    """The OTLP receiver listens on 127.0.0.1:4317 (gRPC) and 127.0.0.1:4318 (HTTP)."""
    protocols = load(FILES[name][0])["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "127.0.0.1:4317"
    assert protocols["http"]["endpoint"] == "127.0.0.1:4318"


def test_chart_sets_every_variable_the_file_requires() -> None:
    """The chart's collector sets exactly the variables its config needs without a default."""
    text = CHART_COPY.read_text()
    references = {m.group(1): m.group(2) for m in ENV_REFERENCE.finditer(text)}
    _, objects = rendered("collector")
    collector = {c["name"]: c for c in example_pod(objects)["spec"]["initContainers"]}[
        "otel-collector"]
    env = env_of(collector)
    required = {name for name, default in references.items() if default is None}
    assert required <= set(env)
    assert set(env) <= set(references)


def test_chart_mounts_its_copy() -> None:
    """The rendered collector ConfigMap holds exactly the chart's files/otel-collector.yaml."""
    _, objects = rendered("collector")
    (config_map,) = [o for o in objects if o.get("kind") == "ConfigMap"
                     and "otel-collector.yaml" in o.get("data", {})]
    assert yaml.safe_load(config_map["data"]["otel-collector.yaml"]) == load(CHART_COPY)


def test_health_check_listens_where_the_kubelet_probes() -> None:
    """In the chart, health_check binds the pod IP on the port the collector's probes use."""
    _, objects = rendered("collector")
    collector = {c["name"]: c for c in example_pod(objects)["spec"]["initContainers"]}[
        "otel-collector"]
    (port,) = collector["ports"]
    assert env_of(collector)["COLLECTOR_HEALTH_ENDPOINT"]["value"] == \
        f"0.0.0.0:{port['containerPort']}"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert collector[probe]["httpGet"]["port"] == port["name"]


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_sidecar_exports_each_signal_to_the_collector_receiver(signal: str) -> None:
    """With the collector on, the sidecar's exporter points at the receiver's gRPC endpoint."""
    _, objects = rendered("collector")
    (exporter,) = sidecar_config(objects)["telemetry"]["exporters"]
    grpc = load(CHART_COPY)["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert exporter["protocol"] == "grpc"
    assert exporter["endpoint"] == f"http://{grpc}"
    assert signal in exporter["signals"]
    assert signal in {component_type(n) for n in load(CHART_COPY)["service"]["pipelines"]}
