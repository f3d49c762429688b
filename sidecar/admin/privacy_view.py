"""GET /sidecar/privacy: the effective privacy policy (INTERFACE.md §3)."""

from __future__ import annotations

import orjson
from aiohttp import web

from sidecar.deps import DEPS
from sidecar.errors import JSON_CONTENT_TYPE
from sidecar.privacy.policy import describe


async def privacy(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(describe(request.config_dict[DEPS].settings)),
                        content_type=JSON_CONTENT_TYPE)
