"""Where entries live: the `CacheStore` protocol and the default, bounded memory store.

Every store is a Resource (deps.py) and answers in the same terms: `get` a key (an Entry, None,
or UNAVAILABLE when its backend cannot be reached: the request then goes upstream), `put` one,
`purge` by model glob. Stores check expiry against their `clock` (wall-clock seconds; tests
replace it) as well as their backend's own TTL, so an injected clock expires entries anywhere.

The memory store keeps entries in a `BoundedLRU`: LRU order, evicting the least recently used
while over `max_entries` or `max_bytes`, expiring lazily on read against the store's clock (no
timer per entry). It was once an aiocache backend; aiocache added nothing the store used but its
interface, cost 2.1 of a lookup's 2.3 µs through its public `get`, and importing it imports
`redis` (and with it, when the OpenTelemetry SDK is installed, the SDK's metrics): 7.1 MiB of
RSS and 46 ms of start-up in every sidecar (11 MiB with the SDK), Redis configured or not
(docs/performance.md).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, Protocol

from sidecar.cache.entry import Entry
from sidecar.cache.key import CacheKey
from sidecar.config.cache import CacheSettings
from sidecar.globs import Globs

Clock = Callable[[], float]


class Unavailable:
    """The backend could not be asked (down, slow): not a miss, not a hit."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE: Final = Unavailable()


class CacheUnavailableError(Exception):
    """An admin operation could not reach the backend."""


class CacheStore(Protocol):
    name: str
    backend: str  # the metric label: memory | redis
    clock: Clock  # wall-clock seconds: stored_at, Age, expiry

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def problem(self) -> str | None: ...

    async def get(self, key: CacheKey) -> Entry | Unavailable | None: ...

    async def put(self, key: CacheKey, entry: Entry) -> None: ...

    async def purge(self, models: Globs | None) -> int:
        """Remove every entry (of the models matching `models`); the number removed. Raises
        CacheUnavailableError when the backend cannot be reached."""
        ...


class BoundedLRU:
    """Values by key, bounded by entry count and total bytes (least recently used evicted
    first), each with an optional expiry checked lazily on read."""

    __slots__ = ("_clock", "_items", "_max_bytes", "_max_entries", "_size_of", "bytes")

    def __init__(self, *, max_entries: int, max_bytes: int, size_of: Callable[[Any], int],
                 clock: Clock) -> None:
        self._items: OrderedDict[str, tuple[Any, float | None, int]] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._size_of = size_of
        self._clock = clock
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        value, expires, _ = item
        if expires is not None and expires <= self._clock():
            self.delete(key)
            return None
        self._items.move_to_end(key)
        return value

    def set(self, key: str, value: Any, ttl: float | None = None) -> bool:
        """Store `value` (replacing the key's), evicting as needed; False when it is larger
        than the whole store (it is not stored)."""
        self.delete(key)
        size = self._size_of(value)
        if size > self._max_bytes:
            return False
        self._items[key] = (value, self._clock() + ttl if ttl else None, size)
        self.bytes += size
        while self.bytes > self._max_bytes or len(self._items) > self._max_entries:
            self.delete(next(iter(self._items)))  # the least recently used
        return True

    def purge(self, match: Callable[[Any], bool]) -> int:
        """Drop the entries whose value `match`es; how many."""
        doomed = [k for k, (v, _, _) in self._items.items() if match(v)]
        for key in doomed:
            self.delete(key)
        return len(doomed)

    def delete(self, key: str) -> int:
        item = self._items.pop(key, None)
        if item is None:
            return 0
        self.bytes -= item[2]
        return 1


class MemoryStore:
    """The default store: this process only, bounded, gone on restart."""

    name = "cache (memory)"
    backend = "memory"

    def __init__(self, settings: CacheSettings, clock: Clock = time.time) -> None:
        self.clock = clock
        self.cache = BoundedLRU(max_entries=settings.max_entries, max_bytes=settings.max_bytes,
                                size_of=_entry_size, clock=lambda: self.clock())

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def problem(self) -> str | None:
        return None

    async def get(self, key: CacheKey) -> Entry | None:
        entry: Entry | None = self.cache.get(key.digest)
        return entry

    async def put(self, key: CacheKey, entry: Entry) -> None:
        self.cache.set(key.digest, entry, ttl=entry.expires_at - entry.stored_at)

    async def purge(self, models: Globs | None) -> int:
        if models is None:
            return self.cache.purge(lambda _: True)
        return self.cache.purge(lambda entry: models.match(entry.model))


def _entry_size(entry: Entry) -> int:
    return entry.size
