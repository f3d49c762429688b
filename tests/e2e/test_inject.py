"""`llm-sidecar inject` end to end: the real command serving HTTPS with a certificate made for
the test (trustme), real AdmissionReviews from an HTTPS client that trusts only that CA, the
patches applied (jsonpatch) and validated (Kubernetes 1.30, strict), certificate renewal, and
an injected pod whose sidecar actually runs: the app's OPENAI_BASE_URL answers through it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import helm_python
import openai
import pytest
import trustme
import yaml
from aiohttp import web

from sidecar.inject.admission import Injector
from sidecar.inject.patch import Defaults
from sidecar.inject.review import parse_review
from sidecar.inject.server import ServingCertificate, create_inject_app
from sidecar.inject.template import load_template
from tests.conftest import free_port
from tests.unit.inject.pods import (
    LABEL,
    busy_pod,
    deployment_pod,
    env_of,
    patched,
    review,
    validate_pod,
)

BIN = str(Path(sys.executable).with_name("llm-sidecar"))
CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "llm-sidecar"


@dataclass
class Pair:
    """A CA and the certificate/key files it issued for 127.0.0.1."""

    ca: trustme.CA
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


def issue(directory: Path, name: str = "serving") -> Pair:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_file.write_bytes(leaf.private_key_pem.bytes())
    return Pair(ca, cert_file, key_file)


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    return issue(tmp_path / "tls")


async def wait_for_line(stream: asyncio.StreamReader, event: str) -> dict[str, Any]:
    """Read JSON log lines until one has this event (the process said it is ready)."""
    seen: list[bytes] = []
    while True:
        line = await stream.readline()
        assert line, f"the process exited before logging {event!r}: {b''.join(seen)!r}"
        seen.append(line)
        with contextlib.suppress(ValueError):
            record: dict[str, Any] = json.loads(line)
            if record.get("event") == event:
                return record


@dataclass
class Webhook:
    url: str
    proc: asyncio.subprocess.Process
    pair: Pair


@pytest.fixture
async def webhook(pair: Pair) -> AsyncIterator[Webhook]:
    """The real `llm-sidecar inject` process on a loopback port, ready."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        BIN, "inject", "--cert-file", str(pair.cert_file), "--key-file", str(pair.key_file),
        "--host", "127.0.0.1", "--port", str(port), "--config-map", "platform-llm",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    await asyncio.wait_for(wait_for_line(proc.stdout, "listening"), timeout=30)
    yield Webhook(f"https://127.0.0.1:{port}", proc, pair)
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def post(hook: Webhook, path: str, payload: Any, *, raw: bytes | None = None,
               content_type: str = "application/json") -> tuple[int, Any]:
    data: bytes | io.BytesIO = raw if raw is not None else json.dumps(payload).encode()
    if len(data) > 1024 * 1024:  # aiohttp warns about large bytes bodies; a stream is fine
        data = io.BytesIO(data)
    async with aiohttp.ClientSession() as session:
        async with session.post(hook.url + path, data=data,
                                headers={"Content-Type": content_type},
                                ssl=hook.pair.client_context()) as response:
            return response.status, await response.json(content_type=None)


# ---- the webhook over HTTPS ----

async def test_a_labelled_pod_is_injected_over_https(webhook: Webhook) -> None:
    """POST /inject with a real AdmissionReview: the answer's patch, applied, gives a valid
    1.30 pod with the sidecar and the injector's --config-map; the uid is echoed."""
    pod = deployment_pod()
    status, answer = await post(webhook, "/inject", review(pod, uid="uid-123"))
    assert status == 200
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "uid-123" and response["allowed"] is True
    result = patched(pod, response)
    validate_pod(result)
    assert result["spec"]["initContainers"][0]["name"] == "llm-sidecar"
    volumes = {v["name"]: v for v in result["spec"]["volumes"]}
    assert volumes["llm-sidecar-config"]["configMap"]["name"] == "platform-llm"


