"""The chart's admin token (README, Deploy on Kubernetes): by default the sidecar gets a token
generated into the chart's Secret, every admin route and /metrics need it, and the monitors send
it; an upgrade keeps the token the release's Secret holds; `tokenRequired: false` and the
opt-out render what they promise; the rendered config, run as a real process with the Secret's
token, refuses and serves as the sidecar's rule says.

Keeping the token across upgrades rests on Helm's `lookup`, which reads the cluster. An offline
render (`helm template`, helm-python's `Chart.render`) cannot look and shows a new token each
time, so those tests render cluster-aware (helm-python's `Config.render`, Helm's own code)
against a fake Kubernetes API (tests/fakes/kube.py) that holds the Secret. What that cannot
show: a real `helm upgrade` writing the kept Secret back to a real cluster (no cluster here).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.deploy.conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    SENTINEL_ADMIN_TOKEN,
    VENV_BIN,
    clean_environ,
    env_of,
    example_pod,
    objects_of,
    only,
    render,
    rendered,
    sidecar_config,
    sidecar_container,
)
from tests.e2e.test_admin_exposure import call
from tests.fakes.kube import KubeApi
from tests.fakes.ports import free_port
from tests.fakes.waits import wait_until

SECRET = f"{RELEASE}-llm-sidecar"
KEY = "admin-token"
MONITORS = {"monitoring": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}}
KEPT = "kept-admin-token-from-the-cluster-1a2b"


def token_in(objects: list[dict[str, Any]]) -> str:
    (secret,) = only(objects, "Secret")
    return base64.b64decode(secret["data"][KEY]).decode()


def monitor_auth(objects: list[dict[str, Any]]) -> list[Any]:
    """The `authorization` of every monitor endpoint (None where it has none)."""
    endpoints = [e for m in only(objects, "ServiceMonitor") for e in m["spec"]["endpoints"]]
    endpoints += [e for m in only(objects, "PodMonitor") for e in m["spec"]["podMetricsEndpoints"]]
    return [e.get("authorization") for e in endpoints]


def notes_of(files: dict[str, str]) -> str:
    (notes,) = [text for path, text in files.items() if path.endswith("NOTES.txt")]
    return notes


# ---- the defaults ----

def test_defaults_give_the_sidecar_a_generated_token_the_monitors_send() -> None:
    """With the defaults the chart's Secret holds a generated 40-character token; the sidecar
    reads it from the Secret (admin.token, and /metrics needs it too); both monitors send it
    as a bearer token from the same Secret and key."""
    objects = render(MONITORS)
    token = token_in(objects)
    assert re.fullmatch(r"[A-Za-z0-9]{40}", token), token
    ref = env_of(sidecar_container(objects))["LLM_SIDECAR_ADMIN_TOKEN"]["valueFrom"]
    assert ref == {"secretKeyRef": {"name": SECRET, "key": KEY}}
    admin = sidecar_config(objects)["admin"]
    assert (admin["token"], admin["metrics_require_token"]) == (
        "${LLM_SIDECAR_ADMIN_TOKEN}", True)
    bearer = {"type": "Bearer", "credentials": {"name": SECRET, "key": KEY}}
    assert monitor_auth(objects) == [bearer, bearer]


def test_the_pods_checksum_is_of_the_token_in_the_secret() -> None:
    """The token is generated once per render: the pod's Secret checksum is that of the
    Secret's data as the chart writes it (a second random token would roll pods for nothing)."""
    objects = render({})
    (secret,) = only(objects, "Secret")
    written = f'\n{KEY}: "{secret["data"][KEY]}"'  # the chart's secretData for these values
    annotations = example_pod(objects)["metadata"]["annotations"]
    assert annotations["checksum/llm-sidecar-secret"] == hashlib.sha256(
        written.encode()).hexdigest()


def test_an_offline_render_cannot_keep_the_token() -> None:
    """Without a cluster to look in, each render generates another token (why the upgrade
    tests below render against a fake API)."""
    assert token_in(render({})) != token_in(render({}))


def test_a_given_token_is_used_as_is() -> None:
    """admin.token given: the Secret holds exactly it."""
    assert token_in(render({"admin": {"token": SENTINEL_ADMIN_TOKEN}})) == SENTINEL_ADMIN_TOKEN


# ---- upgrades: rendered by Helm with `lookup` against a fake cluster ----

@pytest.fixture
async def kube_api() -> AsyncIterator[KubeApi]:
    api = KubeApi()
    await api.start()
    yield api
    await api.close()


