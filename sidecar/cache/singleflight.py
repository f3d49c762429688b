"""Single-flight: identical requests in flight at once share one upstream call.

The first miss for a key *leads*: it starts a `Flight`, a task owned by `Flights` (a Resource)
that runs the rest of the pipeline (answer → route) on a fork of the leader's Call
(`Call.fork`, sharing the leader's attempts) and keeps every event of the answer as it
arrives. Identical misses that come meanwhile *follow* it. The leader is a follower too:
its client reads the same buffered events, so its client leaving (or being slow) never stops
the answer for the others. While anyone follows, the flight reads the upstream to the end; when
the last follower leaves before the end, the flight is cancelled, which closes the upstream
request (a client that disconnects still cancels its request: INTERFACE.md §4).

Every follower registers `Follower.detach` as a finisher before it waits, so every path (an
answer, an error, a client gone before the first byte, a shutdown cut) releases its place.

The flight's own Call carries its own finishers (route's connection release and the breaker's
judgement): they run when the flight ends, not when the leader's request does, and they judge
the flight's own outcome, which the flight sets from what it saw: `upstream_broke` for a stream
the upstream cut, `client_disconnected` when every follower left, `cancelled` at shutdown. The
answer record (usage, finish reason, model, id) is moved to each follower's Call, whole, as its
events go out.

What followers get when the leader fails: see pipeline/cache.py (they go upstream themselves).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from multidict import CIMultiDict

from sidecar.cache.entry import Entry
from sidecar.cache.fill import json_entry, stream_entry
from sidecar.cache.key import CacheKey
from sidecar.cache.store import CacheStore
from sidecar.call import Call, Next, Reply
from sidecar.errors import SidecarError, UpstreamError, UpstreamUnavailable

_log = structlog.get_logger("sidecar.cache")


class Flight:
    """One upstream exchange and everything known about its answer so far."""

    def __init__(self, key: CacheKey, call: Call, wants_usage: bool) -> None:
        self.key = key
        self.call = call  # the flight's own fork: route and the answer stage write here
        self.wants_usage = wants_usage  # the leader's stream asked for the usage chunk
        self.answered = False  # the upstream's status and headers (or a failure) are known
        self.done = False
        self.status = 0
        self.headers: CIMultiDict[str] = CIMultiDict()  # pristine, for followers to copy
        self.reply: Reply | None = None  # a whole answer (JSON, or any failure), for the leader
        self.failed = False  # an error status, a transport failure, or a bug
        self.exception: BaseException | None = None  # a bug below the cache, for the leader
        self.chunks: list[bytes] = []  # the stream's events as they arrived
        self.broken: BaseException | None = None  # the stream did not end cleanly
        self.entry: Entry | None = None  # the storable answer, once complete
        self.followers = 0
        self.task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def body(self) -> bytes | None:
        return None if self.reply is None else self.reply.body

    def follow(self, call: Call, on_complete: Callable[[], None] | None = None) -> Follower:
        return Follower(self, call, on_complete)

    async def changed(self) -> None:
        """Return at the next news: an answer, an event, the end."""
        await self._wake.wait()

    async def wait_answered(self) -> None:
        while not self.answered:
            await self.changed()

    async def wait_started(self) -> None:
        """Until the first event of a stream has arrived, or the flight is over."""
        while not (self.chunks or self.done):
            await self.changed()

    async def wait_done(self) -> None:
        while not self.done:
            await self.changed()

    def move_answer(self, call: Call) -> None:
        """Give `call` the flight's answer record, whole (see Call.answer)."""
        call.answer = self.call.answer

    def failure(self) -> SidecarError:
        """Why the stream ended early, as the error a client is told."""
        broken = self.broken
        if isinstance(broken, SidecarError):
            return broken
        return UpstreamUnavailable("The upstream answer ended before it was complete.")

    def notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    def release(self) -> None:
        """A follower left; the last one to leave before the end stops the upstream call."""
        self.followers -= 1
        if self.followers <= 0 and not self.done and self.task is not None:
            self.task.cancel()


class Follower:
    """A client's view of a flight: the events so far, then each as it arrives. A class, not
    a generator, so that `detach` works even if it is never iterated."""

    __slots__ = ("_attached", "_call", "_flight", "_on_complete", "_position")

    def __init__(self, flight: Flight, call: Call, on_complete: Callable[[], None] | None
                 ) -> None:
        self._flight = flight
        self._call = call
        self._on_complete = on_complete
        self._position = 0
        self._attached = True
        flight.followers += 1

    def __aiter__(self) -> Follower:
        return self

    async def __anext__(self) -> bytes:
        flight = self._flight
        while True:
            chunks = flight.chunks
            if self._position < len(chunks):
                start, self._position = self._position, len(chunks)
                flight.move_answer(self._call)
                return chunks[start] if self._position - start == 1 else b"".join(
                    chunks[start:])
            if flight.done:
                flight.move_answer(self._call)
                self.detach()
                if flight.broken is not None:
                    raise flight.broken
                if self._on_complete is not None:
                    self._on_complete()
                raise StopAsyncIteration
            await flight.changed()

    async def aclose(self) -> None:
        self.detach()

    def detach(self, call: Call | None = None) -> None:
        """Leave the flight (idempotent); also the finisher of the follower's Call."""
        if self._attached:
            self._attached = False
            self._flight.release()


