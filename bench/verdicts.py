"""The targets the sidecar is held to, checked on a report: met, NOT met, or not measured.

Issue 12's list (every feature on: `all`, `hit`, `stream`) and issue 6's for the bare core. A
benchmark measures and a person judges: nothing here fails a run or a test; the report prints
one line per target with the numbers behind it. A target whose row was not run (`--rows`) or
whose numbers are missing says "not measured" rather than passing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.memory import FLAT_MB_PER_10K

if TYPE_CHECKING:
    from bench.report import BenchReport, TargetResult

MET, MISSED, UNMEASURED = "met", "NOT met", "not measured"
# Share of events a row may merge beyond what the floor or the direct call show (noise): a
# proxy that buffers merges a large share (holding one event back merges half of them).
COALESCED_SLACK = 0.005
MINUS = "\u2212"


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str  # what is promised, in words
    status: str  # met | NOT met | not measured
    measured: str  # the numbers behind it


def _judge(ok: bool) -> str:
    return MET if ok else MISSED


def _num(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}".replace("-", MINUS)


Check = Callable[["BenchReport"], tuple[str, str]]


def _pair(report: BenchReport, name: str, role: str
          ) -> tuple[TargetResult | None, TargetResult | None]:
    mine = report.target(name)
    return mine, report.reference(mine, role) if mine else None


def _rps_share(name: str, at_least: float) -> Check:
    def check(report: BenchReport) -> tuple[str, str]:
        mine, floor = _pair(report, name, "floor")
        if not (mine and floor and floor.rps and mine.rps):
            return UNMEASURED, ""
        share = mine.rps / floor.rps
        return _judge(share >= at_least), (f"{mine.rps:.0f} vs {floor.rps:.0f} req/s = "
                                           f"{share * 100:.1f} % of the floor")
    return check


def _cpu_ratio(name: str, at_most: float) -> Check:
    def check(report: BenchReport) -> tuple[str, str]:
        mine, floor = _pair(report, name, "floor")
        if not (mine and floor and floor.cpu_us_per_request and mine.requests):
            return UNMEASURED, ""
        ratio = mine.cpu_us_per_request / floor.cpu_us_per_request
        return _judge(ratio <= at_most), (f"{mine.cpu_us_per_request:.0f} vs "
                                          f"{floor.cpu_us_per_request:.0f} \u00b5s = "
                                          f"{ratio:.2f} \u00d7 the floor's")
    return check


def _latency_gap(name: str, key: str, at_most_ms: float) -> Check:
    def check(report: BenchReport) -> tuple[str, str]:
        mine, floor = _pair(report, name, "floor")
        if not (mine and floor and key in mine.latency_ms and key in floor.latency_ms):
            return UNMEASURED, ""
        gap = mine.latency_ms[key] - floor.latency_ms[key]
        return _judge(gap <= at_most_ms), (f"{_num(mine.latency_ms[key])} vs "
                                           f"{_num(floor.latency_ms[key])} ms: "
                                           f"{_num(gap)} ms over the floor")
    return check


def _ttft_gap(name: str, at_most_ms: float) -> Check:
    def check(report: BenchReport) -> tuple[str, str]:
        mine, floor = _pair(report, name, "floor")
        if not (mine and floor and "p50" in mine.ttft_ms and "p50" in floor.ttft_ms):
            return UNMEASURED, ""
        gap = mine.ttft_ms["p50"] - floor.ttft_ms["p50"]
        p99 = mine.ttft_ms["p99"] - floor.ttft_ms["p99"]
        return _judge(gap <= at_most_ms), (f"TTFT p50 {_num(mine.ttft_ms['p50'])} vs "
                                           f"{_num(floor.ttft_ms['p50'])} ms: {_num(gap)} ms "
                                           f"over the floor (p99: {_num(p99)} ms)")
    return check


def _share(result: TargetResult | None) -> float | None:
    if result is None or result.coalesced is None or not result.stream_events:
        return None
    return result.coalesced / result.stream_events


def _no_coalescing(name: str) -> Check:
    """The floor relays chunk by chunk and the direct call has no proxy at all, so what they
    show merged is this machine's noise (a load generator that read late); a proxy that
    buffers merges far more than that allowance."""
    def check(report: BenchReport) -> tuple[str, str]:
        mine = report.target(name)
        share = _share(mine)
        if mine is None or share is None:
            return UNMEASURED, ""
        controls = [(role, ref, _share(ref)) for role in ("direct", "floor")
                    if (ref := report.reference(mine, role)) is not None]
        noise = max((s for _, _, s in controls if s is not None), default=0.0)
        said = "; ".join(f"the {role}: {ref.coalesced} of {ref.stream_events}"
                         for role, ref, s in controls if s is not None)
        return _judge(share <= noise + COALESCED_SLACK), (
            f"{mine.coalesced} of {mine.stream_events} events arrived merged with the one "
            f"before" + (f" ({said})" if said else ""))
    return check


def _rss_after(name: str, at_most_mb: float) -> Check:
    def check(report: BenchReport) -> tuple[str, str]:
        mine = report.target(name)
        wanted = int(report.settings.get("rss_requests", 20_000))
        if mine is None:
            return UNMEASURED, ""
        soak = mine.soak or {}
        at, after = soak.get("rss_mb_at_requests"), soak.get("rss_sampled_after_requests")
        if at is None and mine.requests_served >= wanted:
            at, after = mine.rss_mb, mine.requests_served  # read after all the load
        if at is None:
            return UNMEASURED, f"{mine.requests_served:,} requests served, {wanted:,} needed"
        return _judge(at <= at_most_mb), (f"{at:.1f} MB sampled after {after:,} requests, the "
                                          f"first sample past {wanted:,}; {mine.rss_mb:.1f} MB "
                                          f"after all {mine.requests_served:,}")
    return check


def _flat(name: str) -> Check:
    def check(report: BenchReport) -> tuple[str, str]:
        mine = report.target(name)
        slope = (mine.soak or {}).get("slope_mb_per_10k_requests") if mine else None
        if mine is None or slope is None:
            return UNMEASURED, "no soak ran on this row (--soak-rows)"
        soak = mine.soak or {}
        return _judge(slope <= FLAT_MB_PER_10K), (
            f"{_num(slope, 3)} MB per 10,000 requests over a {soak['seconds']:.0f} s soak of "
            f"{soak['requests']:,} requests (flat: \u2264 {FLAT_MB_PER_10K:g})")
    return check


def _startup(name: str, at_most_ms: float) -> Check:
    def check(report: BenchReport) -> tuple[str, str]:
        mine = report.target(name)
        if mine is None or mine.startup_ms is None:
            return UNMEASURED, ""
        return _judge(mine.startup_ms <= at_most_ms), (
            f"median {mine.startup_ms:.0f} ms over {len(mine.startup_samples_ms)} spawns")
    return check


TARGETS: tuple[tuple[str, Check], ...] = (
    ("`all`: RPS \u2265 70 % of the floor's", _rps_share("all", 0.70)),
    ("`all`: CPU per request \u2264 1.4 \u00d7 the floor's", _cpu_ratio("all", 1.4)),
    ("`all` at 100 req/s: p50 within 0.5 ms of the floor's", _latency_gap("all", "p50", 0.5)),
    ("`all` at 100 req/s: p99 within 1 ms of the floor's", _latency_gap("all", "p99", 1.0)),
    ("`hit`: RPS \u2265 1.5 \u00d7 the floor's", _rps_share("hit", 1.5)),
    ("`stream`: \u2264 1 ms added to time to first token (vs the floor)",
     _ttft_gap("stream", 1.0)),
    ("`stream`: no coalescing of chunks (beyond what the floor and the direct call show)",
     _no_coalescing("stream")),
    ("`all`: RSS \u2264 100 MB after 20,000 requests", _rss_after("all", 100.0)),
    ("`all`: no upward RSS trend in the soak", _flat("all")),
    ("`all`: start-up to /readyz \u2264 1 s", _startup("all", 1000.0)),
    ("`core` (issue 6): RPS \u2265 75 % of the floor's", _rps_share("core", 0.75)),
    ("`core` (issue 6): p50 within 0.3 ms of the floor's", _latency_gap("core", "p50", 0.3)),
)


def verdicts(report: BenchReport) -> list[Verdict]:
    out = []
    for text, check in TARGETS:
        status, measured = check(report)
        out.append(Verdict(text, status, measured))
    return out
