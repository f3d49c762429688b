"""Live reload end to end: the real app on a real socket, its configuration file rewritten and
applied without a restart (POST /sidecar/reload, the file watch, and SIGHUP on the real process)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
import yaml
from aiohttp import web

from sidecar.app import create_app, make_runner
from sidecar.config import load_settings
from sidecar.config.watch import watch_file
from sidecar.deps import DEPS
from sidecar.live import LIVE
from tests.conftest import free_port
from tests.fakes.clock import FakeClock
from tests.fakes.upstream import FakeUpstream, Script, chat_chunks
from tests.fakes.waits import wait_until

BIN = str(Path(sys.executable).with_name("llm-sidecar"))
CHAT = [{"role": "user", "content": "hi"}]


@dataclass
class Reloadable:
    """A sidecar started from a config file it reads again on reload."""

    path: Path
    url: str
    app: web.Application

    def write(self, config: dict[str, Any]) -> None:
        self.path.write_text(yaml.safe_dump(config))

    async def reload(self, token: str | None = None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as http, http.post(
                self.url + "/sidecar/reload", headers=headers) as response:
            return response.status, orjson.loads(await response.read())

    async def view(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(
                self.url + "/sidecar/config") as response:
            assert response.status == 200
            view: dict[str, Any] = orjson.loads(await response.read())
            return view


Start = Callable[..., Awaitable[Reloadable]]


@pytest.fixture
async def reloadable(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Start]:
    runners: list[web.AppRunner] = []

    async def start(config: dict[str, Any], clock: FakeClock | None = None) -> Reloadable:
        path = tmp_path / "sidecar.yaml"
        base = {"upstream": {"url": upstream.url}, "state_dir": str(tmp_path)}
        path.write_text(yaml.safe_dump({**base, **config}))
        load = partial(load_settings, path)
        app = create_app(load(), load=load, clock=clock)
        runner = make_runner(app, shutdown_timeout=2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return Reloadable(path, f"http://127.0.0.1:{runner.addresses[0][1]}", app)

    yield start
    for runner in runners:
        await runner.cleanup()


def base(fake: FakeUpstream, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"upstream": {"url": fake.url}, "state_dir": str(tmp_path),
            "spend": {"fetch_prices": False}, **extra}


def keys(*names: str) -> dict[str, Any]:
    return {"required": True, "keys": [{"name": n, "token": f"tok-{n}"} for n in names]}


def sdk(url: str, key: str = "sk-client") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


async def test_keys_flip_and_a_stream_open_across_the_reload_completes(
        reloadable: Start, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Key a is replaced by key b: a stream a opened before the reload runs to its end on the
    configuration it started with; after it, a gets 401 and b is served."""
    sidecar = await reloadable(base(upstream, tmp_path, auth=keys("a"),
                                    cache={"backend": "off"}))
    gate = asyncio.Event()
    upstream.script("/chat/completions", Script(sse=chat_chunks("m", ["one", "two"]),
                                                 wait_before={1: gate}))
    async with sdk(sidecar.url, "tok-a") as a, sdk(sidecar.url, "tok-b") as b:
        stream = await a.chat.completions.create(model="m", messages=CHAT, stream=True)
        first = await stream.__anext__()
        assert first.choices[0].delta.content == "one"
        sidecar.write(base(upstream, tmp_path, auth=keys("b"), cache={"backend": "off"}))
        status, result = await sidecar.reload()
        assert (status, result["applied"], result["changed"]) == (200, True, ["auth"])
        gate.set()
        rest = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
        assert "two" in rest  # the open stream completed
        with pytest.raises(openai.AuthenticationError):
            await a.chat.completions.create(model="m", messages=CHAT)
        answer = await b.chat.completions.create(model="m", messages=CHAT)
        assert answer.choices[0].message.content
    assert (await sidecar.view())["version"] == 2


