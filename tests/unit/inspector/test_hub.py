"""The inspector's memory and fan-out: a bounded ring, batches that cost the same whatever the
traffic, per-model statistics, bounded content, and a slow page dropped, never waited for."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.inspector import ContentStore, Inspector, ModelStats
from sidecar.inspector.stats import MAX_MODELS
from tests.fakes.calls import finished


async def test_ring_keeps_the_newest_and_counts_what_it_dropped() -> None:
    """The ring holds `size` records; `since` reports what it no longer has as skipped."""
    inspector = Inspector(3, capture_content=False)
    await inspector.start()
    for call in finished(5):
        inspector.add(call)  # type: ignore[arg-type]
    records, skipped = inspector.since(0, 100)
    assert [r.request_id for r in records] == ["r2", "r3", "r4"]
    assert skipped == 2
    records, skipped = inspector.since(3, 1)  # only the newest one, r3 left out
    assert [r.request_id for r in records] == ["r4"] and skipped == 1
    assert inspector.find("r4") is not None and inspector.find("r0") is None


async def test_a_follower_gets_one_batch_per_interval_whatever_the_traffic() -> None:
    """1,000 requests in one interval reach a page as one batch of the newest `batch` records
    and a skipped count, not as 1,000 writes."""
    inspector = Inspector(5000, capture_content=False, interval_s=0.05, batch=100)
    await inspector.start()
    follow = inspector.follow(0)
    first = asyncio.ensure_future(follow.__anext__())
    await asyncio.sleep(0)
    for call in finished(1000):
        inspector.add(call)  # type: ignore[arg-type]
    records, skipped = await asyncio.wait_for(first, timeout=10)
    assert len(records) == 100 and skipped == 900
    assert records[-1].request_id == "r999"
    assert inspector.followers == 1
    await inspector.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(follow.__anext__(), timeout=10)
    assert inspector.followers == 0


def test_stats_give_percentiles_and_error_rate_per_model_for_the_last_hour() -> None:
    """p50/p95 land in the right log bucket; errors count; minutes older than an hour drop."""
    now = [1_000_000.0]
    stats = ModelStats(clock=lambda: now[0])
    for latency in range(1, 101):  # 1..100 ms
        stats.add("m", float(latency), error=latency > 90)
    row = stats.summary()[0]
    assert row["requests"] == 100 and row["error_rate"] == 0.1
    assert 50 <= row["p50_ms"] <= 50 * 1.25 and 95 <= row["p95_ms"] <= 95 * 1.25
    now[0] += 61 * 60
    assert stats.summary() == []


def test_models_of_a_past_hour_make_room_for_new_ones() -> None:
    """At most MAX_MODELS models are counted at once, but a burst of made-up names does not
    turn the stats off for good: an hour later, their room goes to the models in use."""
    now = [1_000_000.0]
    stats = ModelStats(clock=lambda: now[0])
    for i in range(MAX_MODELS):
        stats.add(f"made-up-{i}", 5.0, error=True)
    stats.add("real", 5.0, error=False)
    assert "real" not in {row["model"] for row in stats.summary()}
    now[0] += 61 * 60
    stats.add("real", 5.0, error=False)
    assert [row["model"] for row in stats.summary()] == ["real"]


def test_content_store_is_bounded_in_items_and_bytes() -> None:
    """The oldest content goes first when either bound is passed."""
    store = ContentStore(max_items=2, max_bytes=100)
    store.put("a", {"messages": []}, "x", 10)
    store.put("b", {"messages": []}, "y", 10)
    store.put("c", {"messages": []}, "z", 10)
    assert store.get("a") is None and len(store) == 2
    store.put("d", {}, "w" * 95, 95)
    assert store.get("b") is None and store.get("c") is None and store.get("d") is not None
