"""The terminal stage: send the call upstream and turn the answer into a Reply.

`model` serves the model endpoints: the body is the (possibly edited) JSON, the response body is
decoded so stages can read it, and an event stream is re-chunked into whole events. `forward`
serves every other path: request and response bodies stream through undecoded and unbuffered.
Whether a reply streams is decided when the upstream's headers arrive, by its Content-Type.
"""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

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
        target = self._target
        headers = upstream_request_headers(
            call.headers, api_key=target.api_key, extra=target.headers,
            decoded_body=True, drop_client_auth=self._local_auth,
        )
        call.provider = target.name
        call.attempts += 1
        response = await self._client.open(target, "POST", call.path, headers=headers,
                                           data=call.upstream_body(), decode=True)
        reply_headers = self._reply_headers(call, response.headers, decoded_body=True)
        if response.content_type == "text/event-stream":
            chunks = frame_events(self._client.iter_body(response, target))
            return Reply(response.status, reply_headers, chunks=chunks, sse=True)
        body = await self._client.read(response, target)
        return Reply(response.status, reply_headers, body=body)

    async def forward(self, call: Call) -> Reply:
        target = self._target
        headers = upstream_request_headers(
            call.headers, api_key=target.api_key, extra=target.headers,
            decoded_body=False, drop_client_auth=self._local_auth,
        )
        call.provider = target.name
        call.attempts += 1
        response = await self._client.open(target, call.method, call.path, headers=headers,
                                           data=call.body_stream, decode=False)
        reply_headers = self._reply_headers(call, response.headers, decoded_body=False)
        return Reply(response.status, reply_headers,
                     chunks=self._client.iter_body(response, target))

    @staticmethod
    def _reply_headers(call: Call, upstream: CIMultiDictProxy[str], *, decoded_body: bool
                       ) -> CIMultiDict[str]:
        headers = client_response_headers(upstream, decoded_body=decoded_body)
        headers[PROVIDER_HEADER] = call.provider or ""
        headers[ATTEMPTS_HEADER] = str(call.attempts)
        return headers
