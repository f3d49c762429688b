"""Sticky pools: pins set by a cache at work, kept while idle time allows, released by a
failure or a breaker, bounded in number, and never over a client's own order."""

from __future__ import annotations

from typing import Any

from sidecar.call import Answer, Call, Usage
from sidecar.config import Settings
from sidecar.upstream.preferences import Preferences
from sidecar.upstream.routing import Routing
from sidecar.upstream.sticky import Sticky
from sidecar.upstream.targets import Target
from tests.fakes.calls import make_call
from tests.fakes.clock import FakeClock

MODEL = "anthropic/claude-x"
CACHED = Usage(2000, 10, cached_tokens=1800)
WRITTEN = Usage(2000, 10, cache_write_tokens=1800)


def pool(clock: FakeClock, **sticky: Any) -> tuple[Routing, Sticky]:
    settings = Settings.model_validate({
        "providers": [{"name": n, "base_url": f"http://{n}.example", "models": ["anthropic/*"]}
                      for n in ("a", "b")],
        "prompt_cache": sticky})
    routing = Routing.build(settings, clock, environ={})
    assert routing.sticky is not None
    return routing, routing.sticky


def conversation(first: str = "hi", **fields: Any) -> Call:
    return make_call(model=MODEL, body={"model": MODEL, "messages": [
        {"role": "system", "content": "S"}, {"role": "user", "content": first}]}, **fields)


def order(routing: Routing, sticky: Sticky, call: Call) -> list[str]:
    targets: list[Target] = list(routing.router.tiers(MODEL)[0])
    return [t.name for t in sticky.order(call, MODEL, targets, targets)]


def served(call: Call, provider: str, usage: Usage | None, *, status: int = 200,
           failed: str | None = None) -> None:
    """As if route tried `failed` (an error) and then `provider` answered."""
    if failed is not None:
        call.begin_attempt(failed, MODEL, 0.0).error = "http_503"
    call.begin_attempt(provider, MODEL, 0.0).status = status
    call.answer = Answer(usage=usage)
    call.finish()


def test_a_cache_write_pins_the_conversation() -> None:
    """After an answer with a cache write on b, the conversation's next turns try b first,
    however the weights would draw; another conversation is not pinned."""
    clock = FakeClock()
    routing, sticky = pool(clock)
    first = conversation()
    order(routing, sticky, first)
    served(first, "b", WRITTEN)
    for _ in range(5):
        assert order(routing, sticky, conversation())[0] == "b"
    assert sticky.pinned_to("b") == 1 and len(sticky) == 1
    other = conversation("another")
    assert order(routing, sticky, other) in (["a", "b"], ["b", "a"])
    assert first.attempts[-1].sticky is False


def test_an_answer_without_cache_does_not_pin() -> None:
    """No cached or written tokens (and no session id): nothing is pinned."""
    routing, sticky = pool(FakeClock())
    call = conversation()
    order(routing, sticky, call)
    served(call, "a", Usage(20, 5))
    assert len(sticky) == 0


def test_a_session_id_pins_on_any_success() -> None:
    """A named conversation is pinned to whoever answered, cache or not."""
    routing, sticky = pool(FakeClock())
    call = conversation(headers={"x-session-id": "s1"})
    order(routing, sticky, call)
    served(call, "a", None)
    assert sticky.pinned_to("a") == 1


def test_idle_pins_expire_and_use_refreshes_them() -> None:
    """A pin lasts sticky_idle_s after the conversation's last answer there."""
    clock = FakeClock()
    routing, sticky = pool(clock, sticky_idle_s=60)
    call = conversation()
    order(routing, sticky, call)
    served(call, "b", WRITTEN)
    clock.advance(50)
    again = conversation()
    assert order(routing, sticky, again)[0] == "b"
    served(again, "b", Usage(2000, 10))  # used: the idle time starts again
    clock.advance(50)
    assert order(routing, sticky, conversation())[0] == "b"
    clock.advance(61)
    assert sticky.pinned_to("b") == 0
    order(routing, sticky, conversation())
    assert len(sticky) == 0


