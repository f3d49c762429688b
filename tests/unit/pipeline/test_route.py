"""The route stage (sidecar/pipeline/route.py): its retry loop, deadline and breakers, driven
through `Route.model` and `Route.forward` with scripted providers and the fake clock (its
sleeps advance time instead of waiting, and record how long they were)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from sidecar.call import Attempt, Call, Reply
from sidecar.config import Settings
from sidecar.errors import InvalidRequest, UpstreamUnavailable
from sidecar.pipeline.route import Route
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.keys import KeyRing
from sidecar.upstream.routing import Routing
from tests.fakes.calls import make_call
from tests.fakes.clock import FakeClock

Answer = Reply | Callable[[Attempt], Reply]


def answer(status: int, headers: dict[str, str] | None = None) -> Reply:
    """An upstream's own answer with this status (a body of JSON)."""
    return Reply(status, CIMultiDict({"Content-Type": "application/json", **(headers or {})}),
                 body=orjson.dumps({"status": status}))


def unreachable(attempt: Attempt) -> Reply:
    """A transport failure: nothing came back."""
    attempt.error = "upstream_unavailable"
    return Reply.from_error(UpstreamUnavailable("Cannot connect to upstream (refused)."))


def refused_here(attempt: Attempt) -> Reply:
    """The provider refuses the request itself, before sending anything (e.g. a field its
    format cannot carry)."""
    return Reply.from_error(InvalidRequest("This provider cannot carry 'n'.", param="n"))


