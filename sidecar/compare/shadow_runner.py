"""The Resource that runs shadow copies in the background, after their primary ended.

The shadow stage's finisher offers each sampled primary here once its outcome is final. A copy
is launched only for a primary that succeeded (outcome ok, status below 400: not cancelled, not
an error, not refused by a guardrail) and was not served from the cache (unless the rule's
`on_cache_hit`); at most `max_in_flight` copies of a rule run at once, and a sample beyond that
is skipped and counted. The copy runs through the rule's pipeline (its spend stage admits it
against the rule's budget: a refusal is a sample skipped for `budget`, which is how a rule stops
exactly at its budget), is read whole and discarded; then the pair is scored (agreement.py,
and the judge when configured) and counted (shadow_stats.py). Nothing here touches the
client's request: its answer was sent before the finisher ran.

At shutdown the runner stops taking copies, gives those running `DRAIN_S` to finish, then
cuts the rest (`cancelled`: their finishers still write their ledger rows).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from sidecar.call import Call
from sidecar.compare import agreement
from sidecar.compare.answers import answer_object, answer_text, error_object
from sidecar.compare.consume import Consumed, consume
from sidecar.compare.judge import judge_body, parse_score, request_text
from sidecar.compare.shadow_plan import ShadowPlan
from sidecar.compare.shadow_stats import Pair, RuleStats, Side
from sidecar.config.compare import ShadowRule
from sidecar.errors import BudgetExceeded, BudgetHeld

DRAIN_S = 5.0  # at shutdown, what running copies get to finish before they are cut
_log = structlog.get_logger("sidecar.shadow")


@dataclass(slots=True)
class Primary:
    """What the client's request left for its copy, noted when it ended."""

    call: Call
    body: dict[str, Any]  # as the upstream got it (redacted)
    side: Side
    answer: Consumed  # its answer's bytes (a JSON body, or the stream's events)


