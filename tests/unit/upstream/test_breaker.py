"""The circuit breaker's states with an injected clock."""

from __future__ import annotations

from sidecar.upstream.breaker import Breaker
from tests.fakes.clock import FakeClock


def opened(clock: FakeClock) -> Breaker:
    breaker = Breaker(3, 30.0, clock)
    for _ in range(3):
        breaker.failure()
    return breaker


def test_opens_after_consecutive_failures_only() -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    breaker = Breaker(3, 30.0, FakeClock())
    for _ in range(2):
        breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    assert (breaker.state, breaker.allow()) == ("closed", True)
    breaker.failure()
    assert (breaker.state, breaker.allow()) == ("open", False)


def test_half_open_lets_exactly_one_probe_through() -> None:
    """After open_s one caller gets the probe; the others are refused while it is out."""
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(29.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()
    assert breaker.state == "half_open"
    assert not breaker.allow()
    breaker.success()
    assert (breaker.state, breaker.failures, breaker.allow()) == ("closed", 0, True)


def test_failed_probe_reopens_for_a_full_period() -> None:
    """A failing probe opens the breaker again, counted from the probe's failure."""
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(30)
    assert breaker.allow()
    clock.advance(5)
    breaker.failure()
    assert breaker.state == "open"
    assert 29.9 < breaker.retry_in() <= 30.0
    clock.advance(29)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()


def test_a_probe_that_never_reports_is_replaced() -> None:
    """A probe abandoned (or silent for open_s) frees the slot, so half-open never sticks."""
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(30)
    assert breaker.allow()
    breaker.abandon()
    assert breaker.allow()  # abandoned: the next caller probes at once
    assert not breaker.allow()
    clock.advance(30)
    assert breaker.allow()  # silent for open_s: another probe


def test_disabled_breaker_never_opens() -> None:
    """With the breaker off (plain upstream), failures never stop traffic."""
    breaker = Breaker(1, 30.0, FakeClock(), enabled=False)
    for _ in range(100):
        breaker.failure()
    assert (breaker.state, breaker.allow(), breaker.retry_in()) == ("closed", True, 0.0)


def test_describe_says_why_and_when() -> None:
    """The fail-fast message names the failure count and the time to the next probe."""
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(12)
    assert breaker.describe() == ("circuit open after 3 consecutive failures; next probe in "
                                  "18.0 s")
