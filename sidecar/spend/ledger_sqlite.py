"""The default ledger: budgets and rate limits in this process's memory, rows in a SQLite file.

Admission is reservations.py (exact within one process). Rows are queued by the requests'
finishers and written in batches by one thread of the ledger's own (the event loop never waits
for the disk), every `spend.flush_interval_s`, and once more when the app closes: SIGTERM loses
nothing, SIGKILL at most one interval. At start the file is created if missing, then each
budget's current window is rebuilt from it (sqlite_store.py, milliseconds with a million rows)
before the first request is admitted.

When the file cannot be opened or written (read-only, full, gone), the process keeps running:
rows stay queued (up to `spend.max_pending_rows`, oldest dropped beyond, counted) and are
retried every interval; the outage is logged once, when it starts, and again when it ends, and
each failure counts in `llm_sidecar_ledger_errors_total`. With `on_ledger_error: fail_closed`
the spend stage refuses requests (503 ledger_unavailable) and /readyz reports the reason until
the ledger writes again; with `fail_open` requests are served and the rows wait in memory. A
file that opens late is rebuilt then (rows before this start only: what this process admitted,
it counted itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from sidecar.config.schema import Settings
from sidecar.config.spend import SpendSettings
from sidecar.spend.ledger import FLUSH_ROWS, LedgerDown, Row
from sidecar.spend.policy import Ask, BudgetRule, Grant, Policy, Refusal
from sidecar.spend.pricing import to_usd
from sidecar.spend.reservations import Reservations
from sidecar.spend.sqlite_store import Store
from sidecar.spend.usage import budget_view, parse_query
from sidecar.spend.windows import window_start
from sidecar.telemetry.metrics import Metrics

T = TypeVar("T")
_log = structlog.get_logger("sidecar.spend.ledger")


class SqliteLedger:
    name = "spend ledger"

    def __init__(self, settings: Settings, metrics: Metrics, path: Path,
                 clock: Callable[[], float] = time.time) -> None:
        self.policy = Policy(settings.spend)
        self.clock = clock
        self.path = path
        self._spend = settings.spend
        self._metrics = metrics
        self._store = Store(path)
        self.reservations = Reservations(self.policy)
        self._pending: list[Row] = []
        self._executor: ThreadPoolExecutor | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._early: asyncio.Future[None] | None = None  # a flush started by a long queue
        self._lock = asyncio.Lock()
        self._room: asyncio.Future[None] | None = None  # resolved by the next settlement
        self._opened = False
        self._outage: str | None = None
        self._boot = 0.0
        self.dropped = 0

    # -- lifetime ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="spend-ledger")
        self._boot = self.clock()
        await self._open()
        self._ticker = asyncio.ensure_future(self._tick_forever())

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._early is not None:
            await self._early
        await self.flush()
        if self._pending:
            _log.error("ledger_rows_lost", rows=len(self._pending), path=str(self.path),
                       reason=self._outage)
        if self._executor is not None:
            with contextlib.suppress(sqlite3.Error):
                await self._in_thread(self._store.close)
            self._executor.shutdown(wait=True)

    def problem(self) -> str | None:
        if self._outage is None or self._spend.on_ledger_error == "fail_open":
            return None
        return f"spend ledger {self.path}: {self._outage}"

    @property
    def healthy(self) -> bool:
        return self._opened and self._outage is None

    # -- admission --------------------------------------------------------------------------

    async def admit(self, ask: Ask) -> Grant | Refusal:
        return self.reservations.admit(ask)

    async def wait_for_room(self, at_most_s: float) -> None:
        # One future for every waiter, resolved by the next settlement: each wakes once per
        # settlement and tries again (an admission is a few microseconds in memory).
        room = self._room
        if room is None or room.done():
            room = self._room = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(room), at_most_s)

    def settle(self, grant: Grant, cost: int, tokens: int) -> int | None:
        remaining = self.reservations.settle(grant, cost, tokens)
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)
        return remaining

    def charge(self, budgets: list[tuple[BudgetRule, str]], ts: float, cost: int) -> None:
        for rule, value in budgets:  # (admission here never fails: budgets are in memory)
            self.reservations.add_spent(rule, value, ts, cost)

    # -- rows ---------------------------------------------------------------------------------

    def record(self, row: Row) -> None:
        pending = self._pending
        pending.append(row)
        if len(pending) > self._spend.max_pending_rows:
            del pending[0]
            self.dropped += 1
            self._metrics.ledger_error("dropped")
        elif len(pending) >= FLUSH_ROWS and self._early is None and self.healthy:
            self._early = asyncio.ensure_future(self._flush_early())

    async def _flush_early(self) -> None:
        try:
            await self.flush()
        finally:
            self._early = None

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending or not self._opened:
                return
            batch, self._pending = self._pending, []
            try:
                await self._in_thread(self._store.write, batch)
            except Exception as exc:
                if _disk_trouble(exc):  # full, read-only, locked, corrupt: keep, retry later
                    self._pending[:0] = batch
                    overflow = len(self._pending) - self._spend.max_pending_rows
                    if overflow > 0:
                        del self._pending[:overflow]
                        self.dropped += overflow
                    self._failed("write", exc)
                    return
                # A row the store cannot take (bad data: a bug): save the others.
                lost = await self._in_thread(self._write_one_by_one, batch)
                if lost:
                    self.dropped += lost
                    _log.exception("ledger_rows_unwritable", rows=lost)
            self._recovered()

    def _write_one_by_one(self, batch: list[Row]) -> int:
        """Write each row on its own; return how many could not be written."""
        lost = 0
        for row in batch:
            try:
                self._store.write([row])
            except Exception:
                lost += 1
        return lost

    # -- reports ------------------------------------------------------------------------------

    async def usage(self, window: str, by: str) -> dict[str, Any]:
        span, dimension = parse_query(window, by)
        await self.flush()
        if not self._opened:
            raise LedgerDown(self._outage or "the ledger file is not open")
        return await self._in_thread(self._store.usage, span, dimension, self.clock())

    async def budgets(self) -> list[dict[str, Any]]:
        now = self.clock()
        out = []
        for rule in self.policy.budgets:
            entries = self.reservations.entries(rule, now)
            out.append(budget_view(rule, window_start(rule.window, now),
                                   [(v, c.spent, c.reserved) for v, c in entries]))
        return out

    async def reconfigure(self, spend: SpendSettings) -> None:
        """A budget whose definition is unchanged keeps its counters (a new limit applies to
        the money already spent); one that is new, or whose scope, window or match changed, is
        totalled from the file (after writing what is queued), like at start. A request in
        flight across the reload is held against the budgets it was admitted under only."""
        policy = Policy(spend)
        fresh = self.reservations.reconfigure(policy)
        self.policy = policy
        if fresh and self._opened:
            await self.flush()
            try:
                totals = await self._in_thread(self._store.totals, fresh, self.clock(), None)
            except (sqlite3.Error, OSError) as exc:
                self._failed("read", exc)
                return
            now = self.clock()
            for rule, value, amount in totals:
                self.reservations.add_spent(rule, value, now, amount)

    # -- internals ----------------------------------------------------------------------------

    async def _open(self) -> None:
        try:
            totals = await self._in_thread(self._open_and_total)
        except (sqlite3.Error, OSError) as exc:
            self._failed("open", exc)
            return
        now = self.clock()
        for rule, value, amount in totals:
            self.reservations.add_spent(rule, value, now, amount)
        self._opened = True
        self._recovered()

    def _open_and_total(self) -> list[Any]:
        self._store.close()
        self._store.open()
        # Opened at start, every row is from before: the daily sums alone answer (166 ms ->
        # 8-44 ms with a million rows). Opened late, this process's own rows must be left out.
        late = self._ticker is not None
        return self._store.totals(self.policy.budgets, self.clock(),
                                  self._boot if late else None)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._spend.flush_interval_s)
            try:
                if not self._opened:
                    await self._open()
                await self.flush()
                self._update_gauges()
            except Exception:  # never let the writer die: the next tick tries again
                _log.exception("ledger_tick_failed")

    def _update_gauges(self) -> None:
        now = self.clock()
        self.reservations.sweep(now)
        for rule in self.policy.budgets:
            rooms = [rule.limit - c.spent - c.reserved
                     for _, c in self.reservations.entries(rule, now)]
            if rooms:
                self._metrics.set_budget_remaining(rule.name, to_usd(min(rooms)))

    def _failed(self, operation: str, exc: BaseException) -> None:
        self._metrics.ledger_error(operation)
        reason = f"cannot {operation} the ledger file: {exc}"
        if self._outage is None:
            _log.error("ledger_unavailable", path=str(self.path), error=reason,
                       on_ledger_error=self._spend.on_ledger_error,
                       pending_rows=len(self._pending))
        self._outage = reason

    def _recovered(self) -> None:
        if self._outage is not None:
            _log.info("ledger_recovered", path=str(self.path), dropped_rows=self.dropped)
            self._outage = None

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


def _disk_trouble(exc: Exception) -> bool:
    """The file, not the rows: sqlite's OperationalError (full, read-only, locked), a bare
    DatabaseError (a corrupt file) or an OSError. Other sqlite errors mean a row it cannot take."""
    return isinstance(exc, (sqlite3.OperationalError, OSError)) or (
        type(exc) is sqlite3.DatabaseError)
