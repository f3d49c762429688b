"""Session pinning: within one session the tier never goes down, so an agent does not bounce
between models mid-task.

A session is named by the body's `session_id` (OpenRouter's field) or the `x-session-id`
header, at most 256 characters (OpenRouter's limit; a longer one pins nothing). Pins are kept
per router and per caller (the local key's name when `auth` is on): two callers that happen to
send the same id share nothing. A pin holds the highest tier the session was served and when
it was last seen; it expires after the router's `session_idle_s` without a request. At most
`auto.max_sessions` pins are kept, the least recently seen forgotten first (an OrderedDict:
one dict lookup and one move per request).

Time is the routing clock's (`Clock.now`, monotonic), so tests move it instead of waiting.
State that outlives a request lives here, in `Deps`, never in a stage.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from sidecar.auto.tiers import rank
from sidecar.config.auto import TIERS, Tier

__all__ = ["PinKey", "Pins"]

PinKey = tuple[str, str | None, str]  # router, caller, session id


class Pins:
    __slots__ = ("_now", "_pins", "max_sessions")

    def __init__(self, max_sessions: int, now: Callable[[], float]) -> None:
        self.max_sessions = max_sessions
        self._now = now
        self._pins: OrderedDict[PinKey, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pins)

    def resize(self, max_sessions: int) -> None:
        """A live reload's new `auto.max_sessions`: the oldest pins beyond it are forgotten."""
        self.max_sessions = max_sessions
        while len(self._pins) > max_sessions:
            self._pins.popitem(last=False)

    def floor(self, key: PinKey, idle_s: float) -> Tier | None:
        """The session's pinned tier while its pin is alive, else None (an expired pin is
        dropped)."""
        found = self._pins.get(key)
        if found is None:
            return None
        tier, seen = found
        if self._now() - seen > idle_s:
            del self._pins[key]
            return None
        return TIERS[tier]

    def pin(self, key: PinKey, tier: Tier, idle_s: float) -> None:
        """Note that the session needed `tier` now: a live pin never goes down."""
        pins = self._pins
        found = pins.get(key)
        level, now = rank(tier), self._now()
        if found is not None:
            if now - found[1] <= idle_s:
                level = max(level, found[0])
            pins.move_to_end(key)
        pins[key] = (level, now)
        if len(pins) > self.max_sessions:
            pins.popitem(last=False)
