"""The admin token check: `Authorization: Bearer <admin.token>`, or the inspector page's
cookie (a browser cannot send a header on a page load or an EventSource), compared in constant
time. A refused request gets 401 invalid_api_key."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from sidecar.errors import InvalidApiKey
from sidecar.relay import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "llm_sidecar_admin"


def guarded(expected: str) -> Callable[[Handler], Handler]:
    expected_bytes = expected.encode()

    def allowed(request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                              expected_bytes):
            return True
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), expected_bytes)

    def wrap(handler: Handler) -> Handler:
        async def guard(request: web.Request) -> web.StreamResponse:
            if not allowed(request):
                return error_response(InvalidApiKey(
                    "This admin route needs 'Authorization: Bearer <admin.token>' (the "
                    "inspector page: open /sidecar/ui?token=<admin.token> once)."))
            return await handler(request)
        return guard

    return wrap
