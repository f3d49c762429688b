"""GET /sidecar/usage and GET /sidecar/budgets: the ledger's reports (usage.py has the shapes).

Both flush the ledger's queued rows first, so a report includes every finished request.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from sidecar.deps import DEPS
from sidecar.errors import JSON_CONTENT_TYPE, InvalidRequest, LedgerUnavailable, NotFound
from sidecar.handler import error_response
from sidecar.spend.ledger import Ledger, LedgerDown


def _ledger(request: web.Request) -> Ledger | None:
    return request.config_dict[DEPS].ledger


def _off() -> web.Response:
    return error_response(NotFound("Spend is off (spend.ledger: off): there is no ledger to "
                                   "report from."))


async def usage(request: web.Request) -> web.Response:
    ledger = _ledger(request)
    if ledger is None:
        return _off()
    try:
        payload = await ledger.usage(request.query.get("window", "day"),
                                     request.query.get("by", "model"))
    except ValueError as exc:
        return error_response(InvalidRequest(f"{exc}."))
    except LedgerDown as exc:
        return error_response(LedgerUnavailable(f"The spend ledger cannot be read: {exc}."))
    return web.Response(body=orjson.dumps(payload), content_type=JSON_CONTENT_TYPE)


async def budgets(request: web.Request) -> web.Response:
    ledger = _ledger(request)
    if ledger is None:
        return _off()
    try:
        payload = {"budgets": await ledger.budgets()}
    except LedgerDown as exc:
        return error_response(LedgerUnavailable(f"The spend ledger cannot be read: {exc}."))
    return web.Response(body=orjson.dumps(payload), content_type=JSON_CONTENT_TYPE)