async def test_the_two_paths_select_by_pod_label_and_by_namespace(webhook: Webhook) -> None:
    """An unlabelled pod: left alone on /inject, injected on /inject/namespace."""
    pod = busy_pod()
    _, answer = await post(webhook, "/inject", review(pod))
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]
    _, answer = await post(webhook, "/inject/namespace", review(pod))
    validate_pod(patched(pod, answer["response"]))


async def test_an_opted_out_pod_in_a_labelled_namespace_is_left_alone(webhook: Webhook) -> None:
    """llm-sidecar.io/inject: "false" on the pod wins over the namespace's label."""
    pod = busy_pod()
    pod["metadata"]["annotations"][LABEL] = "false"
    _, answer = await post(webhook, "/inject/namespace", review(pod))
    assert answer["response"] == {"uid": answer["response"]["uid"], "allowed": True}


@pytest.mark.parametrize(("raw", "content_type", "expected"), [
    (b"{", "application/json", "not an AdmissionReview v1 request: the body is not JSON"),
    (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "application/json",
     "request must be an object"),
    (b"{}", "text/plain", "the body must be application/json"),
], ids=["not-json", "no-request", "text-plain"])
async def test_bad_input_is_a_400_with_a_message_and_the_webhook_keeps_serving(
        webhook: Webhook, raw: bytes, content_type: str, expected: str) -> None:
    """Malformed reviews get a 400 with an OpenAI-shaped error naming the problem; the next
    real review is still answered."""
    status, answer = await post(webhook, "/inject", None, raw=raw, content_type=content_type)
    assert status == 400
    assert expected in answer["error"]["message"]
    assert answer["error"]["type"] == "invalid_request_error"
    status, answer = await post(webhook, "/inject", review(deployment_pod()))
    assert status == 200 and "patch" in answer["response"]


async def test_an_oversized_review_is_a_413(webhook: Webhook) -> None:
    """A body over 4 MiB is refused with 413 and a message, not read into memory."""
    status, answer = await post(webhook, "/inject", None, raw=b" " * (4 * 1024 * 1024 + 1))
    assert status == 413
    assert "at most" in answer["error"]["message"]


async def test_a_client_that_does_not_trust_the_ca_is_refused(webhook: Webhook) -> None:
    """The webhook speaks TLS only with its certificate: a client trusting another CA fails."""
    stranger = ssl.create_default_context()
    trustme.CA().configure_trust(stranger)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(webhook.url + "/healthz", ssl=stranger)
        async with session.get(webhook.url + "/healthz",
                               ssl=webhook.pair.client_context()) as response:
            assert response.status == 200


async def test_sigterm_stops_the_webhook_with_exit_0(webhook: Webhook) -> None:
    """SIGTERM: the injector logs that it stops and exits 0."""
    assert webhook.proc.stdout is not None
    os.kill(webhook.proc.pid, signal.SIGTERM)
    await asyncio.wait_for(wait_for_line(webhook.proc.stdout, "stopping"), timeout=30)
    assert await asyncio.wait_for(webhook.proc.wait(), timeout=30) == 0