class Scripted:
    """A provider that answers each try with the next scripted answer (200 once the script is
    done), as a real one would fill the Attempt; `gate`, when set, holds every try until it
    is set (and `entered` says a try is waiting)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.base_url = f"http://{name}.invalid"
        self.keys: KeyRing | None = None
        self.script: deque[Answer] = deque()
        self.sent: list[str] = []  # the model of each try
        self.forwarded: list[str] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    def upstream_model(self, model: str) -> str:
        return model

    async def send(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        self.sent.append(attempt.model)
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        scripted = self.script.popleft() if self.script else answer(200)
        reply = scripted(attempt) if callable(scripted) else scripted
        if reply.error is None:
            attempt.status, attempt.headers_at = reply.status, time.monotonic()
            if reply.status >= 400:
                attempt.error = f"http_{reply.status}"
        attempt.ended = time.monotonic()
        return reply

    async def forward(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        self.forwarded.append(call.path)
        attempt.status = 200
        return answer(200)


class Setup:
    """Route over scripted providers named a, b, … (all serving every model, in one pool)."""

    def __init__(self, *names: str, **config: Any) -> None:
        self.clock = FakeClock()
        settings = Settings.model_validate({
            "providers": [{"name": n, "base_url": f"http://{n}.invalid"} for n in names],
            **config})
        self.routing = Routing.build(settings, clock=self.clock)
        self.providers = {n: Scripted(n) for n in names}
        for target in self.routing.targets:
            target.provider = self.providers[target.name]
        self.route = Route(UpstreamClient(settings.upstream), self.routing)

    def breaker(self, name: str) -> Any:
        target = self.routing.target(name)
        assert target is not None
        return target.breaker

    def open(self, name: str) -> None:
        breaker = self.breaker(name)
        for _ in range(breaker.threshold):
            breaker.failure()
        assert breaker.state == "open"


def tried(call: Call) -> list[tuple[str, int]]:
    return [(a.provider, a.status) for a in call.attempts]


async def test_the_first_try_answers() -> None:
    """A provider that answers at once: one attempt, its answer, nothing slept."""
    setup = Setup("a")
    call = make_call()
    reply = await setup.route.model(call)
    assert reply.status == 200
    assert tried(call) == [("a", 200)]
    assert setup.clock.slept == []
    assert setup.breaker("a").state == "closed"


async def test_a_retryable_status_is_retried_after_a_backoff() -> None:
    """A 503 is retried on the same provider after a jittered backoff within backoff_s, and
    the success is returned (the failed answer is discarded)."""
    setup = Setup("a", retry={"attempts": 3, "backoff_s": 0.2})
    setup.providers["a"].script.extend([answer(503)])
    call = make_call()
    reply = await setup.route.model(call)
    assert reply.status == 200
    assert tried(call) == [("a", 503), ("a", 200)]
    (wait,) = setup.clock.slept
    assert 0 <= wait <= 0.2
    assert setup.breaker("a").failures == 0  # the success reset the count


async def test_a_failing_provider_hands_over_to_the_next_at_once() -> None:
    """With two providers, a failed try moves to the other one without waiting."""
    setup = Setup("a", "b", retry={"attempts": 2})
    setup.clock.random = lambda: 0.0  # the weighted draw puts a first
    setup.providers["a"].script.append(unreachable)
    call = make_call()
    reply = await setup.route.model(call)
    assert reply.status == 200
    assert tried(call) == [("a", 0), ("b", 200)]
    assert setup.clock.slept == []


@pytest.mark.parametrize("retry_after", ["2", "Thu, 01 Jan 2037 00:00:00 GMT"],
                         ids=["seconds", "too_far_date"])
async def test_retry_after_is_honoured_or_ends_the_retries(retry_after: str) -> None:
    """A 429 asking for 2 s is retried after exactly 2 s; one asking for longer than
    max_backoff_s is not retried: it goes to the client with its Retry-After."""
    # a deadline far enough that only the Retry-After rule can stop the retry
    setup = Setup("a", retry={"attempts": 3, "max_backoff_s": 5, "deadline_s": 1e10})
    setup.providers["a"].script.append(answer(429, {"Retry-After": retry_after}))
    call = make_call()
    reply = await setup.route.model(call)
    if retry_after == "2":
        assert reply.status == 200 and setup.clock.slept == [2.0]
        assert tried(call) == [("a", 429), ("a", 200)]
    else:
        assert reply.status == 429 and reply.headers["Retry-After"] == retry_after
        assert tried(call) == [("a", 429)] and setup.clock.slept == []


async def test_the_deadline_stops_the_retries() -> None:
    """No new try starts past retry.deadline_s from the request's arrival: a wait that would
    end after it is not slept, and the last failure is the answer."""
    setup = Setup("a", retry={"attempts": 5, "max_backoff_s": 10, "deadline_s": 3})
    setup.providers["a"].script.extend([answer(503, {"Retry-After": "2"}),
                                        answer(503, {"Retry-After": "2"})])
    call = make_call()
    reply = await setup.route.model(call)
    assert reply.status == 503
    assert tried(call) == [("a", 503), ("a", 503)]  # at 0 s and 2 s; the next would be at 4 s
    assert setup.clock.slept == [2.0]


async def test_transport_failures_on_every_try_are_one_502_naming_each() -> None:
    """When no try got an answer, the client gets 502 upstream_unavailable naming why each
    provider failed."""
    setup = Setup("a", retry={"attempts": 2})
    setup.providers["a"].script.extend([unreachable, unreachable])
    call = make_call()
    reply = await setup.route.model(call)
    assert reply.status == 502 and reply.error is not None
    assert reply.error.code == "upstream_unavailable"
    assert reply.error.message.count("'a': Cannot connect") == 2


async def test_every_breaker_open_is_502_at_once() -> None:
    """With every provider's breaker open, 502 upstream_unavailable says so before any try
    and without waiting."""
    setup = Setup("a", "b", breaker={"failures": 2, "open_s": 30})
    setup.open("a")
    setup.open("b")
    call = make_call()
    reply = await setup.route.model(call)
    assert reply.status == 502 and reply.error is not None
    assert "fails fast" in reply.error.message
    assert "'a': circuit open after 2 consecutive failures" in reply.error.message
    assert call.attempts == [] and setup.clock.slept == []
    assert setup.providers["a"].sent == setup.providers["b"].sent == []


async def test_an_open_breaker_is_skipped_for_the_other_provider() -> None:
    """A provider whose breaker is open is not tried while another can serve."""
    setup = Setup("a", "b", breaker={"failures": 2, "open_s": 30})
    setup.open("a")
    for _ in range(3):
        call = make_call()
        assert (await setup.route.model(call)).status == 200
        assert tried(call) == [("b", 200)]
    assert setup.providers["a"].sent == []


async def test_a_provider_refusing_before_sending_does_not_spend_the_probe() -> None:
    """Half-open, the request that takes the probe is refused by the provider itself (nothing
    was sent): the probe is given back, so the next request is the probe."""
    setup = Setup("a", breaker={"failures": 2, "open_s": 30})
    setup.open("a")
    setup.clock.advance(30)
    setup.providers["a"].script.append(refused_here)
    refused = await setup.route.model(make_call())
    assert refused.status == 400
    breaker = setup.breaker("a")
    assert breaker.state == "half_open"
    probe = make_call()
    assert (await setup.route.model(probe)).status == 200  # the probe was still free
    assert tried(probe) == [("a", 200)] and breaker.state == "closed"


async def test_a_cancelled_request_gives_the_probe_back() -> None:
    """Half-open, the client of the probe leaves while it is in flight: the probe is
    abandoned, so the next request probes at once instead of failing fast for open_s."""
    setup = Setup("a", breaker={"failures": 2, "open_s": 30})
    setup.open("a")
    setup.clock.advance(30)
    provider = setup.providers["a"]
    provider.gate = asyncio.Event()
    task = asyncio.ensure_future(setup.route.model(make_call()))
    await asyncio.wait_for(provider.entered.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    provider.gate.set()
    call = make_call()
    assert (await setup.route.model(call)).status == 200
    assert tried(call) == [("a", 200)]
    assert setup.breaker("a").state == "closed"


async def test_a_probe_that_fails_opens_the_breaker_again() -> None:
    """Half-open, a probe that fails opens the breaker for another open_s: the next request
    fails fast."""
    setup = Setup("a", breaker={"failures": 2, "open_s": 30})
    setup.open("a")
    setup.clock.advance(30)
    setup.providers["a"].script.append(answer(503))
    assert (await setup.route.model(make_call())).status == 503
    assert setup.breaker("a").state == "open"
    fast = await setup.route.model(make_call())
    assert fast.status == 502 and setup.providers["a"].sent == ["openai/gpt-4o"]


async def test_forward_goes_to_the_first_provider_once() -> None:
    """Other paths go to the first provider listed, one try, no retry; a path that leaves /v1
    is refused without reaching any."""
    setup = Setup("a", "b")
    call = make_call()
    call.method, call.endpoint, call.path = "GET", None, "/files?limit=1"
    reply = await setup.route.forward(call)
    assert reply.status == 200
    assert setup.providers["a"].forwarded == ["/files?limit=1"]
    assert setup.providers["b"].forwarded == []
    escape = make_call()
    escape.endpoint, escape.path = None, "/files/../../admin"
    refused = await setup.route.forward(escape)
    assert refused.status == 404 and setup.providers["a"].forwarded == ["/files?limit=1"]
