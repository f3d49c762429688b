"""The inspector's memory and its fan-out: a ring of recent request records, followed by any
number of open pages.

Cheap when nobody watches: a finished request costs one record, one ring append (a bounded
deque) and one stats update; nothing is rendered or sent. With pages open, `add` also sets one
event; each page's follower wakes at most every `interval_s`, takes the records that came since
the last one it sent (at most `batch` of the newest, counting the rest as skipped), and writes
them. So a page costs the same whether 1 or 10,000 requests passed in that interval, no request
ever waits for a page, and memory never grows with a slow page: the ring is all there is. A
page whose socket does not take a batch within `write_timeout_s` is dropped; its EventSource
reconnects on its own and resumes from the last id it saw.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from sidecar.call import Call
from sidecar.inspector.records import ContentStore, RequestRecord, record_of
from sidecar.inspector.stats import ModelStats


class Inspector:
    """A Resource (deps.py): nothing to open; `close` ends every page's stream."""

    name = "request inspector"

    def __init__(self, size: int, *, capture_content: bool, interval_s: float = 0.25,
                 batch: int = 200, write_timeout_s: float = 5.0) -> None:
        self.size = size
        self._ring: deque[RequestRecord] = deque(maxlen=size)
        self._seq = 0
        self._wake: asyncio.Event | None = None
        self._followers = 0
        self._closed = False
        self.interval_s = interval_s
        self.batch = batch
        self.write_timeout_s = write_timeout_s
        self.stats = ModelStats()
        self.content = ContentStore(size) if capture_content else None

    def capture(self, on: bool) -> None:
        """Live reload: keep content from now on, or stop (what was kept is dropped)."""
        if on and self.content is None:
            self.content = ContentStore(self.size)
        elif not on:
            self.content = None

    async def start(self) -> None:
        self._wake = asyncio.Event()

    async def close(self) -> None:
        self._closed = True
        if self._wake is not None:
            self._wake.set()

    def problem(self) -> str | None:
        return None

    @property
    def followers(self) -> int:
        return self._followers

    @property
    def last_seq(self) -> int:
        return self._seq

    def add(self, call: Call) -> None:
        """A finisher: record the finished call."""
        self._seq += 1
        record = record_of(call, self._seq)
        self._ring.append(record)
        if record.model is not None:
            self.stats.add(record.model, record.latency_ms, record.status >= 400
                           or record.outcome != "ok")
        if self._followers and self._wake is not None:
            self._wake.set()

    def since(self, seq: int, limit: int) -> tuple[list[RequestRecord], int]:
        """Records after `seq`, oldest first: at most `limit` of the newest, and how many
        newer-than-`seq` records were left out (skipped, or already gone from the ring)."""
        newer = [r for r in reversed(self._ring) if r.seq > seq]  # newest first
        missing = max(0, self._seq - seq - len(newer))
        kept = newer[:limit]
        kept.reverse()
        return kept, missing + len(newer) - len(kept)

    def find(self, request_id: str) -> RequestRecord | None:
        return next((r for r in reversed(self._ring) if r.request_id == request_id), None)

    async def follow(self, after: int) -> AsyncIterator[tuple[list[RequestRecord], int]]:
        """Batches of new records for one page, until the inspector closes. Yields an empty
        batch every 15 s so the page's connection is known to be alive."""
        assert self._wake is not None, "Inspector.start() was not awaited"
        self._followers += 1
        try:
            last = after
            while not self._closed:
                try:
                    await asyncio.wait_for(self._wait_newer(last), timeout=15)
                except TimeoutError:
                    yield [], 0
                    continue
                await asyncio.sleep(self.interval_s)  # coalesce: a page's cost is per interval
                if self._closed:
                    return
                records, skipped = self.since(last, self.batch)
                if records:
                    last = records[-1].seq
                elif skipped:
                    last = self._seq
                yield records, skipped
        finally:
            self._followers -= 1

    async def _wait_newer(self, last: int) -> None:
        assert self._wake is not None
        while self._seq <= last and not self._closed:
            self._wake.clear()
            await self._wake.wait()
