"""pipeline/cache.py as the fallback stage will drive it: once per candidate model, each run
keyed on call.model, a failed candidate never stored, and every follower released."""

from __future__ import annotations

from collections.abc import Awaitable

from multidict import CIMultiDict

from sidecar.background import BackgroundReads
from sidecar.cache.singleflight import Flights
from sidecar.cache.store import MemoryStore
from sidecar.call import Call, Reply
from sidecar.config.cache import CacheSettings
from sidecar.errors import UpstreamUnavailable
from sidecar.pipeline.cache import Cache
from sidecar.pipeline.detach import Detach
from sidecar.telemetry.metrics import Metrics
from tests.fakes.calls import make_call

ANSWER = (b'{"id":"x","object":"chat.completion","model":"b","choices":[{"index":0,'
          b'"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}')


def stage() -> tuple[Cache, MemoryStore, Flights]:
    settings = CacheSettings()
    store = MemoryStore(settings)
    flights = Flights(store, settings.max_entry_bytes)
    return Cache(settings, store, flights, Metrics()), store, flights


async def answer_as_b(call: Call) -> Reply:
    """Candidate "a" is down; candidate "b" answers (as the route would, facts noted)."""
    if call.model == "a":
        return Reply.from_error(UpstreamUnavailable("a is down"))
    call.answer.finish_reason = "stop"
    return Reply(200, CIMultiDict({"Content-Type": "application/json"}), body=ANSWER)


async def test_each_candidate_is_keyed_as_itself_and_only_the_answer_is_stored() -> None:
    """Run per candidate (call.model = "a", then "b"): "a"'s failure is not stored, "b"'s
    answer is stored under "b"'s key; the same request for "b" alone then hits."""
    cache, store, flights = stage()
    call = make_call(model="a")
    replies = []
    for candidate in ("a", "b"):
        call.model = candidate
        call.overrides = {}
        replies.append(await cache(call, answer_as_b))
    assert [r.status for r in replies] == [502, 200]
    call.finish()
    assert len(store.cache) == 1
    assert [await store.purge(None), len(flights), flights.followers()] == [1, 0, 0]

    again = make_call(model="a")
    for candidate in ("a", "b"):
        again.model = candidate
        reply = await cache(again, answer_as_b)
    assert again.response_headers["x-sidecar-cache"] == "MISS"  # purged above
    assert reply.body == ANSWER
    third = make_call(model="b")
    reply = await cache(third, answer_as_b)
    assert (third.cache_status, reply.body) == ("HIT", ANSWER)
    assert third.answer.finish_reason == "stop"


async def test_a_leader_whose_reply_is_never_sent_releases_its_flight() -> None:
    """A stage outside the cache drops the leader's reply unread: the finisher still detaches
    the leader, and nothing is left following a flight."""
    cache, _, flights = stage()
    call = make_call(model="b")
    await cache(call, answer_as_b)
    call.finish()
    assert flights.followers() == 0 and len(flights) == 0


class CountingDetach(Detach):
    """The real detach stage, counting the calls it runs in a task of their own."""

    def __init__(self) -> None:
        super().__init__(BackgroundReads(limit=4, read_s=1.0, drain_s=1.0))
        self.runs = 0

    async def run(self, call: Call, rest: Awaitable[Reply]) -> Reply:
        self.runs += not call.stream  # a stream's rest is awaited as it is: no task
        return await super().run(call, rest)


async def test_what_goes_upstream_is_detached_and_a_hit_is_not() -> None:
    """The cache runs spend's detach for a miss and a bypass (no-store), each a task of its
    own that a client leaving would hand to the background reads; a hit, which reads nothing
    upstream, and a stream (never detached) pay nothing for it."""
    settings = CacheSettings()
    store = MemoryStore(settings)
    detach = CountingDetach()
    cache = Cache(settings, store, Flights(store, settings.max_entry_bytes), Metrics(), detach)
    miss = make_call(model="b")
    assert (await cache(miss, answer_as_b)).body == ANSWER
    miss.finish()
    assert (miss.cache_status, detach.runs) == ("MISS", 1)
    hit = make_call(model="b")
    assert (await cache(hit, answer_as_b)).body == ANSWER
    assert (hit.cache_status, detach.runs) == ("HIT", 1)
    bypass = make_call({"Cache-Control": "no-store"}, model="b")
    assert (await cache(bypass, answer_as_b)).body == ANSWER
    assert (bypass.cache_status, detach.runs) == ("BYPASS", 2)
    stream = make_call({"Cache-Control": "no-store"}, model="b", stream=True)
    await cache(stream, answer_as_b)
    assert detach.runs == 2
