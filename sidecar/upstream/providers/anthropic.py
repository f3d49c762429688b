"""A provider that speaks Anthropic's Messages API (`format: anthropic`), behind OpenAI's shape.

`/v1/chat/completions` is translated to `POST {base_url}/messages` and its answer back into a
chat.completion, or an event stream of chat.completion.chunk events (upstream/anthropic/).
`/v1/messages` and `/v1/messages/count_tokens` (Anthropic-format clients, through every stage)
go natively: the body as the stages left it (redacted, capped, the model named as this provider
knows it), the query as sent (`?beta=true`), the answer and its errors as Anthropic gave them.
`GET /v1/models[/id]` lists Anthropic's models in OpenAI's shape; Anthropic's other
`/v1/messages/...` paths (batches) pass through untouched; every other path gets a 404 saying
Anthropic has no equivalent. Credentials: the provider's `api_key` as
`x-api-key`, else the client's own key (its Bearer token, or its x-api-key) unless it was a
local key, which never leaves the sidecar. `anthropic-version` is 2023-06-01 unless the client
sends its own; a client's `anthropic-beta` header passes through.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from urllib.parse import quote, unquote

import orjson
from aiohttp import ClientResponse, StreamReader
from multidict import CIMultiDict

from sidecar.call import Attempt, Call, Reply
from sidecar.errors import NotFound, SidecarError, UpstreamError, UpstreamUnavailable
from sidecar.headers import client_response_headers, upstream_request_headers
from sidecar.sse import frame_events
from sidecar.upstream.anthropic import ANTHROPIC_VERSION
from sidecar.upstream.anthropic.errors import translate_error
from sidecar.upstream.anthropic.models import PAGE_LIMIT, translate_models
from sidecar.upstream.anthropic.request import translate_request
from sidecar.upstream.anthropic.response import translate_body
from sidecar.upstream.anthropic.stream import StreamTranslator, translate_stream
from sidecar.upstream.client import Body, UpstreamClient
from sidecar.upstream.keys import KeyRing
from sidecar.upstream.providers.openai import failed

_JSON = "application/json"
_NATIVE = frozenset({"messages", "messages/count_tokens"})  # Anthropic's own model endpoints
_LISTED_PREFIX = "anthropic/"  # what strip_prefix removed, as OpenRouter names Claude models


class AnthropicProvider:
    def __init__(self, name: str, base_url: str, *, keys: KeyRing | None,
                 headers: Iterable[tuple[str, str]] = (), strip_prefix: bool = False,
                 local_auth: bool = False, proxy: str | None = None) -> None:
        self.name = name
        self.base_url = base_url
        self.keys = keys
        self._extra = tuple(headers)
        self._strip_prefix = strip_prefix
        self._local_auth = local_auth
        self._proxy = proxy
        self._where = f"{name} ({base_url})"

    def upstream_model(self, model: str) -> str:
        if self._strip_prefix:
            return model.partition("/")[2] or model
        return model

    async def send(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        if call.endpoint in _NATIVE:
            return await self._send_native(client, call, attempt)
        if call.endpoint != "chat/completions" or call.body is None:
            return _refused(attempt, self._no_equivalent(call))
        try:
            request, plan = translate_request({**call.body, **call.overrides},
                                              self.upstream_model(attempt.model))
        except SidecarError as exc:
            return _refused(attempt, exc)
        headers = self._headers(call)
        headers["Content-Type"] = _JSON
        response = await self._open(client, attempt, "POST", "/messages", headers,
                                    orjson.dumps(request))
        if isinstance(response, Reply):
            return response
        created = int(time.time())
        if (response.status >= 400 or not plan.stream
                or response.content_type != "text/event-stream"):
            raw = await self._read(client, attempt, response)
            if isinstance(raw, Reply):
                return raw
            return self._answer(attempt, response, raw,
                                lambda: translate_body(raw, plan, created))
        chunks = Body(response, self._where)
        call.finishers.append(chunks.finish)  # releases the connection even if never read
        translator = StreamTranslator(plan, created, self.name)
        return Reply(response.status, client_response_headers(response.headers, decoded_body=True),
                     chunks=translate_stream(chunks, translator, self._where), sse=True)

    async def forward(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        path = call.path.partition("?")[0]
        if call.method == "GET" and (path == "/models" or path.startswith("/models/")):
            name = unquote(path[8:])
            target = (f"/models/{quote(self.upstream_model(name), safe='')}" if name
                      else f"/models?limit={PAGE_LIMIT}")
            response = await self._open(client, attempt, "GET", target, self._headers(call), None)
            if isinstance(response, Reply):
                return response
            raw = await self._read(client, attempt, response)
            if isinstance(raw, Reply):
                return raw
            prefix = _LISTED_PREFIX if self._strip_prefix else ""
            return self._answer(attempt, response, raw, lambda: translate_models(raw, prefix))
        if path == "/messages" or path.startswith("/messages/"):
            return await self._native(client, call, attempt)
        return _refused(attempt, self._no_equivalent(call))

    async def _send_native(self, client: UpstreamClient, call: Call, attempt: Attempt
                           ) -> Reply:
        """A model endpoint of Anthropic's own API: the client's request with the stages'
        changes, the provider's credentials; the answer as it came."""
        headers = upstream_request_headers(call.headers, extra=self._extra, decoded_body=True,
                                           keep_client_auth=False)
        if (key := self._key(call)) is not None:
            headers["x-api-key"] = key
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        headers["Content-Type"] = _JSON
        if call.upstream_headers:
            headers.update(call.upstream_headers)
        data = call.upstream_body(self.upstream_model(attempt.model))
        response = await self._open(client, attempt, "POST", call.path, headers, data)
        if isinstance(response, Reply):
            return response
        reply_headers = client_response_headers(response.headers, decoded_body=True)
        if response.content_type != "text/event-stream":
            raw = await self._read(client, attempt, response)
            if isinstance(raw, Reply):
                return raw
            return Reply(response.status, reply_headers, body=raw)
        chunks = Body(response, self._where)
        call.finishers.append(chunks.finish)  # releases the connection even if never read
        return Reply(response.status, reply_headers, chunks=_whole(chunks, self._where),
                     sse=True)

    async def _native(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        """Anthropic's own API, for Anthropic-format clients: bytes through both ways."""
        headers = upstream_request_headers(call.headers, extra=self._extra, decoded_body=False,
                                           keep_client_auth=False)
        key = self._key(call)
        headers.popall("x-api-key", None)
        if key is not None:
            headers["x-api-key"] = key
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        if call.upstream_headers:
            headers.update(call.upstream_headers)
        data = None if call.content is None else _upload(call.content)
        try:
            response = await client.open(call.method, self.base_url + call.path, headers=headers,
                                         data=data, decode=False, where=self._where,
                                         proxy=self._proxy)
        except UpstreamError as exc:
            return failed(attempt, exc)
        self._note(attempt, response)
        chunks = Body(response, self._where)
        call.finishers.append(chunks.finish)
        return Reply(response.status,
                     client_response_headers(response.headers, decoded_body=False), chunks=chunks)

    def _headers(self, call: Call) -> CIMultiDict[str]:
        """The headers of a translated request: credentials, version, and nothing of the
        OpenAI client's own (its SDK's headers mean nothing to Anthropic)."""
        headers = CIMultiDict(self._extra)
        if (key := self._key(call)) is not None:
            headers["x-api-key"] = key
        client = call.headers
        headers["anthropic-version"] = client.get("anthropic-version", ANTHROPIC_VERSION)
        if beta := client.get("anthropic-beta"):
            headers["anthropic-beta"] = beta
        if call.upstream_headers:
            headers.update(call.upstream_headers)
        return headers

    def _key(self, call: Call) -> str | None:
        if self.keys is not None:  # the key current now: it may have rotated (keys.py)
            return self.keys.current
        if self._local_auth:  # the client's token is a local key: it stays here
            return None
        scheme, _, token = call.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return call.headers.get("x-api-key")

    async def _open(self, client: UpstreamClient, attempt: Attempt, method: str, target: str,
                    headers: CIMultiDict[str], data: bytes | None) -> ClientResponse | Reply:
        try:
            response = await client.open(method, self.base_url + target, headers=headers,
                                         data=data, decode=True, where=self._where,
                                         proxy=self._proxy)
        except UpstreamError as exc:
            return failed(attempt, exc)
        self._note(attempt, response)
        return response

    @staticmethod
    def _note(attempt: Attempt, response: ClientResponse) -> None:
        # The upstream's own status (529 stays 529 here; the client gets 503).
        attempt.status = status = response.status
        attempt.headers_at = time.monotonic()
        if status >= 400:
            attempt.error = f"http_{status}"

    async def _read(self, client: UpstreamClient, attempt: Attempt, response: ClientResponse
                    ) -> bytes | Reply:
        try:
            raw = await client.read(response, self._where)
        except UpstreamError as exc:
            return failed(attempt, exc)
        attempt.ended = time.monotonic()
        return raw

    def _answer(self, attempt: Attempt, response: ClientResponse, raw: bytes,
                translate: Callable[[], bytes | None]) -> Reply:
        """A whole answer translated: an error (any status ≥ 400) or `translate()`'s body."""
        headers = client_response_headers(response.headers, decoded_body=True)
        headers["Content-Type"] = _JSON
        status = response.status
        if status >= 400:
            status, body = translate_error(status, raw, self.name)
            return Reply(status, headers, body=body)
        translated = translate()
        if translated is None:
            attempt.error = "upstream_unavailable"
            return Reply.from_error(UpstreamUnavailable(
                f"Upstream {self._where} answered HTTP {status} with a body that is not in "
                "Anthropic's format."))
        return Reply(status, headers, body=translated)

    def _no_equivalent(self, call: Call) -> NotFound:
        return NotFound(
            f"Provider '{self.name}' speaks Anthropic's Messages API, which has no equivalent "
            f"of {call.method} /v1{call.path.partition('?')[0]}: it serves "
            "/v1/chat/completions, /v1/models and Anthropic's own /v1/messages.")


def _refused(attempt: Attempt, error: SidecarError) -> Reply:
    """Refused before anything went upstream (a field or path Anthropic cannot serve)."""
    attempt.error = error.code
    attempt.ended = time.monotonic()
    return Reply.from_error(error)


async def _whole(chunks: Body, where: str) -> AsyncGenerator[bytes, None]:
    """A native event stream, event by event, that must end with message_stop (or an error
    event): one that stops before is a failure, so the client never takes it for whole."""
    ended = False
    events = frame_events(chunks)
    try:
        async for chunk in events:
            # An event line starts the chunk or follows a newline (JSON escapes its own).
            lines = b"\n" + chunk
            ended = ended or b"\nevent: message_stop" in lines or b"\nevent: error" in lines
            yield chunk
    finally:
        await events.aclose()
    if not ended:
        raise UpstreamUnavailable(f"Upstream {where} ended the stream before its message_stop "
                                  "event: the answer is incomplete.")


async def _upload(content: StreamReader) -> AsyncIterator[bytes]:
    """The client's request body, streamed upstream as it arrives."""
    while chunk := await content.readany():
        yield chunk
