"""Features → tier: explicit reasoning wins, the scores meet thresholds that `prefer` shifts,
and a router without the tier serves the nearest one."""

from __future__ import annotations

import pytest

from sidecar.auto.classify import Features
from sidecar.auto.tiers import THRESHOLDS, decide, nearest


@pytest.mark.parametrize(("f", "tier"), [
    (Features(tokens=10), "simple"),
    (Features(tokens=3_000), "medium"),
    (Features(tokens=50_000), "complex"),
    (Features(tool_results=1, tools=2), "complex"),
    (Features(tools=12), "complex"),
    (Features(code=3, tokens=500), "complex"),
    (Features(images=1), "medium"),
    (Features(schema="json_schema", schema_fields=12, tokens=500), "complex"),
    (Features(math=5), "reasoning"),
    (Features(math=1, steps=True), "reasoning"),
    (Features(reasoning="high"), "reasoning"),
    (Features(reasoning="budget", tokens=10), "reasoning"),
    (Features(reasoning="low"), "medium"),
    (Features(reasoning="none", tokens=10), "simple"),
    (Features(messages=30, tokens=600), "complex"),
])
def test_balanced_tiers(f: Features, tier: str) -> None:
    """The documented points give these tiers at prefer: balanced."""
    assert decide(f).tier == tier


@pytest.mark.parametrize(("f", "cheap", "balanced", "quality"), [
    (Features(tokens=500, compose=1), "simple", "medium", "medium"),
    (Features(tokens=500), "simple", "simple", "medium"),
    (Features(tools=2, tokens=500), "medium", "medium", "complex"),
    (Features(code=3), "medium", "medium", "complex"),
    (Features(math=3), "simple", "reasoning", "reasoning"),
    (Features(math=2), "simple", "simple", "reasoning"),
])
def test_thresholds_move_with_prefer(f: Features, cheap: str, balanced: str,
                                     quality: str) -> None:
    """The same request climbs a tier as `prefer` goes from cheap to quality."""
    assert [decide(f, p).tier for p in ("cheap", "balanced", "quality")] == [
        cheap, balanced, quality]


def test_thresholds_are_ordered() -> None:
    """cheap asks for more points than balanced, balanced more than quality, at every edge."""
    for edge in range(3):
        assert THRESHOLDS["cheap"][edge] > THRESHOLDS["balanced"][edge] > (
            THRESHOLDS["quality"][edge])


def test_reasons_name_the_deciding_features_largest_first() -> None:
    """The reason lists what scored, biggest share first, at most four."""
    decision = decide(Features(tokens=15_000, tool_results=5, code=2, analysis=1, tools=3,
                               compose=1))
    assert decision.reasons == ("tokens~15k", "tool_results=5", "tools=3", "code")


@pytest.mark.parametrize(("tier", "offered", "prefer", "served"), [
    ("medium", ("simple", "complex"), "balanced", "complex"),
    ("medium", ("simple", "complex"), "cheap", "simple"),
    ("reasoning", ("simple", "complex"), "balanced", "complex"),
    ("simple", ("complex", "reasoning"), "cheap", "complex"),
    ("complex", ("complex",), "quality", "complex"),
])
def test_nearest_offered_tier(tier: str, offered: tuple[str, ...], prefer: str,
                              served: str) -> None:
    """A missing tier is served by the next one up (down with prefer: cheap, or at the top)."""
    assert nearest(tier, offered, prefer) == served  # type: ignore[arg-type]