@pytest.mark.parametrize(("args", "expected"), [
    ([], "--cert-file is required"),
    (["--cert-file", "{cert}", "--key-file", "{other_key}"], "cannot load the serving certif"),
    (["--cert-file", "{cert}", "--key-file", "{key}", "--template", "{missing}"],
     "cannot read the template"),
    (["--cert-file", "{cert}", "--key-file", "{key}", "--image", "not an image"],
     "--image is not an image reference"),
    (["--cert-file", "{cert}", "--key-file", "{key}", "--port", "70000"],
     "--port must be between 1 and 65535"),
], ids=["no-cert", "key-of-another-cert", "missing-template", "bad-image", "bad-port"])
async def test_bad_settings_exit_2_before_listening(tmp_path: Path, pair: Pair, args: list[str],
                                                    expected: str) -> None:
    """Missing or unusable flags and files: exit 2 with a line naming the problem."""
    other = issue(tmp_path / "other")
    names = {"cert": pair.cert_file, "key": pair.key_file, "other_key": other.key_file,
             "missing": tmp_path / "missing.yaml"}
    argv = [a.format(**names) for a in args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_SIDECAR_INJECT_")}
    proc = await asyncio.create_subprocess_exec(BIN, "inject", *argv, env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 2
    assert expected in err.decode()


async def test_flags_can_come_from_the_environment(pair: Pair) -> None:
    """LLM_SIDECAR_INJECT_* variables set the flags (here the port, the cert and the image)."""
    port = free_port()
    env = {**os.environ, "LLM_SIDECAR_INJECT_CERT_FILE": str(pair.cert_file),
           "LLM_SIDECAR_INJECT_KEY_FILE": str(pair.key_file),
           "LLM_SIDECAR_INJECT_PORT": str(port), "LLM_SIDECAR_INJECT_HOST": "127.0.0.1",
           "LLM_SIDECAR_INJECT_IMAGE": "registry.example/llm-sidecar:9.9.9"}
    proc = await asyncio.create_subprocess_exec(BIN, "inject", env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(wait_for_line(proc.stdout, "listening"), timeout=30)
        assert line["url"] == f"https://127.0.0.1:{port}"
        assert line["sidecar_image"] == "registry.example/llm-sidecar:9.9.9"
    finally:
        proc.kill()
        await proc.wait()


# ---- certificate renewal ----

@pytest.fixture
async def in_process(pair: Pair) -> AsyncIterator[tuple[str, ServingCertificate]]:
    """The webhook app in this process, so a test can run the certificate check itself."""
    certificate = ServingCertificate(pair.cert_file, pair.key_file)
    runner = web.AppRunner(create_inject_app(Injector(load_template(), Defaults())))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=certificate.context).start()
    yield f"https://127.0.0.1:{port}", certificate
    await runner.cleanup()


async def handshake(url: str, context: ssl.SSLContext) -> int:
    connector = aiohttp.TCPConnector(force_close=True)  # a new TLS handshake every time
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url + "/healthz", ssl=context) as response:
            return response.status


async def test_a_renewed_certificate_is_served_after_the_check(
        tmp_path: Path, pair: Pair, in_process: tuple[str, ServingCertificate]) -> None:
    """Files replaced in place (as kubelet does with a Secret) by a certificate of another CA:
    after the check new connections get the new one, and the old CA no longer verifies."""
    url, certificate = in_process
    assert await handshake(url, pair.client_context()) == 200
    renewed = issue(tmp_path / "renewed")
    pair.cert_file.write_bytes(renewed.cert_file.read_bytes())
    pair.key_file.write_bytes(renewed.key_file.read_bytes())
    assert certificate.check() is True
    assert await handshake(url, renewed.client_context()) == 200
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await handshake(url, pair.client_context())


async def test_a_half_written_pair_keeps_the_old_certificate(
        tmp_path: Path, pair: Pair, in_process: tuple[str, ServingCertificate]) -> None:
    """A new certificate with the old key does not load: the old pair keeps serving, and the
    check loads the new pair once its key arrives."""
    url, certificate = in_process
    renewed = issue(tmp_path / "renewed")
    pair.cert_file.write_bytes(renewed.cert_file.read_bytes())
    assert certificate.check() is False
    assert certificate.problem
    assert await handshake(url, pair.client_context()) == 200
    pair.key_file.write_bytes(renewed.key_file.read_bytes())
    assert certificate.check() is True
    assert await handshake(url, renewed.client_context()) == 200


# ---- an injected pod, run: the sidecar starts from its template, the app reaches it ----

def chart_template(tmp_path: Path, proxy_port: int, admin_port: int) -> Path:
    """The chart's injector template with these ports (a shared machine: no fixed 4141)."""
    files = helm_python.Chart.load(CHART).render(
        values={"injector": {"enabled": True}, "proxy": {"port": proxy_port},
                "admin": {"port": admin_port}}, name="rel", namespace="llm", is_install=True)
    docs = [d for d in yaml.safe_load_all(files["llm-sidecar/templates/injector.yaml"]) if d]
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    path = tmp_path / "template.yaml"
    path.write_text(configmap["data"]["template.yaml"])
    return path


def container_process(container: dict[str, Any], mounts: dict[str, Path]) -> tuple[
        list[str], dict[str, str]]:
    """argv and environment of a container run here: its image's entrypoint is the venv's
    llm-sidecar, mount paths moved to local directories, fieldRef values stubbed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    for item in container["env"]:
        value = item.get("value", f"stub-{item['name'].lower()}")
        for mount_path, local in mounts.items():
            if value == mount_path or value.startswith(mount_path + "/"):
                value = str(local) + value.removeprefix(mount_path)
                break
        env[item["name"]] = value
    return [BIN, *container["args"]], env


@pytest.fixture
def local_mounts(tmp_path: Path) -> Iterator[dict[str, Path]]:
    yield {"/etc/llm-sidecar": tmp_path / "config", "/var/lib/llm-sidecar": tmp_path / "state",
           "/tmp": tmp_path / "tmp"}


async def test_the_injected_sidecar_runs_and_the_app_reaches_it(
        tmp_path: Path, local_mounts: dict[str, Path]) -> None:
    """The chart's template injected into a pod: the sidecar container, run with its env and a
    ConfigMap that says other listeners, answers its startup probe on the admin port, and the
    app container's OPENAI_BASE_URL serves a chat completion through it (offline demo
    upstream); ANTHROPIC_BASE_URL is the same listener."""
    proxy_port, admin_port = free_port(), free_port()
    injector = Injector(load_template(chart_template(tmp_path, proxy_port, admin_port)),
                        Defaults())
    pod = deployment_pod()
    verdict = injector.review(parse_review(json.dumps(review(pod)).encode()), "pod")
    assert verdict.patch is not None
    response = {"patchType": "JSONPatch",
                "patch": base64.b64encode(json.dumps(verdict.patch).encode()).decode()}
    result = patched(pod, response)
    validate_pod(result)
    sidecar = result["spec"]["initContainers"][0]
    app_env = env_of(result["spec"]["containers"][0])
    assert app_env["OPENAI_BASE_URL"] == f"http://127.0.0.1:{proxy_port}/v1"
    assert app_env["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{proxy_port}"

    for local in local_mounts.values():
        local.mkdir()
    # The namespace's ConfigMap: listeners that would break the probes if they were used.
    (local_mounts["/etc/llm-sidecar"] / "config.yaml").write_text(
        "upstream: {url: demo}\nlisten: {host: 0.0.0.0, port: 1}\nadmin: {port: null}\n")
    argv, env = container_process(sidecar, local_mounts)
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(wait_for_line(proc.stdout, "listening"), timeout=30)
        probe = sidecar["startupProbe"]["httpGet"]
        (port,) = [p["containerPort"] for p in sidecar["ports"] if p["name"] == probe["port"]]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}{probe['path']}") as answer:
                assert answer.status == 200
            async with session.get(app_env["ANTHROPIC_BASE_URL"] + "/healthz") as answer:
                assert answer.status == 200 and answer.headers["Server"] == "llm-sidecar"
        client = openai.AsyncOpenAI(base_url=app_env["OPENAI_BASE_URL"], api_key="sk-any")
        completion = await client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "hello from the pod"}])
        await client.close()
        assert completion.choices[0].message.content
        assert (local_mounts["/var/lib/llm-sidecar"] / "ledger.db").exists()
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=40) == 0
