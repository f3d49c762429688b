"""Spend guardrails: prices, race-free budgets, rate limits, the ledger, usage reports.

    pricing.py price_book.py  what a model costs; the price book (config, upstream, bundled)
    estimate.py               the most a request can cost, before it is sent
    policy.py windows.py      which budgets and limits apply; UTC calendar windows
    reservations.py           atomic reserve / settle / release in one process
    ledger.py                 the Ledger protocol and its row
    ledger_sqlite.py sqlite_store.py   the default ledger: memory + a SQLite file
    ledger_redis.py redis_scripts.py   the shared ledger for replicas: Redis + Lua
    stream.py bill.py         metering a stream; one request's bill across fallback candidates
    usage.py usage_cli.py     reports: the API's JSON, the `llm-sidecar usage` table
The stage itself is sidecar/pipeline/spend.py.
"""

from __future__ import annotations

__all__: list[str] = []  # import the modules themselves; this package imports nothing
