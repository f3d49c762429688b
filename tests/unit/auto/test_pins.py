"""Session pins: the tier never goes down within a live session, pins expire when idle, are
kept apart per router and caller, and the oldest is forgotten beyond max_sessions."""

from __future__ import annotations

import pytest

from sidecar.auto.pins import Pins
from sidecar.upstream.conversation import session_id
from tests.fakes.calls import make_call


class Now:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def test_a_live_pin_never_goes_down_and_expires_when_idle() -> None:
    """complex, then simple asked: the pin stays complex; idle past the limit, it is gone."""
    now = Now()
    pins = Pins(10, now)
    key = ("sidecar/auto", None, "s1")
    assert pins.floor(key, 60) is None
    pins.pin(key, "complex", 60)
    pins.pin(key, "simple", 60)
    now.t += 59
    assert pins.floor(key, 60) == "complex"  # seen 59 s ago: alive, and refreshed below
    pins.pin(key, "simple", 60)
    now.t += 60
    assert pins.floor(key, 60) == "complex"
    now.t += 61
    assert pins.floor(key, 60) is None and len(pins) == 0
    pins.pin(key, "simple", 60)
    assert pins.floor(key, 60) == "simple"


def test_an_expired_pin_is_not_raised_from() -> None:
    """Pinning after the pin expired starts again from the tier asked."""
    now = Now()
    pins = Pins(10, now)
    key = ("r", "k", "s")
    pins.pin(key, "reasoning", 10)
    now.t += 11
    pins.pin(key, "medium", 10)
    assert pins.floor(key, 10) == "medium"


def test_pins_are_per_router_and_caller() -> None:
    """The same session id under another router or another key shares nothing."""
    pins = Pins(10, Now())
    pins.pin(("a", "team-1", "s"), "complex", 60)
    assert pins.floor(("b", "team-1", "s"), 60) is None
    assert pins.floor(("a", "team-2", "s"), 60) is None


def test_least_recently_seen_pin_is_forgotten_first() -> None:
    """Beyond max_sessions the session seen longest ago goes; a recent touch keeps one."""
    pins = Pins(2, Now())
    pins.pin(("r", None, "1"), "complex", 60)
    pins.pin(("r", None, "2"), "complex", 60)
    pins.pin(("r", None, "1"), "complex", 60)  # 1 is now the most recent
    pins.pin(("r", None, "3"), "complex", 60)
    assert len(pins) == 2
    assert pins.floor(("r", None, "2"), 60) is None
    assert pins.floor(("r", None, "1"), 60) == "complex"


@pytest.mark.parametrize(("body", "header", "session"), [
    ({"session_id": "b"}, "h", "b"), ({}, "h", "h"), ({"session_id": ""}, "h", "h"),
    ({"session_id": 5}, None, None), ({}, None, None), ({"session_id": "x" * 257}, None, None),
    ({"session_id": "x" * 256}, None, "x" * 256)])
def test_session_id(body: dict[str, object], header: str | None, session: str | None) -> None:
    """The session a router pins (the one the sticky pools read too): the body's session_id
    wins over x-session-id; empty, non-string or over 256 characters is no session."""
    call = make_call({"x-session-id": header} if header else {}, body=body)
    assert session_id(call) == session
