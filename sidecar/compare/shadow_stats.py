"""What each shadow rule measured, in memory, since the sidecar started (a restart starts them
again; the rule's budget and the ledger rows are durable).

Per pair (a primary that succeeded and its candidate's answer): both models, costs, latencies,
finish reasons and token counts, whether the texts match exactly (whitespace and case
normalised), their word-set similarity, and the judge's score when a judge is configured.
Per rule: how many requests matched and were sampled, the pairs, costs on both sides over the
pairs and the saving had the candidate served them, latency p50/p95 on both sides (over the
last `LATENCIES` pairs), candidate errors, the samples that were skipped and why, the
agreement figures, and everything the rule spent (candidates and judge, failed calls
included): the same sum as the ledger's rows tagged `shadow:<name>`.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from sidecar.config.compare import ShadowRule
from sidecar.spend.pricing import to_usd

LATENCIES = 10_000  # pairs whose latencies the percentiles read (a bounded, recent window)
TIER_LATENCIES = 2_000  # the same, per tier of an auto candidate
RECENT = 20  # pairs listed in the report
Skip = str  # "budget" | "in_flight" | "cache_hit"


@dataclass(slots=True)
class Side:
    model: str | None
    cost: int | None  # nano-dollars; None when spend did not price it
    latency_ms: float
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    status: int
    tier: str | None = None  # an auto router's candidate: the tier it served

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cost_usd"] = None if self.cost is None else to_usd(self.cost)
        del out["cost"]
        return out


@dataclass(slots=True)
class Pair:
    request_id: str  # the primary's
    candidate_request_id: str
    time: float  # Unix time the primary finished
    primary: Side
    candidate: Side
    exact: bool | None  # None: no text to compare (embeddings)
    similarity: float | None
    judge: float | None = None  # 0-1, when a judge scored the pair

    def as_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id,
                "candidate_request_id": self.candidate_request_id, "time": self.time,
                "primary": self.primary.as_dict(), "candidate": self.candidate.as_dict(),
                "exact": self.exact, "similarity": self.similarity, "judge": self.judge}


@dataclass(slots=True)
class Tally:
    """The pairs' sums: costs and latencies on both sides and the text agreement. A rule keeps
    one over all its pairs and, when its candidate is an auto router (`candidate:
    sidecar/auto`), one per tier the router served, so the router is judged tier by tier
    before it is trusted."""

    window: int = LATENCIES  # the latencies the percentiles read (a bounded, recent window)
    pairs: int = 0
    primary_cost: int = 0  # nano-dollars
    candidate_cost: int = 0
    exact: int = 0
    compared: int = 0  # pairs with text on both sides
    similarity_sum: float = 0.0
    primary_latency: deque[float] = field(init=False)
    candidate_latency: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        self.primary_latency = deque(maxlen=self.window)
        self.candidate_latency = deque(maxlen=self.window)

    def add(self, pair: Pair) -> None:
        self.pairs += 1
        self.primary_cost += pair.primary.cost or 0
        self.candidate_cost += pair.candidate.cost or 0
        self.primary_latency.append(pair.primary.latency_ms)
        self.candidate_latency.append(pair.candidate.latency_ms)
        if pair.exact is not None and pair.similarity is not None:
            self.compared += 1
            self.exact += pair.exact
            self.similarity_sum += pair.similarity

    @property
    def saving(self) -> int:
        return self.primary_cost - self.candidate_cost

    def primary(self) -> dict[str, Any]:
        return _side(self.primary_cost, self.pairs, self.primary_latency)

    def candidate(self) -> dict[str, Any]:
        return _side(self.candidate_cost, self.pairs, self.candidate_latency)

    def agreement(self) -> dict[str, Any]:
        return {"exact_rate": round(self.exact / self.compared, 4) if self.compared else None,
                "similarity_mean": round(self.similarity_sum / self.compared, 4)
                if self.compared else None}

    def by_tier(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "primary": self.primary(), "candidate": self.candidate(),
                "projected_saving_usd": to_usd(self.saving), **self.agreement()}


@dataclass(slots=True)
class RuleStats:
    rule: ShadowRule
    started: float = field(default_factory=time.time)
    matched: int = 0
    sampled: int = 0
    not_eligible: int = 0  # sampled, but the primary failed, was refused or cancelled
    launched: int = 0
    candidate_errors: Counter[str] = field(default_factory=Counter)  # by error code
    skipped: Counter[Skip] = field(default_factory=Counter)
    spent_candidates: int = 0  # every candidate call, failed ones too
    spent_judge: int = 0
    judged: int = 0
    judge_sum: float = 0.0
    judge_errors: int = 0
    total: Tally = field(default_factory=Tally)  # over every pair
    tiers: dict[str, Tally] = field(default_factory=dict)  # an auto candidate's, by tier
    recent: deque[Pair] = field(default_factory=lambda: deque(maxlen=RECENT))

    @property
    def pairs(self) -> int:
        return self.total.pairs

    def add(self, pair: Pair) -> None:
        self.total.add(pair)
        if (tier := pair.candidate.tier) is not None:
            self.tiers.setdefault(tier, Tally(TIER_LATENCIES)).add(pair)
        if pair.judge is not None:
            self.judged += 1
            self.judge_sum += pair.judge
        self.recent.append(pair)

    def report(self, in_flight: int) -> dict[str, Any]:
        rule, total = self.rule, self.total
        return {
            "name": rule.name, "candidate_model": rule.candidate, "percent": rule.percent,
            "judge": rule.judge.model if rule.judge else None,
            "budget": {"name": rule.tag, "limit_usd": rule.budget_usd, "window": rule.window},
            "since": self.started, "matched": self.matched, "sampled": self.sampled,
            "not_eligible": self.not_eligible, "launched": self.launched,
            "in_flight": in_flight, "pairs": total.pairs,
            "skipped": {"budget": self.skipped["budget"], "in_flight": self.skipped["in_flight"],
                        "cache_hit": self.skipped["cache_hit"]},
            "primary": total.primary(),
            "candidate": {**total.candidate(),
                          "errors": sum(self.candidate_errors.values()),
                          "errors_by_code": dict(self.candidate_errors)},
            "projected_saving_usd": to_usd(total.saving),
            "projected_saving_percent": round(100 * total.saving / total.primary_cost, 2)
            if total.primary_cost else None,
            "spent_usd": {"total": to_usd(self.spent_candidates + self.spent_judge),
                          "candidates": to_usd(self.spent_candidates),
                          "judge": to_usd(self.spent_judge)},
            "agreement": {
                "compared": total.compared, **total.agreement(),
                "judged": self.judged,
                "judge_mean": round(self.judge_sum / self.judged, 4) if self.judged else None,
                "judge_errors": self.judge_errors},
            "by_tier": {tier: tally.by_tier() for tier, tally in self.tiers.items()},
            "recent": [pair.as_dict() for pair in reversed(self.recent)],
        }


def _side(cost: int, pairs: int, latencies: deque[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {"total_cost_usd": to_usd(cost),
            "mean_cost_usd": to_usd(cost) / pairs if pairs else None,
            "latency_p50_ms": _percentile(ordered, 0.50),
            "latency_p95_ms": _percentile(ordered, 0.95)}


def _percentile(ordered: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n * q), at least 1
    return round(ordered[int(rank) - 1], 3)