async def test_an_invalid_file_is_refused_and_the_old_config_keeps_serving(
        reloadable: Start, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A file that does not validate: 422 naming the key, /sidecar/config shows last_error and
    the same version, the running config serves on, /readyz stays ready, the metric counts it."""
    sidecar = await reloadable(base(upstream, tmp_path, auth=keys("a")))
    sidecar.path.write_text("auth: {required: true, keys: [{name: a}]}\nbogus_key: 1\n")
    status, result = await sidecar.reload()
    assert status == 422 and result["applied"] is False
    assert "auth.keys[0].token" in result["error"] and "bogus_key" in result["error"]
    view = await sidecar.view()
    assert view["version"] == 1 and "bogus_key" in view["last_error"]
    async with sdk(sidecar.url, "tok-a") as a:
        assert (await a.chat.completions.create(model="m", messages=CHAT)).choices
    async with aiohttp.ClientSession() as http:
        async with http.get(sidecar.url + "/readyz") as response:
            assert response.status == 200
        async with http.get(sidecar.url + "/metrics") as response:
            text = await response.text()
    assert 'llm_sidecar_config_reloads_total{result="invalid"} 1.0' in text
    sidecar.write(base(upstream, tmp_path, auth=keys("a")))
    status, result = await sidecar.reload()
    assert status == 200 and (await sidecar.view())["last_error"] is None


async def test_a_configmap_symlink_swap_is_seen_by_the_watch(
        reloadable: Start, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The kubelet's update: `..data` re-pointed at a new directory in one rename; the file's
    own path (a symlink through `..data`) never changes. The watch applies the new content."""
    mount = tmp_path / "mount"
    mount.mkdir()
    first, second = mount / "..2026_12_06_a", mount / "..2026_12_06_b"
    first.mkdir()
    second.mkdir()
    (first / "config.yaml").write_text(yaml.safe_dump(base(upstream, tmp_path, auth=keys("a"))))
    (second / "config.yaml").write_text(yaml.safe_dump(base(upstream, tmp_path,
                                                             auth=keys("b"))))
    (mount / "..data").symlink_to(first.name)
    (mount / "config.yaml").symlink_to("..data/config.yaml")
    sidecar = await reloadable(base(upstream, tmp_path, auth=keys("a")))
    sidecar.path.unlink()
    sidecar.path.symlink_to(mount / "config.yaml")
    reloader = sidecar.app[LIVE].reloader
    assert reloader is not None
    digested = asyncio.Event()

    def interval() -> float:  # read after each digest: once read, the first one is taken
        digested.set()
        return 0.02

    watch = asyncio.ensure_future(watch_file(sidecar.path, interval,
                                             lambda: reloader.reload("file watch")))
    try:
        await asyncio.wait_for(digested.wait(), timeout=10)
        (mount / "..data_tmp").symlink_to(second.name)
        os.replace(mount / "..data_tmp", mount / "..data")
        await wait_until(lambda: sidecar.app[LIVE].version >= 2, "the new config is live", 20)
    finally:
        watch.cancel()
    async with sdk(sidecar.url, "tok-b") as b:
        assert (await b.chat.completions.create(model="m", messages=CHAT)).choices


async def test_a_budgets_spend_survives_a_reload_that_changes_its_limit(
        reloadable: Start, upstream: FakeUpstream, tmp_path: Path) -> None:
    """What a budget spent before the reload counts against its new limit, and a price change
    applies to the next request."""
    def config(limit: float, prompt: float) -> dict[str, Any]:
        return base(upstream, tmp_path, cache={"backend": "off"}, spend={
            "fetch_prices": False, "prices": {"m": {"prompt": prompt, "completion": 0.0}},
            "budgets": [{"name": "day", "limit_usd": limit}]})

    sidecar = await reloadable(config(1.0, 1e-3))
    async with sdk(sidecar.url) as client:
        raw = await client.chat.completions.with_raw_response.create(model="m", messages=CHAT)
        assert raw.headers["x-sidecar-cost-usd"] == "0.007"  # 7 prompt tokens x 0.001
        sidecar.write(config(0.5, 2e-3))
        assert (await sidecar.reload())[0] == 200
        raw = await client.chat.completions.with_raw_response.create(model="m", messages=CHAT)
        assert raw.headers["x-sidecar-cost-usd"] == "0.014"  # the new price
        assert raw.headers["x-sidecar-budget-remaining-usd"] == "0.479"  # 0.5 - 0.021
    ledger = sidecar.app[DEPS].ledger
    assert ledger is not None
    (day,) = await ledger.budgets()
    assert day["limit_usd"] == 0.5 and day["entries"][0]["spent_usd"] == pytest.approx(0.021)


async def test_breakers_survive_and_restart_only_settings_are_named(
        reloadable: Start, upstream: FakeUpstream, tmp_path: Path) -> None:
    """An open breaker stays open across a reload that keeps its provider; a changed port is
    not applied (the listener keeps serving) and is named in restart_required."""
    provider = {"name": "only", "base_url": upstream.url, "models": ["*"]}

    def config(port: int, timeout: float) -> dict[str, Any]:
        return base(upstream, tmp_path, providers=[provider], listen={"port": port},
                    breaker={"failures": 1, "open_s": 60}, retry={"attempts": 1},
                    cache={"backend": "off"}, upstream={"url": upstream.url,
                                                        "read_timeout_s": timeout})

    sidecar = await reloadable(config(4141, 600), clock=FakeClock())
    upstream.script("/chat/completions", Script(status=503, json={}))
    async with sdk(sidecar.url) as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="m", messages=CHAT)
        sidecar.write(config(4999, 30))
        status, result = await sidecar.reload()
        assert (status, result["restart_required"]) == (200, ["listen.port"])
        assert result["changed"] == ["upstream"]
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="m", messages=CHAT)
    assert caught.value.status_code == 502 and "circuit open" in str(caught.value.body)
    assert len(upstream.requests) == 1
    assert sidecar.app[DEPS].settings.listen.port == 4141
    assert sidecar.app[DEPS].settings.upstream.read_timeout_s == 30


