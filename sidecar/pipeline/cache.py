"""The cache stage: answer identical requests from the cache, or share one upstream call.

Placed last before route, after privacy (the key sees only redacted content), fallback (it runs
once per candidate model; `call.model` is the candidate and a failed candidate is never stored)
and spend (a blocked budget is never bypassed by a hit; spend sees `cache_status == "HIT"` and
bills nothing). Absent when `cache.backend` is off, or in zero-retention mode unless
`privacy.zdr_allow_memory_cache`.

    Cache-Control: no-store      → BYPASS  upstream, nothing stored         fwd=request
    temperature over the limit   → BYPASS  upstream, nothing stored         fwd=bypass
    fresh entry                  → HIT     served from the entry            hit; ttl=N, Age
    identical request in flight  → HIT     its answer, shared               fwd=miss; collapsed
    otherwise (no-cache: no lookup, no joining)
                                 → MISS    upstream, stored when complete   fwd=miss|stale|request
    backend unreachable          → OFF     upstream (fail open)             fwd=miss; detail=…
    only-if-cached, no entry     → 504 cache_miss

A follower whose leader fails (an error status, a transport failure, a stream that broke before
its first event, an answer that may not be stored) goes upstream itself. A streaming follower
receives the leader's events as they arrive; if the leader's stream breaks after some were
sent, that follower's stream ends with the same error event (an answer cannot be restarted
mid-way: the client would see two different beginnings).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

from sidecar import sse
from sidecar.cache.control import Directives, read_directives
from sidecar.cache.entry import Entry
from sidecar.cache.key import CacheKey, cache_key
from sidecar.cache.replay import can_serve, hit_reply
from sidecar.cache.singleflight import Flight, Flights
from sidecar.cache.store import UNAVAILABLE, CacheStore
from sidecar.call import Call, Next, Reply
from sidecar.config.cache import CacheSettings
from sidecar.endpoints import ENDPOINTS
from sidecar.errors import CacheMiss, SidecarError
from sidecar.pipeline.detach import Detach
from sidecar.telemetry.metrics import Metrics

STATUS_HEADER = "x-sidecar-cache"
CACHE_STATUS_HEADER = "Cache-Status"  # RFC 9211
KEY_HEADER = "x-sidecar-cache-key"
_ME = "llm-sidecar"
_DEFAULT_TEMPERATURE = 1.0  # what OpenAI-compatible providers use when none is sent


class Cache:
    name = "cache"
    reads_answer = True  # an entry keeps the answer record (a hit reports its usage)

    def __init__(self, settings: CacheSettings, store: CacheStore, flights: Flights,
                 metrics: Metrics, detach: Detach | None = None) -> None:
        """`detach`: spend's detach stage, which the cache runs for what goes upstream (a
        miss, a bypass), so that a hit pays nothing for it (pipeline/detach.py)."""
        self._store = store
        self._detach = detach
        self._flights = flights
        self._metrics = metrics
        self._shared = settings.shared_namespace
        self._ttl = settings.ttl_s
        self._hot = settings.skip_when_temperature_above

    async def __call__(self, call: Call, next: Next) -> Reply:
        try:
            rules = read_directives(call.headers)
        except SidecarError as exc:
            return Reply.from_error(exc)
        # Neither looked up nor stored: no key to compute (the first 16 hex digits of an
        # entry's key would name no entry).
        if rules.no_store:
            return await self._detached(call, self._bypass(call, next, "bypass", "fwd=request"))
        row = ENDPOINTS.get(call.endpoint or "")
        if row is not None and not row.cacheable:  # images, audio: see endpoints.py
            return await self._detached(call, self._bypass(call, next, "skip", "fwd=bypass"))
        if self._hot is not None and _temperature(call) > self._hot:
            return await self._detached(call, self._bypass(call, next, "skip", "fwd=bypass"))
        key = cache_key(call, shared=self._shared)
        call.response_headers[KEY_HEADER] = key.short
        wants_usage = call.stream and _wants_usage(call)
        forward, status = "fwd=miss", "MISS"
        if rules.no_cache:
            forward, status = "fwd=request", "BYPASS"
        else:
            found = await self._store.get(key)
            if isinstance(found, Entry):
                now = self._store.clock()
                age = found.age(now)
                if rules.max_age is not None and age > rules.max_age:
                    forward = "fwd=stale"
                elif (can_serve(found, call.endpoint or "", call.stream)
                      and not (wants_usage and found.answer.usage is None)):
                    return self._hit(call, found, age, found.ttl(now), wants_usage)
            elif found is UNAVAILABLE:
                forward, status = "fwd=miss; detail=backend-unavailable", "OFF"
        if rules.only_if_cached:
            self._mark(call, "miss", "MISS", "fwd=miss")
            return Reply.from_error(CacheMiss(
                f"Cache-Control: only-if-cached, and the cache holds no fresh answer for this "
                f"request (x-sidecar-cache-key {key.short})."))
        return await self._detached(call, self._miss(call, next, key, rules, wants_usage,
                                                     status, forward))

    async def _detached(self, call: Call, rest: Awaitable[Reply]) -> Reply:
        if self._detach is None:
            return await rest
        return await self._detach.run(call, rest)

    async def _miss(self, call: Call, next: Next, key: CacheKey, rules: Directives,
                    wants_usage: bool, status: str, forward: str) -> Reply:
        """Follow an identical request in flight, or lead a flight of this one's own."""
        flight = None if rules.no_cache else self._flights.find(key)
        # A stream that asks for usage cannot share one whose leader did not ask for it.
        if flight is not None and (flight.wants_usage or not wants_usage):
            reply = await self._follow(call, flight, wants_usage)
            if reply is not None:
                return reply
        self._mark(call, "bypass" if rules.no_cache else
                   "unavailable" if status == "OFF" else "miss", status, forward)
        return await self._lead(call, next, key, rules, wants_usage)

    async def _bypass(self, call: Call, next: Next, result: str, forward: str) -> Reply:
        self._mark(call, result, "BYPASS", forward)
        return await next(call)

    def _mark(self, call: Call, result: str, status: str, forward: str) -> None:
        self._metrics.cache_lookup(result)
        call.cache_status = status
        headers = call.response_headers
        headers[STATUS_HEADER] = status
        headers[CACHE_STATUS_HEADER] = f"{_ME}; {forward}"

    def _hit(self, call: Call, entry: Entry, age: float, ttl: float, wants_usage: bool
             ) -> Reply:
        self._metrics.cache_lookup("hit")
        self._served(call, entry)
        headers = call.response_headers
        headers[STATUS_HEADER] = "HIT"
        headers[CACHE_STATUS_HEADER] = f"{_ME}; hit; ttl={int(ttl)}"
        headers["Age"] = str(int(age))
        return hit_reply(entry, call.endpoint or "", stream=call.stream,
                         include_usage=wants_usage)

    def _served(self, call: Call, entry: Entry | None) -> None:
        """A request answered without an upstream call of its own: spend bills it nothing,
        and the tokens (and the upstream's reported cost) it did not spend count as saved."""
        call.cache_status = "HIT"
        if entry is not None:
            call.answer = entry.answer
        if (usage := call.answer.usage) is not None:
            self._metrics.cache_saved(usd=usage.cost_usd or 0.0,
                                      tokens=usage.prompt_tokens + usage.completion_tokens)

    async def _lead(self, call: Call, next: Next, key: CacheKey, rules: Directives,
                    wants_usage: bool) -> Reply:
        ttl = self._ttl if rules.ttl is None else rules.ttl
        flight = self._flights.launch(
            key, call, next, ttl=ttl, wants_usage=wants_usage,
            # ttl 0 stores nothing: a follower would wait for the whole call, then call again
            joinable=ttl > 0 and (not rules.no_cache or self._flights.find(key) is None))
        follower = flight.follow(call)
        call.finishers.append(follower.detach)
        await flight.wait_answered()
        if flight.exception is not None:
            raise flight.exception
        if flight.reply is None and flight.failed:  # cut before any answer (shutdown)
            return Reply.from_error(flight.failure())
        if flight.reply is not None:  # a whole answer, or a failure: as the upstream gave it
            follower.detach()
            flight.move_answer(call)
            if flight.entry is not None and call.cache_status != "OFF":
                call.response_headers[CACHE_STATUS_HEADER] += "; stored"
            return flight.reply
        return Reply(flight.status, flight.headers.copy(), chunks=follower, sse=True)

    async def _follow(self, call: Call, flight: Flight, wants_usage: bool) -> Reply | None:
        """Share the answer of an identical request in flight; None when it failed (the
        caller then goes upstream itself)."""
        follower = flight.follow(call, on_complete=lambda: self._served(call, None))
        call.finishers.append(follower.detach)
        await flight.wait_answered()
        if flight.failed:
            follower.detach()
            return None
        endpoint = call.endpoint or ""
        if flight.reply is None and call.stream:  # live: the events as they arrive
            await flight.wait_started()
            if not flight.chunks:  # broke before its first event: nothing was shared yet
                follower.detach()
                return None
            self._collapsed(call)
            chunks: AsyncIterator[bytes] = follower
            if flight.wants_usage and not wants_usage:
                chunks = sse.edit_events(follower, _drop_usage_chunk)
            return Reply(flight.status, flight.headers.copy(), chunks=chunks, sse=True)
        await flight.wait_done()
        follower.detach()
        entry = flight.entry
        if entry is None or not can_serve(entry, endpoint, call.stream):
            return None  # not a storable answer: this request asks for its own
        self._collapsed(call)
        self._served(call, entry)
        if flight.reply is not None and not call.stream:
            return Reply(flight.status, flight.headers.copy(), body=flight.reply.body)
        return hit_reply(entry, endpoint, stream=call.stream, include_usage=wants_usage)

    def _collapsed(self, call: Call) -> None:
        self._metrics.cache_lookup("collapsed")
        call.cache_status = "HIT"
        headers = call.response_headers
        headers[STATUS_HEADER] = "HIT"
        headers[CACHE_STATUS_HEADER] = f"{_ME}; fwd=miss; collapsed"


def _temperature(call: Call) -> float:
    value = call.overrides.get("temperature", (call.body or {}).get("temperature"))
    return float(value) if isinstance(value, (int, float)) else _DEFAULT_TEMPERATURE


def _wants_usage(call: Call) -> bool:
    options: Any = call.overrides.get("stream_options", (call.body or {}).get("stream_options"))
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _drop_usage_chunk(event: bytes) -> bytes | None:
    data = sse.event_json(event)
    if isinstance(data, dict) and data.get("choices") == [] and data.get("usage"):
        return None
    return event


__all__ = ["CACHE_STATUS_HEADER", "KEY_HEADER", "STATUS_HEADER", "Cache"]