async def render_in_cluster(api: KubeApi, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Render as `helm upgrade` does, `lookup` reading `api` (Helm's blocking call runs in a
    thread so that the fake API, on this event loop, can answer it)."""
    def run() -> dict[str, str]:
        with helm_python.Config(kubeconfig_content=api.kubeconfig, namespace=NAMESPACE) as cfg:
            chart = helm_python.Chart.load(CHART)
            return cfg.render(chart, values, name=RELEASE, namespace=NAMESPACE,
                              is_upgrade=True)
    return objects_of(await asyncio.to_thread(run))


async def test_an_upgrade_keeps_the_token_of_the_releases_secret(kube_api: KubeApi) -> None:
    """When the release's Secret already holds a token, an upgrade renders that same token,
    every time, with the same pod checksum; Helm asked the API for that Secret."""
    kube_api.add_secret(NAMESPACE, SECRET, {KEY: KEPT})
    first = await render_in_cluster(kube_api, MONITORS)
    second = await render_in_cluster(kube_api, MONITORS)
    assert token_in(first) == token_in(second) == KEPT
    checksums = [example_pod(o)["metadata"]["annotations"]["checksum/llm-sidecar-secret"]
                 for o in (first, second)]
    assert checksums[0] == checksums[1]
    assert f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET}" in kube_api.asked


async def test_an_upgrade_from_a_secret_without_a_token_generates_one(
        kube_api: KubeApi) -> None:
    """A release's Secret from before the token (only the upstream key) gets a new token."""
    kube_api.add_secret(NAMESPACE, SECRET, {"upstream-api-key": "sk-old"})
    token = token_in(await render_in_cluster(kube_api, {"upstream": {"apiKey": "sk-old"}}))
    assert re.fullmatch(r"[A-Za-z0-9]{40}", token)


async def test_a_given_token_beats_the_kept_one(kube_api: KubeApi) -> None:
    """admin.token given on upgrade replaces the token the Secret held."""
    kube_api.add_secret(NAMESPACE, SECRET, {KEY: KEPT})
    objects = await render_in_cluster(kube_api, {"admin": {"token": SENTINEL_ADMIN_TOKEN}})
    assert token_in(objects) == SENTINEL_ADMIN_TOKEN


async def test_an_existing_secret_without_the_token_key_is_refused(kube_api: KubeApi) -> None:
    """existingSecret without secretKeys.adminToken fails the install or upgrade, naming the
    Secret, the key and both ways out; with the key it renders, reading the token from it."""
    kube_api.add_secret(NAMESPACE, "team-keys", {"upstream-api-key": "sk"})
    with pytest.raises(helm_python.HelmError) as caught:
        await render_in_cluster(kube_api, {"existingSecret": "team-keys"})
    message = str(caught.value)
    assert "team-keys" in message and KEY in message and "tokenRequired=false" in message
    kube_api.add_secret(NAMESPACE, "team-keys", {"upstream-api-key": "sk", KEY: KEPT})
    objects = await render_in_cluster(kube_api, {"existingSecret": "team-keys"})
    assert only(objects, "Secret") == []
    ref = env_of(sidecar_container(objects))["LLM_SIDECAR_ADMIN_TOKEN"]["valueFrom"]
    assert ref == {"secretKeyRef": {"name": "team-keys", "key": KEY}}


# ---- the other modes ----

def test_token_not_required_renders_no_token_and_open_metrics() -> None:
    """tokenRequired false and no token: no token in the config or the env, no bearer in the
    monitor, and the notes say the page and admin API are refused on the pod IP."""
    files, objects = rendered("admin-no-token")
    admin = sidecar_config(objects)["admin"]
    assert admin == {"host": "0.0.0.0", "port": 4142}
    assert "LLM_SIDECAR_ADMIN_TOKEN" not in env_of(sidecar_container(objects))
    assert monitor_auth(objects) == [None]
    assert "refuses the page and the admin API (403)" in notes_of(files)


def test_token_not_required_but_given_keeps_metrics_open() -> None:
    """tokenRequired false with admin.token: the admin routes get the token, /metrics does not
    need it."""
    objects = render({"admin": {"tokenRequired": False, "token": SENTINEL_ADMIN_TOKEN}})
    admin = sidecar_config(objects)["admin"]
    assert (admin["token"], admin["metrics_require_token"]) == (
        "${LLM_SIDECAR_ADMIN_TOKEN}", False)
    assert token_in(objects) == SENTINEL_ADMIN_TOKEN


def test_the_opt_out_reaches_the_sidecar_with_a_warning_in_the_notes() -> None:
    """insecureNoTokenOnNetwork renders admin.insecure_no_token_on_network without a token,
    and the notes warn what it exposes."""
    files, objects = rendered("admin-opt-out")
    assert sidecar_config(objects)["admin"] == {"host": "0.0.0.0", "port": 4142,
                                                "insecure_no_token_on_network": True}
    assert "WARNING: admin.insecureNoTokenOnNetwork is on" in notes_of(files)


@pytest.mark.parametrize("admin", [{"insecureNoTokenOnNetwork": True},
                                   {"insecureNoTokenOnNetwork": True, "tokenRequired": False,
                                    "token": SENTINEL_ADMIN_TOKEN}])
def test_the_opt_out_with_a_token_is_refused(admin: dict[str, Any]) -> None:
    """The opt-out together with a token (tokenRequired, or a given one) fails the render with
    what to change."""
    with pytest.raises(helm_python.HelmError, match="insecureNoTokenOnNetwork"):
        render({"admin": admin})


def test_notes_tell_how_to_open_the_page() -> None:
    """NOTES.txt gives the port-forward, how to read the token from the Secret, and the page's
    ?token= address."""
    notes = notes_of(rendered("defaults")[0])
    assert (f"kubectl -n {NAMESPACE} port-forward deployment/{SECRET}-example 4142"
            in notes)
    assert (f"kubectl -n {NAMESPACE} get secret {SECRET} -o jsonpath='{{.data.{KEY}}}' "
            "| base64 -d" in notes)
    assert 'http://127.0.0.1:4142/sidecar/ui?token=$ADMIN_TOKEN' in notes
    assert "generated at install and is kept on upgrades" in notes


# ---- the rendered config, run ----

@contextmanager
def sidecar_of(objects: list[dict[str, Any]], directory: Path) -> Iterator[int]:
    """Run `llm-sidecar serve` with the rendered ConfigMap's config (ports and state moved
    here, the demo upstream) and the env the pod gets from the Secret; yields the admin port."""
    config = sidecar_config(objects)
    config["listen"]["port"], config["admin"]["port"] = free_port(), free_port()
    config["state_dir"] = str(directory / "state")
    config["upstream"] = {"url": "demo"}
    config_file = directory / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = clean_environ()
    if only(objects, "Secret"):
        env["LLM_SIDECAR_ADMIN_TOKEN"] = token_in(objects)
    log = directory / "sidecar.log"
    port = config["admin"]["port"]
    with log.open("wb") as out, subprocess.Popen(
            [str(VENV_BIN / "llm-sidecar"), "serve", "--config", str(config_file)],
            stdout=out, stderr=subprocess.STDOUT, env=env) as process:
        try:
            def ready() -> bool:
                assert process.poll() is None, log.read_text()
                return _ready(port)

            asyncio.run(wait_until(ready, "the sidecar answers its probes", 60))
            yield port
        finally:
            process.terminate()
            process.wait(timeout=40)


def _ready(port: int) -> bool:
    try:
        return call(port, "GET", "/readyz").status == 200
    except OSError:
        return False


def test_the_default_chart_runs_closed_and_the_monitors_token_opens_metrics(
        tmp_path: Path) -> None:
    """The default render, run with the Secret's token: probes need nothing; /metrics and
    the admin routes answer 401 without the token and 200 with the one the monitors send."""
    objects = render(MONITORS)
    bearer = {"Authorization": f"Bearer {token_in(objects)}"}
    with sidecar_of(objects, tmp_path) as port:
        assert call(port, "GET", "/healthz").status == 200
        for path in ("/metrics", "/sidecar/usage", "/sidecar/config"):
            assert call(port, "GET", path).status == 401, path
            assert call(port, "GET", path, bearer).status == 200, path


def test_token_not_required_runs_with_metrics_open_and_the_rest_refused(
        tmp_path: Path) -> None:
    """tokenRequired false, run: /metrics and the probes are served, the admin API is 403."""
    with sidecar_of(rendered("admin-no-token")[1], tmp_path) as port:
        assert call(port, "GET", "/healthz").status == 200
        assert call(port, "GET", "/metrics").status == 200
        assert call(port, "GET", "/sidecar/usage").status == 403
        assert call(port, "DELETE", "/sidecar/cache").status == 403
