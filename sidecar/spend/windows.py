"""Budget windows on the UTC calendar: where the current one started, when it resets.

    minute  hh:mm:00            hour   hh:00:00           day    00:00:00
    week    Monday 00:00:00     month  the 1st, 00:00:00  total  never resets (starts at 0)

Calendar windows rather than rolling ones: a person reads "25 USD a day" as "since midnight",
the reset time can be printed in an error, and the totals rebuild from the ledger with one range
query. UTC everywhere, as OpenRouter's own key limits (its weeks start on Monday too).
"""

from __future__ import annotations

import calendar
import time
from typing import Literal

Window = Literal["minute", "hour", "day", "week", "month", "total"]
WINDOWS: tuple[Window, ...] = ("minute", "hour", "day", "week", "month", "total")
REPORT_WINDOWS = ("minute", "hour", "day", "week", "month", "all")  # usage: "all" for total
REPORT_BYS = ("model", "key", "user", "tag", "provider", "tier")
DAY = 86_400
_FIXED = {"minute": 60, "hour": 3_600, "day": DAY}
_EPOCH_MONDAY = 4 * DAY  # 1970-01-01 was a Thursday; 1970-01-05 the first Monday


def window_start(window: Window, now: float) -> int:
    """Unix time the window holding `now` started."""
    seconds = int(now)
    step = _FIXED.get(window)
    if step is not None:
        return seconds - seconds % step
    if window == "week":
        return seconds - (seconds - _EPOCH_MONDAY) % (7 * DAY)
    if window == "month":
        tm = time.gmtime(seconds)
        return calendar.timegm((tm.tm_year, tm.tm_mon, 1, 0, 0, 0))
    return 0


def window_end(window: Window, start: int) -> int | None:
    """Unix time the window starting at `start` resets; None for total."""
    step = _FIXED.get(window)
    if step is not None:
        return start + step
    if window == "week":
        return start + 7 * DAY
    if window == "month":
        tm = time.gmtime(start)
        year, month = (tm.tm_year + 1, 1) if tm.tm_mon == 12 else (tm.tm_year, tm.tm_mon + 1)
        return calendar.timegm((year, month, 1, 0, 0, 0))
    return None


def iso(seconds: float | None) -> str | None:
    """RFC 3339 UTC, as the API shows times: 2026-11-23T00:00:00Z."""
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
