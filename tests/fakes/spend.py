"""Helpers for the spend tests: price config, reading the ledger, a settable clock."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from sidecar.deps import DEPS
from tests.conftest import RunningSidecar

MODEL = "test/model"
PROMPT_USD = 0.000001  # per token
COMPLETION_USD = 0.000002


def priced(extra: dict[str, Any] | None = None, **price: float) -> dict[str, Any]:
    """A spend config pricing MODEL (1 and 2 micro-USD a token unless given)."""
    spend: dict[str, Any] = {"prices": {MODEL: {"prompt": PROMPT_USD,
                                                "completion": COMPLETION_USD, **price}}}
    spend.update(extra or {})
    return {"spend": spend}


def ledger_of(sidecar: RunningSidecar) -> Any:
    ledger = sidecar.app[DEPS].ledger
    assert ledger is not None
    return ledger


async def flush(sidecar: RunningSidecar) -> None:
    await ledger_of(sidecar).flush()


def rows(path: Path) -> list[dict[str, Any]]:
    """Every row of a SQLite ledger file, as dicts."""
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY id")]
    finally:
        db.close()


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, await response.text()
        return orjson.loads(await response.read())


async def sse_events(response: aiohttp.ClientResponse) -> list[bytes]:
    """The data payloads of a whole event stream, [DONE] included."""
    text = await response.read()
    return [line[6:] for line in text.split(b"\n") if line.startswith(b"data: ")]


@dataclass
class Clock:
    """A Unix clock the test moves by hand (the ledger's `clock`)."""

    now: float

    def __call__(self) -> float:
        return self.now
