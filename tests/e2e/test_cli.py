"""The real `llm-sidecar` command as a subprocess: version, check-config, serve, SIGTERM drain,
the access log, and health."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest

from sidecar import __version__
from tests.conftest import free_port
from tests.fakes.upstream import FakeUpstream, Script, chat_chunks
from tests.fakes.waits import wait_ready, wait_until

BIN = str(Path(sys.executable).with_name("llm-sidecar"))
CHAT = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(text)
    return path


class Served:
    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc, self.url = proc, url

    async def stop(self) -> tuple[int, str]:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # not send_signal: see below
                os.kill(self.proc.pid, signal.SIGTERM)
        out, _ = await asyncio.wait_for(self.proc.communicate(), timeout=30)
        assert self.proc.returncode is not None
        return self.proc.returncode, out.decode()


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    started: list[Served] = []

    async def start(*args: str, env: dict[str, str] | None = None) -> Served:
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            BIN, "serve", "--port", str(port), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SIDECAR_STATE_DIR": str(tmp_path), **(env or {})})
        served = Served(proc, f"http://127.0.0.1:{port}")
        started.append(served)
        await wait_ready(served.url, returncode=lambda: proc.returncode)
        return served

    yield start
    for served in started:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()


async def test_version() -> None:
    """`llm-sidecar version` and `python -m sidecar version` print the version."""
    for args in ([BIN, "version"], [sys.executable, "-m", "sidecar", "version"]):
        code, out, _ = await run(*args)
        assert (code, out) == (0, f"llm-sidecar {__version__}\n")


async def test_check_config_valid(tmp_path: Path) -> None:
    """check-config exits 0 on a valid file."""
    path = config_file(tmp_path, "listen: {port: 4242}\nupstream: {api_key: ${K:-}}\n")
    code, out, err = await run(BIN, "check-config", str(path))
    assert (code, out, err) == (0, f"{path}: ok\n", "")


async def test_check_config_invalid_lists_each_problem(tmp_path: Path) -> None:
    """check-config exits 2 with one line per problem, each naming its key."""
    path = config_file(tmp_path, "listen: {port: none}\nupstream: {url: nope, "
                                 "api_key: ${UNSET_VAR_X}}\ncache: {backend: disk}\n")
    code, out, err = await run(BIN, "check-config", str(path))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "config error: upstream.api_key: environment variable UNSET_VAR_X is not set "
        "(use ${UNSET_VAR_X:-} to allow it to be empty)",
        "config error: listen.port: Input should be a valid integer, unable to parse string "
        "as an integer",
        "config error: upstream.url: must be an http:// or https:// URL",
        "config error: cache.backend: Input should be 'memory', 'redis' or 'off'",
    ]


async def test_serve_refuses_an_invalid_config(tmp_path: Path) -> None:
    """serve with a bad config (file or env) exits 2 before listening."""
    path = config_file(tmp_path, "listen: {prot: 1}\n")
    code, _, err = await run(BIN, "serve", "--config", str(path))
    assert code == 2
    assert "listen.prot: unknown key" in err
    code, _, err = await run(BIN, "serve", env={"SIDECAR_LOG_LEVEL": "loud"})
    assert code == 2
    assert "telemetry.logs.level (from SIDECAR_LOG_LEVEL)" in err


async def test_sigterm_drains_in_flight_streams(serve: Serve, upstream: FakeUpstream) -> None:
    """On SIGTERM the sidecar stops accepting, lets an open stream finish, then exits 0."""
    served = await serve("--upstream", upstream.url)
    release = asyncio.Event()
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a", "b"]),
                                                wait_before={1: release}))
    async with aiohttp.ClientSession() as session:
        response = await session.post(served.url + "/v1/chat/completions", json=CHAT)
        assert b'"content":"a"' in await response.content.readline()
        os.kill(served.proc.pid, signal.SIGTERM)
        async def refused() -> bool:  # the listener closes while the stream is still open
            try:
                async with aiohttp.ClientSession() as fresh:
                    await fresh.get(served.url + "/healthz")
            except aiohttp.ClientConnectionError:
                return True
            return False

        await wait_until(refused, "new connections are refused after SIGTERM")
        release.set()
        rest = await asyncio.wait_for(response.read(), timeout=10)
    assert b'"content":"b"' in rest and rest.endswith(b"data: [DONE]\n\n")
    code, log = await served.stop()
    assert code == 0, log
    lines = [orjson.loads(line) for line in log.splitlines()]
    where = {line.get("path", line["event"]): i for i, line in enumerate(lines)
             if line["event"] in ("draining", "stopped") or line.get("stream")}
    # The stream's access line is written when it completes: after the drain began, before stop.
    assert where["draining"] < where["/v1/chat/completions"] < where["stopped"], log
    assert lines[where["/v1/chat/completions"]]["outcome"] == "ok", log


async def test_sigterm_grace_period_bounds_the_drain(serve: Serve, upstream: FakeUpstream,
                                                     tmp_path: Path) -> None:
    """A stream that never ends is cut after listen.shutdown_grace_s and the exit is still 0."""
    config = config_file(tmp_path, "listen: {shutdown_grace_s: 0.3}\n")
    served = await serve("--upstream", upstream.url, "--config", str(config))
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["a", "b"]),
                                                stall_after=1))
    async with aiohttp.ClientSession() as session:
        response = await session.post(served.url + "/v1/chat/completions", json=CHAT)
        await response.content.readline()
        code, log = await served.stop()
        assert code == 0
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(response.read(), timeout=10)
    await asyncio.wait_for(upstream.aborted.wait(), timeout=10)
    [cut] = [line for line in map(orjson.loads, log.splitlines()) if line["event"] == "request"]
    assert (cut["status"], cut["outcome"]) == (200, "cancelled")


async def test_access_log_line_has_no_secrets_or_content(serve: Serve,
                                                          upstream: FakeUpstream) -> None:
    """One JSON access line per request; never a key, token, prompt, completion or query."""
    served = await serve("--upstream", upstream.url,
                         env={"SIDECAR_UPSTREAM_API_KEY": "sk-KEY-MARKER"})
    async with aiohttp.ClientSession() as session:
        async with session.post(served.url + "/v1/chat/completions?sig=QUERY-MARKER", json={
                "model": "openai/gpt-4o", "messages": [{"role": "user",
                                                        "content": "PROMPT-MARKER"}]},
                headers={"Authorization": "Bearer CLIENT-MARKER"}) as response:
            request_id = response.headers["x-sidecar-request-id"]
            assert b"fake upstream" in await response.read()
    code, log = await served.stop()
    assert code == 0
    for marker in ("KEY-MARKER", "CLIENT-MARKER", "PROMPT-MARKER", "QUERY-MARKER",
                   "fake upstream"):
        assert marker not in log
    lines = [orjson.loads(line) for line in log.splitlines()]
    [access] = [line for line in lines if line.get("request_id") == request_id]
    assert access["event"] == "request"
    assert access["method"] == "POST"
    assert access["path"] == "/v1/chat/completions"
    assert access["model"] == "openai/gpt-4o"
    assert access["status"] == 200
    assert access["outcome"] == "ok"
    assert access["latency_ms"] > 0
    assert access["bytes_in"] > 0 and access["bytes_out"] > 0
    assert access["provider"] == "upstream"


async def test_health_command(serve: Serve, upstream: FakeUpstream) -> None:
    """`llm-sidecar health` exits 0 against a serving sidecar and 1 when nothing answers."""
    served = await serve("--upstream", upstream.url)
    for args in (["--url", served.url], ["--url", served.url, "--ready"]):
        code, out, _ = await run(BIN, "health", *args)
        assert code == 0, out
        assert out.startswith("healthy:")
    port = served.url.rsplit(":", 1)[1]
    code, out, _ = await run(BIN, "health", env={"SIDECAR_PORT": port})
    assert code == 0
    code, _, err = await run(BIN, "health", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 1
    assert err.startswith("unhealthy:")


async def test_demo_upstream_from_the_command_line(serve: Serve) -> None:
    """`serve --upstream demo` answers offline, with usage, through the real proxy."""
    served = await serve("--upstream", "demo")
    async with aiohttp.ClientSession() as session:
        async with session.post(served.url + "/v1/chat/completions", json={
                "model": "openai/gpt-4o-mini",
                "messages": [{"role": "user", "content": "ping"}]}) as response:
            answer = orjson.loads(await response.read())
    assert answer["choices"][0]["message"]["content"] == "Echo: ping"
    assert answer["usage"]["completion_tokens"] == 2
    code, log = await served.stop()
    assert code == 0
    assert '"event":"demo_upstream"' in log


async def test_health_exits_1_on_a_bad_config(tmp_path: Path) -> None:
    """health fails with 1, never 2 (reserved by Docker HEALTHCHECK), when its config is bad."""
    path = config_file(tmp_path, "listen: {port: ${NOT_SET_ANYWHERE}}\n")
    code, _, err = await run(BIN, "health", "--config", str(path))
    assert code == 1
    assert "NOT_SET_ANYWHERE" in err


async def test_repeated_sigterm_still_exits_0(serve: Serve, upstream: FakeUpstream) -> None:
    """SIGTERMs repeated all through the shutdown never turn the clean exit into a kill."""
    served = await serve("--upstream", upstream.url)
    for _ in range(2000):  # keep signalling until the process is gone
        if served.proc.returncode is not None:
            break
        try:  # os.kill, not send_signal: Popen.send_signal polls, which reaps the child
            os.kill(served.proc.pid, signal.SIGTERM)  # behind asyncio's child watcher
        except ProcessLookupError:
            break
        await asyncio.sleep(0.002)
    code, _ = await served.stop()
    assert code == 0


async def test_serve_exits_1_when_the_port_is_taken() -> None:
    """serve on a port another process holds logs listen_failed and exits 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, _ = await run(BIN, "serve", "--upstream", "demo", "--port", str(port))
    assert code == 1
    failed = [line for line in map(orjson.loads, out.splitlines())
              if line["event"] == "listen_failed"]
    assert failed and "address already in use" in failed[0]["error"]
