"""A circuit breaker per provider: closed → open after N consecutive failures → half-open probe.

- closed: every request may use the provider; `failures` counts consecutive failed attempts
  (a transport error, a status in `retry.on_status`, a stream the upstream broke mid-way); any
  other answer resets it (a stream: once it ended).
- open: after `failures` of those in a row. Requests skip the provider (or fail fast with 502
  when it is the only one) for `open_s` seconds instead of piling up timeouts.
- half-open: after `open_s`, exactly one request is let through as a probe. Success closes the
  breaker; failure opens it for another `open_s`. A probe that never reports (its client left)
  is replaced by a new one after `open_s`, so the breaker cannot stay stuck half-open.

This works with a single provider too: LiteLLM never cools down the only deployment of a model
group (its issue #40405), and Portkey's open circuit still tries the failed target (#1289).
"""

from __future__ import annotations

import sys
from typing import Literal

from sidecar.upstream.clock import Clock

BreakerState = Literal["closed", "open", "half_open"]


class Breaker:
    __slots__ = ("_clock", "_open_s", "_probe_at", "enabled", "failures", "opened_at", "state",
                 "threshold")

    def __init__(self, threshold: int, open_s: float, clock: Clock, *, enabled: bool = True
                 ) -> None:
        self.enabled = enabled
        # A disabled breaker never leaves "closed": the hot path stays one comparison.
        self.threshold = threshold if enabled else sys.maxsize
        self._open_s = open_s
        self._clock = clock
        self.state: BreakerState = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self._probe_at = 0.0

    def keep_state_of(self, previous: Breaker) -> None:
        """Live reload: carry the previous breaker's state (open, failures counted) into this
        one, which has the new threshold and open time."""
        if self.enabled and previous.enabled:
            self.state, self.failures = previous.state, previous.failures
            self.opened_at, self._probe_at = previous.opened_at, previous._probe_at

    def allow(self) -> bool:
        """May a request use the provider now? In half-open state this takes the probe."""
        if self.state == "closed":
            return True
        now = self._clock.now()
        if self.state == "open":
            if now - self.opened_at < self._open_s:
                return False
            self.state = "half_open"
        elif now - self._probe_at < self._open_s:  # half-open, the probe is still out
            return False
        self._probe_at = now
        return True

    def success(self) -> None:
        self.failures = 0
        self.state = "closed"

    def failure(self) -> None:
        self.failures += 1
        if self.state == "half_open" or (self.state == "closed"
                                         and self.failures >= self.threshold):
            self.state = "open"
            self.opened_at = self._clock.now()

    def abandon(self) -> None:
        """A probe taken by `allow` was never sent (deadline, cancelled client): free it."""
        if self.state == "half_open":
            self._probe_at = self._clock.now() - self._open_s

    def retry_in(self) -> float:
        """Seconds until the next probe may go (0 when one may go now)."""
        if self.state == "closed":
            return 0.0
        since = self.opened_at if self.state == "open" else self._probe_at
        return max(0.0, since + self._open_s - self._clock.now())

    def describe(self) -> str:
        return (f"circuit open after {self.failures} consecutive failures; next probe in "
                f"{self.retry_in():.1f} s")
