"""The SQLite ledger's durability, with real files and the real `llm-sidecar serve` process:
budgets survive a restart, SIGTERM under load loses no row, SIGKILL keeps what was flushed, and
a read-only or full disk gives the configured failure mode without crashing the process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from tests.conftest import Profile, StartSidecar, free_port
from tests.fakes.metered import Metered
from tests.fakes.profiles import ALL, fresh
from tests.fakes.spend import MODEL, get_json, ledger_of, rows
from tests.fakes.waits import wait_ready, wait_until

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

BIN = str(Path(sys.executable).with_name("llm-sidecar"))
PRICES = {MODEL: {"prompt": 0, "completion": 1e-6}}  # a 10-token answer costs 10 micro-USD

# The cache off in the module profile (start_sidecar and serve merge SIDECAR_BASE under each
# config); in the others each request sends a prompt of its own (a hit would cost 0).
SIDECAR_BASE = {"cache": {"backend": "off"}}


def chat(**extra: Any) -> dict[str, Any]:
    """A 10-token request with a prompt of its own (the cache, on in most profiles, answers
    none): each is billed."""
    return {"model": MODEL, "messages": [{"role": "user", "content": fresh("x")}],
            "max_tokens": 10, **extra}


class Process:
    """A real `llm-sidecar serve` with a config file."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc, self.url = proc, url

    async def log_line(self, event: str) -> None:
        """Wait for the log line of `event` on the process's stdout."""
        assert self.proc.stdout is not None
        while line := await asyncio.wait_for(self.proc.stdout.readline(), timeout=30):
            if f'"event":"{event}"'.encode() in line:
                return
        raise AssertionError(f"no {event} line")

    async def sigterm(self) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        await asyncio.wait_for(self.proc.communicate(), timeout=30)
        assert self.proc.returncode is not None
        return self.proc.returncode


Serve = Callable[[dict[str, Any]], Awaitable[Process]]


@pytest.fixture
async def serve(tmp_path: Path, profile: Profile) -> AsyncIterator[Serve]:
    """`llm-sidecar serve` in the test's profile, with the test's config (which names its
    upstream) on top."""
    started: list[Process] = []

    async def start(config: dict[str, Any]) -> Process:
        port = free_port()
        path = tmp_path / f"sidecar-{len(started)}.yaml"
        path.write_text(yaml.safe_dump(profile.config(
            config["upstream"]["url"], str(tmp_path), config, module_base=SIDECAR_BASE)))
        proc = await asyncio.create_subprocess_exec(
            BIN, "serve", "--config", str(path), "--port", str(port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "SIDECAR_STATE_DIR": str(tmp_path)})
        process = Process(proc, f"http://127.0.0.1:{port}")
        started.append(process)
        await wait_ready(process.url, returncode=lambda: proc.returncode)
        return process

    yield start
    for process in started:
        if process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()


async def post(url: str, body: dict[str, Any]) -> int:
    async with aiohttp.ClientSession() as session, session.post(
            url + "/v1/chat/completions", json=body) as response:
        await response.read()
        return response.status


async def test_budgets_survive_a_restart(serve: Serve, metered: Metered, tmp_path: Path) -> None:
    """Spend is rebuilt from the ledger file at start: a budget spent before a restart is still
    spent after it, and the rows are all there."""
    config = {"upstream": {"url": metered.url}, "spend": {
        "ledger": f"sqlite:///{tmp_path}/ledger.db", "prices": PRICES,
        "budgets": [{"name": "cap", "limit_usd": 30e-6}]}}
    first = await serve(config)
    assert [await post(first.url, chat()) for _ in range(3)] == [200, 200, 200]
    assert await first.sigterm() == 0
    assert len(rows(tmp_path / "ledger.db")) == 3

    second = await serve(config)
    budget = (await get_json(second.url + "/sidecar/budgets"))["budgets"][0]
    assert (budget["spent_usd"], budget["remaining_usd"]) == (30e-6, 0.0)
    assert await post(second.url, chat()) == 402
    usage = await get_json(second.url + "/sidecar/usage?window=all")
    assert (usage["total_requests"], usage["total_cost_usd"]) == (3, 30e-6)
    assert await second.sigterm() == 0


