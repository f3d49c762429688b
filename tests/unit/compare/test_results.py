"""The compare's summary: rankings over the models that answered, totals over all."""

from __future__ import annotations

from typing import Any

from sidecar.compare.results import ModelResult, summarize


def result(index: int, cost: float | None, latency: float, error: Any = None) -> ModelResult:
    return ModelResult(index=index, model=f"m{index}", request_id=f"r{index}", provider="p",
                       status=200 if error is None else 500, response=None, content=None,
                       finish_reason=None,
                       usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                       cost_usd=cost, latency_ms=latency, ttft_ms=None, cache=None,
                       error=error)


def test_rankings_skip_failures_and_totals_count_them() -> None:
    """Successful models are ranked by cost and by latency (ties by index); a failed one is
    listed as failed and still counts in the cost and token totals."""
    results = [result(0, 0.003, 50.0), result(1, 0.001, 90.0),
               result(2, 0.002, 10.0, error={"message": "x"}), result(3, 0.001, 50.0)]
    summary = summarize(results, 95.0)
    assert [r["index"] for r in summary["by_cost"]] == [1, 3, 0]
    assert [r["index"] for r in summary["by_latency"]] == [0, 3, 1]
    assert summary["cheapest"] == "m1" and summary["fastest"] == "m0"
    assert summary["failed"] == [2] and summary["succeeded"] == 3
    assert summary["total_cost_usd"] == 0.007 and summary["total_tokens"] == 12
    assert summary["slowest_ms"] == 90.0 and summary["wall_ms"] == 95.0


def test_without_spend_there_is_no_cost_ranking() -> None:
    """With spend off (no costs) nothing is ranked by cost and the total cost is null."""
    summary = summarize([result(0, None, 5.0)], 6.0)
    assert summary["by_cost"] == [] and summary["cheapest"] is None
    assert summary["total_cost_usd"] is None and summary["fastest"] == "m0"
