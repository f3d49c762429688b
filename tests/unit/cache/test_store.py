"""cache/store.py and entry.py: the bounded memory store (LRU by entries and bytes, lazy TTL,
purge), and the byte form of entries."""

from __future__ import annotations

import pytest

from sidecar.cache.entry import ENTRY_OVERHEAD_BYTES, Entry, decode, encode
from sidecar.cache.key import CacheKey
from sidecar.cache.store import BoundedLRU, MemoryStore
from sidecar.call import Answer, Usage
from sidecar.config.cache import CacheSettings
from sidecar.globs import Globs
from tests.fakes.cache import FakeClock


def entry(model: str = "m", size: int = 100, now: float = 0.0, ttl: float = 60) -> Entry:
    return Entry("json", b"x" * size, model, now, now + ttl,
                 Answer(Usage(3, 4, cost_usd=0.5), "stop", "m-2024"))


def key(name: str, model: str = "m") -> CacheKey:
    return CacheKey(name.ljust(32, "0"), model)


async def test_lru_evicts_by_bytes_least_recently_used_first() -> None:
    """Over max_bytes, the least recently *used* entry goes first (a read refreshes it)."""
    clock = FakeClock(0)
    store = MemoryStore(CacheSettings(max_bytes=3 * (100 + ENTRY_OVERHEAD_BYTES)), clock)
    for name in "abc":
        await store.put(key(name), entry())
    assert await store.get(key("a")) is not None  # a is now the most recent
    await store.put(key("d"), entry())
    present = [n for n in "abcd" if await store.get(key(n)) is not None]
    assert present == ["a", "c", "d"]
    assert store.cache.bytes == 3 * (100 + ENTRY_OVERHEAD_BYTES)


async def test_lru_evicts_by_entry_count() -> None:
    """Over max_entries, the oldest goes."""
    store = MemoryStore(CacheSettings(max_entries=2), FakeClock(0))
    for name in "abc":
        await store.put(key(name), entry())
    assert [await store.get(key(n)) is not None for n in "abc"] == [False, True, True]
    assert len(store.cache) == 2


async def test_an_entry_larger_than_the_whole_store_is_refused() -> None:
    """Storing it would evict everything else and still not fit: it is not stored."""
    store = MemoryStore(CacheSettings(max_bytes=1000), FakeClock(0))
    await store.put(key("a"), entry(size=10))
    await store.put(key("b"), entry(size=5000))
    assert await store.get(key("b")) is None and await store.get(key("a")) is not None


async def test_entries_expire_on_the_injected_clock() -> None:
    """An entry is served until its TTL has passed on the store's clock, then dropped."""
    clock = FakeClock(1000)
    store = MemoryStore(CacheSettings(), clock)
    await store.put(key("a"), entry(now=1000, ttl=60))
    clock.advance(59.9)
    assert await store.get(key("a")) is not None
    clock.advance(0.1)
    assert await store.get(key("a")) is None
    assert store.cache.bytes == 0


async def test_purge_by_model_glob() -> None:
    """purge(Globs) removes the matching models' entries and counts them; None removes all."""
    store = MemoryStore(CacheSettings(), FakeClock(0))
    for name, model in (("a", "openai/gpt-4o"), ("b", "openai/o1"), ("c", "meta/llama")):
        await store.put(key(name, model), entry(model))
    assert await store.purge(Globs(["openai/*"])) == 2
    assert await store.purge(None) == 1
    assert len(store.cache) == 0 and store.cache.bytes == 0


def test_the_lru_on_its_own() -> None:
    """BoundedLRU: set/get/delete/purge, expiry on its clock, bytes accounted."""
    clock = FakeClock(0)
    cache = BoundedLRU(max_entries=10, max_bytes=10, size_of=len, clock=clock)
    assert cache.set("k", b"value", ttl=5) and cache.get("k") == b"value"
    assert not cache.set("big", b"x" * 11) and cache.get("big") is None
    cache.set("k", b"val")  # replaced: its bytes counted once
    assert cache.bytes == 3
    cache.set("t", b"tt", ttl=5)
    clock.advance(5)
    assert cache.get("t") is None and cache.get("k") == b"val" and cache.bytes == 3
    cache.set("p", b"pp")
    assert cache.purge(lambda v: v == b"pp") == 1 and cache.delete("k") == 1
    assert cache.delete("k") == 0 and len(cache) == 0 and cache.bytes == 0


def test_entries_round_trip_through_bytes() -> None:
    """encode/decode keep every field (usage included); other bytes are a ValueError."""
    original = Entry("sse", b"data: {}\n\n", "openai/gpt-4o", 10.5, 70.5,
                     Answer(Usage(1, 2, 3, 4, 5, 0.25), "tool_calls", "gpt-4o-2024", "chatcmpl-1"))
    assert decode(encode(original)) == original
    assert decode(encode(Entry("json", b"{}", "m", 1, 2))) == Entry("json", b"{}", "m", 1, 2)
    for junk in (b"", b"XX1\x00\x00\x00\x02{}", encode(original)[:10]):
        with pytest.raises(ValueError):
            decode(junk)