async def test_sigterm_under_load_loses_nothing(serve: Serve, metered: Metered,
                                               tmp_path: Path) -> None:
    """SIGTERM with 40 requests in flight (half of them streams): every one finishes, the
    process exits 0, and the ledger holds all 40 rows and their cost."""
    metered.gate = asyncio.Event()
    process = await serve({"upstream": {"url": metered.url}, "spend": {
        "prices": PRICES, "flush_interval_s": 60}})  # only the shutdown flush writes rows
    tasks = [asyncio.ensure_future(post(process.url, chat(stream=bool(i % 2))))
             for i in range(40)]
    await metered.arrived(40)
    os.kill(process.proc.pid, signal.SIGTERM)
    await process.log_line("draining")  # the 40 are in flight while the sidecar shuts down
    metered.gate.set()
    assert await asyncio.gather(*tasks) == [200] * 40
    assert await process.sigterm() == 0
    found = rows(tmp_path / "ledger.db")
    assert len(found) == 40
    assert sum(r["cost_nusd"] for r in found) == 40 * 10_000


async def test_sigkill_keeps_what_was_flushed(serve: Serve, metered: Metered,
                                             tmp_path: Path) -> None:
    """A row is on disk within one flush interval; SIGKILL right after loses none of it and
    leaves a file that opens cleanly."""
    process = await serve({"upstream": {"url": metered.url}, "spend": {
        "prices": PRICES, "flush_interval_s": 0.05}})
    assert [await post(process.url, chat()) for _ in range(5)] == [200] * 5
    await wait_until(lambda: len(rows(tmp_path / "ledger.db")) == 5, "five rows on disk")
    process.proc.kill()
    await process.proc.wait()
    assert len(rows(tmp_path / "ledger.db")) == 5


def unwritable_dir(tmp_path: Path) -> Path:
    """A directory nobody may create files in: a read-only one, or, for root (who ignores
    permissions), one under /sys, where not even root can."""
    if os.geteuid() == 0:
        return Path("/sys/llm-sidecar-ledger")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    return readonly / "state"


@pytest.mark.parametrize(("mode", "status", "ready"), [("fail_closed", 503, 503),
                                                       ("fail_open", 200, 200)])
async def test_read_only_ledger_directory(start_sidecar: StartSidecar, metered: Metered,
                                          tmp_path: Path, mode: str, status: int,
                                          ready: int) -> None:
    """A ledger that cannot be created never crashes the process: fail_closed refuses with 503
    ledger_unavailable and /readyz names the reason; fail_open serves; both count the error."""
    path = unwritable_dir(tmp_path) / "ledger.db"
    sidecar = await start_sidecar({"upstream": {"url": metered.url}, "spend": {
        "ledger": f"sqlite:///{path}", "on_ledger_error": mode, "prices": PRICES}})
    async with aiohttp.ClientSession() as session:
        async with session.post(sidecar.v1 + "/chat/completions", json=chat()) as response:
            assert response.status == status
            if status == 503:
                body = orjson.loads(await response.read())
                assert body["error"]["code"] == "ledger_unavailable"
                assert response.headers["Retry-After"] == "1"
        async with session.get(sidecar.url + "/readyz") as response:
            assert response.status == ready
            if ready == 503:
                assert str(path) in await response.text()
        async with session.get(sidecar.url + "/healthz") as response:
            assert response.status == 200
        async with session.get(sidecar.url + "/metrics") as response:
            assert 'llm_sidecar_ledger_errors_total{operation="open"} 1.0' in (
                await response.text())


async def test_full_disk_then_recovery_loses_nothing(start_sidecar: StartSidecar,
                                                     metered: Metered, tmp_path: Path) -> None:
    """When writes start failing (SQLite's own "database or disk is full"), fail_closed refuses
    new requests and keeps the unwritten rows; once there is room they are written: every
    served request has its row."""
    sidecar = await start_sidecar({"upstream": {"url": metered.url}, "spend": {
        "prices": PRICES, "flush_interval_s": 0.05}})
    ledger = ledger_of(sidecar)
    pages = await ledger._in_thread(
        lambda: ledger._store.db.execute("PRAGMA page_count").fetchone()[0])
    await ledger._in_thread(  # a disk with not one free page
        lambda: ledger._store.db.execute(f"PRAGMA max_page_count = {pages}"))
    statuses: list[int] = []

    async def refused() -> bool:  # served until a flush fails and the ledger says so
        statuses.append(await post(sidecar.url, chat()))
        return statuses[-1] == 503

    await wait_until(refused, "a request is refused once a ledger write failed")
    assert set(statuses[:-1]) == {200}
    await ledger._in_thread(lambda: ledger._store.db.execute("PRAGMA max_page_count = 1000000"))

    async def served() -> bool:
        return await post(sidecar.url, chat()) == 200

    await wait_until(served, "a request is served once the ledger writes again")
    await ledger.flush()
    assert len(rows(tmp_path / "ledger.db")) == statuses.count(200) + 1
