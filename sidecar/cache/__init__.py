"""The prompt cache: keys (key.py), entries and what may be stored (entry.py, fill.py), stores
(store.py: the protocol and the bounded memory store; redis_store.py), serving an entry in
either shape (replay.py), request directives (control.py) and single-flight (singleflight.py).
The stage that uses them is pipeline/cache.py."""

from __future__ import annotations

from sidecar.cache.singleflight import Flights
from sidecar.cache.store import CacheStore, MemoryStore
from sidecar.config.schema import Settings
from sidecar.telemetry.metrics import Metrics

__all__ = ["CacheStore", "Flights", "build_store", "cache_enabled"]


def cache_enabled(settings: Settings) -> bool:
    """Off when `cache.backend: off`, and in zero-retention mode unless the memory cache is
    explicitly allowed (never Redis: the config validator refuses zdr with a Redis cache)."""
    backend = settings.cache.backend
    if backend == "off":
        return False
    privacy = settings.privacy
    return not privacy.zdr or (privacy.zdr_allow_memory_cache and backend == "memory")


def build_store(settings: Settings, metrics: Metrics) -> CacheStore:
    if settings.cache.backend == "redis":
        # Imported here: the redis client costs start-up time that a memory cache never needs.
        from sidecar.cache.redis_store import RedisStore
        return RedisStore(settings.cache, metrics)
    return MemoryStore(settings.cache)
