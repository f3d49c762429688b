"""`llm-sidecar usage`: the usage report as a table, or as the API's JSON (`--json`).

It reads the ledger itself (the SQLite file, read-only, so it works while the sidecar is
stopped and never blocks a running one; or the Redis ledger), or asks a running sidecar's admin
API with `--url`. Exit 0 with a report, 1 when there is none to read, 2 on a bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.parse
from typing import Any

from sidecar.config import Settings
from sidecar.fetch import Unanswered, fetch_json, show
from sidecar.spend.ledger import sqlite_path
from sidecar.spend.pricing import to_nano, usd_text
from sidecar.spend.sqlite_store import Store
from sidecar.spend.usage import parse_query

EXIT_NO_REPORT = 1


def run(args: argparse.Namespace, settings: Settings | None) -> int:
    """`settings` is None with --url."""
    try:
        if args.url:
            payload = _from_admin(args.url, args.window, args.by, args.token)
        else:
            assert settings is not None
            payload = _from_ledger(settings, args.window, args.by)
    except _NoReport as exc:
        print(f"usage: {exc}", file=sys.stderr)
        return EXIT_NO_REPORT
    return show(payload, args.json, render)


class _NoReport(Exception):
    pass


def _from_ledger(settings: Settings, window: str, by: str) -> dict[str, Any]:
    span, dimension = parse_query(window, by)
    if settings.spend.ledger == "off":
        raise _NoReport("spend.ledger is off in this configuration: there is no ledger")
    path = sqlite_path(settings)
    if path is None:
        return asyncio.run(_from_redis(settings, window, by))
    if not path.exists():
        raise _NoReport(f"no ledger at {path} yet (the sidecar creates it when it starts)")
    store = Store(path, readonly=True)
    try:
        store.open()
        return store.usage(span, dimension, time.time())
    except Exception as exc:  # sqlite3.Error, OSError: say what, never a traceback
        raise _NoReport(f"cannot read the ledger at {path}: {exc}") from exc
    finally:
        store.close()


async def _from_redis(settings: Settings, window: str, by: str) -> dict[str, Any]:
    from sidecar.spend.ledger_redis import RedisLedger
    from sidecar.telemetry.metrics import Metrics

    assert settings.spend.ledger is not None
    ledger = RedisLedger(settings, Metrics(), settings.spend.ledger)
    try:
        return await ledger.usage(window, by)
    except Exception as exc:
        raise _NoReport(f"cannot read the Redis ledger: {exc}") from exc
    finally:
        await ledger.close()


def _from_admin(url: str, window: str, by: str, token: str | None) -> dict[str, Any]:
    query = urllib.parse.urlencode({"window": window, "by": by})
    try:
        payload: dict[str, Any] = fetch_json(f"{url.rstrip('/')}/sidecar/usage?{query}",
                                             headers={"Authorization": f"Bearer {token}"}
                                             if token else None)
    except Unanswered as exc:
        raise _NoReport(str(exc)) from exc
    return payload


def render(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    window = payload["window"]
    title = (f"Spend {'in total' if window == 'all' else 'this ' + window}"
             f"{'' if window == 'all' else ' (since ' + str(payload['since']) + ')'}"
             f", by {payload['by']}")
    table = Table(title=title, show_footer=True)
    total = f"{payload['total_requests']} requests"
    table.add_column(payload["by"], footer="total", no_wrap=True)
    columns = [("requests", str(payload["total_requests"])),
               ("prompt tokens", ""), ("completion tokens", ""),
               ("cost USD", _usd(payload["total_cost_usd"])), ("cache hits", ""),
               ("saved USD", _usd(payload["total_saved_usd"]))]
    # The auto routers' columns, when a router served something (or the report is by tier).
    routed = payload["by"] == "tier" or bool(payload.get("total_baseline_usd"))
    if routed:
        columns += [("baseline USD", _usd(payload.get("total_baseline_usd", 0.0))),
                    ("saved vs baseline USD",
                     _usd(payload.get("total_saved_vs_baseline_usd", 0.0)))]
    # The provider's prompt cache (the sidecar's own is "cache hits" and "saved USD"), when it
    # read or wrote anything: the tokens it read, its hit rate, what it saved net of writes.
    cached = bool(payload.get("total_cached_tokens") or payload.get("total_cache_write_tokens"))
    if cached:
        columns += [("provider cached tokens", str(payload["total_cached_tokens"])),
                    ("provider cache hit", _rate(payload.get("total_provider_cache_hit_rate"))),
                    ("provider cache saved USD",
                     _usd(payload.get("total_provider_cache_saved_usd", 0.0)))]
    for header, footer in columns:
        table.add_column(header, footer=footer, justify="right")
    for row in payload["rows"]:
        cells = [row["key"] or "(none)", str(row["requests"]), str(row["prompt_tokens"]),
                 str(row["completion_tokens"]), _usd(row["cost_usd"]),
                 str(row["cache_hits"]), _usd(row["saved_usd"])]
        if routed:
            cells += [_usd(row.get("baseline_usd", 0.0)),
                      _usd(row.get("saved_vs_baseline_usd", 0.0))]
        if cached:
            cells += [str(row.get("cached_tokens", 0)),
                      _rate(row.get("provider_cache_hit_rate")),
                      _usd(row.get("provider_cache_saved_usd", 0.0))]
        table.add_row(*cells)
    # Piped output gets room for long model names instead of rich's 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 160)
    if not payload["rows"]:
        console.print(f"{title}: no requests ({total}).")
        return
    console.print(table)


def _usd(value: float) -> str:
    return usd_text(to_nano(value))


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"
