"""When an attempt may be retried, and how long to wait first.

Retryable: a transport failure (connect error, timeout, connection broken before the answer) or a
status in `retry.on_status`. Waits are exponential with full jitter (AWS's "Exponential Backoff
And Jitter": uniform in [0, min(max_backoff_s, backoff_s · 2^(n-1))]), so a crowd of clients
retrying the same outage spreads out instead of arriving in waves. A `Retry-After` header
(seconds, or an HTTP date) is honoured exactly when it is within `max_backoff_s`; one asking for
longer means the provider will not be asked again in this request (retrying early would only earn
another 429), and its answer passes to the client with the header, to wait as it was told.
"""

from __future__ import annotations

import datetime
import email.utils
import time
from collections.abc import Callable

from multidict import CIMultiDict

from sidecar.call import Reply
from sidecar.config.providers import RetrySettings
from sidecar.errors import UpstreamError


class RetryPolicy:
    __slots__ = ("attempts", "backoff_s", "deadline_s", "max_backoff_s", "on_status")

    def __init__(self, settings: RetrySettings, *, enabled: bool = True) -> None:
        self.attempts = settings.attempts if enabled else 1
        self.backoff_s = settings.backoff_s
        self.max_backoff_s = settings.max_backoff_s
        self.on_status = frozenset(settings.on_status)
        self.deadline_s = settings.deadline_s

    def retryable(self, reply: Reply) -> bool:
        """Did this attempt fail in a way another try (or another provider) may fix?"""
        error = reply.error
        if error is None:
            return reply.status in self.on_status
        return isinstance(error, UpstreamError)

    def backoff(self, tries: int, random: Callable[[], float]) -> float:
        """The wait before the next try of a provider already tried `tries` times."""
        cap = min(self.max_backoff_s, self.backoff_s * 2.0 ** (tries - 1))
        return random() * cap


def retry_after(headers: CIMultiDict[str], now: float | None = None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date), or None."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": a date in UTC with no zone information
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
