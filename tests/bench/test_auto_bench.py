"""`python -m bench.auto` runs end to end at a smoke size and prints its three tables, and its
cost part says routing costs less than always using the baseline."""

from __future__ import annotations

import pytest

from bench import auto
from sidecar.config import Settings


def test_the_three_parts_print_their_tables(capsys: pytest.CaptureFixture[str]) -> None:
    """Classifier percentiles for each prompt, the pipeline cases against the first, and the
    labelled set's cost for each prefer."""
    assert auto.main(["--requests", "40", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "| short chat (2 words) |" in out and "| one 400 KB message |" in out
    assert "| sidecar/auto, 300 KB |" in out
    for prefer in ("cheap", "balanced", "quality"):
        assert f"| {prefer} |" in out


def test_routing_saves_and_prefer_orders_the_cost() -> None:
    """Routed costs less than always-baseline at every prefer, cheap least and quality most;
    the tiers' requests add up to the whole set."""
    book = auto.bundled_book(Settings.model_validate(auto.CONFIG))
    costs = auto.bench_cost(book, completion=400)
    assert costs["cheap"][1] < costs["balanced"][1] < costs["quality"][1] < costs["cheap"][0]
    assert {sum(n for n, _, _ in per_tier.values()) for _, _, per_tier in costs.values()} == {
        len(auto.load())}