class ShadowRunner:
    name = "shadow runner"

    def __init__(self, rules: list[ShadowRule]) -> None:
        self.stats = {rule.name: RuleStats(rule) for rule in rules}
        self._in_flight: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiters: list[asyncio.Future[None]] = []  # `settled` callers
        self.offers = 0  # samples offered by the stage since start, whatever became of them
        self._closing = False

    async def start(self) -> None:
        """Nothing to open: copies start as primaries end."""

    async def close(self) -> None:
        self._closing = True
        if self._tasks:
            _, running = await asyncio.wait(self._tasks, timeout=DRAIN_S)
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)

    def problem(self) -> str | None:
        return None

    def reconfigure(self, rules: list[ShadowRule]) -> None:
        """Live reload: the rules now configured. A rule kept by name keeps its figures (under
        its new settings); a new one starts at zero; a removed one is forgotten (its copies
        still running finish on the pipeline they started with)."""
        self.stats = {rule.name: self._kept(rule) for rule in rules}

    def _kept(self, rule: ShadowRule) -> RuleStats:
        stats = self.stats.get(rule.name)
        if stats is None:
            return RuleStats(rule)
        stats.rule = rule
        return stats

    def rule_stats(self, rule: ShadowRule) -> RuleStats:
        """The figures of `rule`; a rule a reload removed gets figures nobody reports (a
        request that started on the old stages is still counted without failing)."""
        stats = self.stats.get(rule.name)
        return stats if stats is not None else RuleStats(rule)

    async def settled(self, offers: int) -> None:
        """Wait until `offers` samples were offered and no copy is running (the tests and the
        benchmark: a primary's finisher may run after its client got the answer)."""
        await self.wait_for(lambda: self.offers >= offers and not self._tasks)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds, checked each time a sample is offered or a copy
        ends."""
        while not predicate():
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def report(self) -> list[dict[str, Any]]:
        return [stats.report(self._in_flight[name]) for name, stats in self.stats.items()]

    def offer(self, plan: ShadowPlan, primary: Primary) -> None:
        """From the shadow stage's finisher: launch the copy, or count why not."""
        rule = plan.rule
        stats = self.rule_stats(rule)
        call = primary.call
        if self._closing:
            return
        self.offers += 1
        self._notify()
        if call.outcome != "ok" or not 0 < call.status < 400:
            stats.not_eligible += 1
            return
        if call.cache_status == "HIT" and not rule.on_cache_hit:
            stats.skipped["cache_hit"] += 1
            return
        if self._in_flight[rule.name] >= rule.max_in_flight:
            stats.skipped["in_flight"] += 1
            return
        self._in_flight[rule.name] += 1
        stats.launched += 1
        task = asyncio.ensure_future(self._run(plan, primary, stats))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._done(rule.name, done))

    def _done(self, name: str, task: asyncio.Task[None]) -> None:
        self._in_flight[name] -= 1
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            _log.error("shadow_failed", rule=name, exc_info=error)
        self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _run(self, plan: ShadowPlan, primary: Primary, stats: RuleStats) -> None:
        endpoint = primary.call.endpoint or ""
        call = plan.candidate_call(primary.call, primary.body)
        answer = await self._call(plan, call, stats, judge=False)
        if isinstance(answer.error, (BudgetExceeded, BudgetHeld)):
            stats.skipped["budget"] += 1
            return
        if (error := error_object(answer)) is not None:
            stats.candidate_errors[str(error.get("code") or answer.status)] += 1
            return
        pair = Pair(primary.call.request_id, call.request_id, time.time(), primary.side,
                    side_of(call, answer), exact=None, similarity=None)
        primary_text = answer_text(answer_object(endpoint, primary.answer))
        candidate_text = answer_text(answer_object(endpoint, answer))
        if primary_text is not None and candidate_text is not None:  # not for embeddings
            pair.exact = agreement.exact_match(primary_text, candidate_text)
            pair.similarity = round(agreement.similarity(primary_text, candidate_text), 4)
            if plan.rule.judge is not None:
                pair.judge = await self._judge(plan, primary, primary_text, candidate_text,
                                               stats)
        stats.add(pair)

    async def _judge(self, plan: ShadowPlan, primary: Primary, primary_text: str,
                     candidate_text: str, stats: RuleStats) -> float | None:
        assert plan.rule.judge is not None
        body = judge_body(plan.rule.judge.model,
                          request_text(primary.call.endpoint or "", primary.body),
                          primary_text, candidate_text)
        call = plan.judge_call(primary.call, body)
        answer = await self._call(plan, call, stats, judge=True)
        score = None if error_object(answer) is not None else parse_score(
            answer_text(answer_object("chat/completions", answer)))
        if score is None:
            stats.judge_errors += 1
        return score

    async def _call(self, plan: ShadowPlan, call: Call, stats: RuleStats, *, judge: bool
                    ) -> Consumed:
        """Run one of the rule's calls; count what it cost (its ledger row's cost), even when
        the shutdown cuts it."""
        try:
            return await consume(plan.pipeline, call, Consumed(), cut=lambda: self._closing)
        finally:  # consume has finished the call: spend has settled its bill
            cost = call.bill.cost if call.bill is not None else 0
            if judge:
                stats.spent_judge += cost
            else:
                stats.spent_candidates += cost


def side_of(call: Call, answer: Consumed) -> Side:
    """One side of a pair, from its finished call."""
    usage = call.answer.usage
    ended = answer.ended if answer.ended is not None else time.monotonic()
    return Side(model=call.answer.model or call.model,
                cost=None if call.bill is None else call.bill.cost,
                latency_ms=round((ended - call.started) * 1000, 3),
                finish_reason=call.answer.finish_reason,
                prompt_tokens=None if usage is None else usage.prompt_tokens,
                completion_tokens=None if usage is None else usage.completion_tokens,
                status=answer.status,
                tier=None if call.auto is None else call.auto.served_tier(call))
