"""Background reads: an adopted call's finishers wait for its work; beyond the limit a call is
not adopted; closing waits for reads in progress, then cuts them (and their calls finish)."""

from __future__ import annotations

import asyncio

from multidict import CIMultiDict

from sidecar.background import BackgroundReads
from sidecar.call import Call, Reply
from tests.fakes.calls import make_call


def finished_when(call: Call) -> asyncio.Event:
    done = asyncio.Event()
    call.finishers.append(lambda c: done.set())
    return done


async def test_finishers_wait_for_the_adopted_work() -> None:
    """Call.finish does nothing while the work goes on; the finishers run once it ends."""
    reads = BackgroundReads(limit=2, read_s=60, drain_s=1)
    await reads.start()
    gate = asyncio.Event()

    async def work() -> Reply:
        await gate.wait()
        return Reply(200, CIMultiDict(), body=b"{}")

    call = make_call()
    done = finished_when(call)
    assert reads.adopt(call, asyncio.ensure_future(work()))
    call.finish()  # the handler's: deferred
    await asyncio.sleep(0)
    assert not done.is_set() and reads.reading == 1
    gate.set()
    await reads.wait_idle()
    assert done.is_set() and reads.cut == 0
    await reads.close()


async def test_the_limit_and_closing() -> None:
    """A call beyond the limit is not adopted; close cuts what does not end in time, and the
    cut call still finishes."""
    reads = BackgroundReads(limit=1, read_s=60, drain_s=0.01)
    await reads.start()
    never = asyncio.Event()

    async def work() -> Reply:
        await never.wait()
        return Reply(200, CIMultiDict(), body=b"{}")

    first, second = make_call(), make_call()
    done = finished_when(first)
    task = asyncio.ensure_future(work())
    assert reads.adopt(first, task)
    other = asyncio.ensure_future(work())
    assert not reads.adopt(second, other)
    other.cancel()
    await reads.close()
    assert done.is_set() and task.cancelled() and reads.cut == 1
    late = asyncio.ensure_future(work())
    assert not reads.adopt(make_call(), late)  # closing: not adopted
    late.cancel()
