"""The SQLite ledger resource: rows written in batches off the event loop, at once when the
queue grows long, all of them at close, and bounded in memory while the file cannot be written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.config import Settings
from sidecar.spend.ledger import FLUSH_ROWS, Row
from sidecar.spend.ledger_sqlite import SqliteLedger
from sidecar.telemetry.metrics import Metrics
from tests.fakes.spend import rows
from tests.fakes.waits import wait_until


def row(i: int) -> Row:
    return Row(ts=1_795_000_000.0 + i, request_id=str(i), endpoint="chat/completions",
               key_name=None, user=None, tags=(), model="m", requested_model="m",
               provider="upstream", cost=10, status=200)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqliteLedger]:
    settings = Settings.model_validate({"spend": {"flush_interval_s": 3600,
                                                  "max_pending_rows": FLUSH_ROWS + 100}})
    ledger = SqliteLedger(settings, Metrics(), tmp_path / "ledger.db")
    await ledger.start()
    yield ledger
    await ledger.close()


async def test_a_long_queue_is_written_without_waiting_for_the_interval(
        ledger: SqliteLedger) -> None:
    """FLUSH_ROWS queued rows are written at once (an hour-long interval notwithstanding), so
    a busy sidecar never fills its queue between two intervals."""
    for i in range(FLUSH_ROWS):
        ledger.record(row(i))
    await wait_until(lambda: len(rows(ledger.path)) == FLUSH_ROWS, "every row is written")


async def test_close_writes_every_queued_row(tmp_path: Path) -> None:
    """Closing (SIGTERM's path) writes what is still queued: nothing is lost."""
    settings = Settings.model_validate({"spend": {"flush_interval_s": 3600}})
    ledger = SqliteLedger(settings, Metrics(), tmp_path / "ledger.db")
    await ledger.start()
    for i in range(7):
        ledger.record(row(i))
    await ledger.close()
    assert [r["request_id"] for r in rows(tmp_path / "ledger.db")] == [str(i) for i in range(7)]


async def test_rows_wait_while_the_file_cannot_be_written_and_are_bounded(
        ledger: SqliteLedger) -> None:
    """A failing write keeps the batch (and reports the outage); beyond max_pending_rows the
    oldest rows are dropped and counted; once the file takes writes again the rest is written."""
    store = ledger._store  # SQLite itself refuses writes: "attempt to write a readonly database"
    await ledger._in_thread(lambda: store.db.execute("PRAGMA query_only = 1"))
    for i in range(10):
        ledger.record(row(i))
    await ledger.flush()
    assert not ledger.healthy and ledger.problem() is not None
    for i in range(10, FLUSH_ROWS + 150):
        ledger.record(row(i))
    assert (len(ledger._pending), ledger.dropped) == (FLUSH_ROWS + 100, 50)
    await ledger._in_thread(lambda: store.db.execute("PRAGMA query_only = 0"))
    await ledger.flush()
    assert ledger.healthy
    written = rows(ledger.path)
    assert len(written) == FLUSH_ROWS + 100 and written[0]["request_id"] == "50"


async def test_a_row_the_store_cannot_take_loses_only_itself(ledger: SqliteLedger) -> None:
    """A row that makes the write fail with a bug (not a disk error) is dropped and counted;
    the other rows of its batch are written, not lost with it."""
    bad = row(1)
    bad.user = object()  # type: ignore[assignment]  # sqlite cannot bind it
    for r in (row(0), bad, row(2)):
        ledger.record(r)
    await ledger.flush()
    assert [r["request_id"] for r in rows(ledger.path)] == ["0", "2"]
    assert ledger.dropped == 1
