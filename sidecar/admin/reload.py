"""POST /sidecar/reload: read the configuration file again and apply it (see sidecar/live.py).

200 with what changed and what needs a restart; 422 with the error when the file is invalid
(the running configuration keeps serving); 409 when this sidecar was not started from a file it
can read again (an embedder's `create_app(settings)`).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from sidecar.errors import JSON_CONTENT_TYPE
from sidecar.live import LIVE, ReloadResult


async def reload_config(request: web.Request) -> web.Response:
    live = request.config_dict[LIVE]
    if live.reloader is None:
        refused = ReloadResult(False, live.version, error="this sidecar was not started from a "
                               "configuration file it can read again")
        return web.Response(body=orjson.dumps(refused.as_dict()), status=409,
                            content_type=JSON_CONTENT_TYPE)
    result = await live.reloader.reload("admin")
    return web.Response(body=orjson.dumps(result.as_dict()),
                        status=200 if result.applied else 422, content_type=JSON_CONTENT_TYPE)
