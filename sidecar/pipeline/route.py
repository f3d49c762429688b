"""The terminal stage: send the call to a provider and return its answer as a Reply.

`model` serves the model endpoints: the provider renders the (possibly edited) JSON body for the
model being tried, the answer's body is decoded so stages can read it, an event stream is
re-chunked into whole events, and `answer.observe` notes usage and the finish reason (when a
stage reads them: parsing every answer costs 2 % of the CPU, which the bare proxy skips). `forward`
serves every other path: request and response bodies stream through undecoded and unbuffered.
Each try is an `Attempt` on the call. Transport failures come back as error Replies.
"""

from __future__ import annotations

import time

from sidecar.answer import observe
from sidecar.call import Call, Reply
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.providers import Provider


class Route:
    def __init__(self, client: UpstreamClient, provider: Provider, *, observe: bool) -> None:
        self._client = client
        self._provider = provider
        self._observe = observe  # some stage reads the answer's usage (see build_pipeline)

    async def model(self, call: Call) -> Reply:
        provider = self._provider
        assert call.model is not None
        attempt = call.begin_attempt(provider.name, call.model, time.monotonic())
        reply = await provider.send(self._client, call, attempt)
        return observe(call, reply) if self._observe else reply

    async def forward(self, call: Call) -> Reply:
        provider = self._provider
        attempt = call.begin_attempt(provider.name, "", time.monotonic())
        return await provider.forward(self._client, call, attempt)
