"""The dependency floors in pyproject.toml are true: with the lowest version of every direct
dependency that pyproject allows (uv's `--resolution lowest-direct`), every module imports and
the sidecar serves a chat and a stream through the demo upstream."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.fakes.waits import wait_ready

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")
IMPORT_ALL = """
import pkgutil, importlib, sidecar
for m in pkgutil.walk_packages(sidecar.__path__, "sidecar."):
    if m.name != "sidecar.__main__":
        importlib.import_module(m.name)
import aiohttp, pydantic
print(aiohttp.__version__, pydantic.VERSION)
"""


def _post(url: str, body: dict[str, object]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


@pytest.mark.timeout(300)
def test_lowest_allowed_versions_work(tmp_path: Path) -> None:
    """A venv with the lowest allowed direct dependencies imports everything and serves."""
    venv = tmp_path / "venv"
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)],
                   check=True, env=env)
    subprocess.run([str(UV), "pip", "install", "-q", "--resolution", "lowest-direct",
                    "-e", str(ROOT)], check=True, env=env, timeout=240)
    python = str(venv / "bin" / "python")
    versions = subprocess.run([python, "-c", IMPORT_ALL], check=True, capture_output=True,
                              text=True).stdout.split()
    assert versions[0].startswith("3.12."), versions  # aiohttp's floor in pyproject.toml

    port = free_port()
    proc = subprocess.Popen([python, "-m", "sidecar", "serve", "--upstream", "demo",
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE,
                            env={**env, "SIDECAR_STATE_DIR": str(tmp_path / "state")})
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(base, returncode=proc.poll))
        chat = {"model": "demo/echo", "messages": [{"role": "user", "content": "floor"}]}
        status, body = _post(base + "/v1/chat/completions", chat)
        assert status == 200 and b"Echo: floor" in body
        status, body = _post(base + "/v1/chat/completions", {**chat, "stream": True})
        assert status == 200 and body.endswith(b"data: [DONE]\n\n")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
