"""Peer gateways measured side by side with the sidecar (`--peers litellm,portkey`).

Each peer is installed on first use into its own folder under `bench/.peers/` (git-ignored;
this needs PyPI or npm, nothing else does), pinned to the version below so that a run is
reproducible, then started like any target: pinned to the CPU under test, pointed at the same
fake upstream, driven with the same load. Each is configured lean and as its users would run
it locally, with no database:

- **LiteLLM proxy** (`litellm[proxy]` in a private venv): one model in its `model_list`
  pointing at the fake upstream, a master key (it refuses to start without one unless told
  that is dangerous), one uvicorn worker (one process, as the sidecar), its cost map read
  locally instead of fetched at start, log level ERROR.
- **Portkey's open-source gateway** (`@portkey-ai/gateway` on node, headless): no config
  file; each request names the provider and the upstream in headers (`x-portkey-provider:
  openai`, `x-portkey-custom-host`; loopback hosts are trusted by default). `@hono/node-server`
  is held at 1.13.8: from 1.14.3 on, Portkey fails streams with `TypeError: immutable`
  (Portkey-AI/gateway issue 1389), and 1.14.x still fails them on node 20 here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

LITELLM_VERSION = "1.106.2"
PORTKEY_VERSION = "1.15.2"
HONO_NODE_SERVER = "1.13.8"
LITELLM_MASTER_KEY = "sk-bench-litellm-5d1e8a7c3b9f4e20"
UPSTREAM_KEY = "sk-bench-upstream"
PEERS = ("litellm", "portkey")
_MARKER = ".bench-installed"


class PeerUnavailable(RuntimeError):
    """A peer could not be installed (no network, no node) or is unknown."""


@dataclass(frozen=True, slots=True)
class PeerRun:
    """How to start one peer against the fake upstream."""

    name: str
    version: str
    argv_for_port: Callable[[int], list[str]]
    ready_path: str
    env: dict[str, str]
    headers: dict[str, str]
    python: bool  # py-spy can sample it


def _installed(folder: Path, spec: str) -> bool:
    marker = folder / _MARKER
    return marker.exists() and marker.read_text() == spec


def _run(argv: list[str], cwd: Path | None, what: str) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, timeout=900)
    if done.returncode != 0:
        tail = "\n  ".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise PeerUnavailable(f"installing {what} failed (status {done.returncode}); it needs "
                              f"network access to its registry:\n  {tail}")


def install_litellm(folder: Path, log: Callable[[str], None]) -> None:
    spec = f"litellm[proxy]=={LITELLM_VERSION}"
    if _installed(folder, spec):
        return
    log(f"installing {spec} into {folder} (once) ...")
    if folder.exists():
        shutil.rmtree(folder)
    _run([sys.executable, "-m", "venv", str(folder)], None, "a venv for LiteLLM")
    _run([str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet",
          "--disable-pip-version-check", spec], None, spec)
    (folder / _MARKER).write_text(spec)


def install_portkey(folder: Path, log: Callable[[str], None]) -> None:
    spec = f"@portkey-ai/gateway@{PORTKEY_VERSION} @hono/node-server@{HONO_NODE_SERVER}"
    if _installed(folder, spec):
        return
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise PeerUnavailable("Portkey's gateway needs node and npm (apt-get install -y nodejs "
                              "npm)")
    log(f"installing {spec} into {folder} (once) ...")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps({
        "name": "bench-peer-portkey", "private": True,
        "dependencies": {"@portkey-ai/gateway": PORTKEY_VERSION},
        "overrides": {"@hono/node-server": HONO_NODE_SERVER}}, indent=2) + "\n")
    _run(["npm", "install", "--no-audit", "--no-fund", "--omit=dev"], folder, spec)
    (folder / _MARKER).write_text(spec)


def litellm_config(upstream: str) -> dict[str, object]:
    return {
        "model_list": [{"model_name": "gpt-4o-mini", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_base": f"{upstream}/v1",
            "api_key": UPSTREAM_KEY}}],
        "litellm_settings": {"drop_params": True},
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
    }


def prepare(name: str, root: Path, upstream: str, workdir: Path,
            log: Callable[[str], None]) -> PeerRun:
    """Install the peer if needed and say how to run it against `upstream` (no slash)."""
    folder = root / name
    if name == "litellm":
        install_litellm(folder, log)
        config = workdir / "litellm.yaml"
        config.write_text(yaml.safe_dump(litellm_config(upstream), sort_keys=False))
        executable = str(folder / "bin" / "litellm")
        return PeerRun(
            "litellm", LITELLM_VERSION,
            lambda port: [executable, "--config", str(config), "--host", "127.0.0.1",
                          "--port", str(port), "--num_workers", "1"],
            "/health/readiness",
            {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"},
            {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}, python=True)
    if name == "portkey":
        install_portkey(folder, log)
        script = folder / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
        node = shutil.which("node") or "node"
        return PeerRun(
            "portkey", PORTKEY_VERSION,
            lambda port: [node, str(script), f"--port={port}", "--headless"], "/",
            {"NODE_ENV": "production"},
            {"x-portkey-provider": "openai", "x-portkey-custom-host": f"{upstream}/v1",
             "Authorization": f"Bearer {UPSTREAM_KEY}"}, python=False)
    raise PeerUnavailable(f"unknown peer {name!r}; peers: {', '.join(PEERS)}")
