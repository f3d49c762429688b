"""otel-collector.yaml, checked structurally (no collector binary is available to CI): every
component a pipeline names is defined and of a type the chart's collector image (the core
otel/opentelemetry-collector distribution) ships, the receivers stay on loopback, and the
chart bundles this exact file and sets every variable it needs.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CHART, ROOT, env_of, example_pod, rendered, sidecar_config

COLLECTOR_CONFIG = ROOT / "otel-collector.yaml"
CHART_COPY = CHART / "files" / "otel-collector.yaml"

# Component types of the core distribution that this file may use.
KNOWN_TYPES = {
    "receivers": {"otlp"},
    "processors": {"batch", "memory_limiter"},
    "exporters": {"otlp", "otlphttp", "debug", "nop"},
    "extensions": {"health_check", "pprof", "zpages"},
}
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def load() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(COLLECTOR_CONFIG.read_text())
    return config


def component_type(component_id: str) -> str:
    """`otlphttp/backend` is an otlphttp exporter named backend."""
    return component_id.split("/", 1)[0]


def test_every_pipeline_component_is_defined_and_of_a_known_type() -> None:
    """Every component a pipeline names is defined, and of a type the core collector ships."""
    config = load()
    for kind, known in KNOWN_TYPES.items():
        for component_id in config.get(kind) or {}:
            assert component_type(component_id) in known, f"{kind}: {component_id}"
    for name, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(kind) or []:
                assert component_id in config[kind], f"{name} uses undefined {component_id}"
    for extension in config["service"]["extensions"]:
        assert extension in config["extensions"]


def test_every_defined_component_is_used() -> None:
    """Nothing is defined but unused (the collector would ignore it silently)."""
    config = load()
    used = {c for p in config["service"]["pipelines"].values() for kind in
            ("receivers", "processors", "exporters") for c in p.get(kind) or []}
    defined = {c for kind in ("receivers", "processors", "exporters") for c in config[kind]}
    assert defined == used
    assert set(config["extensions"]) == set(config["service"]["extensions"])


def test_pipelines_carry_traces_metrics_and_logs() -> None:
    """There is one pipeline per signal the sidecar exports, each with a receiver and exporter."""
    pipelines = load()["service"]["pipelines"]
    assert {component_type(name) for name in pipelines} == {"traces", "metrics", "logs"}
    for pipeline in pipelines.values():
        assert pipeline["receivers"] and pipeline["exporters"]


def test_memory_limiter_first_and_batch_last() -> None:
    """Every pipeline runs memory_limiter first and batch last, as the collector advises."""
    for name, pipeline in load()["service"]["pipelines"].items():
        processors = [component_type(p) for p in pipeline["processors"]]
        assert processors[0] == "memory_limiter", name
        assert processors[-1] == "batch", name


def test_receivers_listen_on_loopback_only() -> None:
    """The OTLP receiver listens on 127.0.0.1:4317 (gRPC) and 127.0.0.1:4318 (HTTP)."""
    protocols = load()["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "127.0.0.1:4317"
    assert protocols["http"]["endpoint"] == "127.0.0.1:4318"


def test_chart_bundles_this_exact_file() -> None:
    """The chart's files/otel-collector.yaml is byte-for-byte the repository's file."""
    assert CHART_COPY.read_bytes() == COLLECTOR_CONFIG.read_bytes()


def test_chart_sets_every_variable_the_file_requires() -> None:
    """The chart's collector sets exactly the variables the file needs without a default."""
    text = COLLECTOR_CONFIG.read_text()
    references = {m.group(1): m.group(2) for m in ENV_REFERENCE.finditer(text)}
    _, objects = rendered("collector")
    collector = {c["name"]: c for c in example_pod(objects)["spec"]["initContainers"]}[
        "otel-collector"]
    env = env_of(collector)
    required = {name for name, default in references.items() if default is None}
    assert required <= set(env)
    assert set(env) <= set(references)


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
    grpc = load()["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert exporter["protocol"] == "grpc"
    assert exporter["endpoint"] == f"http://{grpc}"
    assert signal in exporter["signals"]
    assert signal in {component_type(n) for n in load()["service"]["pipelines"]}
