"""Time and chance for routing, injectable so tests of breakers, backoff and averages are exact.

`now()` is monotonic seconds on the same scale as `time.monotonic()` (a Call's `started` and an
Attempt's timings use that clock, and deadlines compare them). A test clock keeps that scale and
adds an offset it controls: its `sleep` advances the offset instead of waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds, comparable with time.monotonic()."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def random(self) -> float:
        """Uniform in [0, 1): weighted picks and backoff jitter."""
        ...


class SystemClock:
    __slots__ = ("random",)

    def __init__(self, seed: int | None = None) -> None:
        # Not a secret: the Mersenne Twister picks providers and jitters backoffs.
        self.random = random.Random(seed).random

    @staticmethod
    def now() -> float:
        return time.monotonic()

    @staticmethod
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)
