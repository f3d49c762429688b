"""The shadow stage: copy sampled requests to a rule's candidate model, after the client's
answer, in the background (issue 19; docs/compare.md).

Right after privacy, so what it copies is the body as the upstream gets it: the candidate
never sees what the primary did not. For each request it decides, per rule, whether the rule
matches (globs on the requested model, key, user, tags) and whether this request is sampled
(`percent`, drawn from the routing clock's random source: tests seed it); only then does it
keep the primary's answer as it passes (the JSON body, or each stream chunk as it goes by:
nothing is held back from the client). Its finisher, which runs once the primary's outcome is
final, hands the sample to the shadow runner (compare/shadow_runner.py), which decides whether
to launch the copy (the primary succeeded and was not a cache hit) and runs it. The client's
answer, and when it gets it, never depend on the copy.

Absent when no shadow rule is configured. A request no rule matches pays one glob match per
rule; a sampled one, a list append per chunk (bench/compare.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from sidecar.call import Call, Next, Reply
from sidecar.compare.consume import Consumed
from sidecar.compare.shadow_plan import ShadowPlan
from sidecar.compare.shadow_runner import Primary, ShadowRunner
from sidecar.compare.shadow_stats import Side
from sidecar.config.compare import COMPARE_TAG

__all__ = ["Shadow"]


class Shadow:
    name = "shadow"
    reads_answer = True  # the primary's usage and finish reason, for the pair

    def __init__(self, plans: Sequence[ShadowPlan], runner: ShadowRunner,
                 random: Callable[[], float]) -> None:
        self._plans = tuple(plans)
        self._runner = runner
        self._random = random

    async def __call__(self, call: Call, next: Next) -> Reply:
        if COMPARE_TAG in call.tags:  # a compare's model call is an evaluation already
            return await next(call)
        chosen: list[ShadowPlan] = []
        for plan in self._plans:
            if plan.matches(call):
                stats = self._runner.rule_stats(plan.rule)
                stats.matched += 1
                if plan.sampled(self._random):
                    stats.sampled += 1
                    chosen.append(plan)
        if not chosen or call.body is None:
            return await next(call)
        sample = _Sample(chosen, call.body, self._runner)
        call.finishers.append(sample.finish)
        reply = await next(call)
        if reply.status < 400:
            if reply.body is not None:
                sample.body = reply.body
            elif reply.sse and reply.chunks is not None:
                sample.streamed = True
                reply.chunks = _Kept(reply.chunks, sample.parts)
        return reply


class _Sample:
    """A sampled request, from the stage to its finisher."""

    __slots__ = ("body", "parts", "plans", "request", "runner", "streamed")

    def __init__(self, plans: list[ShadowPlan], request: dict[str, Any],
                 runner: ShadowRunner) -> None:
        self.plans = plans
        self.request = request  # the body as the upstream got it (redacted)
        self.runner = runner
        self.body = b""
        self.parts: list[bytes] = []
        self.streamed = False

    def finish(self, call: Call) -> None:
        bill, usage = call.bill, call.answer.usage
        # What the primary's answer costs at its model's price: a cache hit's saving, since
        # the comparison is between models, not between a hit and a call.
        cost = None if bill is None else bill.cost + (bill.saved if bill.hit else 0)
        side = Side(model=call.answer.model or call.model, cost=cost,
                    latency_ms=round((time.monotonic() - call.started) * 1000, 3),
                    finish_reason=call.answer.finish_reason,
                    prompt_tokens=None if usage is None else usage.prompt_tokens,
                    completion_tokens=None if usage is None else usage.completion_tokens,
                    status=call.status)
        answer = Consumed(status=call.status, streamed=self.streamed,
                          body=b"".join(self.parts) if self.streamed else self.body)
        primary = Primary(call, self.request, side, answer)
        for plan in self.plans:
            self.runner.offer(plan, primary)


class _Kept:
    """A stream passed through chunk by chunk, each chunk also kept for the copy's pair. A
    class rather than a generator, so `aclose()` reaches the upstream body even when the
    stream is closed before its first chunk."""

    __slots__ = ("_chunks", "_parts")

    def __init__(self, chunks: AsyncIterator[bytes], parts: list[bytes]) -> None:
        self._chunks = chunks
        self._parts = parts

    def __aiter__(self) -> _Kept:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._chunks.__anext__()
        self._parts.append(chunk)
        return chunk

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()
