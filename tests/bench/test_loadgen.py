"""The asyncio generator's stream accounting: events, first event, gaps and coalescing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from bench.loadgen import StreamTimes, open_loop
from bench.upstream import create_upstream


def test_each_event_in_its_own_read_is_not_coalesced() -> None:
    """Events read one by one give their arrival times, gaps between them, no coalescing."""
    times = StreamTimes()
    for i, now in enumerate((1.0, 1.01, 1.02)):
        times.feed(f"data: {{\"i\": {i}}}\n\n".encode(), now)
    times.feed(b"data: [DONE]\n\n", 1.03)
    assert times.first == 1.0
    assert times.times == [1.0, 1.01, 1.02]
    assert times.gaps() == pytest.approx([0.01, 0.01])
    assert times.coalesced == 0


def test_events_sharing_a_read_are_coalesced() -> None:
    """Two events completed by one read count one coalesced; [DONE] alongside does not."""
    times = StreamTimes()
    times.feed(b"data: a\n\n", 1.0)
    times.feed(b"data: b\n\ndata: c\n\ndata: [DONE]\n\n", 1.02)
    assert times.coalesced == 1
    assert times.gaps() == pytest.approx([0.02, 0.0])


def test_an_event_split_over_reads_counts_when_it_completes() -> None:
    """A partial event waits for its end; CRLF framing is understood; comments are not events."""
    times = StreamTimes()
    times.feed(b": keep-alive\r\n\r\ndata: {\"x\":", 1.0)
    assert times.first is None
    times.feed(b" 1}\r\n\r\n", 1.5)
    assert times.first == 1.5 and times.times == [1.5] and times.coalesced == 0
    times.feed(b"event: delta\ndata: {}\n\n", 1.6)
    assert times.times == [1.5, 1.6]


@pytest.fixture
async def fake_upstream() -> AsyncIterator[str]:
    runner = web.AppRunner(create_upstream(chunks=4, pacing_s=0.002), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
    await runner.cleanup()


async def test_open_loop_times_every_event_of_every_stream(fake_upstream: str) -> None:
    """At a fixed rate, each stream yields one first-event time and one gap per later event."""
    body = orjson.dumps({"model": "m", "messages": [], "stream": True})
    result = await open_loop(fake_upstream, body, {}, rate=50, duration=0.2)
    assert result["requests"] == 10 and result["errors"] == 0 and result["non_2xx"] == 0
    assert len(result["ttft_ms"]) == 10
    assert result["events"] == 40
    assert len(result["gaps_ms"]) == 30


async def test_open_loop_leaves_json_answers_untimed_inside(fake_upstream: str) -> None:
    """JSON answers give latency samples only: no stream figures."""
    body = orjson.dumps({"model": "m", "messages": []})
    result = await open_loop(fake_upstream, body, {}, rate=50, duration=0.1)
    assert len(result["samples_ms"]) == 5
    assert result["ttft_ms"] == [] and result["events"] == 0
