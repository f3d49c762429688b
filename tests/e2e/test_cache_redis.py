"""The Redis store end to end, against a real redis-server: replicas share entries; a Redis
that dies, hangs or refuses the password costs nothing but the cache (fail open), is reported
once per outage, never fails /readyz, and is used again once it is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from sidecar.cache.redis_store import PREFIX, RETRY_AFTER_S
from sidecar.deps import DEPS
from tests.conftest import RunningSidecar, StartSidecar, free_port
from tests.e2e.test_cache import CHAT, as_hit, chat_calls, post
from tests.fakes.cache import FakeClock
from tests.fakes.redis import RedisServer
from tests.fakes.upstream import FakeUpstream
from tests.fakes.waits import wait_until

STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
SPECIAL_PASSWORD = "p@ss:w/rd#?%40 ü"


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def redis_config(url: str, **extra: Any) -> dict[str, Any]:
    return {"cache": {"backend": "redis", "redis_url": url, "redis_timeout_s": 1.0, **extra}}


async def stored(client: aioredis.Redis, count: int = 1) -> None:
    async def enough() -> bool:
        return len(await client.keys(PREFIX + "*")) >= count
    await wait_until(enough, f"{count} entries are in Redis")


async def test_two_sidecars_share_entries_through_redis(
        start_sidecar: StartSidecar, upstream: FakeUpstream, redis_server: RedisServer,
        redis_client: aioredis.Redis, http: aiohttp.ClientSession) -> None:
    """What one replica stored (a stream), another serves: as the same events to a stream, as
    one JSON answer to a plain request. One upstream call for three requests."""
    first = await start_sidecar(redis_config(redis_server.url))
    second = await start_sidecar(redis_config(redis_server.url))
    _, headers, streamed = await post(http, first, STREAM)
    assert headers["x-sidecar-cache"] == "MISS"
    await stored(redis_client)
    _, headers, again = await post(http, second, STREAM)
    assert (headers["x-sidecar-cache"], again) == ("HIT", as_hit(streamed))
    _, headers, answer = await post(http, second, CHAT)
    assert headers["x-sidecar-cache"] == "HIT"
    assert orjson.loads(answer)["choices"][0]["message"]["content"] == "Hello from fake."
    assert chat_calls(upstream) == 1
    assert "age" in headers


async def test_redis_killed_mid_run_fails_open_and_comes_back(
        start_sidecar: StartSidecar, upstream: FakeUpstream, redis_server: RedisServer,
        redis_client: aioredis.Redis, http: aiohttp.ClientSession,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Redis dies: requests are served from upstream (OFF), /readyz stays 200, one warning for
    the outage and a metric per request that missed the cache. Redis back: used again."""
    sidecar = await start_sidecar(redis_config(redis_server.url))
    clock = FakeClock()
    store = sidecar.app[DEPS].cache
    assert store is not None
    store.clock = clock
    await post(http, sidecar, CHAT)
    await stored(redis_client)
    _, headers, _ = await post(http, sidecar, CHAT)
    assert headers["x-sidecar-cache"] == "HIT"

    redis_server.stop()
    for _ in range(3):
        status, headers, _ = await post(http, sidecar, CHAT)
        assert (status, headers["x-sidecar-cache"]) == (200, "OFF")
        assert headers["cache-status"] == "llm-sidecar; fwd=miss; detail=backend-unavailable"
    async with http.get(sidecar.url + "/readyz") as response:
        assert response.status == 200
    metrics = sidecar.app[DEPS].metrics
    assert metrics.cache_backend_errors.labels("redis").value >= 3
    assert chat_calls(upstream) == 4

    redis_server.start()
    await redis_client.connection_pool.disconnect()  # the test's own client reconnects too
    clock.advance(RETRY_AFTER_S)
    await post(http, sidecar, CHAT)  # Redis came back empty (no persistence): a miss, stored
    await stored(redis_client)
    _, headers, _ = await post(http, sidecar, CHAT)
    assert headers["x-sidecar-cache"] == "HIT"
    assert chat_calls(upstream) == 5
    out = capsys.readouterr().out
    assert out.count("cache_backend_unavailable") == 1
    assert out.count("cache_backend_recovered") == 1