async def test_requests_in_flight_across_many_reloads_all_succeed(
        reloadable: Start, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Twenty reloads while requests run concurrently: every request gets its answer."""
    sidecar = await reloadable(base(upstream, tmp_path, cache={"backend": "off"}))
    stop = asyncio.Event()

    async def traffic(client: openai.AsyncOpenAI) -> int:
        done = 0
        while not stop.is_set():
            answer = await client.chat.completions.create(model="m", messages=CHAT)
            assert answer.choices[0].message.content
            done += 1
        return done

    async with sdk(sidecar.url) as client:
        workers = [asyncio.ensure_future(traffic(client)) for _ in range(4)]
        for i in range(20):
            sidecar.write(base(upstream, tmp_path, cache={"backend": "off"},
                               retry={"attempts": 1 + i % 2}))
            status, _ = await sidecar.reload()
            assert status == 200
        stop.set()
        served = await asyncio.gather(*workers)
    assert sum(served) >= 4 and sidecar.app[LIVE].version == 21


async def test_sighup_the_watch_and_the_reload_command_on_the_real_process(
        tmp_path: Path, upstream: FakeUpstream) -> None:
    """`llm-sidecar serve --config`: a rewritten file is applied by the watch, SIGHUP reloads,
    and `llm-sidecar reload` does too; each shows as a new version in /sidecar/config."""
    path = tmp_path / "sidecar.yaml"
    port = free_port()

    def write(retries: int) -> None:
        path.write_text(yaml.safe_dump(base(upstream, tmp_path, retry={"attempts": retries},
                                            reload={"poll_s": 0.05})))

    write(1)
    proc = await asyncio.create_subprocess_exec(
        BIN, "serve", "--config", str(path), "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    async def version_reaches(version: int) -> None:
        async with aiohttp.ClientSession() as http:
            async def reached() -> bool:
                try:
                    async with http.get(url + "/sidecar/config") as response:
                        return response.status == 200 and (await response.json())[
                            "version"] >= version
                except aiohttp.ClientConnectionError:
                    return False

            await wait_until(reached, f"the config version is {version}", 30)

    try:
        await version_reaches(1)
        write(2)
        await version_reaches(2)
        proc.send_signal(signal.SIGHUP)
        await version_reaches(3)
        command = await asyncio.create_subprocess_exec(
            BIN, "reload", "--url", url, stdout=asyncio.subprocess.PIPE)
        out, _ = await command.communicate()
        assert command.returncode == 0 and orjson.loads(out)["version"] == 4
    finally:
        proc.terminate()
        await proc.wait()


async def test_an_expired_key_gets_a_401_saying_so_and_its_successor_serves(
        reloadable: Start, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Rotation with an overlap: the old key past its not_after gets 401 naming the key and
    when it expired; a key before its not_before is refused saying when it starts; the new key
    in its window is served."""
    rotation = {"required": True, "keys": [
        {"name": "old", "token": "tok-old", "not_after": "2020-01-01T00:00:00Z"},
        {"name": "new", "token": "tok-new", "not_before": "2020-01-01T00:00:00Z"},
        {"name": "later", "token": "tok-later", "not_before": "2999-01-01T00:00:00+00:00"}]}
    sidecar = await reloadable(base(upstream, tmp_path, auth=rotation))
    async with sdk(sidecar.url, "tok-old") as old, sdk(sidecar.url, "tok-new") as new, \
            sdk(sidecar.url, "tok-later") as later:
        with pytest.raises(openai.AuthenticationError) as expired:
            await old.chat.completions.create(model="m", messages=CHAT)
        assert "'old' expired at 2020-01-01T00:00:00Z" in str(expired.value.body)
        with pytest.raises(openai.AuthenticationError) as early:
            await later.chat.completions.create(model="m", messages=CHAT)
        assert "not valid before 2999-01-01T00:00:00Z" in str(early.value.body)
        assert (await new.chat.completions.create(model="m", messages=CHAT)).choices


async def test_auto_routers_arrive_by_reload_and_keep_their_pins(
        reloadable: Start, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A reload adds an auto router to a sidecar with spend off (its price book starts then);
    a later reload changes the router's prefer and the session's pin is kept (state, like the
    breakers); a third drops the router and sidecar/auto is a plain model name again."""
    from tests.fakes.auto import ASKS, TIERS
    off = {"ledger": "off", "fetch_prices": False}
    sidecar = await reloadable(base(upstream, tmp_path, spend=off))

    def routed(prefer: str) -> dict[str, Any]:
        return base(upstream, tmp_path, spend=off, cache={"backend": "off"}, auto={
            "routers": {"sidecar/auto": {"tiers": TIERS, "prefer": prefer}}})

    async def ask(text: str | None) -> str:
        body: dict[str, Any] = dict(ASKS["complex"] if text is None else {
            "messages": [{"role": "user", "content": text}]})
        async with sdk(sidecar.url) as client:
            await client.chat.completions.create(
                model="sidecar/auto", messages=body.pop("messages"),
                tools=body.pop("tools", openai.NOT_GIVEN), extra_body={"session_id": "s1"})
        model: str = orjson.loads(upstream.last.body)["model"]
        return model

    sidecar.write(routed("balanced"))
    assert (await sidecar.reload())[1]["applied"]
    assert await ask(None) == "test/big"
    sidecar.write(routed("cheap"))
    assert (await sidecar.reload())[1]["changed"] == ["auto"]
    assert await ask("thanks!") == "test/big"  # pinned across the reload
    sidecar.write(base(upstream, tmp_path, spend=off, cache={"backend": "off"}))
    assert (await sidecar.reload())[1]["applied"]
    assert await ask("thanks!") == "sidecar/auto"
