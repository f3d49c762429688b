"""`GET /sidecar/providers`: each provider's health, breaker state and moving averages by model.

`healthy` is false while the provider's breaker is open or half-open. Averages: `ttfb_ms` (time
to first byte, peak-sensitive EWMA) and `tokens_per_s` (output tokens per second), null when not
measured yet or stale (older than 5 minutes); the sample counts say how much they rest on.
Proxy URLs are shown without their password.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from sidecar.deps import DEPS
from sidecar.errors import JSON_CONTENT_TYPE


async def providers(request: web.Request) -> web.Response:
    routing = request.config_dict[DEPS].routing
    payload = {"providers": routing.snapshot(), "retry": {
        "attempts": routing.retry.attempts, "backoff_s": routing.retry.backoff_s,
        "max_backoff_s": routing.retry.max_backoff_s,
        "on_status": sorted(routing.retry.on_status), "deadline_s": routing.retry.deadline_s}}
    return web.Response(body=orjson.dumps(payload), content_type=JSON_CONTENT_TYPE)