async def test_a_redis_that_does_not_answer_costs_at_most_the_timeout(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        http: aiohttp.ClientSession) -> None:
    """A Redis that accepts connections and never answers: the lookup gives up after
    redis_timeout_s and the request is served from upstream; later requests skip Redis."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sidecar = await start_sidecar(redis_config(f"redis://127.0.0.1:{port}/0",
                                                   redis_timeout_s=0.05))
        for _ in range(3):
            status, headers, _ = await post(http, sidecar, CHAT)
            assert (status, headers["x-sidecar-cache"]) == (200, "OFF")
        assert chat_calls(upstream) == 3
        assert accepted, "the sidecar did try Redis"
    finally:
        for writer in accepted:
            writer.close()
        server.close()


@pytest.mark.parametrize(("given", "works"), [(SPECIAL_PASSWORD, True), ("wrong", False)],
                         ids=["special characters", "wrong password"])
async def test_the_password_goes_apart_from_the_url(
        start_sidecar: StartSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession,
        given: str, works: bool) -> None:
    """cache.redis_password reaches Redis as is, whatever its characters (`@`, `:`, `/`, `#`,
    `%`); a wrong one fails open like any outage."""
    server = RedisServer(password=SPECIAL_PASSWORD)
    server.start()
    try:
        sidecar = await start_sidecar(redis_config(server.url, redis_password=given))
        statuses = []
        for _ in range(2):
            _, headers, _ = await post(http, sidecar, CHAT)
            statuses.append(headers["x-sidecar-cache"])
            if works:
                client = aioredis.Redis.from_url(server.url, password=SPECIAL_PASSWORD)
                await stored(client)
                await client.aclose()
        assert statuses == (["MISS", "HIT"] if works else ["OFF", "OFF"])
    finally:
        server.stop()


async def test_purge_on_redis_by_glob_and_while_down(
        start_sidecar: StartSidecar, redis_server: RedisServer, redis_client: aioredis.Redis,
        http: aiohttp.ClientSession) -> None:
    """DELETE /sidecar/cache?model=GLOB removes only those models' keys from Redis (SCAN, not
    FLUSHDB: other keys in the database stay); with Redis down it is 503 cache_unavailable."""
    await redis_client.set("ledger:keep-me", b"1")
    sidecar = await start_sidecar(redis_config(redis_server.url))
    for model in ("openai/gpt-4o", "openai/gpt-4o-mini", "meta/llama:free"):
        await post(http, sidecar, {**CHAT, "model": model})
    await stored(redis_client, 3)
    async with http.delete(sidecar.url + "/sidecar/cache?model=openai/*") as response:
        assert await response.json() == {"deleted": 2}
    remaining = sorted(k.decode() for k in await redis_client.keys("*"))
    assert remaining[0] == "ledger:keep-me" and remaining[1].endswith(":meta/llama:free")
    async with http.delete(sidecar.url + "/sidecar/cache") as response:
        assert await response.json() == {"deleted": 1}
    assert await redis_client.keys("*") == [b"ledger:keep-me"]
    redis_server.stop()
    async with http.delete(sidecar.url + "/sidecar/cache") as response:
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "cache_unavailable"


async def test_the_sidecar_starts_without_redis(start_sidecar: StartSidecar,
                                                upstream: FakeUpstream,
                                                http: aiohttp.ClientSession) -> None:
    """No Redis at start-up: the sidecar starts, is ready, and serves from upstream."""
    sidecar: RunningSidecar = await start_sidecar(
        redis_config(f"redis://127.0.0.1:{free_port()}/0"))
    async with http.get(sidecar.url + "/readyz") as response:
        assert response.status == 200
    status, headers, _ = await post(http, sidecar, CHAT)
    assert (status, headers["x-sidecar-cache"]) == (200, "OFF")
