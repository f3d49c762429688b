"""The terminal of a session's pipeline: open the upstream side, then answer 101.

The provider is the one the router would pick for the session's model (the first of its
candidates; no retries: a session is not replayed) or, without a model, the first provider
listed, as for every path without one. Its URL is `{base_url}{path}` byte for byte
(upstream/paths.py; aiohttp speaks WebSocket over an http(s) URL); its headers are the client's
less hop-by-hop ones, the client's handshake headers and the key the provider does not pass on,
plus the provider's own (`providers/openai.py: request_headers`); its subprotocols are the
client's without `openai-insecure-api-key.*` (handshake.py). Only once the upstream accepted
does the client get its 101 (relay.py), so every refusal is an HTTP answer:

    the upstream refuses the handshake   its status (401, 403, 404, 429 ...), with an
                                         OpenAI-shaped body saying so (aiohttp does not read
                                         the body of a refused handshake)
    it cannot be reached or is too slow  502 upstream_unavailable, 504 upstream_timeout
    an Anthropic-format provider         404: Anthropic has no WebSocket API
"""

from __future__ import annotations

import time

import aiohttp
import orjson
from multidict import CIMultiDict

from sidecar.call import Call, Reply
from sidecar.errors import JSON_CONTENT_TYPE, NotFound, SidecarError, UpstreamError
from sidecar.realtime.handshake import HANDSHAKE_HEADERS, KEY_PROTOCOL, offered_protocols
from sidecar.realtime.relay import CLOSE_TIMEOUT_S, Session
from sidecar.telemetry.metrics import Metrics
from sidecar.upstream.client import UpstreamClient, transport_error
from sidecar.upstream.paths import refusal, upstream_url
from sidecar.upstream.providers import OpenAIProvider
from sidecar.upstream.routing import Routing
from sidecar.upstream.targets import Target

__all__ = ["Connect"]


class Connect:
    name = "connect"

    def __init__(self, client: UpstreamClient, routing: Routing, metrics: Metrics,
                 max_msg_size: int) -> None:
        self._client = client
        self._routing = routing
        self._metrics = metrics
        self._max = max_msg_size

    async def __call__(self, call: Call) -> Reply:
        if (refused := refusal(call.method, call.path)) is not None:
            return Reply.from_error(refused)  # leaves /v1 (upstream/paths.py)
        target = self._target(call.model or "")
        if isinstance(target, SidecarError):
            return Reply.from_error(target)
        provider = target.provider
        attempt = call.begin_attempt(provider.name, call.model or "", time.monotonic())
        if not isinstance(provider, OpenAIProvider):
            attempt.error, attempt.ended = "not_found", time.monotonic()
            return Reply.from_error(NotFound(
                f"Provider '{provider.name}' speaks Anthropic's Messages API, which has no "
                f"WebSocket API for /v1{call.path.partition('?')[0]}."))
        headers = provider.request_headers(call, decoded=False)
        for name in HANDSHAKE_HEADERS:
            headers.popall(name, None)
        protocols = [p for p in offered_protocols(call.headers) if not p.startswith(KEY_PROTOCOL)]
        where = f"{provider.name} ({provider.base_url})"
        try:
            upstream = await self._client.session.ws_connect(
                upstream_url(provider.base_url, call.path), headers=headers,
                protocols=protocols, autoclose=False, autoping=False, decode_text=False,
                max_msg_size=self._max, proxy=provider.proxy,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT_S))
        except aiohttp.WSServerHandshakeError as exc:
            attempt.status, attempt.ended = exc.status, time.monotonic()
            attempt.error = f"http_{exc.status}"
            return _refused(exc.status, where)
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = transport_error(exc, where, "opening the WebSocket")
            attempt.error, attempt.ended = error.code, time.monotonic()
            return Reply.from_error(error)
        attempt.status, attempt.headers_at = 101, time.monotonic()
        return Reply(101, CIMultiDict(), upgrade=Session(upstream, attempt, self._metrics,
                                                         max_msg_size=self._max))

    def _target(self, model: str) -> Target | SidecarError:
        routing = self._routing
        if not model or not routing.configured:
            return routing.passthrough_target
        try:
            return routing.router.candidates(model, None)[0]
        except SidecarError as exc:
            return exc


def _refused(status: int, where: str) -> Reply:
    """The upstream's refusal of the handshake, with its status (never a 101 to the client)."""
    status = status if 400 <= status < 600 else 502
    error = UpstreamError(f"Upstream {where} refused the WebSocket handshake with HTTP "
                          f"{status} (its body is not relayed: a refused handshake's body is "
                          "not read). Check the key and the model in the URL.")
    payload = error.payload()
    payload["error"]["code"] = "upstream_refused_websocket"
    return Reply(status, CIMultiDict({"Content-Type": JSON_CONTENT_TYPE}),
                 body=orjson.dumps(payload))
