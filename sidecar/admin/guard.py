"""Who may call an admin route: the one rule, decided once per listener (`AdminGuard.of`) and
applied by `AdminRoutes.add` to every admin route it registers, so a route added there later
(reload, shadow …) is covered without code of its own.

The listener that decides is the one the admin routes are on: `admin.host` when `admin.port`
is set, else `listen.host`. Loopback is 127.0.0.0/8, ::1 and `localhost`; `0.0.0.0` and `::`
are every interface, and any other name or address counts as the network.

    listener         admin.token   admin routes and the page   /metrics
    loopback         unset         served                      served
    network          unset         403 admin_token_required    served
    network+opt-out  unset         served, warned at start     served
    any              set           the token (401 without)     the token if
                                                               metrics_require_token, else served

(opt-out: `admin.insecure_no_token_on_network: true`.)

The probes (`/healthz`, `/readyz`) are not admin routes and never need a token. /metrics stays
open by default so that scrapers keep working: it holds counters by endpoint, model, provider
and budget, never a key name, a prompt or a request.

A token is read from `Authorization: Bearer <token>`, or from the inspector page's cookie (a
browser cannot send a header on a page load or an EventSource: `/sidecar/ui?token=…` checks the
token once, sets an HttpOnly, SameSite=Strict cookie scoped to /sidecar and redirects to the
clean URL). Every comparison is `hmac.compare_digest` on the bytes the client sent (a value that
is not UTF-8 is a wrong token, not a crash). A wrong or missing token is counted and logged
(rate-limited) by the app's AuthRefusals; a 403 for want of a configured token is not a
credential failure and writes only its access line.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from sidecar.config.schema import Settings
from sidecar.deps import DEPS
from sidecar.errors import AdminTokenRequired, InvalidApiKey
from sidecar.handler import error_response
from sidecar.headers import sent_bytes

__all__ = ["COOKIE", "AdminGuard", "Handler", "Kind", "Notice", "is_loopback", "token_matches"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# admin: needs the token; page: the same, plus the `?token=` login; metrics: /metrics.
Kind = Literal["admin", "page", "metrics"]
Access = Literal["open", "token", "locked"]
COOKIE = "llm_sidecar_admin"
OPT_OUT = "admin.insecure_no_token_on_network"
_MISSING = ("This admin route needs 'Authorization: Bearer <admin.token>' (the inspector page: "
            "open /sidecar/ui?token=<admin.token> once).")


def is_loopback(host: str) -> bool:
    """Whether a listener bound to `host` can be reached from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False  # a name other than localhost: where it resolves is not ours to trust
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 (Python 3.11 calls it not loopback)
    return address.is_loopback


def token_matches(given: str, expected: bytes) -> bool:
    """The one comparison of an admin token, in constant time."""
    return hmac.compare_digest(sent_bytes(given), expected)


@dataclass(frozen=True, slots=True)
class Notice:
    """A warning for the start log about who can reach the admin routes."""
    event: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AdminGuard:
    """The rule for the admin routes of one listener."""

    host: str
    host_setting: Literal["admin.host", "listen.host"]  # the setting `host` comes from
    token: bytes | None
    metrics_require_token: bool
    open_without_token: bool  # admin.insecure_no_token_on_network

    @classmethod
    def of(cls, settings: Settings) -> AdminGuard:
        admin = settings.admin
        own = admin.port is not None
        return cls(host=admin.host if own else settings.listen.host,
                   host_setting="admin.host" if own else "listen.host",
                   token=admin.token.get_secret_value().encode() if admin.token else None,
                   metrics_require_token=admin.metrics_require_token,
                   open_without_token=admin.insecure_no_token_on_network)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def access(self, kind: Kind) -> Access:
        """The table of the module docstring."""
        if self.token is not None:
            return "open" if kind == "metrics" and not self.metrics_require_token else "token"
        if kind == "metrics" or self.loopback or self.open_without_token:
            return "open"
        return "locked"

    def wrap(self, handler: Handler, kind: Kind) -> Handler:
        access = self.access(kind)
        if access == "open":
            return handler
        if access == "locked":
            message = self.locked_message()

            async def locked(request: web.Request) -> web.StreamResponse:
                return error_response(AdminTokenRequired(message))
            return locked
        assert self.token is not None
        expected = self.token

        async def checked(request: web.Request) -> web.StreamResponse:
            if kind == "page" and (given := request.query.get("token")) is not None:
                return _login(request, given, expected)
            if not _allowed(request, expected):
                return error_response(InvalidApiKey(_MISSING))
            return await handler(request)
        return checked

    def locked_message(self) -> str:
        where = (f"bind {self.host_setting} to 127.0.0.1" if self.host_setting == "admin.host"
                 else "give them a loopback listener of their own (admin.port, with "
                      "admin.host: 127.0.0.1)")
        return (f"The admin routes listen on {self.host} ({self.host_setting}), which is not "
                "loopback, and admin.token is not set, so they are refused. Set admin.token "
                f"and send 'Authorization: Bearer <admin.token>'; or {where}; or, if something "
                f"else guards this port (a NetworkPolicy), set {OPT_OUT}: true.")

    def notice(self, registered: Sequence[tuple[str, str, Kind]]) -> Notice | None:
        """What the start log says about the admin routes, if anything (`registered`: method,
        path and kind of each admin route on this listener)."""
        routes = [f"{method} {path}" for method, path, kind in registered if kind != "metrics"]
        if self.open_without_token and (self.token is not None or self.loopback):
            return Notice("admin_opt_out_unused", {
                "setting": OPT_OUT, "reason": "admin.token is set" if self.token is not None
                else f"{self.host_setting} {self.host} is loopback"})
        if self.token is not None or self.loopback:
            return None
        if self.open_without_token:
            return Notice("admin_routes_open_without_token", {
                "listener": self.host, "setting": OPT_OUT, "exposes": routes,
                "note": f"{OPT_OUT} is on: whoever reaches {self.host} can read spend by key, "
                        "user, model and tag, follow every request (prompts too when "
                        "telemetry.capture_content is on), read the configuration and the "
                        "providers, and purge the cache. Keep a NetworkPolicy on this port, or "
                        "set admin.token."})
        return Notice("admin_routes_need_token", {
            "listener": self.host, "setting": "admin.token", "refused": routes,
            "note": self.locked_message()})


def _allowed(request: web.Request, expected: bytes) -> bool:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token_matches(token.strip(), expected):
            return True
    cookie = request.cookies.get(COOKIE)
    if cookie is not None and token_matches(cookie, expected):
        return True
    request.config_dict[DEPS].refusals.refused(
        "admin", "missing" if header is None and cookie is None else "invalid")
    return False


def _login(request: web.Request, given: str, expected: bytes) -> web.StreamResponse:
    """`/sidecar/ui?token=…`: a right token sets the page's cookie and redirects to the clean
    URL (the token leaves the address bar and the history)."""
    if not token_matches(given, expected):
        request.config_dict[DEPS].refusals.refused("admin", "invalid")
        return error_response(InvalidApiKey("Wrong admin token for the inspector page."))
    response = web.Response(status=303, headers={"Location": "/sidecar/ui"})
    response.set_cookie(COOKIE, given, httponly=True, samesite="Strict", path="/sidecar")
    return response
