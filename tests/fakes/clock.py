"""A routing clock for tests: monotonic time plus an offset the test controls, sleeps that
advance it instead of waiting, and a seeded random source."""

from __future__ import annotations

import asyncio
import random
import time


class FakeClock:
    def __init__(self, seed: int = 7) -> None:
        self.offset = 0.0
        self.slept: list[float] = []
        self.random = random.Random(seed).random

    def now(self) -> float:
        return time.monotonic() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.offset += seconds
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.offset += seconds
