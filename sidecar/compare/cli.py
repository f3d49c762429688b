"""`llm-sidecar compare` and `llm-sidecar shadow`: a running sidecar's answers as rich tables, or
as the API's JSON (`--json`).

`compare` posts to the proxy listener's /sidecar/compare with a local key (`--key`, default
$OPENAI_API_KEY: what the application uses); `shadow` reads the admin route /sidecar/shadow
(`--token`, default $SIDECAR_ADMIN_TOKEN). Exit 0 with an answer (a compare whose models
failed included: each row says so), 1 when the sidecar cannot be reached or refuses, 2 on bad
arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from sidecar.fetch import Unanswered, fetch_json, show

EXIT_NO_ANSWER = 1
EXIT_USAGE = 2


def compare(args: argparse.Namespace) -> int:
    try:
        request = _request(args)
    except (OSError, ValueError) as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return EXIT_USAGE
    body = {"models": args.model, "request": request, "endpoint": args.endpoint}
    headers = {"Content-Type": "application/json"}
    if args.key:
        headers["Authorization"] = f"Bearer {args.key}"
    try:
        answer = fetch_json(f"{args.url.rstrip('/')}/sidecar/compare", orjson.dumps(body),
                            headers, args.timeout)
    except Unanswered as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER
    return show(answer, args.json, lambda a: render_compare(a, args.max_chars))


def shadow(args: argparse.Namespace) -> int:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    try:
        answer = fetch_json(f"{args.url.rstrip('/')}/sidecar/shadow", None, headers)
    except Unanswered as exc:
        print(f"shadow: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER
    return show(answer, args.json, render_shadow)


def _request(args: argparse.Namespace) -> dict[str, Any]:
    """The body each model is sent: the file's, or the prompt as one user message."""
    if args.file:
        data = orjson.loads(Path(args.file).read_bytes())
        if not isinstance(data, dict):
            raise ValueError(f"{args.file} must hold a JSON object (a request body)")
        request: dict[str, Any] = data
    elif args.prompt:
        field = "input" if args.endpoint == "responses" else (
            "prompt" if args.endpoint == "completions" else None)
        request = ({field: args.prompt} if field else
                   {"messages": [{"role": "user", "content": args.prompt}]})
    else:
        raise ValueError("give a prompt, or --file with a request body")
    if args.max_tokens is not None:
        request["max_tokens"] = args.max_tokens
    return request


def render_compare(answer: dict[str, Any], max_chars: int) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    summary = answer["summary"]
    table = Table(title="Compare", caption=_caption(summary), show_lines=True)
    table.add_column("model", no_wrap=True)
    table.add_column("answer", overflow="fold", ratio=1)
    for header in ("tokens in/out", "cost USD", "latency", "status"):
        table.add_column(header, justify="right", no_wrap=True)
    for result in answer["results"]:
        usage = result.get("usage") or {}
        text = (result["content"] if result["error"] is None
                else f"error: {result['error'].get('message')}") or ""
        if len(text) > max_chars:
            text = text[:max_chars] + " …"
        latency = _ms(result["latency_ms"]) + (
            f" (first token {_ms(result['ttft_ms'])})" if result.get("ttft_ms") else "")
        cells = [result["model"], text,
                 f"{usage.get('prompt_tokens', '—')} / {usage.get('completion_tokens', '—')}",
                 "—" if result["cost_usd"] is None else f"{result['cost_usd']:.6f}", latency,
                 str(result["status"]) + (" HIT" if result.get("cache") == "HIT" else "")]
        table.add_row(*map(Text, cells))  # Text: model names and answers are not markup
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _caption(summary: dict[str, Any]) -> str:
    parts = []
    if summary.get("cheapest"):
        parts.append(f"cheapest {summary['cheapest']}")
    if summary.get("fastest"):
        parts.append(f"fastest {summary['fastest']}")
    if summary.get("total_cost_usd") is not None:
        parts.append(f"total {summary['total_cost_usd']:.6f} USD")
    parts.append(f"wall {_ms(summary['wall_ms'])}")
    if summary.get("failed"):
        parts.append(f"{len(summary['failed'])} failed")
    return " · ".join(parts)


def render_shadow(answer: dict[str, Any]) -> None:
    """One column per rule, one row per figure."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=None if sys.stdout.isatty() else 160)
    rules = answer["rules"]
    if not rules:
        console.print("No shadow rules are configured.")
        return
    table = Table(title="Shadow rules, since the sidecar started")
    table.add_column("")
    for rule in rules:
        table.add_column(Text(f"{rule['name']} → {rule['candidate_model']}"), justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("sampled (of matched)", [f"{r['sampled']} ({r['matched']})" for r in rules]),
        ("pairs", [str(r["pairs"]) for r in rules]),
        ("primary USD total (mean)", [_cost(r["primary"]) for r in rules]),
        ("candidate USD total (mean)", [_cost(r["candidate"]) for r in rules]),
        ("projected saving USD", [_saving(r) for r in rules]),
        ("latency p50 / p95 primary", [_latency(r["primary"]) for r in rules]),
        ("latency p50 / p95 candidate", [_latency(r["candidate"]) for r in rules]),
        ("candidate errors", [str(r["candidate"]["errors"]) for r in rules]),
        ("skipped: budget / in flight / hit", [
            "{budget} / {in_flight} / {cache_hit}".format(**r["skipped"]) for r in rules]),
        ("exact match", [_rate(r["agreement"]["exact_rate"]) for r in rules]),
        ("similarity (mean)", [_rate(r["agreement"]["similarity_mean"]) for r in rules]),
        ("judge (mean)", [_rate(r["agreement"]["judge_mean"]) for r in rules]),
        ("spent / budget USD", [
            f"{r['spent_usd']['total']:.6f} / {r['budget']['limit_usd']:g} "
            f"({r['budget']['window']})" for r in rules]),
    ]
    for label, cells in rows:
        table.add_row(label, *cells)
    console.print(table)


def _saving(rule: dict[str, Any]) -> str:
    percent = rule["projected_saving_percent"]
    return f"{rule['projected_saving_usd']:.6f}" + (f" ({percent:g} %)" if percent is not None
                                                    else "")


def _cost(side: dict[str, Any]) -> str:
    mean = side["mean_cost_usd"]
    return f"{side['total_cost_usd']:.6f}" + (f" ({mean:.6f})" if mean is not None else "")


def _latency(side: dict[str, Any]) -> str:
    p50, p95 = side["latency_p50_ms"], side["latency_p95_ms"]
    return "—" if p50 is None else f"{_ms(p50)} / {_ms(p95)}"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"
