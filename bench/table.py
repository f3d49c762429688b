"""The report as markdown: the targets first, then three tables, then notes and profiles.

    Targets        one line per promise (verdicts.py): met / NOT met / not measured
    JSON chats     RPS @N, % of the floor, CPU µs per request, times the floor's, µs over the
                   core (what a row's features cost), CPU %, p50 / p99 at the fixed rate,
                   added over the direct call and over the floor
    Streams        streams/s @N, % floor, CPU µs per stream, times floor's, TTFT p50 / p99 and what
                   is added over direct and floor, whole-stream p50, gaps between events
                   p50 / p99 (the upstream paces them), coalesced events / events
    Processes      RSS after the load, peak, requests served, RSS at --rss-requests and the
                   trend over the soak (MB per 10,000 requests), start-up, pipeline stages

With rounds, ± after RPS is half the range across rounds relative to their mean, and after p50
half the range of the rounds' p50s in ms.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import BenchReport, TargetResult
from bench.verdicts import MET, MISSED, verdicts

MINUS = "\u2212"
MICRO = "\u00b5"
DASH = "\u2014"


def _num(value: float | None, digits: int = 2, sign: bool = False) -> str:
    if value is None:
        return DASH
    text = f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
    return text.replace("-", MINUS)


def _spread(rounds: list[float]) -> str:
    """Half the range across rounds, relative to their mean: how far to trust the number."""
    if len(rounds) < 2 or not sum(rounds):
        return ""
    mean = sum(rounds) / len(rounds)
    return f" \u00b1{(max(rounds) - min(rounds)) / 2 / mean * 100:.0f} %"


def _spread_ms(rounds: list[float]) -> str:
    if len(rounds) < 2:
        return ""
    return f" \u00b1{(max(rounds) - min(rounds)) / 2:.2f}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(names: Sequence[str]) -> list[str]:
    return [_row(names), "|---|" + "---:|" * (len(names) - 1)]


def _pct(value: float | None) -> str:
    return DASH if value is None else f"{value:.0f} %"


def _times(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f} \u00d7"


def _preamble(report: BenchReport) -> list[str]:
    m, s = report.machine, report.settings
    lines = [
        f"# llm-sidecar benchmark \u00b7 {report.started_at}",
        "",
        f"- **machine**: {m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"{m.get('memory_gb') or '?'} GB, Linux {m['kernel']}, Python {m['python']}, aiohttp "
        f"{m['aiohttp']}, uvloop {m['uvloop']}, llm-sidecar {m['sidecar']} @ {m['commit']}",
        f"- **throughput**: {s['driver']}, {s['concurrency']} connections, "
        f"{s['duration_s']:g} s per target in {s['rounds']} interleaved round(s), after a "
        f"{s['warmup_s']:g} s warm-up",
        f"- **latency**: open-loop asyncio generator, {s['rate']:g} req/s for "
        f"{s['latency_duration_s']:g} s ({round(s['rate'] * s['latency_duration_s'])} "
        f"requests) per target in {s['rounds']} interleaved round(s), timed from each "
        "scheduled send instant",
        f"- **streams**: the fake upstream sends {s['chunks']} chunks {s['pacing_ms']:g} ms "
        "apart; streaming targets get the same throughput and fixed-rate runs with streams",
        f"- **memory**: RSS after all the load; soak of {s['soak_s']:g} s (at least until "
        f"{s['rss_requests']:,} requests served) on {', '.join(s['soak_rows']) or 'no row'}",
        f"- **pinning**: {s['pinning']}",
        f"- **sidecar rows**: {s['sidecar_log']}; configs in {s['configs']}; start-up: median "
        f"of {s['startup_spawns']} spawns",
    ]
    if s.get("otlp"):
        lines.append(f"- **OTLP receiver**: {s['otlp']}")
    if s.get("peers"):
        lines.append("- **peers**: " + ", ".join(f"{k} {v}" for k, v in s["peers"].items()))
    return lines


def _verdict_lines(report: BenchReport) -> list[str]:
    mark = {MET: "met", MISSED: "**NOT met**"}
    return ["", "## Targets", ""] + [
        f"- {v.target}: {mark.get(v.status, v.status)}" + (f" ({v.measured})" if v.measured
                                                         else "")
        for v in verdicts(report)]


def _json_table(report: BenchReport, targets: list[TargetResult], c: int) -> list[str]:
    lines = ["", "## JSON chats", "", *_header([
        "target", f"RPS @{c}", "% floor", f"CPU {MICRO}s/req", "\u00d7 floor",
        f"+{MICRO}s vs core", "CPU %", "p50 ms", "p99 ms", "+p50 direct", "+p99 direct",
        "+p50 floor", "+p99 floor"])]
    for t in targets:
        vs = report.compare(t)
        lines.append(_row([
            t.name, f"{t.rps:.0f}{_spread(t.rps_rounds)}", _pct(vs["rps_pct_of_floor"]),
            _num(t.cpu_us_per_request, 0), _times(vs["cpu_x_floor"]),
            _num(vs["cpu_us_over_core"], 0, sign=True), _num(t.cpu_pct, 0),
            _num(t.latency_ms.get("p50")) + _spread_ms(t.p50_rounds_ms),
            _num(t.latency_ms.get("p99")),
            _num(vs["added_p50_vs_direct_ms"], sign=True),
            _num(vs["added_p99_vs_direct_ms"], sign=True),
            _num(vs["added_p50_vs_floor_ms"], sign=True),
            _num(vs["added_p99_vs_floor_ms"], sign=True)]))
    return lines


def _stream_table(report: BenchReport, targets: list[TargetResult], c: int) -> list[str]:
    lines = ["", "## Streams", "", *_header([
        "target", f"streams/s @{c}", "% floor", f"CPU {MICRO}s/stream", "\u00d7 floor",
        "TTFT p50", "TTFT p99", "+TTFT p50 direct", "+TTFT p50 floor", "+TTFT p99 floor",
        "stream p50 ms", "gap p50", "gap p99", "coalesced"])]
    for t in targets:
        vs = report.compare(t)
        lines.append(_row([
            t.name, f"{t.rps:.0f}{_spread(t.rps_rounds)}", _pct(vs["rps_pct_of_floor"]),
            _num(t.cpu_us_per_request, 0), _times(vs["cpu_x_floor"]),
            _num(t.ttft_ms.get("p50")), _num(t.ttft_ms.get("p99")),
            _num(vs["ttft_p50_vs_direct_ms"], sign=True),
            _num(vs["ttft_p50_vs_floor_ms"], sign=True),
            _num(vs["ttft_p99_vs_floor_ms"], sign=True),
            _num(t.latency_ms.get("p50"), 1), _num(t.gap_ms.get("p50")),
            _num(t.gap_ms.get("p99")),
            f"{t.coalesced} / {t.stream_events}" if t.stream_events is not None else DASH]))
    return lines


def _process_table(report: BenchReport, rss_requests: int) -> list[str]:
    lines = ["", "## Processes", "", *_header([
        "process", "RSS MB", "peak MB", "requests served", f"RSS @{rss_requests // 1000}k MB",
        "trend MB/10k req", "start-up ms", "stages"])]
    seen: set[int] = set()
    for t in report.targets:
        if t.pid in seen:
            continue
        seen.add(t.pid)
        soak = t.soak or {}
        stages = t.info.get("stages")
        lines.append(_row([
            t.process, _num(t.rss_mb, 1), _num(t.rss_peak_mb, 1), f"{t.requests_served:,}",
            _num(soak.get("rss_mb_at_requests"), 1),
            _num(soak.get("slope_mb_per_10k_requests"), 3, sign=True),
            _num(t.startup_ms, 0), " \u2192 ".join(stages) if stages else DASH]))
    return lines


def render_markdown(report: BenchReport) -> str:
    s = report.settings
    lines = _preamble(report) + _verdict_lines(report)
    json_targets = [t for t in report.targets if t.kind == "json"]
    stream_targets = [t for t in report.targets if t.kind == "stream"]
    if json_targets:
        lines += _json_table(report, json_targets, s["concurrency"])
    if stream_targets:
        lines += _stream_table(report, stream_targets, s["concurrency"])
    lines += _process_table(report, int(s["rss_requests"]))
    if report.external:
        from bench.external import Plan, table  # the hey harness's table (external.py)

        lines += ["", *table(report.external, Plan(**{
            k: v for k, v in s["external"].items() if k != "generator"}))]
    if report.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in report.notes)]
    for name, found in report.profiles.items():
        lines += _profile_section(name, found)
    return "\n".join(lines) + "\n"


def _profile_section(name: str, found: dict[str, Any], rows: int = 12) -> list[str]:
    lines = ["", f"### Where {name} spends its CPU under load (py-spy, {found['samples']} "
                 f"samples; stacks in {found.get('collapsed_stacks', '?')})", "",
             "| self % | function | | inclusive % | function |", "|---:|---|---|---:|---|"]
    own, inclusive = found["self"][:rows], found["inclusive"][:rows]
    for i in range(max(len(own), len(inclusive))):
        left = own[i] if i < len(own) else None
        right = inclusive[i] if i < len(inclusive) else None
        lines.append("| " + " | ".join([
            f"{left['pct']:.1f}" if left else "", f"`{left['function']}`" if left else "", "",
            f"{right['pct']:.1f}" if right else "", f"`{right['function']}`" if right else "",
        ]) + " |")
    return lines


def write(report: BenchReport, results_dir: Path, json_path: Path | None) -> str:
    """Write latest.md and latest.json (and json_path if given); return the markdown."""
    markdown = render_markdown(report)
    data = json.dumps(report.to_json(), indent=2) + "\n"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "latest.md").write_text(markdown)
    (results_dir / "latest.json").write_text(data)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(data)
    return markdown
