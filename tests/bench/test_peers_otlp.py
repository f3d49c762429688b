"""Peers and the OTLP receiver: how each is configured and started (nothing is installed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

from bench import otlp, peers

UPSTREAM = "http://127.0.0.1:9001"


def _installed(root: Path, name: str, spec: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / ".bench-installed").write_text(spec)


def test_litellm_runs_one_worker_on_a_model_list_pointing_at_the_upstream(
        tmp_path: Path) -> None:
    """LiteLLM gets a model list entry for the fake upstream, a master key, one worker."""
    _installed(tmp_path, "litellm", f"litellm[proxy]=={peers.LITELLM_VERSION}")
    run = peers.prepare("litellm", tmp_path, UPSTREAM, tmp_path, print)
    argv = run.argv_for_port(4000)
    assert argv[0] == str(tmp_path / "litellm" / "bin" / "litellm")
    assert argv[argv.index("--port") + 1] == "4000" and argv[-2:] == ["--num_workers", "1"]
    config = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text())
    params = config["model_list"][0]["litellm_params"]
    assert config["model_list"][0]["model_name"] == "gpt-4o-mini"
    assert params["api_base"] == f"{UPSTREAM}/v1"
    assert run.headers == {"Authorization":
                           f"Bearer {config['general_settings']['master_key']}"}
    assert run.env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True" and run.python


def test_portkey_names_provider_and_upstream_in_headers(tmp_path: Path) -> None:
    """Portkey runs headless on node; each request says openai and the upstream's /v1."""
    _installed(tmp_path, "portkey", f"@portkey-ai/gateway@{peers.PORTKEY_VERSION} "
                                    f"@hono/node-server@{peers.HONO_NODE_SERVER}")
    run = peers.prepare("portkey", tmp_path, UPSTREAM, tmp_path, print)
    argv = run.argv_for_port(8787)
    assert argv[1].endswith("@portkey-ai/gateway/build/start-server.js")
    assert argv[2:] == ["--port=8787", "--headless"]
    assert run.headers["x-portkey-provider"] == "openai"
    assert run.headers["x-portkey-custom-host"] == f"{UPSTREAM}/v1"
    assert not run.python


def test_unknown_peers_and_missing_node_are_reported(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown peer names the known ones; Portkey without node says what to install."""
    with pytest.raises(peers.PeerUnavailable, match="litellm, portkey"):
        peers.prepare("helicone", tmp_path, UPSTREAM, tmp_path, print)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(peers.PeerUnavailable, match="needs node and npm"):
        peers.prepare("portkey", tmp_path, UPSTREAM, tmp_path, print)


def test_receiver_is_rotel_over_grpc_else_the_http_sink(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """With rotel the exporters speak gRPC to it; without, OTLP/HTTP to the built-in sink."""
    monkeypatch.setattr(otlp, "find_rotel", lambda: "/opt/rotel-agent")
    rotel = otlp.plan("python", 4317, 4318, tmp_path)
    assert (rotel.name, rotel.protocol, rotel.endpoint) == ("rotel", "grpc",
                                                            "http://127.0.0.1:4317")
    assert rotel.argv[:2] == ["/opt/rotel-agent", "start"] and "blackhole" in rotel.argv
    assert str(tmp_path / "rotel.pid") in rotel.argv
    monkeypatch.setattr(otlp, "find_rotel", lambda: None)
    sink = otlp.plan("python", 4317, 4318, tmp_path)
    assert (sink.name, sink.protocol, sink.endpoint) == ("sink", "http",
                                                         "http://127.0.0.1:4318")
    assert sink.argv == ["python", "-m", "bench.otlp", "--port", "4318"]


@pytest.fixture
async def sink() -> AsyncIterator[str]:
    runner = web.AppRunner(otlp.create_sink(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_the_sink_accepts_and_counts_exports(sink: str,
                                                   http: aiohttp.ClientSession) -> None:
    """Every OTLP/HTTP export is answered 200 with an empty protobuf and counted by path."""
    for path, body in (("/v1/traces", b"\x0a\x02ab"), ("/v1/traces", b"x"), ("/v1/metrics", b"")):
        async with http.post(sink + path, data=body,
                             headers={"Content-Type": "application/x-protobuf"}) as response:
            assert response.status == 200 and await response.read() == b""
    async with http.get(f"{sink}/stats") as response:
        assert await response.json() == {"/v1/traces requests": 2, "/v1/traces bytes": 5,
                                         "/v1/metrics requests": 1, "/v1/metrics bytes": 0}
