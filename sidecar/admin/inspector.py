"""Admin routes of the request inspector: the page, its event stream, and the data it fetches.

    GET /sidecar/ui                  the page (static files shipped in the package, no CDN)
    GET /sidecar/ui/{asset}          its script and style sheet
    GET /sidecar/events              server-sent events: `request` (metadata of each finished
                                     request, batched), `skipped` (how many a batch left out),
                                     `budget` (spend changed a budget: the tightest remaining)
    GET /sidecar/requests?after=N    recent records as JSON, newest last (the page's first load)
    GET /sidecar/requests/{id}       one record, with prompt and completion when captured
    GET /sidecar/stats               p50/p95 latency and error rate by model, last hour

Who may open them is the admin guard's business (guard.py), the page's `?token=` login
included: these are plain handlers.
"""

from __future__ import annotations

import asyncio
from importlib import resources

import orjson
from aiohttp import web

from sidecar.call import new_request_id
from sidecar.deps import DEPS
from sidecar.errors import NotFound
from sidecar.handler import error_response
from sidecar.headers import REQUEST_ID_HEADER, SERVER
from sidecar.inspector import Inspector

_ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self'; script-src 'self'; connect-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _static(name: str) -> bytes:
    return resources.files("sidecar.inspector").joinpath("static", name).read_bytes()


def _inspector(request: web.Request) -> Inspector:
    inspector = request.config_dict[DEPS].inspector
    assert inspector is not None, "inspector routes are added only when admin.ui is on"
    return inspector


async def page(request: web.Request) -> web.StreamResponse:
    return web.Response(body=_static("index.html"), content_type="text/html",
                        charset="utf-8", headers=_PAGE_HEADERS)


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in _ASSETS:
        return error_response(NotFound(f"No such inspector asset: {name}."))
    return web.Response(body=_static(name), content_type=_ASSETS[name],
                        headers=_PAGE_HEADERS)


async def events(request: web.Request) -> web.StreamResponse:
    inspector = _inspector(request)
    after = _int(request.headers.get("Last-Event-ID") or request.query.get("after"),
                 inspector.last_seq)
    # The headers `logged` stamps after the handler: too late for a stream sent as it goes.
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no", "Server": SERVER,
                                           REQUEST_ID_HEADER: new_request_id()})
    await response.prepare(request)
    hello = b"retry: 2000\n: connected\n\n"
    if after > inspector.last_seq:  # ids of another process (a restart, another replica)
        hello += b"event: reset\ndata: %d\n\n" % inspector.last_seq
        after = 0
    await response.write(hello)
    async for records, skipped in inspector.follow(after):
        parts = [r.event() for r in records]
        if skipped:
            parts.append(b"event: skipped\ndata: %d\n\n" % skipped)
        budgets = [r.budget_remaining_usd for r in records if r.budget_remaining_usd is not None]
        if budgets:  # spend moved: the page refreshes its budget panel
            parts.append(b"event: budget\ndata: %s\n\n" % orjson.dumps(
                {"remaining_usd": budgets[-1]}))
        try:
            await asyncio.wait_for(response.write(b"".join(parts) or b": ping\n\n"),
                                   timeout=inspector.write_timeout_s)
        except (TimeoutError, ConnectionResetError):
            # A slow or gone page is dropped, never waited for: aborted, since ending the
            # response would wait for the same full socket buffer.
            if request.transport is not None:
                request.transport.abort()
            break
    return response


async def recent(request: web.Request) -> web.Response:
    inspector = _inspector(request)
    records, skipped = inspector.since(_int(request.query.get("after"), 0),
                                       min(_int(request.query.get("limit"), 500), 5000))
    return _json({"requests": [r.as_dict() for r in records], "skipped": skipped,
                  "last": inspector.last_seq})


async def detail(request: web.Request) -> web.Response:
    inspector = _inspector(request)
    record = inspector.find(request.match_info["request_id"])
    if record is None:
        return error_response(NotFound(
            f"Request {request.match_info['request_id']} is not in the inspector's memory "
            f"(it keeps the last {inspector.size} requests)."))
    body = record.as_dict()
    content = inspector.content.get(record.request_id) if inspector.content else None
    body["content_captured"] = inspector.content is not None
    if content is not None:
        body["prompt"], body["completion"] = content
    return _json(body)


async def stats(request: web.Request) -> web.Response:
    return _json({"window": "hour", "models": _inspector(request).stats.summary()})


def _json(payload: object) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


def _int(value: str | None, default: int) -> int:
    try:
        return max(0, int(value)) if value is not None else default
    except ValueError:
        return default
