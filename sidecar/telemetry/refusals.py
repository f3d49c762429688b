"""Refused credentials (401s): counted in a metric, logged at most once per interval.

A client stuck with a wrong key, or someone guessing tokens, can send thousands of requests a
second; one log line each would drown the log (and cost a structlog render, ~15 µs, per
request). So each scope (`proxy`: the local keys of `auth.keys`; `admin`: `admin.token`) logs
its first refusal at once, then nothing until `interval_s` has passed, when one `auth_refused`
line gives the count of the refusals held back (by reason). Nothing is lost: the last window's
count is written when its interval ends, or when the sidecar stops. Every refusal is counted in
`llm_sidecar_auth_failures_total{scope,reason}` as it happens. The lines never hold the token,
only how many were refused and why (`missing`: no bearer token; `expired`: a key outside its
`not_before`/`not_after` window; `invalid`: a token that matches
nothing).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import structlog

from sidecar.telemetry.metrics import Metrics

Scope = Literal["proxy", "admin"]
Reason = Literal["missing", "invalid", "expired"]
INTERVAL_S = 60.0  # an attack at any rate writes at most one line a minute per scope

_log = structlog.get_logger("sidecar.auth")


@dataclass(slots=True)
class _Window:
    held: Counter[str] = field(default_factory=Counter)  # refusals not logged yet, by reason
    timer: asyncio.TimerHandle | None = None  # ends the quiet interval after a logged line


class AuthRefusals:
    """A Resource (deps.py): `close` writes the counts still held back."""

    name = "auth refusals"

    def __init__(self, metrics: Metrics, interval_s: float = INTERVAL_S,
                 later: Callable[[float, Callable[[], None]], asyncio.TimerHandle] | None = None
                 ) -> None:
        self._metrics = metrics
        self._interval_s = interval_s
        # How the end of an interval is scheduled (tests end it themselves, see `end`).
        self._later = later
        self._windows: dict[Scope, _Window] = {"proxy": _Window(), "admin": _Window()}

    def refused(self, scope: Scope, reason: Reason) -> None:
        """One refused request: counted now; logged now if its scope is not in a quiet
        interval, else held for the line that ends it."""
        self._metrics.auth_failure(scope, reason)
        window = self._windows[scope]
        if window.timer is not None:
            window.held[reason] += 1
            return
        _log.warning("auth_refused", scope=scope, count=1, **{reason: 1},
                     interval_s=self._interval_s)
        later = self._later or asyncio.get_running_loop().call_later
        window.timer = later(self._interval_s, lambda: self.end(scope))

    def end(self, scope: Scope) -> None:
        """The quiet interval of `scope` is over: log what it held back, if anything (and then
        stay quiet for one more interval, so a steady attack logs once per interval)."""
        if self._write_held(scope):
            later = self._later or asyncio.get_running_loop().call_later
            self._windows[scope].timer = later(self._interval_s, lambda: self.end(scope))

    def _write_held(self, scope: Scope) -> bool:
        window = self._windows[scope]
        if window.timer is not None:
            window.timer.cancel()
            window.timer = None
        if not window.held:
            return False
        held, window.held = window.held, Counter()
        _log.warning("auth_refused", scope=scope, count=sum(held.values()), **held,
                     interval_s=self._interval_s)
        return True

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        for scope in self._windows:
            self._write_held(scope)

    def problem(self) -> str | None:
        return None
