"""The admin token check: `Authorization: Bearer <admin.token>`, or the inspector page's
cookie (a browser cannot send a header on a page load or an EventSource), compared in constant
time (`hmac.compare_digest`, on the bytes the client sent: a value that is not UTF-8 is a wrong
token, not a crash). A refused request gets 401 invalid_api_key, and is counted and logged
(rate-limited) by the app's AuthRefusals."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from sidecar.deps import DEPS
from sidecar.errors import InvalidApiKey
from sidecar.handler import error_response
from sidecar.headers import sent_bytes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "llm_sidecar_admin"


def token_matches(given: str, expected: bytes) -> bool:
    """The one comparison of an admin token, in constant time."""
    return hmac.compare_digest(sent_bytes(given), expected)


def guarded(expected: str) -> Callable[[Handler], Handler]:
    expected_bytes = expected.encode()

    def allowed(request: web.Request) -> bool:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token_matches(token.strip(), expected_bytes):
                return True
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and token_matches(cookie, expected_bytes):
            return True
        request.config_dict[DEPS].refusals.refused(
            "admin", "missing" if header is None and cookie is None else "invalid")
        return False

    def wrap(handler: Handler) -> Handler:
        async def guard(request: web.Request) -> web.StreamResponse:
            if not allowed(request):
                return error_response(InvalidApiKey(
                    "This admin route needs 'Authorization: Bearer <admin.token>' (the "
                    "inspector page: open /sidecar/ui?token=<admin.token> once)."))
            return await handler(request)
        return guard

    return wrap
