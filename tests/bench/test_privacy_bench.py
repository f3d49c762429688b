"""bench/privacy.py: its prompts and its in-process pipeline measurement run (not timed)."""

from __future__ import annotations

from bench.privacy import pipeline_rates, prompts, table


def test_prompts_are_8_kb_each() -> None:
    """Every benchmark prompt is exactly 8192 characters."""
    assert {len(text) for text in prompts().values()} == {8192}


async def test_pipeline_rates_measure_both_pipelines() -> None:
    """With and without the privacy stage, the pipeline completes requests."""
    rates = await pipeline_rates(seconds=0.05)
    assert set(rates) == {"without privacy", "with privacy (pseudonymize)"}
    assert all(rate > 0 for rate in rates.values())
    assert table([["a", "1"]], ["x", "y"]).splitlines()[2] == "| a | 1 |"