class Flights:
    """The flights in progress, by key, and the tasks that run them (a Resource)."""

    name = "cache single-flight"

    def __init__(self, store: CacheStore, max_entry_bytes: int) -> None:
        self._store = store
        self._max_entry_bytes = max_entry_bytes
        self._flights: dict[str, Flight] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False  # flights cancelled now are cut by the shutdown

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        """Stop what is still running (nobody is left to read it after the drain)."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def problem(self) -> str | None:
        return None

    def __len__(self) -> int:
        """Flights that identical requests can still join."""
        return len(self._flights)

    def followers(self) -> int:
        """Requests following a flight right now, leaders included (for /metrics and tests)."""
        return sum(flight.followers for flight in self._flights.values())

    def find(self, key: CacheKey) -> Flight | None:
        return self._flights.get(key.digest)

    def launch(self, key: CacheKey, call: Call, next: Next, *, ttl: float, wants_usage: bool,
               joinable: bool) -> Flight:
        """Start the upstream call for `call` (the leader) on a fork of it."""
        flight = Flight(key, call.fork(share_attempts=True), wants_usage)
        if joinable:
            self._flights[key.digest] = flight
        task = asyncio.get_running_loop().create_task(self._fly(flight, next, ttl))
        flight.task = task
        self._tasks.add(task)
        task.add_done_callback(self._landed)
        return flight

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("cache_flight_failed", error=repr(exc))  # a bug: nothing else sees it

    async def _fly(self, flight: Flight, next: Next, ttl: float) -> None:
        own = flight.call
        try:
            await self._exchange(flight, next, ttl)
        except asyncio.CancelledError:
            flight.broken = flight.broken or UpstreamUnavailable(
                "The upstream request was cancelled before its answer was complete.")
            flight.failed = flight.failed or not flight.answered
            own.outcome = "cancelled" if self._closing else "client_disconnected"
            raise
        finally:
            flight.answered = flight.done = True
            if self._flights.get(flight.key.digest) is flight and flight.entry is None:
                del self._flights[flight.key.digest]
            flight.notify()
            own.finish()
            if flight.entry is not None:
                try:
                    await self._store.put(flight.key, flight.entry)
                finally:  # joiners until now were served from the flight itself
                    if self._flights.get(flight.key.digest) is flight:
                        del self._flights[flight.key.digest]

    async def _exchange(self, flight: Flight, next: Next, ttl: float) -> None:
        own = flight.call
        try:
            reply = await next(own)
        except Exception as exc:  # a bug below the cache: the leader raises it as its own
            flight.failed, flight.exception = True, exc
            own.outcome = "internal_error"
            return
        flight.status = own.status = reply.status
        flight.headers = reply.headers.copy()
        if reply.status >= 400 or reply.error is not None or reply.chunks is None:
            if reply.chunks is not None:  # an error answered as a stream: small, read it all
                try:
                    body = b"".join([chunk async for chunk in reply.chunks])
                except UpstreamError as exc:  # it broke off too: the break is the answer
                    await reply.discard()
                    flight.failed = True
                    flight.reply = Reply.from_error(exc)
                    return
                reply = Reply(reply.status, reply.headers, body=body, error=reply.error)
            flight.reply = reply
            flight.failed = reply.status >= 400 or reply.error is not None
            if not flight.failed and ttl > 0 and reply.status == 200 and reply.body is not None:
                flight.entry = json_entry(own, reply.body, now=self._store.clock(), ttl=ttl,
                                          max_bytes=self._max_entry_bytes)
            return
        flight.answered = True
        flight.notify()
        chunks = reply.chunks
        try:
            async for chunk in chunks:
                flight.chunks.append(chunk)
                flight.notify()
        except Exception as exc:  # UpstreamError mid-stream, or a bug in the chunk work
            flight.broken = exc
            own.outcome = "upstream_broke" if isinstance(exc, UpstreamError) else (
                "internal_error")
            return
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        if reply.status == 200 and ttl > 0:
            flight.entry = stream_entry(own, flight.chunks, now=self._store.clock(), ttl=ttl,
                                        max_bytes=self._max_entry_bytes)
