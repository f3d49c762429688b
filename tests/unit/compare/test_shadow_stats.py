"""What a shadow rule reports: sums over pairs, the saving, percentiles, agreement."""

from __future__ import annotations

from sidecar.compare.shadow_stats import Pair, RuleStats, Side
from sidecar.config.compare import ShadowRule

RULE = ShadowRule.model_validate({"name": "r", "candidate": "c", "budget_usd": 2,
                                  "judge": {"model": "j"}})


def side(cost: int, latency: float) -> Side:
    return Side(model="m", cost=cost, latency_ms=latency, finish_reason="stop",
                prompt_tokens=1, completion_tokens=2, status=200)


def test_costs_saving_latencies_and_agreement() -> None:
    """Totals and means over the pairs, the saving had the candidate served them (and its
    share), nearest-rank p50/p95, the exact rate, mean similarity and mean judge score over
    the pairs that have them; spent counts candidates and judge."""
    stats = RuleStats(RULE)
    for i in range(1, 21):  # primary 1,000 nano-dollars and i ms; candidate 250 and 2i ms
        stats.add(Pair(f"p{i}", f"c{i}", 0.0, side(1_000, float(i)), side(250, 2.0 * i),
                       exact=i % 2 == 0, similarity=0.5, judge=0.9 if i <= 10 else None))
    stats.add(Pair("e", "ce", 0.0, side(0, 1.0), side(0, 1.0), None, None))  # embeddings
    stats.spent_candidates, stats.spent_judge = 5_000, 700
    report = stats.report(in_flight=2)
    assert report["pairs"] == 21 and report["in_flight"] == 2
    assert report["primary"]["total_cost_usd"] == 20_000e-9
    assert report["candidate"]["total_cost_usd"] == 5_000e-9
    assert report["projected_saving_usd"] == 15_000e-9
    assert report["projected_saving_percent"] == 75.0
    assert report["primary"]["latency_p50_ms"] == 10.0
    assert report["primary"]["latency_p95_ms"] == 19.0
    assert report["candidate"]["latency_p95_ms"] == 38.0
    agreement = report["agreement"]
    assert agreement["compared"] == 20 and agreement["exact_rate"] == 0.5
    assert agreement["similarity_mean"] == 0.5
    assert agreement["judged"] == 10 and agreement["judge_mean"] == 0.9
    assert report["spent_usd"] == {"total": 5_700e-9, "candidates": 5_000e-9,
                                   "judge": 700e-9}
    assert report["budget"] == {"name": "shadow:r", "limit_usd": 2.0, "window": "total"}
    assert report["judge"] == "j" and len(report["recent"]) == 20
    assert report["recent"][0]["request_id"] == "e"  # newest first


def test_an_empty_rule_reports_nothing_made_up() -> None:
    """No pairs: no means, no percentiles, no rates."""
    report = RuleStats(RULE).report(in_flight=0)
    assert report["primary"]["mean_cost_usd"] is None
    assert report["primary"]["latency_p50_ms"] is None
    assert report["projected_saving_percent"] is None
    assert report["agreement"]["exact_rate"] is None and report["recent"] == []
