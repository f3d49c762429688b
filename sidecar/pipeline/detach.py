"""The detach stage: a non-streamed call whose client leaves is still read to the end, in the
background, so it is billed what the provider bills (issue 18).

Right below spend: the rest of the pipeline (answer, route) runs in a task of its own that the
request's task awaits through `asyncio.shield`. When the cache is on, the cache stage detaches
instead (`Detach.run`), and only what goes upstream: a hit, which reads nothing, pays no task
and no shield (8-11 µs a request under load, py-spy), and a miss is detached as it was.

When the client leaves (aiohttp cancels the request's task), that task is handed to
`BackgroundReads` (background.py), which reads the answer (the answer stage records its usage)
and then runs the call's finishers: spend bills the usage, and its hold stays held until then,
so cancelling can never pass a budget. When it cannot be adopted (too many at once, shutting
down), the work is cut and spend bills the hold (spend/bill.py: an answer never read costs its
worst case).

Streams are not detached: a stream the client leaves is closed at once and billed what was
generated up to the cut (the meter counts it, spend/stream.py). Present with the spend stage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from sidecar.background import BackgroundReads
from sidecar.call import Call, Next, Reply

__all__ = ["Detach"]


class Detach:
    name = "detach"
    reads_answer = False

    def __init__(self, reads: BackgroundReads) -> None:
        self._reads = reads

    async def __call__(self, call: Call, next: Next) -> Reply:
        return await self.run(call, next(call))

    async def run(self, call: Call, rest: Awaitable[Reply]) -> Reply:
        """`rest` (what is left of the call) in a task of its own, adopted by the background
        reads when the request's task is cancelled; a stream's is awaited as it is."""
        if call.stream:
            return await rest
        work = asyncio.ensure_future(rest)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            if work.done() or not self._reads.adopt(call, work):
                work.cancel()
            raise
