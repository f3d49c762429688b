"""The terminal stage: send the call upstream and turn the answer into a Reply.

`model` serves the model endpoints: the body is the (possibly edited) JSON, the response body is
decoded so stages can read it, and an event stream is re-chunked into whole events. `forward`
serves every other path: request and response bodies stream through undecoded and unbuffered.
Whether a reply streams is decided when the upstream's headers arrive, by its Content-Type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import ClientResponse
from multidict import CIMultiDict

from sidecar.call import Call, Reply
from sidecar.headers import client_response_headers, upstream_request_headers
from sidecar.sse import frame_events
from sidecar.upstream.client import Target, UpstreamClient

PROVIDER_HEADER = "x-sidecar-provider"
ATTEMPTS_HEADER = "x-sidecar-attempts"


class Route:
    def __init__(self, client: UpstreamClient, target: Target, *, local_auth: bool) -> None:
        self._client = client
        self._target = target
        self._local_auth = local_auth  # the client's token is ours: never send it upstream

    async def model(self, call: Call) -> Reply:
        response, headers = await self._send(call, "POST", call.upstream_body(), decoded=True)
        if response.content_type == "text/event-stream":
            chunks = frame_events(self._client.iter_body(response, self._target))
            return Reply(response.status, headers, chunks=chunks, sse=True)
        body = await self._client.read(response, self._target)
        return Reply(response.status, headers, body=body)

    async def forward(self, call: Call) -> Reply:
        response, headers = await self._send(call, call.method, call.body_stream, decoded=False)
        return Reply(response.status, headers,
                     chunks=self._client.iter_body(response, self._target))

    async def _send(self, call: Call, method: str, data: bytes | AsyncIterator[bytes] | None,
                    *, decoded: bool) -> tuple[ClientResponse, CIMultiDict[str]]:
        """Send one attempt; return the upstream's response (headers in, body unread) and the
        headers the client will get."""
        target = self._target
        call.provider = target.name
        call.attempts += 1
        request_headers = upstream_request_headers(
            call.headers, api_key=target.api_key, extra=target.headers,
            decoded_body=decoded, drop_client_auth=self._local_auth,
        )
        response = await self._client.open(target, method, call.path, headers=request_headers,
                                           data=data, decode=decoded)
        headers = client_response_headers(response.headers, decoded_body=decoded)
        headers[PROVIDER_HEADER] = target.name
        headers[ATTEMPTS_HEADER] = str(call.attempts)
        return response, headers