def test_a_failed_try_releases_and_repins_where_it_lands() -> None:
    """The pinned provider failed and the other answered with a cache write: pinned there."""
    routing, sticky = pool(FakeClock())
    call = conversation()
    order(routing, sticky, call)
    served(call, "a", WRITTEN)
    retry = conversation()
    assert order(routing, sticky, retry)[0] == "a"
    served(retry, "b", WRITTEN, failed="a")
    assert retry.attempts[0].sticky is True
    assert sticky.pinned_to("a") == 0 and sticky.pinned_to("b") == 1


def test_a_failed_try_without_cache_elsewhere_just_releases() -> None:
    """The pinned provider failed, the other answered without a cache: no pin at all."""
    routing, sticky = pool(FakeClock())
    call = conversation()
    order(routing, sticky, call)
    served(call, "a", CACHED)
    retry = conversation()
    order(routing, sticky, retry)
    served(retry, "b", Usage(20, 5), failed="a")
    assert len(sticky) == 0


def test_a_breaker_not_closed_releases_the_pin() -> None:
    """The pinned provider's breaker is open: the request is drawn by weight, the pin gone."""
    clock = FakeClock()
    routing, sticky = pool(clock)
    call = conversation()
    order(routing, sticky, call)
    served(call, "a", WRITTEN)
    target = routing.target("a")
    assert target is not None
    for _ in range(target.breaker.threshold):
        target.breaker.failure()
    assert target.breaker.state == "open"
    order(routing, sticky, conversation())
    assert len(sticky) == 0


def test_a_client_order_or_sort_is_not_overridden() -> None:
    """provider.order or provider.sort: the client chose; the pin is not applied (nor set)."""
    routing, sticky = pool(FakeClock())
    call = conversation()
    order(routing, sticky, call)
    served(call, "b", WRITTEN)
    ordered = conversation()
    ordered.preferences = Preferences(order=("a",))
    targets = list(routing.router.tiers(MODEL)[0])
    assert sticky.order(ordered, MODEL, targets, targets) == targets
    assert sticky.finish not in ordered.finishers


def test_pins_are_bounded_least_recently_used_first() -> None:
    """At most sticky_max_conversations pins: the oldest goes first."""
    routing, sticky = pool(FakeClock(), sticky_max_conversations=3)
    for i in range(5):
        call = conversation(f"c{i}")
        order(routing, sticky, call)
        served(call, "a", WRITTEN)
    assert len(sticky) == 3
    assert order(routing, sticky, conversation("c4"))[0] == "a"


def test_pins_survive_a_live_reload() -> None:
    """A reload rebuilds routing: the conversation stays pinned, within the new bound."""
    clock = FakeClock()
    routing, sticky = pool(clock)
    for first in ("x", "y", "z"):
        call = conversation(first)
        order(routing, sticky, call)
        served(call, "b", WRITTEN)
    settings = Settings.model_validate({
        "providers": [{"name": n, "base_url": f"http://{n}.example", "models": ["anthropic/*"]}
                      for n in ("a", "b")],
        "prompt_cache": {"sticky_max_conversations": 2}})
    reloaded = Routing.build(settings, clock, environ={})
    reloaded.keep_state_of(routing)
    assert reloaded.sticky is not None and len(reloaded.sticky) == 2
    assert order(reloaded, reloaded.sticky, conversation("z"))[0] == "b"


def test_no_sticky_without_a_pool_or_when_off() -> None:
    """One provider, or sticky_idle_s 0: routing keeps no pins at all."""
    one = Settings.model_validate({"providers": [{"name": "a", "base_url": "http://a.x"}]})
    assert Routing.build(one, FakeClock(), environ={}).sticky is None
    off = Settings.model_validate({
        "providers": [{"name": n, "base_url": f"http://{n}.x"} for n in ("a", "b")],
        "prompt_cache": {"sticky_idle_s": 0}})
    assert Routing.build(off, FakeClock(), environ={}).sticky is None
