"""Features → tier: two scores, thresholds that `prefer` shifts, and the window check.

    reasoning   an explicit reasoning effort (medium and up, or a token budget: the client asked
                for a thinker), else a reasoning score at or over its threshold: maths words and
                symbols (features.math, 0-5) plus 2 for an explicit ask to reason step by step
    complex / medium / simple   by a complexity score, the sum of:
                length    1 from 400 estimated tokens, 2 from 2,500, 3 from 12,000, 4 from 40,000
                depth     1 from 8 messages, 2 from 24
                tools     1 when tools are offered, 2 from 8 of them
                loop      2 when tool results are in the conversation, 3 from 4 of them
                code      0-3 (pasted code, a language, a coding verb)
                schema    1 for json_object, 2 for json_schema, 3 when it has 10+ fields
                images    2 for one, 3 from 3
                analysis  0-2 (analyse, compare, design ...)
                output    1 when the client allows 4,000+ completion tokens
                effort    2 for an explicit low or minimal reasoning effort

    prefer     medium from  complex from  reasoning from
    cheap          3             5              4
    balanced       2             4              3
    quality        1             3              2

A router without the chosen tier takes the nearest tier it has: the next one up (a request is
never given less than it needs because a tier is missing), or down when there is none above or
`prefer` is cheap. The reason is the deciding features, largest share first (at most four).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sidecar.auto.classify import Features
from sidecar.config.auto import TIERS, Prefer, Tier

__all__ = ["THRESHOLDS", "Decision", "decide", "nearest", "rank"]

# prefer -> (medium from, complex from, reasoning from)
THRESHOLDS: dict[str, tuple[int, int, int]] = {
    "cheap": (3, 5, 4), "balanced": (2, 4, 3), "quality": (1, 3, 2)}
_THINKING = frozenset({"medium", "high", "xhigh", "max", "budget"})
_LIGHT = frozenset({"minimal", "low"})
_LENGTH = (400, 2_500, 12_000, 40_000)
MAX_REASONS = 4


@dataclass(frozen=True, slots=True)
class Decision:
    tier: Tier
    score: int  # the complexity score (the reasoning score when the tier is reasoning)
    reasons: tuple[str, ...]  # the deciding features, e.g. ("code", "tokens~3k")


def rank(tier: Tier) -> int:
    return TIERS.index(tier)


def decide(f: Features, prefer: Prefer = "balanced") -> Decision:
    medium_from, complex_from, reasoning_from = THRESHOLDS[prefer]
    if f.reasoning in _THINKING:
        return Decision("reasoning", 0, (f"reasoning={f.reasoning}",))
    thinking = f.math + (2 if f.steps else 0)
    if thinking >= reasoning_from:
        reasons = [("math", f.math)] if f.math else []
        if f.steps:
            reasons.append(("step_by_step", 2))
        return Decision("reasoning", thinking, _top(reasons))
    points = _points(f)
    score = sum(share for _, share in points)
    tier: Tier = ("complex" if score >= complex_from else "medium" if score >= medium_from
                  else "simple")
    return Decision(tier, score, _top(points) if tier != "simple" else _simple(f))


def _points(f: Features) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    length = sum(1 for edge in _LENGTH if f.tokens >= edge)
    if length:
        out.append((f"tokens~{_short(f.tokens)}", length))
    if f.messages >= 8:
        out.append((f"depth={f.messages}", 3 if f.messages >= 24 else 2))
    if f.tools:
        out.append((f"tools={f.tools}", 4 if f.tools >= 8 else 2))
    if f.tool_results:
        out.append((f"tool_results={f.tool_results}", 3 if f.tool_results >= 4 else 2))
    if f.code:
        out.append(("code", f.code))
    if f.schema == "json_schema":
        out.append(("json_schema", 3 if f.schema_fields >= 10 else 2))
    elif f.schema == "json_object":
        out.append(("json_object", 1))
    if f.images:
        out.append((f"images={f.images}", 3 if f.images >= 3 else 2))
    if f.analysis:
        out.append(("analysis", f.analysis))
    if f.compose:
        out.append(("writing", f.compose))
    if f.brief:
        out.append(("brief", -1))
    if f.max_output is not None and f.max_output >= 8_000:
        out.append((f"max_output={f.max_output}", 2 if f.max_output >= 32_000 else 1))
    if f.reasoning in _LIGHT:
        out.append((f"reasoning={f.reasoning}", 2))
    if f.math and not f.code:  # below the reasoning threshold, maths is more than chit-chat
        out.append(("math", 1))
    return out


def _top(points: list[tuple[str, int]]) -> tuple[str, ...]:
    ordered = sorted(points, key=lambda p: -p[1])  # stable: ties keep the order above
    return tuple(name for name, _ in ordered[:MAX_REASONS])


def _simple(f: Features) -> tuple[str, ...]:
    return (f"short~{_short(f.tokens)}",) if f.tokens < _LENGTH[0] else (
        f"tokens~{_short(f.tokens)}",)


def _short(tokens: int) -> str:
    return f"{tokens // 1000}k" if tokens >= 1000 else str(tokens)


def nearest(tier: Tier, offered: Collection[Tier], prefer: Prefer = "balanced") -> Tier:
    """The tier to serve when the router may not have `tier`."""
    if tier in offered:
        return tier
    at = rank(tier)
    above = [t for t in TIERS[at + 1:] if t in offered]
    below = [t for t in reversed(TIERS[:at]) if t in offered]
    if prefer == "cheap" and below:
        return below[0]
    return (above or below)[0]
