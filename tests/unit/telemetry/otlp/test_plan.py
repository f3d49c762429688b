"""Which destinations, sampler and resource the `telemetry` settings and OTEL_* give."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.config.telemetry import TelemetrySettings
from sidecar.telemetry.otlp.plan import make_plan, parse_headers
from sidecar.telemetry.otlp.transport import Destination


def plan(env: dict[str, str], **settings: Any) -> Any:
    return make_plan(TelemetrySettings.model_validate(settings), env)


def test_config_exporters_keep_their_own_headers_and_ignore_generic_env() -> None:
    """Each configured exporter sends only its own headers, to its own URL per signal; the
    generic OTEL_EXPORTER_OTLP_* variables change nothing about them."""
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Basic%20leak",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://elsewhere:4317"}
    got = plan(env, exporters=[
        {"protocol": "grpc", "endpoint": "http://collector:4317", "signals": ["traces"]},
        {"protocol": "http", "endpoint": "https://cloud.langfuse.com/api/public/otel/",
         "headers": {"Authorization": "Basic abc"}, "signals": ["traces", "logs"],
         "compression": "none", "timeout_s": 3}])
    assert got.destinations == (
        Destination("traces", "grpc", "http://collector:4317", (), True, 10.0),
        Destination("traces", "http", "https://cloud.langfuse.com/api/public/otel/v1/traces",
                    (("Authorization", "Basic abc"),), False, 3.0),
        Destination("logs", "http", "https://cloud.langfuse.com/api/public/otel/v1/logs",
                    (("Authorization", "Basic abc"),), False, 3.0),
    )


def test_an_http_endpoint_given_with_its_signal_path_is_not_doubled() -> None:
    """`.../v1/traces` configured as the endpoint still gives `.../v1/traces` (and /v1/logs)."""
    got = plan({}, exporters=[{"protocol": "http", "endpoint": "http://c:4318/v1/traces",
                               "signals": ["traces", "logs"]}])
    assert [d.url for d in got.destinations] == ["http://c:4318/v1/traces",
                                                 "http://c:4318/v1/logs"]


@pytest.mark.parametrize(("env", "expected"), [
    ({}, []),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"},
     [("traces", "grpc", "http://c:4317"), ("metrics", "grpc", "http://c:4317"),
      ("logs", "grpc", "http://c:4317")]),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL":
      "http/protobuf", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "console"},
     [("traces", "http", "http://c:4318/v1/traces"), ("logs", "console", "")]),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://x.example/custom/path",
      "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
     [("traces", "http", "https://x.example/custom/path")]),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317"}, [
        ("traces", "grpc", "https://c:4317"), ("metrics", "grpc", "https://c:4317"),
        ("logs", "grpc", "https://c:4317")]),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317", "OTEL_EXPORTER_OTLP_INSECURE": "true",
      "OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_METRICS_EXPORTER": "none",
      "OTEL_LOGS_EXPORTER": "none"},
     [("traces", "console", ""), ("traces", "grpc", "http://c:4317")]),
])
def test_destinations_from_standard_variables(env: dict[str, str],
                                              expected: list[tuple[str, str, str]]) -> None:
    """Without config exporters, OTEL_EXPORTER_OTLP_* and OTEL_*_EXPORTER choose them."""
    assert [(d.signal, d.protocol, d.url) for d in plan(env).destinations] == expected


def test_env_exporter_settings_follow_the_specification() -> None:
    """Per-signal variables win over generic ones; timeouts are milliseconds; headers are
    percent-decoded; gzip only when asked."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-a=1,x-b=two%20words",
           "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-logs=1",
           "OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
           "OTEL_EXPORTER_OTLP_CERTIFICATE": "/ca.pem"}
    traces, _, logs = plan(env).destinations
    assert traces.headers == (("x-a", "1"), ("x-b", "two words"))
    assert logs.headers == (("x-logs", "1"),)
    assert (traces.timeout_s, traces.gzip, traces.ca_file) == (2.5, True, "/ca.pem")


def test_sdk_disabled_means_no_destination() -> None:
    """OTEL_SDK_DISABLED=true wins over both the config and the environment."""
    got = plan({"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"},
               exporters=[{"protocol": "grpc", "endpoint": "http://c:4317"}])
    assert got.disabled and got.destinations == ()


@pytest.mark.parametrize(("env", "root", "ratio", "parent_based"), [
    ({}, "ratio", 0.5, True),
    ({"OTEL_TRACES_SAMPLER": "always_off"}, "always_off", 0.5, False),
    ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
     "ratio", 0.1, True),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "7"}, "ratio", 1.0,
     False),
    ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "ratio", 0.5, True),
])
def test_sampler_from_settings_or_environment(env: dict[str, str], root: str, ratio: float,
                                              parent_based: bool) -> None:
    """OTEL_TRACES_SAMPLER(_ARG) wins when set and valid; else parent-based sample_ratio."""
    sampler = plan(env, sample_ratio=0.5).sampler
    assert (sampler.root, sampler.ratio, sampler.parent_based) == (root, ratio, parent_based)


@pytest.mark.parametrize(("env", "name"), [
    ({}, "from-config"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes"}, "from-attributes"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes",
      "OTEL_SERVICE_NAME": "from-service-name"}, "from-service-name"),
])
def test_service_name_precedence(env: dict[str, str], name: str) -> None:
    """OTEL_SERVICE_NAME > service.name in OTEL_RESOURCE_ATTRIBUTES > telemetry.service_name."""
    resource = plan(env, service_name="from-config").resource
    assert resource["service.name"] == name
    assert resource["telemetry.sdk.name"] == "llm-sidecar" and resource["service.instance.id"]


def test_queue_variables_and_bad_values() -> None:
    """OTEL_BSP_* / OTEL_BLRP_* / OTEL_METRIC_EXPORT_INTERVAL set the queues; a bad value is
    ignored with a warning that names it."""
    got = plan({"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_SCHEDULE_DELAY": "250",
                "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "lots", "OTEL_METRIC_EXPORT_INTERVAL": "-5"})
    assert (got.spans.max_queue, got.spans.delay_s) == (100, 0.25)
    assert got.logs.batch_size == 512 and got.metrics_interval_s == 60.0
    assert any("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE" in w for w in got.warnings)
    assert any("OTEL_METRIC_EXPORT_INTERVAL" in w for w in got.warnings)


def test_parse_headers() -> None:
    """`k=v` pairs, percent-decoded, malformed items skipped, keys kept as written."""
    assert parse_headers("A=1, b = x%3Dy ,bad,=v,") == (("A", "1"), ("b", "x=y"))


@pytest.mark.parametrize("exporter", [
    {"protocol": "grpc"}, {"protocol": "http", "endpoint": "collector:4318"},
    {"protocol": "grpc", "endpoint": "http://c:4317", "signals": []},
    {"protocol": "grpc", "endpoint": "http://c:4317", "signals": ["spans"]},
])
def test_bad_exporters_are_refused(exporter: dict[str, Any]) -> None:
    """An exporter without a usable endpoint, or with no/unknown signals, fails validation."""
    with pytest.raises(ValueError):
        TelemetrySettings.model_validate({"exporters": [exporter]})
