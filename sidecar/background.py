"""Work that goes on for a request after its client left: the background read of a cancelled
non-streamed call (pipeline/detach.py), so it is billed what the provider bills.

A Resource (deps.py). Each adopted call's upstream exchange keeps running in its own task, for
at most `spend.cancelled_read_s`, and at most `spend.cancelled_reads_max` at once (memory: one
answer each, as a served call holds); the call's finishers (its bill and ledger row, its access
line and spans) run when that exchange ends, whichever way. A call that cannot be adopted (full,
closing) is cut at once: its bill is then the worst case it held (spend/bill.py), never 0.
Closing waits up to `listen.shutdown_grace_s` for the reads in progress, then cuts the rest.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from sidecar.call import Call, Reply

__all__ = ["BackgroundReads"]

_log = structlog.get_logger("sidecar.background")


class BackgroundReads:
    name = "background reads"

    def __init__(self, *, limit: int, read_s: float, drain_s: float) -> None:
        self._limit = limit
        self._read_s = read_s
        self._drain_s = drain_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._idle: asyncio.Event | None = None
        self._news: asyncio.Event | None = None  # set (and replaced) at each adoption
        self.adopted = 0  # calls read after their client left, since start
        self.cut = 0  # of those, reads that did not end in time (or at shutdown)

    async def start(self) -> None:
        self._idle, self._news = asyncio.Event(), asyncio.Event()
        self._idle.set()

    async def close(self) -> None:
        self._closing = True
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=self._drain_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def problem(self) -> str | None:
        return None

    @property
    def reading(self) -> int:
        return len(self._tasks)

    async def wait_idle(self) -> None:
        """Until no read is in progress (tests, and the bench, wait on this)."""
        assert self._idle is not None
        await self._idle.wait()

    async def wait_adopted(self, count: int) -> None:
        """Until `count` calls were adopted since start (tests wait on this)."""
        while self.adopted < count:
            assert self._news is not None
            await self._news.wait()

    def adopt(self, call: Call, work: asyncio.Future[Reply]) -> bool:
        """Keep `work` (the rest of `call`'s pipeline) running now that its client left; the
        call's finishers run when it ends. False when it cannot (full, closing): the caller
        cuts the work."""
        if self._closing or len(self._tasks) >= self._limit or self._idle is None:
            return False
        call.finish_deferred = True
        task = asyncio.ensure_future(self._read(call, work))
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._forget)
        self.adopted += 1
        if self._news is not None:
            self._news.set()
            self._news = asyncio.Event()
        return True

    async def _read(self, call: Call, work: asyncio.Future[Reply]) -> None:
        try:
            reply = await asyncio.wait_for(work, self._read_s)  # cuts `work` when it is late
            await reply.discard()  # a stream nobody reads: closed (billed what was seen)
        except TimeoutError:
            self.cut += 1
            _log.warning("background_read_cut", request_id=call.request_id,
                         after_s=self._read_s)
        except asyncio.CancelledError:
            self.cut += 1  # shutdown: close() gave up waiting
            raise
        except Exception:
            _log.exception("background_read_failed", request_id=call.request_id)
        finally:
            call.finish_deferred = False
            call.finish()

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            with contextlib.suppress(asyncio.CancelledError):
                task.exception()  # retrieved: _read logs its own failures
        if not self._tasks and self._idle is not None:
            self._idle.set()
