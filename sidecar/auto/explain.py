"""`llm-sidecar auto explain`: the tier a request would get, and why, without calling anything.

    llm-sidecar auto explain "Prove that there are infinitely many primes"
    llm-sidecar auto explain --file body.json --router sidecar/auto-code --config sidecar.yaml
    llm-sidecar auto explain --json "hi"

The request is a prompt (sent as one user message of a chat completion) or a whole request
body (`--file`, `-` for stdin; its `model` picks the router when it names one). The router is
`--router`, else the body's, else the config's first; with no router configured the tier alone
is printed (at `--prefer`, default balanced). Context windows and the baseline's price come
from the config's `spend.prices` and the bundled table: nothing is fetched, no upstream is
called, no session is pinned. Exit 0 with an answer, 1 for a request it cannot read, 2 for a
bad config or an unknown router.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from sidecar.auto.classify import features
from sidecar.auto.router import Router, bound
from sidecar.auto.shapes import READERS, read
from sidecar.auto.tiers import decide
from sidecar.config import Settings
from sidecar.fetch import show
from sidecar.spend.price_book import PriceBook
from sidecar.upstream.client import UpstreamClient

EXIT_BAD_REQUEST = 1
EXIT_BAD_CONFIG = 2


def add_parser(commands: Any) -> None:
    auto = commands.add_parser("auto", help="the automatic model choice (sidecar/auto)")
    verbs = auto.add_subparsers(dest="auto_command", required=True, metavar="COMMAND")
    explain = verbs.add_parser(
        "explain", help="print the tier a request would get and why (calls nothing)")
    explain.add_argument("prompt", nargs="?", help="the prompt, as one user message")
    explain.add_argument("--file", help="a JSON request body instead ('-': stdin)")
    explain.add_argument("--endpoint", default="chat/completions", choices=sorted(READERS),
                         help="the endpoint the body is for (default chat/completions)")
    explain.add_argument("--router", help="the router's name (default: the body's model, "
                                          "else the first configured)")
    explain.add_argument("--prefer", choices=("cheap", "balanced", "quality"),
                         help="with no router configured: the thresholds to use")
    explain.add_argument("--config", help="config file (default: $SIDECAR_CONFIG)")
    explain.add_argument("--json", action="store_true", help="print the answer as JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        body = _body(args)
    except ValueError as exc:
        print(f"auto explain: {exc}", file=sys.stderr)
        return EXIT_BAD_REQUEST
    routers = settings.auto.routers
    model = body.get("model")
    name = args.router or (model if model in routers else None) or next(iter(routers), None)
    if name is not None and name not in routers:
        known = ", ".join(routers) or "none"
        print(f"auto explain: no router named '{name}' in the config (routers: {known})",
              file=sys.stderr)
        return EXIT_BAD_CONFIG
    shape = read(args.endpoint, body)
    if shape is None:  # argparse's choices keep this from happening; kept for safety
        print(f"auto explain: /v1/{args.endpoint} is not routed by tier", file=sys.stderr)
        return EXIT_BAD_REQUEST
    f = features(shape)
    out: dict[str, Any] = {"endpoint": args.endpoint, "features": asdict(f),
                           "context_tokens": bound(f)}
    if name is None:
        decision = decide(f, args.prefer or "balanced")
        out.update(router=None, prefer=args.prefer or "balanced", tier=decision.tier,
                   models=[], reasons=list(decision.reasons), score=decision.score)
    else:
        book = _offline_book(settings)
        router = Router(name, routers[name], book.lookup, book.window)
        pick = router.choose(f)
        out.update(router=name, prefer=router.settings.prefer, tier=pick.tier,
                   models=list(pick.models), reasons=list(pick.reasons),
                   score=pick.decision.score, classified=pick.decision.tier,
                   baseline=router.baseline)
    return show(out, args.json, _render)


def _body(args: argparse.Namespace) -> dict[str, Any]:
    if (args.file is None) == (args.prompt is None):
        raise ValueError("give a prompt or --file (one of them)")
    if args.file is None:
        if args.endpoint == "chat/completions" or args.endpoint == "messages":
            return {"messages": [{"role": "user", "content": args.prompt}]}
        return {"prompt": args.prompt} if args.endpoint == "completions" else {
            "input": args.prompt}
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        body = orjson.loads(raw)
    except OSError as exc:
        raise ValueError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{args.file} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError(f"{args.file} must hold a JSON object (a request body)")
    return body


def _offline_book(settings: Settings) -> PriceBook:
    """The price book as a stopped sidecar knows it: the config's prices, the bundled table."""
    offline = settings.model_copy(update={
        "spend": settings.spend.model_copy(update={"fetch_prices": False})})
    book = PriceBook(offline, UpstreamClient(settings.upstream))
    asyncio.run(book.start())  # with nothing to fetch: loads the bundled table, no I/O else
    return book


def _render(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    where = f"router {out['router']}" if out["router"] else "no router configured"
    console.print(f"[bold]{out['tier']}[/bold]  ({where}, prefer {out['prefer']})")
    if out["models"]:
        console.print(f"models:  {', '.join(out['models'])}")
    if out.get("classified") and out["classified"] != out["tier"]:
        console.print(f"classified {out['classified']}, served {out['tier']}")
    console.print(f"why:     {', '.join(out['reasons']) or '-'}  (score {out['score']})")
    table = Table(title="features", show_header=False)
    for key, value in out["features"].items():
        table.add_row(key, "-" if value is None else str(value))
    table.add_row("context bound", f"{out['context_tokens']} tokens")
    console.print(table)
