"""An OpenAI-compatible provider (OpenAI, OpenRouter, vLLM, Ollama, the demo upstream, ...).

`/v1/X?q` goes to `{base_url}/X?q`. Credentials: the provider's `api_key` as
`Authorization: Bearer`, else the client's own Authorization passes through (unless it was a
local key, which never leaves the sidecar). The body goes out as the client sent it, byte for
byte, unless a stage changed it or this provider knows the model by another name. In zero
data retention mode, OpenRouter is also told to use only providers that retain nothing.
Anthropic-format endpoints (/v1/messages, /v1/messages/count_tokens) are translated to chat
completions and back (providers/messages.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable

from aiohttp import ClientResponse, StreamReader
from multidict import CIMultiDict

from sidecar.call import Attempt, Call, Reply
from sidecar.errors import UpstreamError
from sidecar.headers import client_response_headers, upstream_request_headers
from sidecar.sse import frame_events
from sidecar.upstream.client import Body, UpstreamClient
from sidecar.upstream.keys import KeyRing
from sidecar.upstream.limits import completion_field, renamed_cap
from sidecar.upstream.openrouter import is_openrouter, openrouter_body

_MESSAGES = frozenset({"messages", "messages/count_tokens"})  # Anthropic's wire: translated


class OpenAIProvider:
    def __init__(self, name: str, base_url: str, *, keys: KeyRing | None,
                 headers: Iterable[tuple[str, str]] = (), strip_prefix: bool = False,
                 local_auth: bool = False, proxy: str | None = None) -> None:
        self.name = name
        self.base_url = base_url
        self.keys = keys
        self._strip_prefix = strip_prefix
        self._proxy = proxy
        self._where = f"{name} ({base_url})"
        self._openrouter = is_openrouter(base_url)  # takes provider.zdr in ZDR mode
        self._keep_client_auth = keys is None and not local_auth
        self._extra = tuple(headers)

    def upstream_model(self, model: str) -> str:
        if self._strip_prefix:
            return model.partition("/")[2] or model
        return model

    async def send(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        if call.endpoint in _MESSAGES:
            from sidecar.upstream.providers.messages import send_messages  # only when used

            return await send_messages(self, client, call, attempt)
        model = self.upstream_model(attempt.model)
        if call.zdr and self._openrouter:
            data = openrouter_body(call, model)
        else:
            # the sidecar's completion cap, in the field this provider takes (limits.py)
            renamed = renamed_cap(call, completion_field(self.base_url, model)) if (
                "max_tokens" in call.overrides) else None
            data = call.upstream_body(model, renamed)
        return await self._exchange(client, call, attempt, "POST", data, decoded=True)

    async def forward(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        # a body a stage read already (a batch, bounded before it is sent) goes as it was read
        data = call.raw_body if call.raw_body is not None else (
            None if call.content is None else _stream(call.content))
        return await self._exchange(client, call, attempt, call.method, data, decoded=False)

    def request_headers(self, call: Call, *, decoded: bool) -> CIMultiDict[str]:
        """The upstream request's headers: the client's, less hop-by-hop and (unless the
        client's own key is to be used) its credentials, plus the provider's."""
        headers = upstream_request_headers(
            call.headers, extra=self._extra, decoded_body=decoded,
            keep_client_auth=self._keep_client_auth)
        if self.keys is not None:  # the key current now: it may have rotated (keys.py)
            headers["Authorization"] = f"Bearer {self.keys.current}"
        if call.upstream_headers:
            headers.update(call.upstream_headers)
        return headers

    @property
    def keeps_client_auth(self) -> bool:
        return self._keep_client_auth

    @property
    def openrouter(self) -> bool:
        return self._openrouter

    async def open(self, client: UpstreamClient, attempt: Attempt, method: str, path: str,
                   headers: CIMultiDict[str], data: bytes | AsyncIterator[bytes] | None, *,
                   decoded: bool) -> ClientResponse | Reply:
        """Send one request; the response once its headers are in, or the failure's Reply."""
        try:
            response = await client.open(method, self.base_url + path, headers=headers,
                                         data=data, decode=decoded, where=self._where,
                                         proxy=self._proxy)
        except UpstreamError as exc:
            return failed(attempt, exc)
        attempt.status = status = response.status
        attempt.headers_at = time.monotonic()
        if status >= 400:
            attempt.error = f"http_{status}"
        return response

    async def _exchange(self, client: UpstreamClient, call: Call, attempt: Attempt, method: str,
                        data: bytes | AsyncIterator[bytes] | None, *, decoded: bool) -> Reply:
        headers = self.request_headers(call, decoded=decoded)
        response = await self.open(client, attempt, method, call.path, headers, data,
                                   decoded=decoded)
        if isinstance(response, Reply):
            return response
        status = response.status
        reply_headers = client_response_headers(response.headers, decoded_body=decoded)
        if decoded and response.content_type != "text/event-stream":
            try:
                body = await client.read(response, self._where)
            except UpstreamError as exc:
                return failed(attempt, exc)
            attempt.ended = time.monotonic()
            return Reply(status, reply_headers, body=body)
        chunks = Body(response, self._where)
        call.finishers.append(chunks.finish)  # releases the connection even if never read
        if decoded:  # an event stream on a model endpoint: relayed event by event
            return Reply(status, reply_headers, chunks=frame_events(chunks), sse=True)
        return Reply(status, reply_headers, chunks=chunks)


def failed(attempt: Attempt, exc: UpstreamError) -> Reply:
    """An attempt that got no answer: recorded, and turned into an error Reply."""
    attempt.error = exc.code
    attempt.ended = time.monotonic()
    return Reply.from_error(exc)


async def _stream(content: StreamReader) -> AsyncIterator[bytes]:
    while chunk := await content.readany():
        yield chunk
