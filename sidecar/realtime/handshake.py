"""The client's side of a WebSocket handshake: which requests are one, its Call, its model.

A `GET /v1/*` with `Upgrade: websocket` and a valid handshake (`Sec-WebSocket-Key`, version 13)
is a session; anything else under /v1 stays a plain passthrough request (an invalid handshake
goes upstream as a GET without its Upgrade header, which is hop-by-hop).

Keys. A browser cannot set headers on a WebSocket, so OpenAI's browser clients send the key as
a subprotocol, `openai-insecure-api-key.<key>`, among `realtime` and `openai-beta.realtime-v1`.
The session's Call takes it out of the offered subprotocols and, unless the client also sent an
`Authorization` header, carries it as `Authorization: Bearer <key>`: from there it is a key like
any other. The auth stage checks it when `auth.required`; the provider replaces it by its own
`api_key`, drops it when it was a local key, or passes it on as the `Authorization` header when
the client's own key is to be used. The subprotocol itself never goes upstream.

`ReadSession` is the session's read_body: the model is the query's `model` (OpenAI's
`/v1/realtime?model=gpt-realtime`), checked against the local key's `allowed_models` (403); a
key limited to some models cannot open a session that names none. Redaction does not see a
session's frames, so under `privacy.redact.mode: block` sessions are refused (400).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.call import Call, Next, Reply, new_request_id
from sidecar.errors import InvalidRequest, ModelNotAllowed
from sidecar.realtime.stats import SessionStats

__all__ = ["KEY_PROTOCOL", "ReadSession", "is_upgrade", "offered_protocols", "session_call"]

KEY_PROTOCOL = "openai-insecure-api-key."  # OpenAI's browser clients: the key as a subprotocol
# The client's handshake headers: aiohttp writes the upstream handshake's own.
HANDSHAKE_HEADERS = ("sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                     "sec-websocket-protocol", "sec-websocket-accept")


def is_upgrade(request: web.Request) -> bool:
    """A WebSocket handshake the sidecar can complete."""
    if request.method != "GET" or request.headers.get(hdrs.UPGRADE, "").lower() != "websocket":
        return False
    return web.WebSocketResponse().can_prepare(request).ok


def offered_protocols(headers: CIMultiDictProxy[str]) -> list[str]:
    """The subprotocols the client offered, in its order."""
    return [p.strip() for value in headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, ())
            for p in value.split(",") if p.strip()]


def session_call(request: web.Request) -> Call:
    """The Call of a session: as the handler builds any other, with the subprotocol key moved
    into `Authorization` (see the module docstring) and the session's figures to fill."""
    headers = request.headers
    offered = offered_protocols(headers)
    keys = [p for p in offered if p.startswith(KEY_PROTOCOL)]
    if keys:
        edited = CIMultiDict(headers)
        edited.popall(hdrs.SEC_WEBSOCKET_PROTOCOL, None)
        rest = [p for p in offered if not p.startswith(KEY_PROTOCOL)]
        if rest:
            edited[hdrs.SEC_WEBSOCKET_PROTOCOL] = ", ".join(rest)
        key = keys[0][len(KEY_PROTOCOL):]
        if key and hdrs.AUTHORIZATION not in edited:
            edited[hdrs.AUTHORIZATION] = f"Bearer {key}"
        headers = CIMultiDictProxy(edited)
    raw_path = request.raw_path
    if raw_path[:1] != "/":
        raw_path = request.rel_url.raw_path_qs
    return Call(request_id=new_request_id(), method=request.method, path=raw_path[3:],
                endpoint=None, headers=headers, started=time.monotonic(),
                session=SessionStats())


class ReadSession:
    name = "read_session"
    reads_answer = False

    def __init__(self, *, blocking_redaction: bool = False) -> None:
        # privacy.redact.mode block promises nothing sensitive leaves; a session's frames
        # (audio, text events) are not checked, so under it sessions are refused
        self._refuse = blocking_redaction

    async def __call__(self, call: Call, next: Next) -> Reply:
        if self._refuse:
            return Reply.from_error(InvalidRequest(
                "privacy.redact.mode is block, and a WebSocket session's frames (audio, text "
                "events) are not checked for personal data, so sessions are refused. Use the "
                "HTTP endpoints, or ask the operator for mode mask or pseudonymize (under "
                "which session frames pass unredacted: docs/realtime.md)."))
        query = call.path.partition("?")[2]
        model = parse_qs(query).get("model", [""])[0] if "model=" in query else ""
        call.model = model
        call.requested_model = model or None
        allowed = call.allowed_models
        if allowed is not None and not (model and allowed.match(model)):
            names = ", ".join(allowed.patterns)
            return Reply.from_error(ModelNotAllowed(
                f"Key '{call.key_name}' may not use model '{model}'; its allowed_models are "
                f"{names}." if model else
                f"Key '{call.key_name}' may use only the models {names}: name one in the "
                "session's URL (?model=...).", param="model"))
        return await next(call)
