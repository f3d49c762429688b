"""The real `llm-sidecar serve` process for the reliability tests about the process itself
(signals), with every feature on: its config file, its log in a file (a pipe nobody reads
would fill up and block it under load), requests with the local key, the ledger file."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.fakes.waits import wait_until
from tests.reliability.harness import TOKEN, Seen

BIN = str(Path(sys.executable).with_name("llm-sidecar"))
Serve = Callable[[dict[str, Any]], Awaitable["Served"]]


class Served:
    """One `llm-sidecar serve` process (started by the `serve` fixture)."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str, log: Path, state: Path
                 ) -> None:
        self.proc, self.url, self.log, self.state = proc, url, log, state

    @property
    def ledger(self) -> Path:
        return self.state / "ledger.db"

    def log_events(self, event: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_bytes().splitlines():
            if line.startswith(b"{") and f'"event":"{event}"'.encode() in line:
                out.append(orjson.loads(line))
        return out

    async def logged(self, event: str) -> dict[str, Any]:
        """Wait for the first log line of `event`."""
        await wait_until(lambda: bool(self.log_events(event)), f"the log has {event}", 30)
        return self.log_events(event)[0]

    async def exit_code(self) -> int:
        async with asyncio.timeout(40):
            return await self.proc.wait()

    async def post(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> Seen:
        async with session.post(f"{self.url}/v1/chat/completions", json=body,
                                headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            raw = await response.read()
            return Seen(response.headers["x-sidecar-request-id"], response.status,
                        dict(response.headers), raw)

    async def get_json(self, session: aiohttp.ClientSession, path: str) -> Any:
        async with session.get(f"{self.url}{path}") as response:
            assert response.status == 200, await response.text()
            return orjson.loads(await response.read())

    async def metric(self, session: aiohttp.ClientSession, name: str) -> float:
        async with session.get(f"{self.url}/metrics") as response:
            text = await response.text()
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no metric {name}")


def ledger_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of a ledger file, read-only (the file may belong to a running process)."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY id")]
    finally:
        db.close()


def consistency(path: Path) -> tuple[str, bool]:
    """(PRAGMA integrity_check, whether the per-day sums equal the rows they sum)."""
    db = sqlite3.connect(path)
    try:
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        rows = db.execute("SELECT COUNT(*), COALESCE(SUM(cost_nusd), 0) FROM requests"
                          ).fetchone()
        sums = db.execute("SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(cost_nusd), 0) "
                          "FROM daily WHERE scope = 'global'").fetchone()
        return str(check), tuple(rows) == tuple(sums)
    finally:
        db.close()
