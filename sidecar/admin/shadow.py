"""GET /sidecar/shadow: what each shadow rule measured since the sidecar started (pairs, costs
on both sides, the projected saving, latencies, errors, skipped samples, agreement, what the
rule spent, the most recent pairs; compare/shadow_stats.py has the fields). Memory only: a
restart starts the figures again, while the rule's budget is rebuilt from the ledger.

An empty list when no rule is configured (the inspector's panel says so)."""

from __future__ import annotations

import orjson
from aiohttp import web

from sidecar.deps import DEPS
from sidecar.errors import JSON_CONTENT_TYPE


async def shadow_report(request: web.Request) -> web.Response:
    runner = request.config_dict[DEPS].shadow
    rules = runner.report() if runner is not None else []
    return web.Response(body=orjson.dumps({"rules": rules}), content_type=JSON_CONTENT_TYPE,
                        headers={"Cache-Control": "no-store"})
