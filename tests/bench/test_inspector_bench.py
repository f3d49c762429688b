"""bench/inspector.py: its page readers count events from a real sidecar's stream, and its
report puts each configuration against the no-page one."""

from __future__ import annotations

import asyncio

import aiohttp

from bench.inspector import follow, report
from sidecar.deps import DEPS
from tests.conftest import RunningSidecar
from tests.fakes.waits import wait_until


async def test_page_readers_count_the_request_events(sidecar: RunningSidecar) -> None:
    """Two followers each receive the event of a request made while they read."""
    counts = [0, 0]
    task = asyncio.ensure_future(follow(sidecar.url, 2, counts))
    inspector = sidecar.app[DEPS].inspector
    assert inspector is not None
    await wait_until(lambda: inspector.followers == 2, "both readers follow the events")
    async with aiohttp.ClientSession() as session:
        async with session.post(sidecar.v1 + "/chat/completions",
                                json={"model": "m", "messages": []}) as response:
            assert response.status == 200
    await wait_until(lambda: counts == [1, 1], "each reader got the request's event")
    task.cancel()
    assert counts == [1, 1]


def test_report_compares_with_no_page() -> None:
    """Each row's throughput is given as a share of the no-page row's."""
    run = {"driver": "wrk", "pages": {
        0: {"rps": 1000.0, "cpu_us_per_request": 150.0, "requests": 1, "events_per_page": 0},
        10: {"rps": 900.0, "cpu_us_per_request": 160.0, "requests": 1,
             "events_per_page": 1234.0}}}
    table = report(run)
    assert "| 0 | 1000 | 100.0 % | 150 | — |" in table
    assert "| 10 | 900 | 90.0 % | 160 | 1,234 |" in table
