"""The Redis store: replicas share entries through one Redis (`cache.backend: redis`).

Built on the `redis` package's asyncio client rather than aiocache's RedisCache, which cannot be
configured the way a cluster's Redis is: it takes host/port/db only (no `rediss://` URL, no
unix socket, no ACL username), its `clear()` is FLUSHDB (which would also wipe a spend ledger
sharing that Redis) or KEYS (which blocks the server), and it cannot purge by model. Here the
URL goes to `redis.asyncio.from_url` as written and the password (`cache.redis_password`) is
passed on its own, so any character is safe in it.

The cache is optional, so Redis failing never fails a request or /readyz: every operation is
bounded by `cache.redis_timeout_s`; a failure answers UNAVAILABLE (the request goes upstream)
and opens an outage during which Redis is not asked at all for `RETRY_AFTER_S`, so a dead Redis
costs requests nothing after the first. The first failure logs one warning and the recovery
one info line: one pair per outage, however many requests it spans. Every operation that could
not use Redis counts in `llm_sidecar_cache_backend_errors_total{backend="redis"}`.

Keys are `llm-sidecar:cache:v1:<digest>:<model>`: the model is in the name so that a purge by
glob can SCAN without reading values.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import redis.asyncio as redis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from sidecar.cache.entry import Entry, decode, encode
from sidecar.cache.key import CacheKey
from sidecar.cache.store import UNAVAILABLE, CacheUnavailableError, Clock, Unavailable
from sidecar.config.cache import CacheSettings
from sidecar.globs import Globs
from sidecar.telemetry.metrics import Metrics

REDIS_POOL = 32  # connections to Redis at most; more requests at once wait for one
CONNECT_TIMEOUT_S = 2.0  # opening one, at least (a burst of connects on a busy loop: see
# ledger_redis.py)

PREFIX = "llm-sidecar:cache:v1:"
RETRY_AFTER_S = 1.0  # during an outage, Redis is tried again after this long
_SCAN_BATCH = 500
_FAILURES = (RedisError, OSError, TimeoutError)
_log = structlog.get_logger("sidecar.cache")


class RedisStore:
    name = "cache (redis)"
    backend = "redis"

    def __init__(self, settings: CacheSettings, metrics: Metrics, clock: Clock = time.time
                 ) -> None:
        assert settings.redis_url is not None
        self.clock = clock
        self._metrics = metrics
        self._timeout = settings.redis_timeout_s
        password = settings.redis_password
        self._where = _host_of(settings.redis_url)
        # A blocking pool (at most REDIS_POOL connections; a burst waits for one, within the
        # timeout) rather than redis-py's default, which fails past 100 at once.
        self._client = redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=REDIS_POOL, timeout=self._timeout,
            password=password.get_secret_value() if password else None,
            socket_timeout=self._timeout,
            socket_connect_timeout=max(self._timeout, CONNECT_TIMEOUT_S),
            # One immediate retry re-opens a pooled connection Redis closed (a restart); more
            # would only add latency, which the fail-open bound forbids.
            retry=Retry(NoBackoff(), 1)))
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._writes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Say at start-up whether Redis answers; the sidecar starts either way."""
        try:
            async with asyncio.timeout(max(self._timeout, 1.0)):
                await self._client.ping()
        except _FAILURES as exc:
            self._failed(exc)

    async def close(self) -> None:
        """Let pending writes finish (each is bounded by the timeout), then close the pool."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        await self._client.aclose()

    def problem(self) -> str | None:
        return None  # the cache is optional: an outage is served from upstream, never a 503

    @property
    def available(self) -> bool:
        return self._down_since is None

    async def get(self, key: CacheKey) -> Entry | Unavailable | None:
        if self._skipping():
            return UNAVAILABLE
        try:
            async with asyncio.timeout(self._timeout):
                data = await self._client.get(_name(key))
        except _FAILURES as exc:
            self._failed(exc)
            return UNAVAILABLE
        self._succeeded()
        if not isinstance(data, bytes):
            return None
        try:
            entry = decode(data)
        except ValueError:
            return None  # written by another version, or damaged: a miss, overwritten later
        return entry if entry.expires_at > self.clock() else None

    async def put(self, key: CacheKey, entry: Entry) -> None:
        """Queue the write on a task this store owns and return at once."""
        if self._skipping():
            return
        task = asyncio.get_running_loop().create_task(self._write(key, entry))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, key: CacheKey, entry: Entry) -> None:
        ttl_ms = max(1, int((entry.expires_at - entry.stored_at) * 1000))
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.set(_name(key), encode(entry), px=ttl_ms)
        except _FAILURES as exc:
            self._failed(exc)
        else:
            self._succeeded()

    async def purge(self, models: Globs | None) -> int:
        """SCAN the cache's keys (never KEYS: it blocks Redis) and UNLINK the matching ones."""
        removed = 0
        try:
            batch: list[bytes] = []
            async for name in self._client.scan_iter(match=PREFIX + "*", count=_SCAN_BATCH):
                if models is None or models.match(_model_of(name)):
                    batch.append(name)
                if len(batch) >= _SCAN_BATCH:
                    removed += await self._client.unlink(*batch)
                    batch.clear()
            if batch:
                removed += await self._client.unlink(*batch)
        except _FAILURES as exc:
            self._failed(exc)
            raise CacheUnavailableError(f"Redis at {self._where} is not reachable "
                                        f"({type(exc).__name__}).") from None
        self._succeeded()
        return removed

    def _skipping(self) -> bool:
        """True while an outage is open and its retry time has not come."""
        if self._down_since is None or self.clock() >= self._retry_at:
            return False
        self._metrics.cache_backend_error(self.backend)
        return True

    def _failed(self, exc: BaseException) -> None:
        self._metrics.cache_backend_error(self.backend)
        now = self.clock()
        self._retry_at = now + RETRY_AFTER_S
        if self._down_since is None:
            self._down_since = now
            _log.warning("cache_backend_unavailable", backend=self.backend, redis=self._where,
                         error=type(exc).__name__,
                         detail="served from upstream until Redis answers again")

    def _succeeded(self) -> None:
        if self._down_since is not None:
            _log.info("cache_backend_recovered", backend=self.backend, redis=self._where,
                      outage_s=round(self.clock() - self._down_since, 3))
            self._down_since = None


def _name(key: CacheKey) -> str:
    return f"{PREFIX}{key.digest}:{key.model}"


def _model_of(name: bytes) -> str:
    return name.decode("utf-8", "replace")[len(PREFIX):].partition(":")[2]


def _host_of(url: str) -> str:
    """The URL without any credentials, for log lines and errors."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
